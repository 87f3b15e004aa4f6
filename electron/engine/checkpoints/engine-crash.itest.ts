// Crash and restart with the real QEMU: kill -9 leaves loaded bitmaps inconsistent and loses the
// ones created during the crashed run. Health must say so (with consequences), delete must still
// work, and a new checkpoint must be possible.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../qmp/client';
import { killLab, startLab, stopLab } from '../lab/labvm';
import { CheckpointEngine } from './engine';
import { KiB, bitmap, bitmaps, startRig, stopRig, write, type Rig } from './itest-helpers';

async function restart(rig: Rig, how: 'quit' | 'kill'): Promise<void> {
  await rig.client.close();
  if (how === 'quit') expect(await stopLab(rig.labDir)).toBe('quit');
  else await killLab(rig.labDir, 'SIGKILL');
  rig.lab = await startLab({ dir: rig.labDir });
  rig.client = await QmpClient.connect(rig.lab.qmp);
  rig.engine = await CheckpointEngine.open(rig.client, { endpoint: rig.lab.qmp, stateDir: rig.stateDir });
}

describe('kill -9 of QEMU, then restart', () => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await startRig();
  });
  afterAll(async () => stopRig(rig));

  it('bitmaps survive a clean quit', async () => {
    const r = rig!;
    await r.engine.create({ name: 'c1', layout: 'chained' });
    await write(r.client, 'vda', 0, 64 * KiB);
    await restart(r, 'quit');
    expect(await bitmap(r.client, 'vda', 'c1')).toMatchObject({ recording: true, persistent: true, count: 64 * KiB });
    expect((await r.engine.health()).issues.map((i) => i.state)).toEqual(['disk-incapable']);
    expect(r.engine.current()?.name).toBe('c1');
  });

  it('after kill -9: loaded bitmaps are inconsistent, ones created in the crashed run are missing', async () => {
    const r = rig!;
    await r.engine.create({ name: 'c2' });
    await write(r.client, 'vda', 1024 * KiB, 64 * KiB);
    await restart(r, 'kill');
    expect(await bitmap(r.client, 'vda', 'c1')).toMatchObject({ inconsistent: true, recording: false, count: 0 });
    expect(await bitmap(r.client, 'vda', 'c2')).toBeUndefined();

    const issues = (await r.engine.health()).issues;
    const brief = issues.map((i) => [i.state, i.disk, i.checkpoint ?? i.bitmap, i.severity]);
    expect(brief).toEqual(expect.arrayContaining([
      ['bitmap-inconsistent', 'vda', 'c1', 'error'],
      ['bitmap-inconsistent', 'vdb', 'c1', 'error'],
      ['bitmap-missing', 'vda', 'c2', 'error'],
      ['bitmap-missing', 'vdb', 'c2', 'error'],
      ['disk-incapable', 'vdc', undefined, 'info'],
    ]));
    expect(brief).toHaveLength(5);
    const c1vda = issues.find((i) => i.state === 'bitmap-inconsistent' && i.disk === 'vda')!;
    expect(c1vda.message).toBe('bitmap c1 on vda is inconsistent (QEMU was not shut down cleanly)');
    expect(c1vda.consequence).toMatch(/^checkpoint c1 cannot be used as a base for vda; the next backup of vda based on it will be full/);
    const c2vda = issues.find((i) => i.state === 'bitmap-missing' && i.disk === 'vda')!;
    expect(c2vda.consequence).toMatch(/checkpoint c2 cannot be used as a base for vda \(nor can the older checkpoint c1, whose changes pass through it\)/);
  });

  it('operations on a broken checkpoint give a clear error; changes-since says why per disk', async () => {
    const r = rig!;
    const ch = await r.engine.changesSince('c1');
    expect(ch.disks.map((d) => [d.disk, d.usable, d.reason])).toEqual([
      ['vda', false, 'bitmap c1 of checkpoint c1 on vda is inconsistent (QEMU was not shut down cleanly)'],
      ['vdb', false, 'bitmap c1 of checkpoint c1 on vdb is inconsistent (QEMU was not shut down cleanly)'],
      ['vdc', false, 'checkpoint c1 has no bitmap on vdc (the disk was not part of it)'],
    ]);
    expect(() => r.engine.tempBitmapActions('c2', 'vda', 'tidemark-tmp-x')).toThrow('bitmap c2 of checkpoint c2 is missing on vda');
    const xml = await r.engine.dumpXml('c1', { size: true });
    expect(xml).toContain("<disk name='vda' checkpoint='bitmap' bitmap='c1'/>"); // size omitted, as libvirt
  });

  it('a new checkpoint can still be created, and deleting the broken ones works', async () => {
    const r = rig!;
    const c3 = await r.engine.create({ name: 'c3' });
    expect(c3.parent).toBe('c2');
    expect(await bitmap(r.client, 'vda', 'c3')).toMatchObject({ recording: true });
    await write(r.client, 'vda', 2048 * KiB, 64 * KiB);

    expect(await r.engine.delete('c2')).toEqual({ deleted: ['c2'], reparented: [{ name: 'c3', parent: 'c1' }] });
    expect(await r.engine.delete('c1')).toEqual({ deleted: ['c1'], reparented: [{ name: 'c3', parent: undefined }] });
    expect((await bitmaps(r.client, 'vda')).map((b) => b.name)).toEqual(['c3']);
    expect((await r.engine.health()).issues.map((i) => i.state)).toEqual(['disk-incapable']);
    expect((await r.engine.changesSince('c3')).disks[0]).toMatchObject({ disk: 'vda', usable: true, bytes: 64 * KiB });
  });
});
