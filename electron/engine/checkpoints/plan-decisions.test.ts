// The create/delete decisions of plan.ts: layout at a VM's first checkpoint, disk choice (the
// --diskspec rules), default names, the new checkpoint's record, survivors of a delete.
import { describe, expect, it } from 'vitest';
import type { BitmapInfo, Checkpoint, DiskInfo } from '../../../shared/domain';
import {
  assertDeleteMode, chooseDisks, chooseLayout, defaultCheckpointName, planDelete, planNewCheckpoint, shown, updatedSurvivors, withUnrecorded,
  type PlanLive, type PlanState,
} from './plan';

const bm = (name: string | undefined): BitmapInfo => ({
  ...(name !== undefined ? { name } : {}), recording: true, persistent: true, busy: false, inconsistent: false, count: 0, granularity: 65536,
});
const disk = (name: string, bitmaps: (string | undefined)[] = [], o: Partial<DiskInfo> = {}): DiskInfo => ({
  name, nodeName: `${name}-fmt`, format: 'qcow2', virtualSize: 1 << 30, imageFile: `/x/${name}.qcow2`, granularity: 65536, bitmapCapable: true, readOnly: false,
  bitmaps: bitmaps.map(bm), ...o,
});
const raw = (name: string) => disk(name, [], { format: 'raw', bitmapCapable: false, bitmapIncapableReason: 'raw images cannot store persistent bitmaps' });
const cp = (name: string, parent?: string, disks: Record<string, 'bitmap' | 'no'> = { vda: 'bitmap', vdb: 'bitmap' }): Checkpoint => ({
  name, ...(parent !== undefined ? { parent } : {}), creationTime: 1, createdAtMs: 1000, layout: 'chained',
  disks: Object.entries(disks).map(([d, c]) => (c === 'bitmap' ? { name: d, checkpoint: c, bitmap: name } : { name: d, checkpoint: c })),
});
const byName = (cps: Checkpoint[]) => new Map(cps.map((c) => [c.name, c]));
const live: PlanLive = { node: (d) => `${d}-fmt`, bitmap: () => 'ok' };

describe('chooseLayout', () => {
  it('at the first checkpoint: as asked, else as stored, else independent', () => {
    expect(chooseLayout('chained', undefined, 0, 'demo')).toBe('chained');
    expect(chooseLayout('independent', 'chained', 0, 'demo')).toBe('independent');
    expect(chooseLayout(undefined, 'chained', 0, 'demo')).toBe('chained');
    expect(chooseLayout(undefined, undefined, 0, 'demo')).toBe('independent');
  });
  it('afterwards: the VM\'s layout, also when asked for the same one', () => {
    expect(chooseLayout(undefined, 'chained', 3, 'demo')).toBe('chained');
    expect(chooseLayout('chained', 'chained', 3, 'demo')).toBe('chained');
    expect(chooseLayout(undefined, undefined, 1, 'demo')).toBe('independent');
  });
  it('refuses another layout once the VM has checkpoints, naming the VM and the count', () => {
    expect(() => chooseLayout('independent', 'chained', 2, 'demo (uuid-1)')).toThrow(
      'VM demo (uuid-1) uses the chained bitmap layout; it can only change when the VM has no checkpoints (it has 2)',
    );
    expect(() => chooseLayout('chained', undefined, 1, 'demo')).toThrow('VM demo uses the independent bitmap layout; it can only change when the VM has no checkpoints (it has 1)');
  });
});

describe('defaultCheckpointName', () => {
  it('the time in seconds, as libvirt', () => {
    expect(defaultCheckpointName(1_700_000_000_999, new Set())).toBe('1700000000');
  });
  it('"-2", "-3"... while the name is taken', () => {
    expect(defaultCheckpointName(1_700_000_000_000, new Set(['1700000000']))).toBe('1700000000-2');
    expect(defaultCheckpointName(1_700_000_000_000, new Set(['1700000000', '1700000000-2', '1700000000-3']))).toBe('1700000000-4');
    expect(defaultCheckpointName(1_700_000_000_000, new Set(['1700000000-2']))).toBe('1700000000');
  });
});

describe('chooseDisks (--diskspec rules)', () => {
  const disks = [disk('vda'), disk('vdb'), raw('vdc')];
  it('nothing asked: every disk that can hold bitmaps, bitmaps named after the checkpoint', () => {
    expect(chooseDisks(disks, undefined, 'c1', 'demo')).toEqual([
      { name: 'vda', checkpoint: 'bitmap', bitmap: 'c1' },
      { name: 'vdb', checkpoint: 'bitmap', bitmap: 'c1' },
      { name: 'vdc', checkpoint: 'no' },
    ]);
  });
  it('a listed disk as asked; unlisted ones by default (unlike virsh)', () => {
    expect(chooseDisks(disks, [{ name: 'vdb', checkpoint: 'no' }], 'c1', 'demo')).toEqual([
      { name: 'vda', checkpoint: 'bitmap', bitmap: 'c1' },
      { name: 'vdb', checkpoint: 'no' },
      { name: 'vdc', checkpoint: 'no' },
    ]);
    expect(chooseDisks(disks, [{ name: 'vdc', checkpoint: 'no' }, { name: 'vda', checkpoint: 'bitmap' }], 'c1', 'demo').map((d) => d.checkpoint)).toEqual(['bitmap', 'bitmap', 'no']);
  });
  it('refuses an unknown disk, naming the VM\'s disks (quoted when unusual)', () => {
    expect(() => chooseDisks(disks, [{ name: 'sda', checkpoint: 'bitmap' }], 'c1', 'demo')).toThrow('unknown disk sda (VM demo has vda, vdb, vdc)');
    expect(() => chooseDisks(disks, [{ name: 'vda\n', checkpoint: 'bitmap' }], 'c1', 'demo')).toThrow('unknown disk "vda\\n" (VM demo has vda, vdb, vdc)');
    expect(() => chooseDisks([], [{ name: 'vda', checkpoint: 'bitmap' }], 'c1', 'demo')).toThrow('unknown disk vda (VM demo has no disks)');
  });
  it('refuses a disk listed twice and a checkpoint value other than bitmap or no', () => {
    expect(() => chooseDisks(disks, [{ name: 'vda', checkpoint: 'no' }, { name: 'vda', checkpoint: 'bitmap' }], 'c1', 'demo')).toThrow('disk vda is listed twice');
    const bad = [{ name: 'vda', checkpoint: 'yes' }] as unknown as { name: string; checkpoint: 'bitmap' }[];
    expect(() => chooseDisks(disks, bad, 'c1', 'demo')).toThrow('disk vda: checkpoint must be "bitmap" or "no"');
  });
  it('refuses a bitmap on a disk that cannot hold one, with the reason', () => {
    expect(() => chooseDisks(disks, [{ name: 'vdc', checkpoint: 'bitmap' }], 'c1', 'demo')).toThrow('disk vdc cannot hold a checkpoint bitmap: raw images cannot store persistent bitmaps');
    expect(() => chooseDisks([disk('vdd', [], { bitmapCapable: false })], [{ name: 'vdd', checkpoint: 'bitmap' }], 'c1', 'demo')).toThrow('disk vdd cannot hold a checkpoint bitmap: unsupported image');
  });
  it('never takes over a bitmap of the same name on a taking-part disk; one on a left-out disk is fine', () => {
    const withForeign = [disk('vda'), disk('vdb', ['c1', undefined])];
    expect(() => chooseDisks(withForeign, undefined, 'c1', 'demo')).toThrow(
      "bitmap c1 already exists on vdb (foreign? remove it or pick another name; if it is a checkpoint's bitmap whose metadata was deleted, checkpoint-create --redefine takes it back)",
    );
    expect(chooseDisks(withForeign, [{ name: 'vdb', checkpoint: 'no' }], 'c1', 'demo')).toEqual([{ name: 'vda', checkpoint: 'bitmap', bitmap: 'c1' }, { name: 'vdb', checkpoint: 'no' }]);
  });
});

describe('planNewCheckpoint', () => {
  const base = { options: {}, storedLayout: undefined, checkpoints: new Map(), current: undefined, disks: [disk('vda'), raw('vdc')], nowMs: 1_700_000_000_123, vmLabel: 'demo' };
  it('the first checkpoint: a root, default name and layout, times from nowMs', () => {
    expect(planNewCheckpoint(base)).toEqual({
      name: '1700000000', creationTime: 1700000000, createdAtMs: 1700000000123, layout: 'independent',
      disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: '1700000000' }, { name: 'vdc', checkpoint: 'no' }],
    });
  });
  it('a child of the current checkpoint, with its name, description and the VM\'s layout', () => {
    const c = planNewCheckpoint({ ...base, options: { name: 'c2', description: 'before upgrade' }, storedLayout: 'chained', checkpoints: byName([cp('c1')]), current: 'c1' });
    expect(c).toMatchObject({ name: 'c2', description: 'before upgrade', parent: 'c1', layout: 'chained' });
  });
  it('the default name skips checkpoint names and any bitmap name on the VM', () => {
    const taken = planNewCheckpoint({ ...base, checkpoints: byName([cp('1700000000')]), current: '1700000000', disks: [disk('vda', ['1700000000-2'])] });
    expect(taken.name).toBe('1700000000-3');
  });
  it('refuses a bad name, an existing name, and another layout, before choosing disks', () => {
    expect(() => planNewCheckpoint({ ...base, options: { name: 'a/b' } })).toThrow('checkpoint name "a/b" contains "/"');
    expect(() => planNewCheckpoint({ ...base, options: { name: 'c1', disks: [{ name: 'nope', checkpoint: 'bitmap' }] }, checkpoints: byName([cp('c1')]) })).toThrow('checkpoint c1 already exists');
    expect(() => planNewCheckpoint({ ...base, options: { layout: 'chained' }, storedLayout: 'independent', checkpoints: byName([cp('c1')]) })).toThrow(/uses the independent bitmap layout/);
  });
});

describe('withUnrecorded', () => {
  it('adds the prepared checkpoint as current, in its own layout; the input stays as it was', () => {
    const state: PlanState = { layout: 'independent', checkpoints: byName([cp('c1')]), current: 'c1' };
    const next = withUnrecorded(state, cp('c2', 'c1'));
    expect(next.current).toBe('c2');
    expect(next.layout).toBe('chained');
    expect([...next.checkpoints.keys()]).toEqual(['c1', 'c2']);
    expect([...state.checkpoints.keys()]).toEqual(['c1']);
  });
});

describe('updatedSurvivors (re-parenting on delete)', () => {
  it('children of a deleted checkpoint get its parent; a deleted root makes its children roots', () => {
    const cps = byName([cp('c1'), cp('c2', 'c1'), cp('c3', 'c2'), cp('c4', 'c2')]);
    const state: PlanState = { layout: 'independent', checkpoints: cps, current: 'c3' };
    const mid = updatedSurvivors(cps, planDelete(state, ['c2'], live));
    expect(mid.map((c) => [c.name, c.parent])).toEqual([['c3', 'c1'], ['c4', 'c1']]);
    const root = updatedSurvivors(cps, planDelete(state, ['c1'], live));
    expect(root.map((c) => c.name)).toEqual(['c2']);
    expect('parent' in root[0]!).toBe(false);
    expect(cps.get('c3')!.parent).toBe('c2'); // copies: the records given are not changed
  });
  it('marks the disks of older checkpoints incomplete, keeping a reason already there', () => {
    const c1 = cp('c1');
    c1.disks[1]!.incomplete = 'an earlier loss';
    const cps = byName([c1, cp('c2', 'c1'), cp('c3', 'c2')]);
    const out = updatedSurvivors(cps, {
      reparented: [{ name: 'c3', parent: 'c1' }],
      incomplete: [{ checkpoint: 'c1', disk: 'vda', reason: 'lost on vda' }, { checkpoint: 'c1', disk: 'vdb', reason: 'lost on vdb' }],
    });
    expect(out.map((c) => c.name)).toEqual(['c3', 'c1']);
    expect(out[1]!.disks.map((d) => d.incomplete)).toEqual(['lost on vda', 'an earlier loss']);
    expect(cps.get('c1')!.disks[0]!.incomplete).toBeUndefined();
  });
  it('nothing re-parented, nothing incomplete: no record changes', () => {
    const cps = byName([cp('c1'), cp('c2', 'c1')]);
    expect(updatedSurvivors(cps, planDelete({ layout: 'independent', checkpoints: cps, current: 'c2' }, ['c2'], live))).toEqual([]);
  });
});

describe('assertDeleteMode and shown', () => {
  it('accepts the four modes and names them when refusing another', () => {
    for (const m of ['plain', 'children', 'children-only', 'metadata']) expect(() => assertDeleteMode(m)).not.toThrow();
    expect(() => assertDeleteMode('all')).toThrow('unknown delete mode "all" (use plain, children, children-only, metadata)');
  });
  it('quotes names with unusual characters only', () => {
    expect(shown('vda')).toBe('vda');
    expect(shown('disk-1.a:b@c+d')).toBe('disk-1.a:b@c+d');
    expect(shown('../x')).toBe('"../x"');
    expect(shown('a b')).toBe('"a b"');
  });
});
