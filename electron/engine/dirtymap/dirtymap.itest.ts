// The dirty map against a real lab VM and the real checkpoint engine.

import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nbdSocketPath } from '../../nbd/qemu-exports';
import { bitmaps, KiB, MiB, startRig, stopRig, write, type Rig } from '../checkpoints/itest-helpers';
import { simulateWrites } from '../lab/writer';
import { TEMP_BITMAP_PREFIX } from '../names';
import { readDirtyMap } from './dirtymap';

let rig: Rig | undefined;
beforeAll(async () => {
  rig = await startRig({ disks: [{ name: 'vda', sizeBytes: 64 * MiB }, { name: 'vdb', sizeBytes: 32 * MiB, clusterSize: 4096 }] });
});
afterAll(async () => {
  await stopRig(rig);
});

const deps = () => ({ qmp: rig!.client, engine: rig!.engine, stateDir: rig!.stateDir });

/** Nothing of a map may outlive it: no temporary bitmap, no export, no NBD server socket. */
async function expectNothingLeft(): Promise<void> {
  for (const disk of ['vda', 'vdb']) expect((await bitmaps(rig!.client, disk)).filter((b) => b.name?.startsWith(TEMP_BITMAP_PREFIX))).toEqual([]);
  expect(await rig!.client.execute('query-block-exports')).toEqual([]);
  expect(fs.existsSync(nbdSocketPath(rig!.stateDir, rig!.engine.vmId))).toBe(false);
}

describe('readDirtyMap', () => {
  it('maps the changes since each checkpoint of a chained layout, as counted by the engine', async () => {
    const { engine, client } = rig!;
    await engine.create({ name: 'c1', layout: 'chained' });
    await write(client, 'vda', 1 * MiB, 64 * KiB);
    await write(client, 'vda', 5 * MiB + 4 * KiB, 4 * KiB); // dirties one 64 KiB granule
    await engine.create({ name: 'c2' });
    await write(client, 'vda', 20 * MiB, 256 * KiB);
    await write(client, 'vda', 64 * MiB - 64 * KiB, 64 * KiB);

    const m1 = await readDirtyMap(deps(), { disk: 'vda', since: 'c1', buckets: 64 });
    expect(m1.granularity).toBe(64 * KiB);
    expect(m1.extents.filter((e) => e.dirty).map((e) => [e.offset, e.length])).toEqual([
      [1 * MiB, 64 * KiB], [5 * MiB, 64 * KiB], [20 * MiB, 256 * KiB], [64 * MiB - 64 * KiB, 64 * KiB],
    ]);
    expect(m1.dirtyBytes).toBe((await engine.changesSince('c1')).disks.find((d) => d.disk === 'vda')!.bytes);
    // The extents tile the whole disk.
    expect(m1.extents[0]!.offset).toBe(0);
    expect(m1.extents.reduce((s, e) => s + e.length, 0)).toBe(64 * MiB);
    m1.extents.slice(1).forEach((e, i) => expect(e.offset).toBe(m1.extents[i]!.offset + m1.extents[i]!.length));
    // 64 buckets of 1 MiB: bucket 1 holds 64 KiB dirty, bucket 20 holds 256 KiB.
    expect(m1.bucketBytes).toBe(MiB);
    expect(m1.buckets[1]).toBeCloseTo(1 / 16);
    expect(m1.buckets[20]).toBeCloseTo(1 / 4);
    expect(m1.buckets[63]).toBeCloseTo(1 / 16);
    expect(m1.buckets.filter((b) => b > 0)).toHaveLength(4);

    const m2 = await readDirtyMap(deps(), { disk: 'vda', since: 'c2' });
    expect(m2.extents.filter((e) => e.dirty).map((e) => [e.offset, e.length])).toEqual([[20 * MiB, 256 * KiB], [64 * MiB - 64 * KiB, 64 * KiB]]);
    expect(m2.buckets).toHaveLength(256);
    await expectNothingLeft();
    // The checkpoint bitmaps are untouched by mapping.
    const live = await bitmaps(client, 'vda');
    expect(live.find((b) => b.name === 'c1')).toMatchObject({ recording: false, busy: false, count: 128 * KiB });
    expect(live.find((b) => b.name === 'c2')).toMatchObject({ recording: true, busy: false, count: 320 * KiB });
  });

  it('maps at the 4 KiB granularity of a 4 KiB-cluster disk', async () => {
    const { client } = rig!;
    for (let i = 0; i < 16; i++) await write(client, 'vdb', i * MiB + 12 * KiB, 4 * KiB);
    const m = await readDirtyMap(deps(), { disk: 'vdb', since: 'c2' });
    expect(m.granularity).toBe(4 * KiB);
    expect(m.dirtyBytes).toBe(16 * 4 * KiB);
    expect(m.extents.filter((e) => e.dirty).every((e) => e.length === 4 * KiB && e.offset % MiB === 12 * KiB)).toBe(true);
    await expectNothingLeft();
  });

  it('stays consistent while the write simulator runs, and several maps can run at once', async () => {
    const { client, engine } = rig!;
    const vda = (await engine.vm()).disks.find((d) => d.name === 'vda')!;
    await engine.create({ name: 'c3' });
    const writing = simulateWrites(client, vda, { pattern: 'random', mib: 8, seed: 7 });
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [a, b] = await Promise.all([readDirtyMap(deps(), { disk: 'vda', since: 'c3' }), readDirtyMap(deps(), { disk: 'vdb', since: 'c3' })]);
      expect(b.dirtyBytes).toBe(0);
      expect(a.extents.reduce((s, e) => s + e.length, 0)).toBe(64 * MiB);
      expect(a.dirtyBytes % (64 * KiB)).toBe(0);
      seen.push(a.dirtyBytes);
    }
    await writing;
    const final = await readDirtyMap(deps(), { disk: 'vda', since: 'c3' });
    seen.push(final.dirtyBytes);
    // Dirty bytes since c3 only grow while writes land.
    seen.slice(1).forEach((v, i) => expect(v).toBeGreaterThanOrEqual(seen[i]!));
    expect(final.dirtyBytes).toBe((await engine.changesSince('c3')).disks.find((d) => d.disk === 'vda')!.bytes);
    expect(final.dirtyBytes).toBeGreaterThan(0);
    await expectNothingLeft();
  });

  it('names a bad checkpoint, disk or bucket count and leaves nothing behind', async () => {
    await expect(readDirtyMap(deps(), { disk: 'vda', since: 'nope' })).rejects.toThrow(/checkpoint nope not found/);
    await expect(readDirtyMap(deps(), { disk: 'vdz', since: 'c1' })).rejects.toThrow(/disk vdz is not attached to VM .* \(disks: vda, vdb\)/);
    await expect(readDirtyMap(deps(), { disk: 'vda', since: 'c1', buckets: 0 })).rejects.toThrow(/buckets must be an integer from 1 to 4096, got 0/);
    await expectNothingLeft();
  });

  it('refuses to take over an NBD server that someone else started, and removes its bitmap', async () => {
    const { client } = rig!;
    const foreign = `${rig!.root}/other-nbd.sock`;
    await client.execute('nbd-server-start', { addr: { type: 'unix', data: { path: foreign } } });
    try {
      await expect(readDirtyMap(deps(), { disk: 'vda', since: 'c1' })).rejects.toThrow(/already runs an NBD server that Tidemark did not start/);
      expect((await bitmaps(client, 'vda')).filter((b) => b.name?.startsWith(TEMP_BITMAP_PREFIX))).toEqual([]);
    } finally {
      await client.execute('nbd-server-stop');
    }
    const ok = await readDirtyMap(deps(), { disk: 'vda', since: 'c2' });
    expect(ok.dirtyBytes).toBeGreaterThan(0);
    await expectNothingLeft();
  });
});
