// The repository on disk without QEMU: opening, manifests, chains, dependents, deletes, orphans,
// branch points and the backup lock.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BackupBusyError, BackupLock, lockPath, readLock, StaleBackupError } from './lock';
import type { BackupManifest } from './manifest';
import { BackupRepository, REPO_MARKER } from './repository';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tmrepo-'));
});
afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const A = '20260101-000000-000-000a';
const B = '20260101-000000-001-000b';
const C = '20260101-000000-002-000c';
const D = '20260101-000000-003-000d';

function manifest(id: string, base?: string, vmId = 'vm-1'): BackupManifest {
  return {
    format: 'tidemark-backup', version: 1, id, vm: { id: vmId }, kind: base ? 'incremental' : 'full', checkpoint: `cp-${id}`,
    startedAt: Number(id.slice(16, 18)), completedAt: 0, qemuVersion: '7.2.22', tool: 't',
    disks: [{
      name: 'vda', kind: base ? 'incremental' : 'full', ...(base ? { since: 'x', base, backingFile: `${base}.qcow2` } : {}),
      image: BackupRepository.imageRel('vda', id), virtualSize: 1, bytesCopied: 0, fileSize: 0, sha256: '0'.repeat(64), sourceImage: '', sourceFormat: 'qcow2', checkpointBitmap: true,
    }],
  };
}

function store(repo: BackupRepository, m: BackupManifest): void {
  const f = repo.imagePath(m.vm.id, 'vda', m.id);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, 'layer');
  repo.writeManifest(m);
}

describe('BackupRepository', () => {
  it('creates a repository only in a new or empty directory, and reopens it', () => {
    const dir = path.join(root, 'r');
    expect(() => BackupRepository.open(dir)).toThrow(`backup repository ${dir} does not exist`);
    BackupRepository.open(dir, { create: true });
    expect(JSON.parse(fs.readFileSync(path.join(dir, REPO_MARKER), 'utf8'))).toEqual({ format: 'tidemark-backup-repository', version: 1 });
    expect(BackupRepository.open(dir).root).toBe(dir);
    fs.writeFileSync(path.join(root, 'file'), 'x');
    expect(() => BackupRepository.open(root, { create: true })).toThrow(`${root} is not empty and not a Tidemark backup repository; choose an empty or new directory`);
    fs.writeFileSync(path.join(dir, REPO_MARKER), JSON.stringify({ format: 'tidemark-backup-repository', version: 9 }));
    expect(BackupRepository.open(dir).readOnly).toMatch('written by a newer Tidemark (format version 9; this one writes version 1): it is opened read-only');
  });

  it('lists manifests oldest first, reports unreadable ones, and finds chains and dependents', () => {
    const repo = BackupRepository.open(path.join(root, 'r'), { create: true });
    for (const m of [manifest(A), manifest(B, A), manifest(C, B), manifest(D, A)]) store(repo, m);
    const bad = path.join(repo.vmDir('vm-1'), 'manifests', '20260101-000000-009-0bad.json');
    fs.writeFileSync(bad, '{"format": "tidemark-backup"');
    const misplaced = manifest('20260101-000000-008-0aaa');
    fs.writeFileSync(path.join(repo.vmDir('vm-1'), 'manifests', '20260101-000000-007-0bbb.json'), JSON.stringify(misplaced));
    const scan = repo.scan();
    expect(scan.manifests.map((m) => m.id)).toEqual([A, B, C, D]);
    expect(scan.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/holds backup 20260101-000000-008-0aaa, which does not match its file name/),
      expect.stringMatching(/^manifest .*0bad\.json is not valid JSON/),
    ]);
    expect(repo.chain(repo.get(C), 'vda').map((l) => l.manifest.id)).toEqual([C, B, A]);
    expect(repo.chain(repo.get(C), 'vda')[0]!.file).toBe(repo.imagePath('vm-1', 'vda', C));
    expect(() => repo.chain(repo.get(C), 'vdb')).toThrow(`backup ${C} has no disk "vdb" (it has vda)`);
    expect(repo.dependents(A, scan.manifests).map((m) => m.id)).toEqual([B, C, D]);
    expect(repo.dependents(B, scan.manifests).map((m) => m.id)).toEqual([C]);
    expect(() => repo.get('20260101-000000-099-0fff')).toThrow(/backup 20260101-000000-099-0fff is not in repository .* \(see backup-list\)/);
  });

  it('deletes manifests before layers, and finds files no manifest refers to', () => {
    const repo = BackupRepository.open(path.join(root, 'r'), { create: true });
    for (const m of [manifest(A), manifest(B, A)]) store(repo, m);
    const stray = repo.imagePath('vm-1', 'vda', C);
    fs.writeFileSync(stray, 'left by a crash');
    expect(repo.orphanImages('vm-1')).toEqual([stray]);
    repo.deleteBackups([repo.get(B)]);
    expect(repo.list().map((m) => m.id)).toEqual([A]);
    expect(fs.existsSync(repo.imagePath('vm-1', 'vda', B))).toBe(false);
    expect(fs.existsSync(repo.imagePath('vm-1', 'vda', A))).toBe(true);
    // a manifest whose base is gone breaks only its own chain
    store(repo, manifest(D, B));
    expect(() => repo.chain(repo.get(D), 'vda')).toThrow(`backup ${D} of vda builds on backup ${B}, whose manifest is gone from the repository`);
  });

  it('keeps branch points and full-backup marks per VM', () => {
    const repo = BackupRepository.open(path.join(root, 'r'), { create: true });
    repo.writeBranchPoint('vm-1', { format: 'tidemark-branch-point', version: 1, checkpoint: 'r/1', parent: 'c1', backup: A, disks: ['vda'], createdAt: 5 });
    expect(repo.branchPoints('vm-1').map((b) => b.checkpoint)).toEqual(['r/1']);
    expect(repo.branchPoints('vm-2')).toEqual([]);
    repo.setNeedsFull('vm-1', { vda: 'why' });
    expect(repo.needsFull('vm-1')).toEqual({ vda: 'why' });
    repo.setNeedsFull('vm-1', {});
    expect(repo.needsFull('vm-1')).toEqual({});
  });
});

describe('BackupLock', () => {
  const init = { backupId: A, vmId: 'vm-1', endpoint: 'unix:/q', startedAt: 1, phase: 'preparing' as const, kind: 'full' as const, executed: false, disks: [], progress: [], log: [] };

  it('refuses a second backup of the same VM while the first holds the lock', () => {
    const repo = BackupRepository.open(path.join(root, 'r'), { create: true });
    const lock = BackupLock.acquire(repo, init);
    expect(() => BackupLock.acquire(repo, { ...init, backupId: B })).toThrow(BackupBusyError);
    expect(() => BackupLock.acquire(repo, { ...init, backupId: B })).toThrow(new RegExp(`a backup of VM "vm-1" is already running: backup ${A}, started 1970-01-01T00:00:00.001Z by process ${process.pid} on .* \\(phase preparing\\); see backup-status, or stop it with backup-cancel`));
    lock.update({ phase: 'running' });
    expect(readLock(repo, 'vm-1')).toMatchObject({ alive: true, journal: { phase: 'running', backupId: A } });
    lock.release();
    expect(readLock(repo, 'vm-1')).toBeUndefined();
    BackupLock.acquire(repo, { ...init, backupId: B }).release();
  });

  it('a lock left by a dead process is stale: the caller must clean up first', () => {
    const repo = BackupRepository.open(path.join(root, 'r'), { create: true });
    const dead = spawnSync('true').pid!;
    fs.mkdirSync(path.dirname(lockPath(repo, 'vm-1')), { recursive: true });
    fs.writeFileSync(lockPath(repo, 'vm-1'), JSON.stringify({ ...init, pid: dead, host: os.hostname(), updatedAt: 0 }));
    expect(readLock(repo, 'vm-1')?.alive).toBe(false);
    const err = (() => {
      try {
        BackupLock.acquire(repo, { ...init, backupId: B });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(StaleBackupError);
    expect((err as StaleBackupError).journal?.backupId).toBe(A);
    // a lock file cut short by a crash is stale too
    fs.writeFileSync(lockPath(repo, 'vm-1'), '{"pid": 1');
    expect(readLock(repo, 'vm-1')?.alive).toBe(false);
  });
});
