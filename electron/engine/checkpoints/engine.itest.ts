// The checkpoint engine against a real QEMU (the lab VM): layouts, deletes, atomicity, seams.
// Guest writes go through HMP qemu-io on the drive's BlockBackend, so they dirty bitmaps as a
// guest's would. Counts are in bytes with QEMU's 64 KiB granularity.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BitmapLayout } from '../../../shared/domain';
import { KiB, MiB, bitmap, bitmaps, sha256, startRig, stopRig, summary, write, type Rig } from './itest-helpers';

/** A recording non-persistent bitmap added right after a checkpoint: the ground truth of "changes since". */
async function addRef(rig: Rig, disk: string, cp: string): Promise<string> {
  const name = `tidemark-tmp-ref-${cp}`;
  await rig.client.execute('block-dirty-bitmap-add', { node: `${disk}-fmt`, name, persistent: false });
  return name;
}

/** Runs the engine's temp-bitmap actions for `since`, returns {count, sha256}, removes the temp bitmap. */
async function merged(rig: Rig, since: string, disk: string): Promise<{ count: number; sha: string }> {
  const tmp = `tidemark-tmp-check-${Math.random().toString(36).slice(2)}`;
  await rig.client.execute('transaction', { actions: rig.engine.tempBitmapActions(since, disk, tmp) });
  try {
    return { count: (await bitmap(rig.client, disk, tmp))!.count, sha: await sha256(rig.client, disk, tmp) };
  } finally {
    await rig.client.execute('block-dirty-bitmap-remove', { node: `${disk}-fmt`, name: tmp });
  }
}

async function truth(rig: Rig, disk: string, ref: string): Promise<{ count: number; sha: string }> {
  return { count: (await bitmap(rig.client, disk, ref))!.count, sha: await sha256(rig.client, disk, ref) };
}

describe.each(['independent', 'chained'] as BitmapLayout[])('create c1..c3 (%s)', (layout) => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await startRig();
  });
  afterAll(async () => stopRig(rig));

  it('creates bitmaps per the layout and records metadata', async () => {
    const { engine, client } = rig!;
    const c1 = await engine.create({ name: 'c1', layout, description: 'first' });
    await addRef(rig!, 'vda', 'c1');
    await write(client, 'vda', 0, 64 * KiB);
    await engine.create({ name: 'c2' });
    await addRef(rig!, 'vda', 'c2');
    await write(client, 'vda', 1 * MiB, 128 * KiB);
    await engine.create({ name: 'c3' });
    await write(client, 'vda', 2 * MiB, 192 * KiB);
    await write(client, 'vdb', 0, 4 * KiB);

    expect(c1).toMatchObject({ name: 'c1', description: 'first', layout });
    expect(c1.parent).toBeUndefined();
    expect(c1.disks).toEqual([{ name: 'vda', checkpoint: 'bitmap', bitmap: 'c1' }, { name: 'vdb', checkpoint: 'bitmap', bitmap: 'c1' }, { name: 'vdc', checkpoint: 'no' }]);
    const s = await summary(client, 'vda');
    delete s['tidemark-tmp-ref-c1'];
    delete s['tidemark-tmp-ref-c2'];
    if (layout === 'chained') {
      expect(s).toEqual({ c1: [false, 64 * KiB], c2: [false, 128 * KiB], c3: [true, 192 * KiB] });
      expect(await summary(client, 'vdb')).toEqual({ c1: [false, 0], c2: [false, 0], c3: [true, 64 * KiB] });
    } else {
      expect(s).toEqual({ c1: [true, 384 * KiB], c2: [true, 320 * KiB], c3: [true, 192 * KiB] });
      expect(await summary(client, 'vdb')).toEqual({ c1: [true, 64 * KiB], c2: [true, 64 * KiB], c3: [true, 64 * KiB] });
    }
    expect((await bitmaps(client, 'vdc'))).toEqual([]);
    for (const b of await bitmaps(client, 'vda')) if (/^c\d$/.test(b.name!)) expect(b.persistent).toBe(true);

    expect(engine.layout()).toBe(layout);
    expect(engine.current()?.name).toBe('c3');
    expect(engine.parent('c3')?.name).toBe('c2');
    expect(engine.parent('c1')).toBeUndefined();
    expect(engine.get('c2').parent).toBe('c1');
    expect(() => engine.get('nope')).toThrow('checkpoint nope not found');
    const files = fs.readdirSync(path.join(rig!.stateDir, 'vms', engine.vmId, 'checkpoints')).sort();
    expect(files).toEqual(['c1.json', 'c2.json', 'c3.json']);
    const vmJson = JSON.parse(fs.readFileSync(path.join(rig!.stateDir, 'vms', engine.vmId, 'vm.json'), 'utf8'));
    expect(vmJson).toEqual({ id: engine.vmId, name: 'tidemark-demo', uuid: engine.vmId, endpoint: rig!.lab.qmp, layout, current: 'c3' });
    expect((await engine.health()).issues.map((i) => i.state)).toEqual(['disk-incapable']);
  });

  it('changes since each checkpoint equal the ground truth (count and sha256)', async () => {
    const r = rig!;
    expect(await merged(r, 'c1', 'vda')).toEqual(await truth(r, 'vda', 'tidemark-tmp-ref-c1'));
    expect(await merged(r, 'c2', 'vda')).toEqual(await truth(r, 'vda', 'tidemark-tmp-ref-c2'));
    const ch = await r.engine.changesSince('c1');
    expect(ch.disks).toEqual([
      { disk: 'vda', bytes: 384 * KiB, granularity: 64 * KiB, virtualSize: 64 * MiB, usable: true },
      { disk: 'vdb', bytes: 64 * KiB, granularity: 64 * KiB, virtualSize: 32 * MiB, usable: true },
      { disk: 'vdc', bytes: 0, granularity: 64 * KiB, virtualSize: 16 * MiB, usable: false, reason: 'checkpoint c1 has no bitmap on vdc (the disk was not part of it)' },
    ]);
    expect((await r.engine.changesSince('c3')).disks[0]!.bytes).toBe(192 * KiB);
    // The temporary bitmaps are gone again.
    expect((await bitmaps(r.client, 'vda')).filter((b) => b.name?.startsWith('tidemark-tmp-changes'))).toEqual([]);
  });

  it('dumpXml prints the checkpoint, with sizes when asked', async () => {
    const xml = await rig!.engine.dumpXml('c2', { size: true });
    expect(xml).toContain('<name>c2</name>');
    expect(xml).toContain('<parent>\n    <name>c1</name>\n  </parent>');
    expect(xml).toContain(`<disk name='vda' checkpoint='bitmap' bitmap='c2' size='${320 * KiB}'/>`);
    expect(xml).toContain("<disk name='vdc' checkpoint='no'/>");
    expect(await rig!.engine.dumpXml('c2')).not.toContain('size=');
  });

  it('lists with virsh filters', async () => {
    const { engine } = rig!;
    await engine.delete('c3');
    await engine.create({ name: 'c4' }); // c1 → c2 → c4
    const names = (f = {}) => engine.list(f).map((c) => c.name);
    expect(names()).toEqual(['c1', 'c2', 'c4']);
    expect(names({ roots: true })).toEqual(['c1']);
    expect(names({ leaves: true })).toEqual(['c4']);
    expect(names({ noLeaves: true })).toEqual(['c1', 'c2']);
    expect(names({ leaves: true, noLeaves: true })).toEqual(['c1', 'c2', 'c4']);
    expect(names({ from: 'c1' })).toEqual(['c2']);
    expect(names({ from: 'c1', descendants: true })).toEqual(['c2', 'c4']);
    expect(names({ topological: true })).toEqual(['c1', 'c2', 'c4']);
    expect(() => engine.list({ from: 'zz' })).toThrow('checkpoint zz not found');
    expect(() => engine.list({ roots: true, from: 'c1' })).toThrow(/cannot be combined/);
  });

  it('refuses a different layout, duplicate names, unknown disks and incapable disks; default names are timestamps', async () => {
    const { engine } = rig!;
    const other = layout === 'chained' ? 'independent' : 'chained';
    await expect(engine.create({ name: 'x', layout: other })).rejects.toThrow(`uses the ${layout} bitmap layout; it can only change when the VM has no checkpoints`);
    await expect(engine.create({ name: 'c2' })).rejects.toThrow('checkpoint c2 already exists');
    await expect(engine.create({ name: 'x', disks: [{ name: 'vdz', checkpoint: 'bitmap' }] })).rejects.toThrow('unknown disk vdz (VM');
    await expect(engine.create({ name: 'x', disks: [{ name: 'vdc', checkpoint: 'bitmap' }] })).rejects.toThrow('disk vdc cannot hold a checkpoint bitmap: qcow2 v2 (compat 0.10) cannot store persistent bitmaps');
    await expect(engine.create({ name: 'a/b' })).rejects.toThrow('contains "/"');
    const before = Math.floor(Date.now() / 1000);
    const d1 = await engine.create();
    const d2 = await engine.create();
    expect(Number(d1.name)).toBeGreaterThanOrEqual(before);
    expect(d2.name === `${d1.name}-2` || Number(d2.name) > Number(d1.name)).toBe(true);
    expect(engine.list().map((c) => c.name)).toEqual(['c1', 'c2', 'c4', d1.name, d2.name]);
  });

  it('excluding a disk leaves it out; it stays consistent', async () => {
    const { engine, client } = rig!;
    const cp = await engine.create({ name: 'only-vda', disks: [{ name: 'vdb', checkpoint: 'no' }] });
    expect(cp.disks.map((d) => [d.name, d.checkpoint])).toEqual([['vda', 'bitmap'], ['vdb', 'no'], ['vdc', 'no']]);
    expect(await bitmap(client, 'vdb', 'only-vda')).toBeUndefined();
    expect((await engine.health()).issues.map((i) => i.state)).toEqual(['disk-incapable']);
  });
});

describe('chained delete keeps "changes since" exact', () => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await startRig();
  });
  afterAll(async () => stopRig(rig));

  it('delete middle: merged into the predecessor; a naive remove would lose the interval', async () => {
    const r = rig!;
    await r.engine.create({ name: 'c1', layout: 'chained' });
    await addRef(r, 'vda', 'c1');
    await write(r.client, 'vda', 0, 64 * KiB);
    await r.engine.create({ name: 'c2' });
    await write(r.client, 'vda', 10 * MiB, 128 * KiB, 0xc2);
    await r.engine.create({ name: 'c3' });
    await write(r.client, 'vda', 20 * MiB, 192 * KiB, 0xc3);

    // Negative control: merging c1 and c3 without c2 (what a naive remove leaves) misses c2's writes.
    const tmp = 'tidemark-tmp-naive';
    await r.client.execute('transaction', { actions: [
      { type: 'block-dirty-bitmap-add', data: { node: 'vda-fmt', name: tmp, persistent: false, disabled: true } },
      { type: 'block-dirty-bitmap-merge', data: { node: 'vda-fmt', target: tmp, bitmaps: ['c1', 'c3'] } },
    ] });
    const naive = { count: (await bitmap(r.client, 'vda', tmp))!.count, sha: await sha256(r.client, 'vda', tmp) };
    await r.client.execute('block-dirty-bitmap-remove', { node: 'vda-fmt', name: tmp });
    const ref = await truth(r, 'vda', 'tidemark-tmp-ref-c1');
    expect(naive.count).toBe(256 * KiB);
    expect(naive.sha).not.toBe(ref.sha);

    const res = await r.engine.delete('c2');
    expect(res).toEqual({ deleted: ['c2'], reparented: [{ name: 'c3', parent: 'c1' }] });
    const s = await summary(r.client, 'vda');
    expect([s.c1, s.c3, s.c2]).toEqual([[false, 192 * KiB], [true, 192 * KiB], undefined]);
    expect(await merged(r, 'c1', 'vda')).toEqual(ref);
    expect(ref.count).toBe(384 * KiB);
  });

  it('delete newest: merged and the predecessor records again; later writes are counted', async () => {
    const r = rig!;
    const res = await r.engine.delete('c3');
    expect(res).toEqual({ deleted: ['c3'], reparented: [] });
    expect(r.engine.current()?.name).toBe('c1');
    expect((await bitmap(r.client, 'vda', 'c1'))).toMatchObject({ recording: true, count: 384 * KiB });
    await write(r.client, 'vda', 30 * MiB, 64 * KiB);
    expect(await merged(r, 'c1', 'vda')).toEqual(await truth(r, 'vda', 'tidemark-tmp-ref-c1'));
    expect((await truth(r, 'vda', 'tidemark-tmp-ref-c1')).count).toBe(448 * KiB);
  });

  it('delete oldest: removed only; the later checkpoint is unchanged', async () => {
    const r = rig!;
    await r.engine.create({ name: 'c4' });
    await addRef(r, 'vda', 'c4');
    await write(r.client, 'vda', 40 * MiB, 64 * KiB);
    await r.engine.create({ name: 'c5' });
    await write(r.client, 'vda', 41 * MiB, 64 * KiB);
    const before = await merged(r, 'c4', 'vda');
    const res = await r.engine.delete('c1');
    expect(res).toEqual({ deleted: ['c1'], reparented: [{ name: 'c4', parent: undefined }] });
    expect(await bitmap(r.client, 'vda', 'c1')).toBeUndefined();
    expect(await merged(r, 'c4', 'vda')).toEqual(before);
    expect(before).toEqual(await truth(r, 'vda', 'tidemark-tmp-ref-c4'));
  });

  it('children: a subtree deleted deepest first in one transaction', async () => {
    const r = rig!;
    await r.engine.create({ name: 'c6' });
    await write(r.client, 'vda', 42 * MiB, 64 * KiB);
    const res = await r.engine.delete('c5', 'children');
    expect(res.deleted).toEqual(['c6', 'c5']);
    expect(r.engine.list().map((c) => c.name)).toEqual(['c4']);
    expect(await bitmap(r.client, 'vda', 'c4')).toMatchObject({ recording: true });
    expect(await merged(r, 'c4', 'vda')).toEqual(await truth(r, 'vda', 'tidemark-tmp-ref-c4'));
    expect((await r.engine.health()).issues.map((i) => i.state)).toEqual(['disk-incapable']);
  });

  it('children-only keeps the checkpoint; metadata-only keeps the bitmap, which becomes foreign', async () => {
    const r = rig!;
    await r.engine.create({ name: 'c7' });
    await r.engine.create({ name: 'c8' });
    expect((await r.engine.delete('c4', 'children-only')).deleted).toEqual(['c8', 'c7']);
    expect(r.engine.list().map((c) => c.name)).toEqual(['c4']);
    expect(await r.engine.delete('c4', 'children-only')).toEqual({ deleted: [], reparented: [] });
    await r.engine.create({ name: 'c9' });
    expect(await r.engine.delete('c9', 'metadata')).toEqual({ deleted: ['c9'], reparented: [] });
    expect(await bitmap(r.client, 'vda', 'c9')).toMatchObject({ recording: true });
    const issues = (await r.engine.health()).issues;
    expect(issues.filter((i) => i.state === 'foreign-bitmap').map((i) => [i.disk, i.bitmap])).toEqual([['vda', 'c9'], ['vdb', 'c9']]);
    // c4 is disabled and now current: it misses c9's interval and nothing records for it.
    expect(issues.filter((i) => i.checkpoint === 'c4' && i.disk === 'vda').map((i) => i.state).sort()).toEqual(['bitmap-missing', 'bitmap-not-recording']);
    expect(() => r.engine.tempBitmapActions('c4', 'vda', 'tidemark-tmp-x')).toThrow(/checkpoint c4 cannot be used on vda: .*only the metadata of c9 was deleted/);
  });
});

describe('multi-disk atomicity', () => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await startRig();
  });
  afterAll(async () => stopRig(rig));

  it('a bitmap already on vdb: create fails with a clear error, vda unchanged, no metadata written', async () => {
    const r = rig!;
    await r.engine.create({ name: 'c1', layout: 'chained' });
    await r.client.execute('block-dirty-bitmap-add', { node: 'vdb-fmt', name: 'cx', persistent: true });
    const vdaBefore = await summary(r.client, 'vda');
    const files = () => fs.readdirSync(path.join(r.stateDir, 'vms', r.engine.vmId, 'checkpoints')).sort();
    await expect(r.engine.create({ name: 'cx' })).rejects.toThrow('bitmap cx already exists on vdb (foreign? remove it or pick another name; if it is a checkpoint\'s bitmap whose metadata was deleted, checkpoint-create --redefine takes it back)');
    expect(await summary(r.client, 'vda')).toEqual(vdaBefore);
    expect(files()).toEqual(['c1.json']);
    expect(r.engine.current()?.name).toBe('c1');
  });

  it('QEMU itself rolls back all disks when one action fails inside the transaction', async () => {
    const r = rig!;
    const prepared = await r.engine.prepareCreate({ name: 'cy' });
    await r.client.execute('block-dirty-bitmap-add', { node: 'vdb-fmt', name: 'cy', persistent: true });
    const vdaBefore = await summary(r.client, 'vda');
    await expect(r.client.execute('transaction', { actions: prepared.actions })).rejects.toThrow('Bitmap already exists: cy');
    expect(await summary(r.client, 'vda')).toEqual(vdaBefore);
    expect(vdaBefore.c1![0]).toBe(true); // c1 still records: the disable was rolled back too
    await expect(r.engine.commitCreate(prepared)).rejects.toThrow(/its bitmap is not on vda/);
    expect(r.engine.list().map((c) => c.name)).toEqual(['c1']);
  });
});

describe.each(['independent', 'chained'] as BitmapLayout[])('seams for backups (%s)', (layout) => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await startRig();
    await rig.engine.create({ name: 'base', layout });
    await addRef(rig, 'vda', 'base');
    await write(rig.client, 'vda', 0, 256 * KiB);
  });
  afterAll(async () => stopRig(rig));

  const snapshot = async (r: Rig) => {
    const out: Record<string, unknown> = {};
    for (const disk of ['vda', 'vdb']) {
      for (const b of await bitmaps(r.client, disk)) if (b.name && !b.name.startsWith('tidemark-tmp-')) out[`${disk}/${b.name}`] = { ...b, sha: await sha256(r.client, disk, b.name) };
    }
    return out;
  };

  it('prepare → caller runs temp + checkpoint actions in one transaction → commit', async () => {
    const r = rig!;
    const prepared = await r.engine.prepareCreate({ name: 'b1' });
    const temp = r.engine.tempBitmapActions('base', 'vda', 'tidemark-tmp-bk1');
    expect(r.engine.list().map((c) => c.name)).toEqual(['base']); // nothing recorded yet
    await r.client.execute('transaction', { actions: [...temp, ...prepared.actions] });
    await r.engine.commitCreate(prepared);
    expect(r.engine.current()?.name).toBe('b1');
    expect((await bitmap(r.client, 'vda', 'tidemark-tmp-bk1'))!.count).toBe(256 * KiB);
    expect(await bitmap(r.client, 'vda', 'b1')).toMatchObject({ recording: true, persistent: true });
    expect((await bitmap(r.client, 'vda', 'base'))!.recording).toBe(layout === 'independent');
    await r.client.execute('block-dirty-bitmap-remove', { node: 'vda-fmt', name: 'tidemark-tmp-bk1' });
  });

  it('prepare → run → rollback leaves the bitmaps exactly as before', async () => {
    const r = rig!;
    const before = await snapshot(r);
    const prepared = await r.engine.prepareCreate({ name: 'b2' });
    await r.client.execute('transaction', { actions: prepared.actions });
    expect(await bitmap(r.client, 'vda', 'b2')).toBeDefined();
    await r.engine.rollbackCreate(prepared);
    expect(await snapshot(r)).toEqual(before);
    expect(r.engine.current()?.name).toBe('b1');
    expect(r.engine.list().map((c) => c.name)).toEqual(['base', 'b1']);
  });

  it('rollback after guest writes: the predecessor keeps every write (as if no checkpoint was made)', async () => {
    const r = rig!;
    const prepared = await r.engine.prepareCreate({ name: 'b3' });
    await r.client.execute('transaction', { actions: prepared.actions });
    await write(r.client, 'vda', 8 * MiB, 128 * KiB);
    await r.engine.rollbackCreate(prepared);
    expect(await bitmap(r.client, 'vda', 'b3')).toBeUndefined();
    expect(await bitmap(r.client, 'vda', 'b1')).toMatchObject({ recording: true, count: 128 * KiB });
    expect(await merged(r, 'base', 'vda')).toEqual(await truth(r, 'vda', 'tidemark-tmp-ref-base'));
  });

  it('a committed checkpoint can be rolled back too (metadata removed)', async () => {
    const r = rig!;
    const prepared = await r.engine.prepareCreate({ name: 'b4' });
    await r.client.execute('transaction', { actions: prepared.actions });
    await r.engine.commitCreate(prepared);
    await r.engine.rollbackCreate(prepared);
    expect(r.engine.list().map((c) => c.name)).toEqual(['base', 'b1']);
    expect(r.engine.current()?.name).toBe('b1');
    expect((await r.engine.health()).issues.map((i) => i.state)).toEqual(['disk-incapable']);
  });

  it('withLock is re-entrant for the engine\'s own calls', async () => {
    const r = rig!;
    const cp = await r.engine.withLock(async () => {
      const p = await r.engine.prepareCreate({ name: 'b5' });
      await r.client.execute('transaction', { actions: p.actions });
      await r.engine.commitCreate(p);
      return r.engine.current();
    });
    expect(cp?.name).toBe('b5');
  });

  it('tempBitmapActions refuses names that are not temporary and unusable bases', () => {
    const r = rig!;
    expect(() => r.engine.tempBitmapActions('base', 'vda', 'mine')).toThrow('must start with "tidemark-tmp-"');
    expect(() => r.engine.tempBitmapActions('base', 'vdc', 'tidemark-tmp-1')).toThrow('checkpoint base has no bitmap on vdc');
    expect(() => r.engine.tempBitmapActions('nope', 'vda', 'tidemark-tmp-1')).toThrow('checkpoint nope not found');
  });
});

afterEach(() => undefined);
