// Backup failures against a real QEMU: a target that runs out of space (on one disk of two),
// cancel, a second backup while one runs, a corrupted repository layer, QEMU killed mid-backup,
// and an unfinished backup left by a dead process. Each must leave nothing half-done: no manifest,
// no partial image, no leftover job/node/bitmap in QEMU, the checkpoint it created rolled back,
// earlier backups and checkpoints untouched.

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../qmp/client';
import { CheckpointEngine } from '../checkpoints/engine';
import { killLab, startLab, stopLab } from '../lab/labvm';
import { type BackupRig, backupRigPerSuite, compareWith, KiB, MiB, startBackupRig, stopBackupRig } from '../backup/itest-helpers';
import { BackupBusyError, lockPath, readLock } from '../backup/lock';
import type { BackupManifest } from '../backup/manifest';
import { BackupRepository } from '../backup/repository';
import { restoreTo } from '../backup/restore';
import { BackupFailedError } from '../backup/session';
import { describeFailures, verifyBackups } from '../backup/verify';
import { RecordingReporter } from '../operation';
import { backupStatus, cancelBackup } from './backup-control';
import { runBackup } from './push';

const DISKS = [
  { name: 'vda', sizeBytes: 64 * MiB },
  { name: 'vdb', sizeBytes: 32 * MiB },
];

interface QemuSnapshot {
  bitmaps: Record<string, string[]>;
  jobs: string[];
  nodes: string[];
}

/** What QEMU holds that a backup could leave behind: bitmaps (name:recording), jobs, our nodes. */
async function qemuState(r: BackupRig): Promise<QemuSnapshot> {
  const nodes = await r.client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string; recording: boolean }[] }[]>('query-named-block-nodes', { flat: true });
  const bitmaps: Record<string, string[]> = {};
  for (const d of DISKS) {
    bitmaps[d.name] = (nodes.find((n) => n['node-name'] === `${d.name}-fmt`)?.['dirty-bitmaps'] ?? []).map((b) => `${b.name ?? '(anon)'}:${b.recording}`).sort();
  }
  const jobs = (await r.client.execute<{ id: string }[]>('query-jobs')).map((j) => j.id);
  return { bitmaps, jobs, nodes: nodes.map((n) => n['node-name']).filter((n) => n.startsWith('tidemark-')) };
}

function repoFiles(repo: BackupRepository): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!p.includes(`${path.sep}logs${path.sep}`)) out.push(path.relative(repo.root, p));
    }
  };
  walk(repo.root);
  return out.sort();
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const layout of ['chained', 'independent'] as const) describe(`backup failures (${layout} layout)`, () => {
  let rig: BackupRig | undefined;
  let first: BackupManifest;

  beforeAll(async () => {
    rig = await startBackupRig(DISKS);
    await rig.engine.create({ name: 'c0', layout });
    await rig.shadow.write('vda', 0, 1 * MiB, 0x10);
    await rig.shadow.write('vdb', 0, 1 * MiB, 0x20);
    first = await runBackup(rig.engine, rig.client, { repo: rig.repo, full: true });
    rig.shadow.snapshot(first.id);
  });
  afterAll(async () => {
    await stopBackupRig(rig);
  });

  it('one disk\'s target fails (ENOSPC): the other job is cancelled, the checkpoint rolled back, partial images deleted', async () => {
    const r = rig!;
    await r.shadow.write('vda', 4 * MiB, 256 * KiB, 0x31);
    await r.shadow.write('vdb', 4 * MiB, 256 * KiB, 0x32);
    const before = await qemuState(r);
    const files = repoFiles(r.repo);
    const checkpoints = r.engine.list().map((c) => c.name);
    const err = await runBackup(r.engine, r.client, { repo: r.repo, injectTargetError: { disk: 'vdb', errno: 28 } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(BackupFailedError);
    expect((err as Error).message).toMatch(/backup job of vdb failed: .*No space left on device/);
    expect((err as Error).message).toMatch(/checkpoint \S+ rolled back/);
    expect(await qemuState(r)).toEqual(before);
    expect(repoFiles(r.repo)).toEqual(files);
    expect(r.engine.list().map((c) => c.name)).toEqual(checkpoints);
    expect(r.engine.current()?.name).toBe(first.checkpoint);
    // nothing of the failed backup's changes is lost: the next incremental has them all
    const m = await runBackup(r.engine, r.client, { repo: r.repo });
    r.shadow.snapshot(m.id);
    expect(m.disks.map((d) => [d.name, d.kind, d.bytesCopied])).toEqual([['vda', 'incremental', 256 * KiB], ['vdb', 'incremental', 256 * KiB]]);
    for (const d of m.disks) {
      const to = path.join(r.root, `enospc-${d.name}.qcow2`);
      await restoreTo({ repo: r.repo, backup: m.id, disk: d.name, to });
      expect(compareWith(to, 'qcow2', r.shadow.snapFile(m.id, d.name))).toBe('');
    }
  });

  it('cancel mid-backup rolls back; writes made during the backup are merged back, not lost', async () => {
    const r = rig!;
    await r.shadow.write('vda', 8 * MiB, 6 * MiB, 0x41);
    const before = await qemuState(r);
    const files = repoFiles(r.repo);
    const current = r.engine.current()?.name;
    const ac = new AbortController();
    let copied = 0;
    const running = runBackup(r.engine, r.client, {
      repo: r.repo, speedMiBps: 2, reporter: new RecordingReporter({ signal: ac.signal, onChange: (j) => (copied = j.progress.find((p) => p.disk === 'vda')?.done ?? 0) }),
    }).catch((e: Error) => e);
    await waitFor(() => copied > 0, 'the backup to make progress');
    await r.shadow.write('vda', 30 * MiB, 64 * KiB, 0x42); // lands in the new checkpoint's bitmap
    ac.abort();
    const err = await running;
    expect(err).toBeInstanceOf(BackupFailedError);
    expect((err as BackupFailedError).cancelled).toBe(true);
    expect((err as Error).message).toMatch(/was cancelled/);
    expect(await qemuState(r)).toEqual(before);
    expect(repoFiles(r.repo)).toEqual(files);
    expect(r.engine.current()?.name).toBe(current);
    const m = await runBackup(r.engine, r.client, { repo: r.repo });
    r.shadow.snapshot(m.id);
    expect(m.disks.find((d) => d.name === 'vda')!.bytesCopied).toBe(6 * MiB + 64 * KiB);
    const to = path.join(r.root, 'cancel-vda.qcow2');
    await restoreTo({ repo: r.repo, backup: m.id, disk: 'vda', to });
    expect(compareWith(to, 'qcow2', r.shadow.snapFile(m.id, 'vda'))).toBe('');
  });

  it('a second backup while one runs is refused clearly; status shows it; backup-cancel from another connection stops it', async () => {
    const r = rig!;
    await r.shadow.write('vda', 16 * MiB, 6 * MiB, 0x51);
    const before = await qemuState(r);
    let copied = 0;
    const running = runBackup(r.engine, r.client, { repo: r.repo, speedMiBps: 2, reporter: new RecordingReporter({ onChange: (j) => (copied = j.progress.find((p) => p.disk === 'vda')?.done ?? 0) }) }).catch((e: Error) => e);
    await waitFor(() => copied > 0, 'the backup to make progress');
    const same = await runBackup(r.engine, r.client, { repo: r.repo }).catch((e: Error) => e);
    expect(same).toBeInstanceOf(BackupBusyError);
    expect((same as Error).message).toMatch(/a backup of VM .* is already running: backup \S+, started .* by process \d+/);
    const other = BackupRepository.open(path.join(r.root, 'repo2'), { create: true });
    const cross = await runBackup(r.engine, r.client, { repo: other }).catch((e: Error) => e);
    expect((cross as Error).message).toMatch(/QEMU is already running a Tidemark backup job/);
    expect(repoFiles(other)).toEqual(['tidemark-repository.json']);

    const status = await backupStatus(r.repo, r.engine.vmId, r.client);
    expect(status.running).toBe(true);
    expect(status.journal?.phase).toBe('running');
    expect(status.jobs?.map((j) => j.disk).sort()).toEqual(['vda', 'vdb']);
    expect(status.jobs?.find((j) => j.disk === 'vda')!.total).toBe(6 * MiB);

    // another process would hold the second QMP socket and its own engine
    const c2 = await QmpClient.connect(r.lab.qmpSecondary);
    try {
      const e2 = await CheckpointEngine.open(c2, { endpoint: r.lab.qmpSecondary, stateDir: r.stateDir });
      const res = await cancelBackup(e2, c2, r.repo);
      expect(res.how).toBe('cancelled');
    } finally {
      await c2.close();
    }
    const err = await running;
    expect((err as BackupFailedError).cancelled).toBe(true);
    expect(await qemuState(r)).toEqual(before);
    expect((await backupStatus(r.repo, r.engine.vmId)).running).toBe(false);
  });

  it('a corrupted layer: verify names it, restores that need it refuse, others still work', async () => {
    const r = rig!;
    const m = await runBackup(r.engine, r.client, { repo: r.repo });
    r.shadow.snapshot(m.id);
    const all = r.repo.list(r.engine.vmId);
    const inc = all.find((b) => b.disks.some((d) => d.name === 'vda' && d.kind === 'incremental' && d.bytesCopied > 0))!;
    const layer = path.join(r.repo.vmDir(r.engine.vmId), inc.disks.find((d) => d.name === 'vda')!.image);
    expect((await verifyBackups(r.repo)).ok).toBe(true);
    const fd = fs.openSync(layer, 'r+');
    const size = fs.fstatSync(fd).size;
    const at = Math.floor(size * 0.75);
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0x01; // one bit of one byte
    fs.writeSync(fd, b, 0, 1, at);
    fs.closeSync(fd);
    const report = await verifyBackups(r.repo);
    expect(report.ok).toBe(false);
    const lines = describeFailures(report);
    expect(lines.some((l) => l.includes(layer) && /content changed: blake3/.test(l))).toBe(true);
    // every backup whose vda chain goes through that layer fails, the others pass
    const through = new Set([inc.id, ...r.repo.dependents(inc.id, all).map((x) => x.id)]);
    for (const br of report.backups) {
      expect(br.disks.find((d) => d.disk === 'vda')?.ok ?? true).toBe(!through.has(br.id));
    }
    const bad = await restoreTo({ repo: r.repo, backup: m.id, disk: 'vda', to: path.join(r.root, 'corrupt.qcow2') }).catch((e: Error) => e);
    expect((bad as Error).message).toMatch(/cannot be restored, its backup chain is damaged/);
    expect(fs.existsSync(path.join(r.root, 'corrupt.qcow2'))).toBe(false);
    const good = path.join(r.root, 'first-vda.qcow2');
    await restoreTo({ repo: r.repo, backup: first.id, disk: 'vda', to: good });
    expect(compareWith(good, 'qcow2', r.shadow.snapFile(first.id, 'vda'))).toBe('');
    // put the byte back: verify passes again (the checksum is of exactly what was written)
    const fd2 = fs.openSync(layer, 'r+');
    b[0] = b[0]! ^ 0x01;
    fs.writeSync(fd2, b, 0, 1, at);
    fs.closeSync(fd2);
    expect((await verifyBackups(r.repo)).ok).toBe(true);
  });

  it('an unfinished backup of a dead process is cleaned up by the next backup', async () => {
    const r = rig!;
    const dead = spawnSync('true').pid!; // a pid that no longer exists
    const partial = r.repo.imagePath(r.engine.vmId, 'vda', '20000101-000000-000-dead') + '.partial';
    fs.mkdirSync(path.dirname(partial), { recursive: true });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', partial, String(64 * MiB)]);
    const journal = {
      pid: dead, host: require('node:os').hostname(), backupId: '20000101-000000-000-dead', vmId: r.engine.vmId, endpoint: r.lab.qmp,
      startedAt: Date.now() - 1000, updatedAt: Date.now(), phase: 'running', kind: 'full', executed: false,
      disks: [{ disk: 'vda', kind: 'full', partialImage: partial }], progress: [], log: [], mode: 'push',
      strategy: { name: 'qmp-push', state: { disks: [{ disk: 'vda', jobId: 'tidemark-bk-dead00-0', targetNode: 'tidemark-bkt-dead00-0', sourceNode: 'vda-fmt' }] } },
    };
    fs.writeFileSync(lockPath(r.repo, r.engine.vmId), JSON.stringify(journal));
    const status = await backupStatus(r.repo, r.engine.vmId);
    expect([status.running, status.stale]).toEqual([false, true]);
    const updates: string[] = [];
    const m = await runBackup(r.engine, r.client, { repo: r.repo, reporter: new RecordingReporter({ onChange: (j) => updates.splice(0, updates.length, ...j.log) }) });
    expect(m.disks.length).toBe(2);
    expect(fs.existsSync(partial)).toBe(false);
    expect(fs.existsSync(lockPath(r.repo, r.engine.vmId))).toBe(false);
    expect(updates.some((l) => l.includes('unfinished backup 20000101-000000-000-dead: partial images deleted'))).toBe(true);
  });
});

describe('QEMU killed mid-backup', () => {
  const rigOf = backupRigPerSuite(DISKS);

  it('fails cleanly, keeps earlier backups, and the next backup falls back to full because the bitmaps are inconsistent', async () => {
    const r = rigOf();
    await r.engine.create({ name: 'c0', layout: 'independent' });
    await r.shadow.write('vda', 0, 2 * MiB, 0x61);
    const first = await runBackup(r.engine, r.client, { repo: r.repo, full: true });
    r.shadow.snapshot(first.id);
    // A clean restart stores the bitmaps in the images; the crash below then leaves them in-use.
    await restart(r, () => stopLab(r.labDir));
    await r.shadow.write('vda', 8 * MiB, 6 * MiB, 0x62);
    await r.client.hmp('qemu-io drive-vda "flush"'); // the guest's data is on disk; only QEMU's own state dies
    await r.client.hmp('qemu-io drive-vdb "flush"');
    const files = repoFiles(r.repo);
    const checkpoints = r.engine.list().map((c) => c.name);
    let copied = 0;
    const running = runBackup(r.engine, r.client, { repo: r.repo, speedMiBps: 2, reporter: new RecordingReporter({ onChange: (j) => (copied = j.progress.find((p) => p.disk === 'vda')?.done ?? 0) }) }).catch((e: Error) => e);
    await waitFor(() => copied > 0, 'the backup to make progress');
    await killLab(r.labDir, 'SIGKILL');
    const err = await running;
    expect(err).toBeInstanceOf(BackupFailedError);
    expect((err as Error).message).toMatch(/QEMU went away|connection/i);
    // The journal stays, stale: QEMU may have lived on with only the connection gone (the next backup cleans up).
    expect(repoFiles(r.repo).filter((f) => !f.endsWith('backup.lock'))).toEqual(files);
    expect(readLock(r.repo, r.engine.vmId)).toMatchObject({ alive: false, journal: { abandoned: expect.stringMatching(/connection to the hypervisor was lost/) as unknown } });
    expect(r.engine.list().map((c) => c.name)).toEqual(checkpoints);
    expect((await verifyBackups(r.repo)).ok).toBe(true);

    // QEMU comes back: every loaded bitmap is inconsistent (G13)
    await restart(r, async () => undefined);
    const issues = (await r.engine.health()).issues;
    expect(issues.some((i) => i.state === 'bitmap-inconsistent' && i.checkpoint === first.checkpoint)).toBe(true);
    const m = await runBackup(r.engine, r.client, { repo: r.repo });
    r.shadow.snapshot(m.id);
    const vda = m.disks.find((d) => d.name === 'vda')!;
    expect(vda.kind).toBe('full');
    expect(vda.fallbackReason).toMatch(/inconsistent/);
    const to = path.join(r.root, 'after-crash-vda.qcow2');
    await restoreTo({ repo: r.repo, backup: m.id, disk: 'vda', to });
    expect(compareWith(to, 'qcow2', r.shadow.snapFile(m.id, 'vda'))).toBe('');
  });
});

/** Stops QEMU with `stop`, starts it again on the same disks, and reconnects the rig. */
async function restart(r: BackupRig, stop: () => Promise<unknown>): Promise<void> {
  await r.engine.close();
  await r.client.close();
  await stop();
  const lab = await startLab({ dir: r.labDir });
  r.client = await QmpClient.connect(lab.qmp);
  r.shadow.reconnect(r.client);
  r.engine = await CheckpointEngine.open(r.client, { endpoint: lab.qmp, stateDir: r.stateDir });
}

function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'tmfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
  if (r.status === 0) spawnSync('umount', [dir]);
  fs.rmSync(dir, { recursive: true, force: true });
  return r.status === 0;
}

describe.skipIf(!canMountTmpfs())('a repository on a full file system (real ENOSPC, tmpfs)', () => {
  let rig: BackupRig | undefined;
  let mnt = '';

  beforeAll(async () => {
    rig = await startBackupRig(DISKS);
    mnt = path.join(rig.root, 'small');
    fs.mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
  });
  afterAll(async () => {
    await stopBackupRig(rig, { keepRoot: true }); // QEMU first: it may hold a file on the tmpfs
    if (mnt) spawnSync('umount', [mnt]);
    if (rig) fs.rmSync(rig.root, { recursive: true, force: true });
  });

  it('fails with the disk-full error and leaves only the earlier backup', async () => {
    const r = rig!;
    const repo = BackupRepository.open(path.join(mnt, 'repo'), { create: true });
    await r.engine.create({ name: 'c0', layout: 'chained' });
    await r.shadow.write('vdb', 0, 1 * MiB, 0x71);
    const first = await runBackup(r.engine, r.client, { repo, full: true, disks: ['vdb'] });
    const files = repoFiles(repo);
    const before = await qemuState(r);
    await r.shadow.write('vda', 0, 12 * MiB, 0x72);
    const err = await runBackup(r.engine, r.client, { repo, full: true }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(BackupFailedError);
    expect((err as Error).message).toMatch(/No space left on device/);
    expect(repoFiles(repo)).toEqual(files);
    expect(await qemuState(r)).toEqual(before);
    expect((await verifyBackups(repo, { ids: [first.id] })).ok).toBe(true);
  });
});
