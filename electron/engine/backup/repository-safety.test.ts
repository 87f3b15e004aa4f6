// What the repository never deletes, and what it refuses: unreadable manifests keep their files
// (the clean-up sweeps only *.partial files), a repository of a newer version is read-only, a
// manifest naming another path than the derived one is corrupt, a tampered journal deletes nothing
// outside its own backup's derived paths, a lost hypervisor connection leaves a stale journal, and
// everything written is private.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Checkpoint, DiskInfo, VmInfo } from '../../../shared/domain';
import { OperationLog, RecordingReporter } from '../operation';
import { BackupLock, lockPath, readLock, StaleBackupError } from './lock';
import type { BackupManifest } from './manifest';
import { BackupRepository, REPO_MARKER } from './repository';
import { recoverStale, runBackupSession } from './session';
import type { BackupSource, BackupStrategy } from './strategy';
import { verifyBackups } from './verify';

const VM = 'uuid-1';
const A = '20260101-000000-000-000a';
const B = '20260101-000000-001-000b';
const C = '20260101-000000-002-000c';

let root: string;
let repo: BackupRepository;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-repo-safety-'));
  repo = BackupRepository.open(path.join(root, 'repo'), { create: true });
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function manifest(id: string, base?: string): BackupManifest {
  return {
    format: 'tidemark-backup', version: 1, id, vm: { id: VM }, kind: base ? 'incremental' : 'full', startedAt: Number(id.slice(16, 18)), completedAt: 0, qemuVersion: '7.2', tool: 't',
    disks: [{
      name: 'vda', kind: base ? 'incremental' : 'full', ...(base ? { since: 'x', base, backingFile: `${base}.qcow2` } : {}),
      image: BackupRepository.imageRel('vda', id), virtualSize: 1, bytesCopied: 0, fileSize: 0, sha256: '0'.repeat(64), sourceImage: '', sourceFormat: 'qcow2', checkpointBitmap: false,
    }],
  };
}

function layer(id: string, disk = 'vda'): string {
  const f = repo.imagePath(VM, disk, id);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, `layer ${id}`);
  return f;
}

function manifestFile(id: string): string {
  return path.join(repo.vmDir(VM), 'manifests', `${id}.json`);
}

/** Writes `m` as a manifest, then edits its text. */
function storeEdited(m: BackupManifest, edit: (text: string) => string): void {
  fs.mkdirSync(path.dirname(manifestFile(m.id)), { recursive: true });
  fs.writeFileSync(manifestFile(m.id), edit(JSON.stringify(m, null, 2)));
}

const GiB = 1024 ** 3;
const disk: DiskInfo = { name: 'vda', nodeName: 'vda-fmt', format: 'qcow2', virtualSize: GiB, imageFile: '/img/vda.qcow2', granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps: [] };
const vm: VmInfo = { id: VM, name: 'vm1', endpoint: 'unix:/q', status: 'running', qemuVersion: '7.2.22', disks: [disk] };
const c1: Checkpoint = { name: 'c1', creationTime: 0, createdAtMs: 0, layout: 'independent', disks: [{ name: 'vda', checkpoint: 'bitmap' }] };

function source(calls: string[], over: Partial<BackupSource> = {}): BackupSource {
  return {
    identity: { key: VM },
    withLock: async (fn) => fn(),
    inspect: async () => ({ vm, checkpoints: [c1], current: 'c1', layout: 'independent', changesUnusable: () => undefined }),
    prepareCheckpoint: async (o) => ({ checkpoint: { ...c1, name: o.name!, parent: 'c1' } }),
    commitCheckpoint: async (p) => void calls.push(`commit ${p.checkpoint.name}`),
    rollbackCheckpoint: async (p) => void calls.push(`rollback ${p.checkpoint.name}`),
    checkpointNames: async () => new Set(['c1']),
    isAlive: () => true,
    recover: async (_s, j) => void calls.push(`recover ${j.backupId}`),
    ...over,
  };
}

/** A strategy that fails in `transfer` (so the session sweeps, plans, journals, then rolls back). */
function failingStrategy(calls: string[]): BackupStrategy {
  return {
    mode: 'push', name: 'test', tool: 't', exportOnly: false, rollbackNote: 'partial images deleted',
    check: async () => undefined,
    setup: async (run) => {
      for (const t of run.targets) {
        fs.mkdirSync(path.dirname(t.partial), { recursive: true });
        fs.writeFileSync(t.partial, 'partial');
      }
    },
    start: async (run) => run.markExecuted(),
    transfer: async () => {
      calls.push('transfer');
      throw new Error('the connection to QEMU was lost');
    },
    finish: async () => undefined,
    rollback: async () => void calls.push('strategy rollback'),
  };
}

const failure = (p: Promise<unknown>) => p.then(() => new Error('it succeeded'), (e: Error) => e);

describe('unreadable manifests keep their files', () => {
  const cases: [string, (t: string) => string, RegExp][] = [
    ['an unknown version (a newer Tidemark)', (t) => t.replace('"version": 1', '"version": 3'), /manifest version 3 is not supported \(this Tidemark reads versions 1 and 2\)/],
    ['an unknown field', (t) => t.replace('"kind"', '"encryption": "aes", "kind"'), /unexpected field "encryption"/],
    ['a truncated file', (t) => t.slice(0, Math.floor(t.length / 2)), /is not valid JSON/],
    ['invalid JSON', () => 'not json at all', /is not valid JSON/],
  ];
  for (const [what, edit, reason] of cases) {
    it(`${what}: the next backup's clean-up deletes only *.partial files; list, info and verify give the reason`, async () => {
      const keptLayer = layer(B);
      storeEdited(manifest(B), edit);
      const stray = layer(C); // a finished layer no manifest names (crash between rename and manifest)
      const partial = `${layer(A)}.partial`;
      fs.renameSync(repo.imagePath(VM, 'vda', A), partial);
      const calls: string[] = [];
      const reporter = new RecordingReporter();
      const err = await failure(runBackupSession(source(calls), failingStrategy(calls), { repo }, reporter));
      expect(err.message).toMatch(/the connection to QEMU was lost/);
      expect(fs.existsSync(keptLayer), 'the layer of the unreadable manifest').toBe(true);
      expect(fs.existsSync(stray), 'a layer no readable manifest names').toBe(true);
      expect(fs.existsSync(partial)).toBe(false);
      expect(reporter.lines.join('\n')).toContain(`removed ${partial}: an unfinished layer`);
      const scan = repo.scan();
      expect(scan.problems).toEqual([{ file: manifestFile(B), message: expect.stringMatching(reason) as unknown }]);
      expect(() => repo.get(B)).toThrow(new RegExp(`^backup ${B} cannot be read: manifest .* ${reason.source}`));
      const report = await verifyBackups(repo);
      expect(report.ok).toBe(false);
      expect(report.problems.map((p) => p.file)).toEqual([manifestFile(B), keptLayer, stray]);
      expect(report.problems[0]!.message).toMatch(reason);
    });
  }

  it('backup-delete is refused while a manifest of the VM cannot be read (it might build on the layer)', () => {
    const a = layer(A);
    repo.writeManifest(manifest(A));
    layer(B);
    storeEdited(manifest(B, A), (t) => t.replace('"version": 1', '"version": 7'));
    expect(() => repo.deleteBackups([repo.get(A)])).toThrow(/refusing to delete backups of VM "uuid-1": a manifest cannot be read, and a layer it might build on would be lost .*manifest version 7 is not supported/);
    expect(fs.existsSync(a)).toBe(true);
    expect(fs.existsSync(manifestFile(A))).toBe(true);
  });
});

describe('manifest image paths', () => {
  const wrong: [string, string][] = [
    ['another backup\'s layer', `disks/vda/${A}.qcow2`],
    ['another disk\'s folder', `disks/vdb/${B}.qcow2`],
    ['a climbing path', 'disks/../x.qcow2'],
  ];
  for (const [what, image] of wrong) {
    it(`${what} (${image}) is a corrupt manifest, never deleted through`, () => {
      const a = layer(A);
      repo.writeManifest(manifest(A));
      const m = manifest(B);
      m.disks[0]!.image = image;
      storeEdited(m, (t) => t);
      expect(repo.scan().problems.map((p) => p.message)).toEqual([expect.stringMatching(/is corrupt: disk "vda" names image|expected disks\/<disk>\/<id>\.qcow2/)]);
      expect(() => repo.get(B)).toThrow(/cannot be read/);
      expect(() => repo.writeManifest(m)).toThrow(/is corrupt|names image/);
      expect(fs.existsSync(a)).toBe(true);
    });
  }
});

describe('a repository written by a newer version', () => {
  it('opens read-only with a message; nothing is written or deleted', () => {
    const a = layer(A);
    repo.writeManifest(manifest(A));
    fs.writeFileSync(path.join(repo.root, REPO_MARKER), JSON.stringify({ format: 'tidemark-backup-repository', version: 2 }));
    const ro = BackupRepository.open(repo.root);
    expect(ro.readOnly).toMatch(/was written by a newer Tidemark \(format version 2; this one writes version 1\): it is opened read-only/);
    expect(ro.list().map((m) => m.id)).toEqual([A]);
    expect(ro.scan().problems).toEqual([{ file: path.join(repo.root, REPO_MARKER), message: ro.readOnly }]);
    expect(() => ro.deleteBackups([ro.get(A)])).toThrow(/^cannot delete .*opened read-only/);
    expect(() => ro.writeManifest(manifest(B))).toThrow(/^cannot record backup .*opened read-only/);
    expect(() => ro.setNeedsFull(VM, { vda: 'x' })).toThrow(/opened read-only/);
    expect(() => BackupLock.acquire(ro, { backupId: B, vmId: VM, endpoint: '', startedAt: 0, phase: 'preparing', kind: 'full', executed: false, disks: [], progress: [], log: [] })).toThrow(/^cannot start a backup: .*read-only/);
    expect(fs.existsSync(a)).toBe(true);
    fs.writeFileSync(path.join(repo.root, REPO_MARKER), JSON.stringify({ format: 'tidemark-backup-repository', version: 'x' }));
    expect(() => BackupRepository.open(repo.root)).toThrow('has format version "x"; this Tidemark reads version 1');
  });
});

describe('the journal before recovery acts on it', () => {
  const journal = (over: Record<string, unknown>) => ({
    pid: spawnSync('true').pid!, host: os.hostname(), backupId: B, vmId: VM, endpoint: '', startedAt: 0, updatedAt: 0, phase: 'running', kind: 'full', executed: true, disks: [], progress: [], log: [], ...over,
  });
  const writeJournal = (j: unknown) => {
    fs.mkdirSync(repo.vmDir(VM), { recursive: true });
    fs.writeFileSync(lockPath(repo, VM), typeof j === 'string' ? j : JSON.stringify(j));
  };

  it('a journal naming files outside its backup\'s derived paths deletes nothing but its own', async () => {
    const victim = path.join(root, 'victim.qcow2');
    fs.writeFileSync(victim, 'not yours');
    const other = layer(A);
    repo.writeManifest(manifest(A));
    const own = layer(B);
    writeJournal(journal({ disks: [
      { disk: 'vda', kind: 'full', partialImage: `${victim}.partial` },
      { disk: 'vdb', kind: 'full', partialImage: `${other}.partial` },
      { disk: 'vda', kind: 'full', partialImage: `${own}.partial` },
    ] }));
    const held = readLock(repo, VM)!;
    expect(held.alive).toBe(false);
    const calls: string[] = [];
    const log = new OperationLog(new RecordingReporter());
    await recoverStale(source(calls), repo, held.journal, log);
    expect(fs.existsSync(victim)).toBe(true);
    expect(fs.existsSync(other)).toBe(true);
    expect(fs.existsSync(own)).toBe(false);
    expect(log.lines.filter((l) => l.includes('left alone'))).toHaveLength(2);
    expect(calls).toEqual([`recover ${B}`]);
    expect(readLock(repo, VM)).toBeUndefined();
  });

  it('a journal that fails validation is stale and names nothing: only the lock goes', async () => {
    const own = layer(B);
    for (const [bad, reason] of [
      [journal({ backupId: '../../etc' }), /journal\.backupId: expected a backup id/],
      [journal({ disks: [{ disk: 'vda', kind: 'full', partialImage: `${own}.partial`, extra: 1 }] }), /unexpected field "extra"/],
      [journal({ vmId: 'someone-else' }), /is of VM "someone-else", not "uuid-1"/],
      ['{"pid": 1', /is not valid JSON/],
    ] as const) {
      writeJournal(bad);
      const held = readLock(repo, VM)!;
      expect(held).toMatchObject({ alive: false, invalid: expect.stringMatching(reason) as unknown });
      const err = (() => {
        try {
          BackupLock.acquire(repo, journal({}) as never);
        } catch (e) {
          return e as StaleBackupError;
        }
      })();
      expect(err).toBeInstanceOf(StaleBackupError);
      const calls: string[] = [];
      await recoverStale(source(calls), repo, held.journal, new OperationLog(new RecordingReporter()));
      expect(calls).toEqual([]);
      expect(fs.existsSync(own)).toBe(true);
      expect(readLock(repo, VM)).toBeUndefined();
    }
  });

  it('an unfinished backup whose manifest file exists (unreadable) keeps its files', async () => {
    const own = layer(B);
    storeEdited(manifest(B), (t) => t.slice(0, 40));
    writeJournal(journal({ disks: [{ disk: 'vda', kind: 'full', partialImage: `${own}.partial` }] }));
    const log = new OperationLog(new RecordingReporter());
    await recoverStale(source([]), repo, readLock(repo, VM)!.journal, log);
    expect(fs.existsSync(own)).toBe(true);
    expect(log.lines.join('\n')).toContain('its manifest exists but cannot be read, so its files are kept');
  });

  it('a symbolic link out of the repository is never followed by a delete', () => {
    const outside = fs.mkdtempSync(path.join(root, 'outside-'));
    fs.writeFileSync(path.join(outside, `${C}.qcow2.partial`), 'outside');
    fs.mkdirSync(path.join(repo.vmDir(VM), 'disks'), { recursive: true });
    fs.symlinkSync(outside, path.join(repo.vmDir(VM), 'disks', 'vda'));
    expect(repo.partialFiles(VM)).toEqual([]);
    expect(() => repo.removeFile(`${repo.imagePath(VM, 'vda', C)}.partial`)).toThrow(/refusing to touch .*: it is outside backup repository/);
    expect(() => repo.removeFile('/etc/hostname')).toThrow(/outside backup repository/);
    expect(fs.existsSync(path.join(outside, `${C}.qcow2.partial`))).toBe(true);
  });
});

describe('a backup that loses its hypervisor connection', () => {
  it('keeps its journal, stale although its process lives; the next backup recovers from it first', async () => {
    const calls: string[] = [];
    let alive = false;
    const src = source(calls, { isAlive: () => alive });
    const err = await failure(runBackupSession(src, failingStrategy(calls), { repo }, new RecordingReporter()));
    expect(err.message).toMatch(/the hypervisor could not be cleaned up \(connection lost\): the next backup or backup-cancel does it/);
    const held = readLock(repo, VM)!;
    expect(held.alive).toBe(false);
    expect(held.journal).toMatchObject({ executed: true, abandoned: expect.stringMatching(/connection to the hypervisor was lost/) as unknown, prepared: { checkpoint: { name: held.journal.backupId } } });
    alive = true;
    calls.length = 0;
    await failure(runBackupSession(src, failingStrategy(calls), { repo }, new RecordingReporter()));
    expect(calls.slice(0, 2)).toEqual([`recover ${held.journal.backupId}`, `rollback ${held.journal.backupId}`]);
    expect(readLock(repo, VM)).toBeUndefined();
  });
});

describe('privacy', () => {
  it('repository folders are 0700; manifests, layers\' folders, journal and marks are private', () => {
    const old = process.umask(0o022);
    try {
      const r = BackupRepository.open(path.join(root, 'r2'), { create: true });
      const m = manifest(A);
      r.writeManifest(m);
      r.setNeedsFull(VM, { vda: 'why' });
      const lock = BackupLock.acquire(r, { backupId: B, vmId: VM, endpoint: '', startedAt: 0, phase: 'preparing', kind: 'full', executed: false, disks: [], progress: [], log: [] });
      const mode = (f: string) => (fs.statSync(f).mode & 0o777).toString(8);
      expect(mode(r.root)).toBe('700');
      expect(mode(r.vmDir(VM))).toBe('700');
      expect(mode(path.join(r.vmDir(VM), 'manifests'))).toBe('700');
      expect(mode(path.join(r.vmDir(VM), 'manifests', `${A}.json`))).toBe('600');
      expect(mode(path.join(r.vmDir(VM), 'needs-full.json'))).toBe('600');
      expect(mode(lockPath(r, VM))).toBe('600');
      expect(mode(path.join(r.root, REPO_MARKER))).toBe('600');
      lock.release();
    } finally {
      process.umask(old);
    }
  });
});
