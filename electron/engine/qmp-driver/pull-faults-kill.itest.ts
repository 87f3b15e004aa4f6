// A pull whose QEMU is killed mid-copy (real QEMU, issue 5): it fails clearly, leaves nothing
// half-done, keeps earlier backups, and the next backup falls back to full with the reason recorded.
// How "mid-copy" is made deterministic: pull-faults.itest.ts.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupRigPerSuite, KiB, MiB } from '../backup/itest-helpers';
import { readLock } from '../backup/lock';
import { BackupFailedError } from '../backup/session';
import { isQemuAlive, stopLab } from '../lab/labvm';
import { blockUntil, DIRTY, DISKS, expectEarlierBackupsIntact, expectNothingLeft, faultyPull, pull, repoFiles, restart } from './pull-fault-rig';

describe('pull faults: QEMU killed mid-pull (real QEMU)', () => {
  const rigOf = backupRigPerSuite(DISKS, 60_000);

  it('fails clearly, leaves nothing half-done, keeps earlier backups; the next backup falls back to full with the reason recorded', async () => {
    const r = rigOf();
    await r.engine.create({ name: 'c0', layout: 'independent' });
    await r.shadow.write('vda', 0, 2 * MiB, 0x61);
    await r.shadow.write('vdb', 0, 1 * MiB, 0x62);
    const first = await pull(r, { full: true, checkpoint: 'p1' });
    // A clean restart stores the bitmaps in the images; the crash below then leaves them in-use (inconsistent).
    await restart(r, () => stopLab(r.labDir));
    await r.shadow.write('vda', 4 * MiB, DIRTY, 0x63);
    await r.shadow.write('vdb', 4 * MiB, 256 * KiB, 0x64);
    for (const d of DISKS) await r.client.hmp(`qemu-io drive-${d.name} "flush"`); // the guest's data is on disk; only QEMU's own state dies
    const files = repoFiles(r);
    const checkpoints = r.engine.list().map((c) => c.name);
    const pid = r.lab.pid!;
    const { err } = await faultyPull(r, 'doomed', () => {
      process.kill(pid, 'SIGKILL');
      blockUntil(() => !isQemuAlive(pid), 'QEMU to die');
    });
    expect(err).toBeInstanceOf(BackupFailedError);
    expect(err.message).toMatch(/failed: the QMP connection closed/);
    expect(err.message).toMatch(/checkpoint doomed was never recorded \(QEMU is gone, and with it the bitmaps it created\)/);
    // Nothing half-done: the repository as before (the layer QEMU was writing is gone), no fleece file; the journal
    // stays, stale (QEMU could have lived on with only the connection gone): the next pull cleans up.
    expect(repoFiles(r).filter((f) => !f.endsWith('backup.lock'))).toEqual(files);
    expect(r.repo.orphanImages(r.engine.vmId)).toEqual([]);
    expect(fs.readdirSync(path.join(r.stateDir, 'run', 'fleece'))).toEqual([]);
    expect(readLock(r.repo, r.engine.vmId)).toMatchObject({ alive: false, journal: { abandoned: expect.stringMatching(/connection to the hypervisor was lost/) as unknown } });
    expect(r.engine.list().map((c) => c.name)).toEqual(checkpoints);
    await expectEarlierBackupsIntact(r, [first]);

    // QEMU comes back: its bitmaps are inconsistent (G13), so the next pull falls back to full, saying why.
    await restart(r, async () => undefined);
    expect((await r.engine.health()).issues.some((i) => i.state === 'bitmap-inconsistent' && i.checkpoint === 'p1')).toBe(true);
    const m = await pull(r);
    for (const d of m.disks) {
      expect(d.kind).toBe('full');
      expect(d.fallbackReason).toMatch(/inconsistent/);
    }
    expect(r.repo.list(r.engine.vmId).find((x) => x.id === m.id)!.disks.map((d) => d.fallbackReason)).toEqual(m.disks.map((d) => d.fallbackReason));
    expect(m.disks.find((d) => d.name === 'vda')!.bytesCopied).toBe(2 * MiB + DIRTY);
    await expectEarlierBackupsIntact(r, [first, m]);
    await expectNothingLeft(r);
  }, 120_000);
});
