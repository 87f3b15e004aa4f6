// Faults in the middle of a libvirt backup (an export-only pull: it is mid-backup for certain when
// its exports are ready): libvirtd restarted, the domain destroyed, the backup process killed. Each time:
// a clear error (or, for the killed process, a clean-up by the next backup), the
// backup's checkpoint gone, earlier backups and checkpoints intact, and the next backup works.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobInfo } from '../../../libvirt/backups';
import { listCheckpointNames } from '../../../libvirt/checkpoints';
import { destroyDomain } from '../../../libvirt/domains';
import { restartLibvirtd } from '../../../../test/libvirt/daemons';
import { exportSize } from '../../../../test/libvirt/images';
import { LibvirtTestLab, runsAsRoot } from '../../../../test/libvirt/lab';
import { differsFrom, MiB, openBackupRig, type BackupRig } from '../../../../test/libvirt/backup-rig';
import { RecordingReporter, silentReporter } from '../../operation';
import { restoreTo } from '../../backup/restore';
import { describeFailures, verifyBackups } from '../../backup/verify';
import type { PointExport } from '../../backup/strategy';
import { readLock } from '../../backup/lock';
import { libvirtStateOf } from './recovery';
import { libvirtBackupOps } from '.';

let lab: LibvirtTestLab;

beforeAll(async () => {
  // It restarts libvirtd: it waits here while another file that does runs (test/libvirt/daemons.ts).
  if (runsAsRoot) lab = await LibvirtTestLab.open({ restartsLibvirtd: true });
}, 900_000);

afterAll(async () => {
  await lab?.close();
}, 300_000);

/** Runs an export-only pull and does `fault` once its exports are ready; resolves with the pull's error. */
async function pullWithFault(rig: BackupRig, fault: (exports: PointExport[]) => Promise<void>): Promise<{ error: Error; faultDone: Promise<void> }> {
  let faultDone: Promise<void> = Promise.resolve();
  const error = await libvirtBackupOps(rig.handle).begin({
    mode: 'pull', repo: rig.repo, checkpoint: 'doomed',
    exportOnly: { onReady: (exports) => { faultDone = fault(exports); } },
  }, silentReporter()).then(() => new Error('the pull succeeded'), (e: Error) => e);
  await faultDone;
  return { error, faultDone };
}

async function expectIntactAndNextWorks(rig: BackupRig, before: string[], label: string): Promise<void> {
  expect(await listCheckpointNames(rig.conn, rig.dom.uuid)).toEqual(before);
  expect((await jobInfo(rig.conn, rig.dom.uuid)).type).toBe('none');
  expect(describeFailures(await verifyBackups(rig.repo))).toEqual([]);
  await rig.write('vda', 30 * MiB, MiB, 0x77);
  rig.snapshot(label);
  const next = await libvirtBackupOps(rig.handle).begin({ mode: 'push', repo: rig.repo, checkpoint: `${label}-next` }, silentReporter());
  for (const d of next.manifest!.disks) {
    const out = `${rig.shadow}/${label}-${d.name}.qcow2`;
    await restoreTo({ repo: rig.repo, backup: next.backupId, disk: d.name, to: out });
    expect(differsFrom(out, rig.snap(label, d.name))).toBe('');
  }
}

describe.skipIf(!runsAsRoot)('faults mid-backup', () => {
  let rig: BackupRig;
  beforeAll(async () => {
    rig = await openBackupRig(lab);
    await rig.write('vda', 0, 2 * MiB, 0x51);
    await libvirtBackupOps(rig.handle).begin({ mode: 'push', repo: rig.repo, full: true, checkpoint: 'base' }, silentReporter());
    await rig.write('vda', 6 * MiB, MiB, 0x52);
  }, 120_000);
  afterAll(async () => {
    await rig?.close();
  });

  it('libvirtd restarted: a clear error, the checkpoint rolled back, the next backup works', async () => {
    const { error } = await pullWithFault(rig, async (exports) => {
      expect(await exportSize(exports[0]!.uri)).toBe(64 * MiB);
      await restartLibvirtd();
    });
    expect(error.message).toMatch(/^pull \S+ failed: the libvirt connection was lost during the pull \(.*\); checkpoint doomed rolled back; partial images deleted/);
    if (lab.conn.lost) await lab.conn.reconnect();
    await expectIntactAndNextWorks(rig, ['base'], 'after-restart');
  }, 1_000_000);

  it('the domain destroyed: a clear error naming it, the checkpoint gone, the next backup works after a start', async () => {
    const before = await listCheckpointNames(rig.conn, rig.dom.uuid);
    const { error } = await pullWithFault(rig, () => destroyDomain(lab.conn, rig.dom.uuid));
    expect(error.message).toMatch(new RegExp(`^pull \\S+ failed: domain ${rig.dom.name} is shut off \\(destroyed\\): .*; checkpoint doomed rolled back`));
    await lab.start(rig.dom);
    await expectIntactAndNextWorks(rig, before, 'after-destroy');
  }, 300_000);
  it('the backup process killed: the next backup ends its job, deletes its checkpoint and folders, and works', async () => {
    const before = await listCheckpointNames(rig.conn, rig.dom.uuid);
    const root = path.resolve(__dirname, '../../../..');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'test/libvirt/backup-child.ts'), rig.dom.uuid, rig.dom.name, rig.repo.root], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => String(d).includes('ready') && resolve());
      child.on('close', (code) => reject(new Error(`the backup child exited (${code}) before its exports were ready: ${err}`)));
    });
    const journal = readLock(rig.repo, rig.dom.uuid)!.journal;
    const own = libvirtStateOf(journal.strategy)!;
    expect(own.ownDirs.length).toBeGreaterThan(0);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    expect(await libvirtBackupOps(rig.handle).status(rig.repo)).toMatchObject({ running: false, stale: true, checkpoint: 'crashed' });
    expect((await jobInfo(rig.conn, rig.dom.uuid)).type).not.toBe('none'); // the dead process's pull still runs in libvirt
    expect(await listCheckpointNames(rig.conn, rig.dom.uuid)).toEqual([...before, 'crashed']);

    // The next backup cleans up first (its log says so), then runs.
    const reporter = new RecordingReporter();
    const next = await libvirtBackupOps(rig.handle).begin({ mode: 'push', repo: rig.repo, checkpoint: 'after-crash' }, reporter);
    expect(reporter.lines.filter((l) => /unfinished|earlier backup|libvirt backup job ended/.test(l))).toEqual([
      `cleaning up after an earlier backup that did not finish (${journal.backupId})`,
      'libvirt backup job ended',
      `checkpoint crashed of unfinished backup ${journal.backupId} deleted`,
      `unfinished backup ${journal.backupId}: partial images deleted`,
    ]);
    expect(next.manifest!.kind).toBe('incremental');
    expect(await listCheckpointNames(rig.conn, rig.dom.uuid)).toEqual([...before, 'after-crash']);
    expect(describeFailures(await verifyBackups(rig.repo))).toEqual([]);
    expect(own.ownDirs.filter((d) => fs.existsSync(d))).toEqual([]);
  }, 300_000);
});
