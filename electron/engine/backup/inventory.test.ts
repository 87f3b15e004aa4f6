// The inventory read from a repository on disk, without QEMU: failed attempts from logs without a
// manifest, unreadable manifests kept per VM folder, verification records (written, read back,
// refused when malformed, dropped with their backup), the fleet's last backup per VM, and usage.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { backupIdTime, failedBackups, failureFromLog, fleetEntries, repositoryUsage, vmInventory } from './inventory';
import type { BackupManifest } from './manifest';
import { BackupRepository } from './repository';
import { forgetVerifications, readVerifications, recordVerifications, verifyRecords } from './verify-history';
import type { VerifyReport } from './verify';

let root: string;
let repo: BackupRepository;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tminv-'));
  repo = BackupRepository.open(path.join(root, 'r'), { create: true });
});
afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const A = '20261204-100000-000-000a';
const B = '20261204-110000-000-000b';
const F = '20261204-120000-000-000f';

function manifest(id: string, base?: string, vmId = 'vm-1'): BackupManifest {
  return {
    format: 'tidemark-backup', version: 1, id, vm: { id: vmId, name: `name-${vmId}` }, kind: base ? 'incremental' : 'full', checkpoint: `cp-${id}`,
    startedAt: backupIdTime(id), completedAt: backupIdTime(id) + 5000, qemuVersion: '7.2.22', tool: 't',
    disks: [{
      name: 'vda', kind: base ? 'incremental' : 'full', ...(base ? { since: 'x', base, backingFile: `${base}.qcow2` } : {}),
      image: BackupRepository.imageRel('vda', id), virtualSize: 1, bytesCopied: 0, fileSize: 5, sha256: '0'.repeat(64), sourceImage: '', sourceFormat: 'qcow2', checkpointBitmap: true,
    }],
  };
}

function store(m: BackupManifest): void {
  const f = repo.imagePath(m.vm.id, 'vda', m.id);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, 'layer');
  repo.writeManifest(m);
  writeLog(m.vm.id, m.id, ['10:00:00.000 full backup of vda', `10:00:05.000 backup ${m.id} complete`]);
}

function writeLog(vm: string, id: string, lines: string[]): void {
  const f = repo.logPath(vm, id);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, lines.join('\n') + '\n');
}

const report = (id: string, ok: boolean): VerifyReport => ({
  ok,
  problems: [],
  backups: [{ id, ok, disks: [{ disk: 'vda', ok, problems: [], layers: [{ backup: id, disk: 'vda', file: `/x/${id}.qcow2`, ok, problems: ok ? [] : ['content changed: sha256 is 1, the manifest says 0'] }] }] }],
});

describe('failed backups', () => {
  it('reads the reason from the log: failed, cancelled, or silent', () => {
    expect(failureFromLog(['10:00:00.000 start', '10:00:01.000 failed: disk full (ENOSPC); rolling back', '10:00:01.500 partial images deleted'])).toEqual({ outcome: 'failed', reason: 'disk full (ENOSPC)' });
    expect(failureFromLog(['10:00:01.000 cancelled: rolling back'])).toEqual({ outcome: 'cancelled', reason: 'cancelled while it ran (backup-cancel); rolled back, nothing kept' });
    expect(failureFromLog(['10:00:00.000 start']).outcome).toBe('failed');
  });

  it('are logs without a manifest, with the time their id carries', () => {
    store(manifest(A));
    writeLog('vm-1', F, ['12:00:00.000 incremental backup of vda', '12:00:02.000 failed: QEMU went away; rolling back']);
    fs.writeFileSync(path.join(repo.vmDir('vm-1'), 'logs', 'notes.log'), 'not a backup');
    const failed = failedBackups(repo.vmDir('vm-1'), repo.list('vm-1'));
    expect(failed).toEqual([{ id: F, startedAt: Date.UTC(2026, 11, 4, 12, 0, 0, 0), endedAt: expect.any(Number) as number, outcome: 'failed', reason: 'QEMU went away' }]);
  });
});

describe('verification records', () => {
  it('are written per backup, read back, and dropped with their backup', () => {
    store(manifest(A));
    store(manifest(B, A));
    recordVerifications(repo, repo.list(), [...verifyRecords(report(A, true), 1000, 42), ...verifyRecords(report(B, false), 2000, 7)]);
    const got = readVerifications(repo, 'vm-1');
    expect(got[A]).toMatchObject({ backup: A, at: 1000, durationMs: 42, ok: true, layers: 1, problems: [] });
    expect(got[B]!.problems).toEqual([`vda: layer of backup ${B}: content changed: sha256 is 1, the manifest says 0`]);
    expect(fs.statSync(path.join(repo.vmDir('vm-1'), 'verified', `${A}.json`)).mode & 0o777).toBe(0o600);
    forgetVerifications(repo, [manifest(B, A)]);
    expect(Object.keys(readVerifications(repo, 'vm-1'))).toEqual([A]);
  });

  it('that are malformed, or filed under another id, count as never verified', () => {
    store(manifest(A));
    store(manifest(B, A));
    const dir = path.join(repo.vmDir('vm-1'), 'verified');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${A}.json`), '{"backup": "oops"');
    const b = verifyRecords(report(B, true), 1, 1)[0]!;
    fs.writeFileSync(path.join(dir, `${A}.json`), JSON.stringify({ ...b, extra: 1 }));
    fs.writeFileSync(path.join(dir, `${F}.json`), JSON.stringify(b));
    expect(readVerifications(repo, 'vm-1')).toEqual({});
  });
});

describe('inventory', () => {
  it("lists one VM's backups, failures, unreadable manifests and records, not another VM's", () => {
    store(manifest(A));
    store(manifest(B, undefined, 'vm-2'));
    fs.writeFileSync(path.join(repo.vmDir('vm-1'), 'manifests', `${F}.json`), '{ "format": "tidemark-backup", "version": 9 }');
    writeLog('vm-1', F, ['12:00:00.000 x']);
    const inv = vmInventory(repo, 'vm-1');
    expect(inv.backups.map((b) => b.id)).toEqual([A]);
    expect(inv.problems).toHaveLength(1);
    expect(inv.problems[0]!.message).toMatch(/version/);
    expect(inv.failed.map((f) => f.id)).toEqual([F]);
    expect(inv.running).toBe(false);
  });

  it('gives each VM folder its last backup and its newest attempt, mapped to the host’s VM id', () => {
    store(manifest(A));
    store(manifest(B, A));
    recordVerifications(repo, repo.list(), verifyRecords(report(B, true), 5, 5));
    store(manifest(A, undefined, 'vm-2'));
    writeLog('vm-2', F, ['12:00:01.000 cancelled: rolling back']);
    const fleet = fleetEntries(repo, (identity) => (identity === 'vm-1' ? 'demo' : undefined));
    expect(fleet).toHaveLength(2);
    const [one, two] = fleet;
    expect(one).toMatchObject({ identity: 'vm-1', name: 'name-vm-1', vmId: 'demo', backups: 2, last: { id: B, kind: 'incremental', verified: { ok: true } }, lastAttempt: { id: B, outcome: 'succeeded' } });
    expect(two).toMatchObject({ identity: 'vm-2', backups: 1, last: { id: A }, lastAttempt: { id: F, outcome: 'cancelled' } });
    expect(two!.vmId).toBeUndefined();
  });

  it('measures the repository and its file system', () => {
    store(manifest(A));
    const u = repositoryUsage(repo.root);
    const manifestSize = fs.statSync(path.join(repo.vmDir('vm-1'), 'manifests', `${A}.json`)).size;
    expect(u.files).toBe(4); // marker, manifest, layer, log
    expect(u.bytes).toBeGreaterThanOrEqual(manifestSize + 5);
    expect(u.fsSize).toBeGreaterThan(0);
    expect(u.fsAvailable).toBeLessThanOrEqual(u.fsFree);
  });
});
