// libvirt backups against the real libvirtd (qemu:///system, as root): every kind in push and pull
// mode, restored byte-identical to the shadow copy, manifests of the same shape as QMP mode's that
// backup-verify accepts, and what a second backup, a busy domain or bad input gets.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCheckpoints } from '../../../libvirt/checkpoints';
import { LibvirtTestLab, runsAsRoot } from '../../../../test/libvirt/lab';
import { differsFrom, MiB, openBackupRig, type BackupRig } from '../../../../test/libvirt/backup-rig';
import { RecordingReporter, silentReporter } from '../../operation';
import { restoreTo } from '../../backup/restore';
import { verifyBackups, describeFailures } from '../../backup/verify';
import type { BackupManifest } from '../../backup/manifest';
import { exportSize, mapTotal } from '../../../../test/libvirt/images';
import type { PointExport } from '../../backup/strategy';
import { libvirtBackupOps } from '.';

let lab: LibvirtTestLab;

beforeAll(async () => {
  if (runsAsRoot) lab = await LibvirtTestLab.open();
}, 120_000);

afterAll(async () => {
  await lab?.close();
}, 120_000);

/** The disk fields a QMP-mode manifest has (a full layer; incremental ones add since, base, backingFile). */
const FULL_DISK_KEYS = ['blake3', 'bytesCopied', 'checkpointBitmap', 'fileSize', 'image', 'kind', 'name', 'sourceClusterSize', 'sourceCompat', 'sourceFormat', 'sourceImage', 'virtualSize'];

async function restoredEqual(rig: BackupRig, m: BackupManifest, label: string): Promise<string[]> {
  const bad: string[] = [];
  for (const d of m.disks) {
    const out = path.join(rig.shadow, `restored-${m.id}-${d.name}.qcow2`);
    await restoreTo({ repo: rig.repo, backup: m.id, disk: d.name, to: out });
    const diff = differsFrom(out, rig.snap(label, d.name));
    if (diff) bad.push(`${m.id} ${d.name}: ${diff}`);
    fs.rmSync(out);
  }
  return bad;
}

for (const mode of ['push', 'pull'] as const) {
  describe.skipIf(!runsAsRoot)(`${mode}: full, incremental, differential`, () => {
    let rig: BackupRig;
    beforeAll(async () => {
      rig = await openBackupRig(lab);
    }, 120_000);
    afterAll(async () => {
      await rig?.close();
    });

    it('each restores byte-identical to the shadow copy; the checkpoints chain in libvirt; backup-verify passes', async () => {
      const ops = libvirtBackupOps(rig.handle);
      await rig.write('vda', 0, 4 * MiB, 0x11);
      await rig.write('vdb', 2 * MiB, MiB, 0x12);
      rig.snapshot('b1');
      const reporter = new RecordingReporter();
      const full = await ops.begin({ mode, repo: rig.repo, full: true, checkpoint: 'c1' }, reporter);
      expect(full.manifest).toMatchObject({ kind: 'full', checkpoint: 'c1', layout: 'independent', vm: { id: rig.dom.uuid, name: rig.dom.name, uuid: rig.dom.uuid } });
      expect(full.manifest!.disks.map((d) => [d.name, d.kind, d.checkpointBitmap])).toEqual([['vda', 'full', true], ['vdb', 'full', true]]);
      for (const d of full.manifest!.disks) expect(Object.keys(d).sort()).toEqual(FULL_DISK_KEYS);
      expect(reporter.lines.some((l) => /complete/.test(l))).toBe(true);

      await rig.write('vda', 8 * MiB, MiB, 0x21);
      rig.snapshot('b2');
      const inc = await ops.begin({ mode, repo: rig.repo, checkpoint: 'c2' }, silentReporter());
      expect(inc.manifest).toMatchObject({ kind: 'incremental', since: 'c1', checkpoint: 'c2' });
      const vda = inc.manifest!.disks.find((d) => d.name === 'vda')!;
      expect(vda).toMatchObject({ kind: 'incremental', since: 'c1', base: full.backupId, backingFile: `${full.backupId}.qcow2` });
      expect(vda.bytesCopied).toBe(MiB); // only the dirty MiB
      expect(inc.manifest!.disks.find((d) => d.name === 'vdb')!.bytesCopied).toBe(0);

      await rig.write('vdb', 0, 2 * MiB, 0x31);
      await rig.write('vda', 20 * MiB, 512 * 1024, 0x32);
      rig.snapshot('b3');
      const diff = await ops.begin({ mode, repo: rig.repo, since: 'c1', checkpoint: 'c3' }, silentReporter());
      expect(diff.manifest).toMatchObject({ kind: 'differential', since: 'c1' });
      expect(diff.manifest!.disks.find((d) => d.name === 'vda')).toMatchObject({ base: full.backupId, bytesCopied: MiB + 512 * 1024 });

      expect(await restoredEqual(rig, full.manifest!, 'b1')).toEqual([]);
      expect(await restoredEqual(rig, inc.manifest!, 'b2')).toEqual([]);
      expect(await restoredEqual(rig, diff.manifest!, 'b3')).toEqual([]);
      const report = await verifyBackups(rig.repo);
      expect(describeFailures(report)).toEqual([]);
      expect(report.backups.length).toBe(3);
      expect((await listCheckpoints(rig.conn, rig.dom.uuid)).map((c) => [c.name, c.parent])).toEqual([['c1', undefined], ['c2', 'c1'], ['c3', 'c2']]);
      // Nothing left behind: no staging or run folder, no libvirt job.
      expect(fs.readdirSync(path.dirname(rig.repo.root)).filter((f) => f.startsWith('.tidemark-staging'))).toEqual([]);
      expect((await rig.conn.command(['domjobinfo', `--domain=${rig.dom.uuid}`])).trim()).toMatch(/Job type:\s+None/);
    }, 240_000);

    it('--quiesce with no guest agent is refused before libvirt begins: no checkpoint, no backup, earlier ones intact', async () => {
      const ops = libvirtBackupOps(rig.handle);
      const before = rig.repo.list().map((m) => m.id);
      const cps = (await listCheckpoints(rig.conn, rig.dom.uuid)).map((c) => c.name);
      const e = await ops.begin({ mode, repo: rig.repo, checkpoint: 'q1', quiesce: {} }, silentReporter()).catch((x: Error) => x);
      expect((e as Error).message).toMatch(new RegExp(`failed: cannot quiesce domain ${rig.dom.name}: libvirt could not freeze its filesystems \\(.*guest agent.*\\); no backup \\S+ was created; checkpoint q1 was not created`));
      expect(rig.repo.list().map((m) => m.id)).toEqual(before);
      expect((await listCheckpoints(rig.conn, rig.dom.uuid)).map((c) => c.name)).toEqual(cps);
      await expect(ops.begin({ mode, repo: rig.repo, quiesce: { agent: 'unix:/tmp/x.sock' } }, silentReporter())).rejects.toThrow(/--agent is for QMP VMs/);
    }, 120_000);
  });
}

describe.skipIf(!runsAsRoot)('export-only pull: status, end, cancel', () => {
  let rig: BackupRig;
  beforeAll(async () => {
    rig = await openBackupRig(lab);
  }, 120_000);
  afterAll(async () => {
    await rig?.close();
  });

  /** Starts an export-only pull; resolves once its exports are ready, with the pull's promise. */
  async function startExport(checkpoint: string): Promise<{ exports: PointExport[]; done: Promise<unknown> }> {
    let ready!: (e: PointExport[]) => void;
    const exportsReady = new Promise<PointExport[]>((r) => (ready = r));
    const done = libvirtBackupOps(rig.handle).begin({ mode: 'pull', repo: rig.repo, checkpoint, exportOnly: { onReady: ready } }, silentReporter());
    done.catch(() => undefined);
    return { exports: await Promise.race([exportsReady, done.then(() => { throw new Error('ended before its exports were ready'); })]), done };
  }

  it('keeps its exports until backup-end; status shows it; success records its checkpoint', async () => {
    const ops = libvirtBackupOps(rig.handle);
    await rig.write('vda', 0, MiB, 0x61);
    await ops.begin({ mode: 'push', repo: rig.repo, full: true, checkpoint: 'e0' }, silentReporter());
    await rig.write('vda', 2 * MiB, MiB, 0x62);
    const { exports, done } = await startExport('e1');
    expect(exports.map((e) => [e.disk, e.kind, e.since, e.dirtyContext])).toEqual([['vda', 'incremental', 'e0', 'qemu:dirty-bitmap:backup-vda'], ['vdb', 'incremental', 'e0', 'qemu:dirty-bitmap:backup-vdb']]);
    expect(await exportSize(exports[0]!.uri)).toBe(64 * MiB);
    expect(await mapTotal(exports[0]!.uri, exports[0]!.dirtyContext!, 1)).toBe(MiB);
    expect(await ops.status(rig.repo)).toMatchObject({ running: true, stale: false, phase: 'running', kind: 'incremental', since: 'e0', checkpoint: 'e1' });
    await expect(ops.begin({ mode: 'push', repo: rig.repo }, silentReporter())).rejects.toThrow(/already running/);
    expect(await ops.end(rig.repo, 'success')).toMatchObject({});
    expect(await done).toMatchObject({ checkpoint: 'e1' });
    expect(await listCheckpoints(rig.conn, rig.dom.uuid).then((l) => l.map((c) => c.name))).toEqual(['e0', 'e1']);
    expect(await ops.status(rig.repo)).toEqual({ running: false, stale: false, progress: [], log: [] });
  }, 120_000);

  it('backup-cancel ends it and rolls its checkpoint back', async () => {
    const ops = libvirtBackupOps(rig.handle);
    const { done } = await startExport('e2');
    expect(await ops.cancel(rig.repo)).toMatchObject({ how: 'cancelled' });
    await expect(done).rejects.toThrow(/was cancelled; checkpoint e2 rolled back/);
    expect(await listCheckpoints(rig.conn, rig.dom.uuid).then((l) => l.map((c) => c.name))).toEqual(['e0', 'e1']);
    expect((await rig.conn.command(['domjobinfo', `--domain=${rig.dom.uuid}`])).trim()).toMatch(/Job type:\s+None/);
  }, 120_000);
});
