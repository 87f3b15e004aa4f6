// A libvirt domain reached over qemu+ssh:// (a throwaway sshd on 127.0.0.1): pull backups into the
// local repository through an SSH-forwarded unix socket, restored byte-identical; push refused with
// the reason; the SSH link cut mid-pull leaves earlier backups and checkpoints intact, and the
// next pull works. Nothing leaves the machine.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobInfo } from '../../../libvirt/backups';
import { listCheckpointNames } from '../../../libvirt/checkpoints';
import { exportSize } from '../../../../test/libvirt/images';
import { LibvirtTestLab, runsAsRoot } from '../../../../test/libvirt/lab';
import { startTestSshd, type TestSshd } from '../../../../test/libvirt/sshd';
import { differsFrom, MiB, openBackupRig, type BackupRig } from '../../../../test/libvirt/backup-rig';
import { RecordingReporter, silentReporter } from '../../operation';
import { restoreTo } from '../../backup/restore';
import { describeFailures, verifyBackups } from '../../backup/verify';
import type { BackupManifest } from '../../backup/manifest';
import { libvirtBackupOps } from '.';

let lab: LibvirtTestLab;
let sshd: TestSshd;
let rig: BackupRig;

beforeAll(async () => {
  if (!runsAsRoot) return;
  lab = await LibvirtTestLab.open();
  sshd = await startTestSshd();
  rig = await openBackupRig(lab, { uri: sshd.uri, local: false });
}, 180_000);

afterAll(async () => {
  await rig?.close();
  await sshd?.stop();
  await lab?.close();
}, 120_000);

async function expectRestored(m: BackupManifest, label: string): Promise<void> {
  for (const d of m.disks) {
    const out = `${rig.shadow}/${m.id}-${d.name}.qcow2`;
    await restoreTo({ repo: rig.repo, backup: m.id, disk: d.name, to: out });
    expect(differsFrom(out, rig.snap(label, d.name))).toBe('');
  }
}

describe.skipIf(!runsAsRoot)('over qemu+ssh://', () => {
  it('pulls full and incremental through the forwarded socket into the local repository', async () => {
    const ops = libvirtBackupOps(rig.handle);
    await rig.write('vda', MiB, 3 * MiB, 0x61);
    rig.snapshot('r1');
    const reporter = new RecordingReporter();
    const full = await ops.begin({ mode: 'pull', repo: rig.repo, full: true, checkpoint: 'r1' }, reporter);
    expect(reporter.lines.some((l) => /forwarded over SSH to \/tmp\/tidemark-lvpull-/.test(l))).toBe(true);
    await rig.write('vdb', 0, MiB, 0x62);
    rig.snapshot('r2');
    const inc = await ops.begin({ mode: 'pull', repo: rig.repo, checkpoint: 'r2' }, silentReporter());
    expect(inc.manifest!.disks.map((d) => [d.name, d.kind, d.bytesCopied])).toEqual([['vda', 'incremental', 0], ['vdb', 'incremental', MiB]]);
    await expectRestored(full.manifest!, 'r1');
    await expectRestored(inc.manifest!, 'r2');
    expect(describeFailures(await verifyBackups(rig.repo))).toEqual([]);
  }, 300_000);

  it('refuses push onto the remote host, naming why, before anything is created', async () => {
    await expect(libvirtBackupOps(rig.handle).begin({ mode: 'push', repo: rig.repo }, silentReporter()))
      .rejects.toThrow(`push mode writes the backup where QEMU runs; domain ${rig.dom.name} runs on a remote host (${sshd.uri}) and the repository stays on this machine: use --mode pull`);
    expect(await listCheckpointNames(rig.conn, rig.dom.uuid)).toEqual(['r1', 'r2']);
  });

  it('the SSH link cut mid-pull: a clear error, earlier backups and checkpoints intact, the next pull works', async () => {
    let fault: Promise<void> = Promise.resolve();
    const err = await libvirtBackupOps(rig.handle).begin({
      mode: 'pull', repo: rig.repo, checkpoint: 'doomed',
      exportOnly: {
        onReady: (exports) => {
          fault = (async () => {
            expect(exports[0]!.uri).toMatch(/^nbd\+unix:\/\/\/vda\?socket=\/tmp\/tidemark-lvpull-/); // the forwarded socket, not the remote one
            expect(await exportSize(exports[0]!.uri)).toBe(64 * MiB);
            expect(sshd.cutConnections()).toBeGreaterThan(0);
          })();
        },
      },
    }, silentReporter()).then(() => new Error('the pull succeeded'), (e: Error) => e);
    await fault;
    expect(err.message).toMatch(/^pull \S+ failed: the libvirt connection was lost during the pull \(.*end of file.*\); checkpoint doomed rolled back/);
    expect(await listCheckpointNames(rig.conn, rig.dom.uuid)).toEqual(['r1', 'r2']);
    expect((await jobInfo(rig.conn, rig.dom.uuid)).type).toBe('none');
    expect(describeFailures(await verifyBackups(rig.repo))).toEqual([]);
    await rig.write('vda', 40 * MiB, MiB, 0x63);
    rig.snapshot('r3');
    const next = await libvirtBackupOps(rig.handle).begin({ mode: 'pull', repo: rig.repo, checkpoint: 'r3' }, silentReporter());
    expect(next.manifest).toMatchObject({ kind: 'incremental', since: 'r2' });
    await expectRestored(next.manifest!, 'r3');
  }, 300_000);
});
