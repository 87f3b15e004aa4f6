// In-place restore of a libvirt domain: refused while it runs; every checkpointed disk restored to
// checkpoint C opens a new branch under C in libvirt's metadata (fresh bitmaps in the images), and
// the next incremental continues from C's backup; a partial restore marks its disks for a full backup.
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listCheckpoints } from '../../../libvirt/checkpoints';
import { destroyDomain } from '../../../libvirt/domains';
import { LibvirtTestLab, runsAsRoot } from '../../../../test/libvirt/lab';
import { differsFrom, MiB, openBackupRig, type BackupRig } from '../../../../test/libvirt/backup-rig';
import { silentReporter } from '../../operation';
import { restoreInPlace, restoreTo } from '../../backup/restore';
import { imageInfo } from '../../backup/qemuimg';
import { inPlaceTargets, libvirtBackupOps, libvirtRestoreHooks } from '.';

let lab: LibvirtTestLab;
let rig: BackupRig;

beforeAll(async () => {
  if (!runsAsRoot) return;
  lab = await LibvirtTestLab.open();
  rig = await openBackupRig(lab);
}, 120_000);

afterAll(async () => {
  await rig?.close();
  await lab?.close();
}, 120_000);

describe.skipIf(!runsAsRoot)('restore in place', () => {
  it('is refused while the domain runs; restore to C + redefine, then an incremental continues from C', async () => {
    const ops = libvirtBackupOps(rig.handle);
    const hooks = libvirtRestoreHooks(rig.handle);
    await rig.write('vda', 0, 2 * MiB, 0x41);
    await rig.write('vdb', 0, MiB, 0x42);
    const b1 = await ops.begin({ mode: 'push', repo: rig.repo, full: true, checkpoint: 'c1' }, silentReporter());
    await rig.write('vda', 4 * MiB, MiB, 0x43);
    rig.snapshot('c2');
    const b2 = await ops.begin({ mode: 'pull', repo: rig.repo, checkpoint: 'c2' }, silentReporter());
    await rig.write('vda', 10 * MiB, MiB, 0x44);
    const b3 = await ops.begin({ mode: 'push', repo: rig.repo, checkpoint: 'c3' }, silentReporter());
    expect(b3.manifest!.kind).toBe('incremental');

    const targets = await inPlaceTargets(rig.handle, ['vda', 'vdb']);
    expect(targets.map((t) => t.image)).toEqual(rig.dom.disks.map((d) => d.file));
    await expect(hooks.assertStopped(targets.map((t) => t.image))).rejects.toThrow(`domain ${rig.dom.name} is running; an in-place restore needs it shut off`);
    await expect(hooks.assertStopped(['/tmp/not-its-image.qcow2'])).rejects.toThrow(`/tmp/not-its-image.qcow2 is not an image of domain ${rig.dom.name} (its disks: vda=`);
    await expect(restoreInPlace({ repo: rig.repo, backup: b2.backupId, targets, hooks })).rejects.toThrow(/in use|running/);
    expect(fs.readdirSync(rig.dom.dir).filter((f) => /pre-restore|tidemark-restore/.test(f))).toEqual([]);

    await destroyDomain(lab.conn, rig.dom.uuid, { graceful: true });
    const r = await restoreInPlace({ repo: rig.repo, backup: b2.backupId, targets, hooks, branchCheckpoint: 'r1' });
    expect(r.branch).toEqual({ checkpoint: 'r1', parent: 'c2' });
    expect(r.needsFull).toEqual({});
    for (const t of targets) {
      expect(differsFrom(t.image, rig.snap('c2', t.disk))).toBe('');
      expect((await imageInfo(t.image)).bitmaps.map((b) => b.name)).toEqual(['r1']); // fresh, nothing older
    }
    // libvirt: c3 tracked nothing left and is gone; c1, c2 stay (the branch's ancestors) without bitmaps on the restored disks.
    const cps = await listCheckpoints(rig.conn, rig.dom.uuid);
    expect(cps.map((c) => [c.name, c.parent, c.disks.map((d) => `${d.name}:${d.checkpoint}`).join(',')])).toEqual([
      ['c1', undefined, 'vda:no,vdb:no'], ['c2', 'c1', 'vda:no,vdb:no'], ['r1', 'c2', 'vda:bitmap,vdb:bitmap'],
    ]);

    await lab.start(rig.dom);
    rig.resetTo('c2');
    await rig.write('vdb', 3 * MiB, MiB, 0x45);
    rig.snapshot('after');
    const next = await ops.begin({ mode: 'push', repo: rig.repo, checkpoint: 'c4' }, silentReporter());
    expect(next.manifest).toMatchObject({ kind: 'incremental', since: 'r1' });
    expect(next.manifest!.disks.map((d) => [d.name, d.base, d.bytesCopied])).toEqual([['vda', b2.backupId, 0], ['vdb', b2.backupId, MiB]]);
    for (const d of ['vda', 'vdb']) {
      const out = `${rig.shadow}/next-${d}.qcow2`;
      await restoreTo({ repo: rig.repo, backup: next.backupId, disk: d, to: out });
      expect(differsFrom(out, rig.snap('after', d))).toBe('');
    }
    expect((await listCheckpoints(rig.conn, rig.dom.uuid)).find((c) => c.name === 'c4')?.parent).toBe('r1');
    expect(b1.manifest!.kind).toBe('full');

    // A partial restore: vdb only → it needs a full backup next time; vda continues incrementally.
    await destroyDomain(lab.conn, rig.dom.uuid, { graceful: true });
    const partial = await restoreInPlace({ repo: rig.repo, backup: next.backupId, targets: targets.filter((t) => t.disk === 'vdb'), hooks });
    expect(partial.branch).toBeUndefined();
    expect(Object.keys(partial.needsFull)).toEqual(['vdb']);
    await lab.start(rig.dom);
    const after = await ops.begin({ mode: 'pull', repo: rig.repo, checkpoint: 'c5' }, silentReporter());
    expect(after.manifest!.disks.map((d) => [d.name, d.kind])).toEqual([['vda', 'incremental'], ['vdb', 'full']]);
  }, 300_000);
});
