import { describe, expect, it } from 'vitest';
import type { BitmapLayout } from '../../../shared/domain';
import type { QmpAction } from './api';
import {
  deleteOrder, planCreate, planDelete, planRollbackCreate, recordingCheckpoint, shouldRecord,
  type LiveBitmap, type PlanCheckpoint, type PlanLive, type PlanState,
} from './plan';
import { changesSinceBitmaps, planTempBitmap } from './plan-changes';

const cp = (name: string, parent?: string, disks: Record<string, 'bitmap' | 'no'> = { vda: 'bitmap', vdb: 'bitmap' }): PlanCheckpoint => ({
  name,
  ...(parent !== undefined ? { parent } : {}),
  disks: Object.entries(disks).map(([d, c]) => (c === 'bitmap' ? { name: d, checkpoint: c, bitmap: name } : { name: d, checkpoint: c })),
});
const st = (layout: BitmapLayout, cps: PlanCheckpoint[], current?: string): PlanState => ({ layout, checkpoints: new Map(cps.map((c) => [c.name, c])), current });
const live = (broken: Record<string, LiveBitmap> = {}, gone: string[] = []): PlanLive => ({
  node: (d) => {
    if (gone.includes(d)) throw new Error(`disk ${d} is not attached`);
    return `${d}-fmt`;
  },
  bitmap: (d, b) => (gone.includes(d) ? 'missing' : (broken[`${d}/${b}`] ?? 'ok')),
});
const add = (d: string, name: string) => ({ type: 'block-dirty-bitmap-add', data: { node: `${d}-fmt`, name, persistent: true } });
const disable = (d: string, name: string) => ({ type: 'block-dirty-bitmap-disable', data: { node: `${d}-fmt`, name } });
const enable = (d: string, name: string) => ({ type: 'block-dirty-bitmap-enable', data: { node: `${d}-fmt`, name } });
const remove = (d: string, name: string) => ({ type: 'block-dirty-bitmap-remove', data: { node: `${d}-fmt`, name } });
const merge = (d: string, target: string, bitmaps: string[]) => ({ type: 'block-dirty-bitmap-merge', data: { node: `${d}-fmt`, target, bitmaps } });

const chain3 = (layout: BitmapLayout) => st(layout, [cp('c1'), cp('c2', 'c1'), cp('c3', 'c2')], 'c3');

describe('planCreate', () => {
  it('independent: one persistent add per disk, nothing disabled', () => {
    expect(planCreate(chain3('independent'), cp('c4', 'c3'), live())).toEqual([add('vda', 'c4'), add('vdb', 'c4')]);
    expect(planCreate(st('independent', []), cp('c1'), live())).toEqual([add('vda', 'c1'), add('vdb', 'c1')]);
  });
  it('chained: add + disable the recording predecessor, per disk', () => {
    expect(planCreate(chain3('chained'), cp('c4', 'c3'), live())).toEqual([add('vda', 'c4'), disable('vda', 'c3'), add('vdb', 'c4'), disable('vdb', 'c3')]);
    expect(planCreate(st('chained', []), cp('c1'), live())).toEqual([add('vda', 'c1'), add('vdb', 'c1')]);
  });
  it('chained: the predecessor is the nearest ancestor with a bitmap on that disk', () => {
    const s = st('chained', [cp('c1'), cp('c2', 'c1', { vda: 'bitmap', vdb: 'no' })], 'c2');
    expect(planCreate(s, cp('c3', 'c2'), live())).toEqual([add('vda', 'c3'), disable('vda', 'c2'), add('vdb', 'c3'), disable('vdb', 'c1')]);
  });
  it('skips disks that do not take part', () => {
    expect(planCreate(chain3('chained'), cp('c4', 'c3', { vda: 'bitmap', vdb: 'no' }), live())).toEqual([add('vda', 'c4'), disable('vda', 'c3')]);
  });
  it('chained: does not disable a predecessor QEMU would refuse (inconsistent or missing)', () => {
    expect(planCreate(chain3('chained'), cp('c4', 'c3'), live({ 'vda/c3': 'inconsistent', 'vdb/c3': 'missing' }))).toEqual([add('vda', 'c4'), add('vdb', 'c4')]);
  });
  it('refuses an existing name and a parent other than current', () => {
    expect(() => planCreate(chain3('chained'), cp('c2', 'c3'), live())).toThrow('checkpoint c2 already exists');
    expect(() => planCreate(chain3('chained'), cp('c4', 'c1'), live())).toThrow(/parent must be the current checkpoint \(c3\), not c1/);
  });
  it('uses the disk entry bitmap name when set', () => {
    const c = cp('c4', 'c3');
    c.disks[0]!.bitmap = 'c4';
    expect(planCreate(chain3('independent'), c, live())[0]).toEqual(add('vda', 'c4'));
  });
});

describe('recording / shouldRecord', () => {
  it('independent: every checkpoint bitmap records', () => {
    const s = chain3('independent');
    expect(['c1', 'c2', 'c3'].map((n) => shouldRecord(s, n, 'vda'))).toEqual([true, true, true]);
  });
  it('chained: only the nearest at or above current with a bitmap on the disk', () => {
    const s = st('chained', [cp('c1'), cp('c2', 'c1'), cp('c3', 'c2', { vda: 'bitmap', vdb: 'no' })], 'c3');
    expect(recordingCheckpoint(s, 'vda')?.name).toBe('c3');
    expect(recordingCheckpoint(s, 'vdb')?.name).toBe('c2');
    expect(['c1', 'c2', 'c3'].map((n) => shouldRecord(s, n, 'vdb'))).toEqual([false, true, false]);
    expect(recordingCheckpoint(st('chained', []), 'vda')).toBeUndefined();
  });
});

describe('deleteOrder', () => {
  const tree = st('chained', [cp('a'), cp('b', 'a'), cp('c', 'b'), cp('d', 'a'), cp('e', 'd'), cp('x')], 'e');
  it('plain and metadata: just the one', () => {
    expect(deleteOrder(tree, 'b', 'plain')).toEqual(['b']);
    expect(deleteOrder(tree, 'b', 'metadata')).toEqual(['b']);
  });
  it('children: the whole subtree, each before its ancestors', () => {
    const order = deleteOrder(tree, 'a', 'children');
    expect(new Set(order)).toEqual(new Set(['a', 'b', 'c', 'd', 'e']));
    for (const [child, parent] of [['c', 'b'], ['b', 'a'], ['e', 'd'], ['d', 'a']]) expect(order.indexOf(child!)).toBeLessThan(order.indexOf(parent!));
  });
  it('children-only: the subtree without the checkpoint itself', () => {
    expect(deleteOrder(tree, 'd', 'children-only')).toEqual(['e']);
    expect(deleteOrder(tree, 'c', 'children-only')).toEqual([]);
  });
  it('unknown checkpoint → error naming it', () => {
    expect(() => deleteOrder(tree, 'nope', 'plain')).toThrow('checkpoint nope not found');
  });
});

describe('planDelete: independent', () => {
  it('removes the bitmap wherever it sits; children re-parented; current moves up', () => {
    const s = chain3('independent');
    const mid = planDelete(s, ['c2'], live());
    expect(mid.actions).toEqual([remove('vda', 'c2'), remove('vdb', 'c2')]);
    expect(mid.reparented).toEqual([{ name: 'c3', parent: 'c1' }]);
    expect(mid.state.current).toBe('c3');
    const newest = planDelete(s, ['c3'], live());
    expect(newest.actions).toEqual([remove('vda', 'c3'), remove('vdb', 'c3')]);
    expect(newest.state.current).toBe('c2');
    const oldest = planDelete(s, ['c1'], live());
    expect(oldest.reparented).toEqual([{ name: 'c2', parent: undefined }]);
    expect(oldest.incomplete).toEqual([]);
  });
  it('a broken bitmap is just removed; a missing one needs no action', () => {
    const p = planDelete(chain3('independent'), ['c2'], live({ 'vda/c2': 'inconsistent', 'vdb/c2': 'missing' }));
    expect(p.actions).toEqual([remove('vda', 'c2')]);
    expect(p.incomplete).toEqual([]);
  });
  it('metadata only: no action at all', () => {
    expect(planDelete(chain3('independent'), ['c2'], live(), true).actions).toEqual([]);
  });
});

describe('planDelete: chained', () => {
  const s = chain3('chained');
  it('middle: merge into the predecessor, then remove', () => {
    const p = planDelete(s, ['c2'], live());
    expect(p.actions).toEqual([merge('vda', 'c1', ['c2']), remove('vda', 'c2'), merge('vdb', 'c1', ['c2']), remove('vdb', 'c2')]);
    expect(p.state.current).toBe('c3');
    expect(p.incomplete).toEqual([]);
  });
  it('newest: merge into the predecessor, enable it, remove; current moves to the parent', () => {
    const p = planDelete(s, ['c3'], live());
    expect(p.actions).toEqual([merge('vda', 'c2', ['c3']), enable('vda', 'c2'), remove('vda', 'c3'), merge('vdb', 'c2', ['c3']), enable('vdb', 'c2'), remove('vdb', 'c3')]);
    expect(p.state.current).toBe('c2');
  });
  it('oldest: remove only', () => {
    expect(planDelete(s, ['c1'], live()).actions).toEqual([remove('vda', 'c1'), remove('vdb', 'c1')]);
  });
  it('the predecessor skips checkpoints without a bitmap on that disk', () => {
    const t = st('chained', [cp('c1'), cp('c2', 'c1', { vda: 'bitmap', vdb: 'no' }), cp('c3', 'c2')], 'c3');
    expect(planDelete(t, ['c3'], live()).actions).toEqual([
      merge('vda', 'c2', ['c3']), enable('vda', 'c2'), remove('vda', 'c3'),
      merge('vdb', 'c1', ['c3']), enable('vdb', 'c1'), remove('vdb', 'c3'),
    ]);
  });
  it('a non-current checkpoint that still records a disk (current excludes it) hands recording over', () => {
    const t = st('chained', [cp('c1'), cp('c2', 'c1'), cp('c3', 'c2', { vda: 'bitmap', vdb: 'no' })], 'c3');
    expect(planDelete(t, ['c2'], live()).actions).toEqual([
      merge('vda', 'c1', ['c2']), remove('vda', 'c2'),
      merge('vdb', 'c1', ['c2']), enable('vdb', 'c1'), remove('vdb', 'c2'),
    ]);
  });
  it('children: deepest first in one plan; never touches a bitmap removed earlier', () => {
    const p = planDelete(s, deleteOrder(s, 'c2', 'children'), live());
    expect(p.actions.filter((a) => a.data.node === 'vda-fmt')).toEqual([
      merge('vda', 'c2', ['c3']), enable('vda', 'c2'), remove('vda', 'c3'),
      merge('vda', 'c1', ['c2']), enable('vda', 'c1'), remove('vda', 'c2'),
    ]);
    expect(p.state.current).toBe('c1');
    expect(p.deleted).toEqual(['c3', 'c2']);
    expect(p.reparented).toEqual([]);
    assertNoUseAfterRemove(p.actions);
  });
  it('children-only: the checkpoint survives and records again', () => {
    const p = planDelete(s, deleteOrder(s, 'c1', 'children-only'), live());
    expect(p.state.current).toBe('c1');
    expect([...p.state.checkpoints.keys()]).toEqual(['c1']);
    expect(p.actions.filter((a) => a.data.node === 'vda-fmt').slice(-3)).toEqual([merge('vda', 'c1', ['c2']), enable('vda', 'c1'), remove('vda', 'c2')]);
  });
  it('branches: deleting the fork point re-parents both children', () => {
    const t = st('chained', [cp('c1'), cp('c2', 'c1'), cp('c3', 'c1')], 'c3');
    const p = planDelete(t, ['c1'], live());
    expect(p.reparented).toEqual([{ name: 'c2', parent: undefined }, { name: 'c3', parent: undefined }]);
    expect(p.actions).toEqual([remove('vda', 'c1'), remove('vdb', 'c1')]);
  });
  it('an inconsistent bitmap is removed without merging; the older ones are marked incomplete', () => {
    const p = planDelete(s, ['c2'], live({ 'vda/c2': 'inconsistent' }));
    expect(p.actions.filter((a) => a.data.node === 'vda-fmt')).toEqual([remove('vda', 'c2')]);
    expect(p.incomplete).toEqual([{ checkpoint: 'c1', disk: 'vda', reason: expect.stringMatching(/c2 .*lost \(bitmap c2 was inconsistent\)/) }]);
  });
  it('a missing newest bitmap: nothing to remove, the predecessor takes over recording', () => {
    const p = planDelete(s, ['c3'], live({ 'vda/c3': 'missing' }));
    expect(p.actions.filter((a) => a.data.node === 'vda-fmt')).toEqual([enable('vda', 'c2')]);
    expect(p.incomplete.map((i) => [i.checkpoint, i.disk])).toEqual([['c2', 'vda'], ['c1', 'vda']]);
  });
  it('a broken predecessor: the bitmap is removed, nothing merged or enabled', () => {
    const p = planDelete(s, ['c3'], live({ 'vda/c2': 'inconsistent' }));
    expect(p.actions.filter((a) => a.data.node === 'vda-fmt')).toEqual([remove('vda', 'c3')]);
  });
  it('metadata only: no action; the older checkpoints lose that interval', () => {
    const p = planDelete(s, ['c2'], live(), true);
    expect(p.actions).toEqual([]);
    expect(p.incomplete.map((i) => [i.checkpoint, i.disk])).toEqual([['c1', 'vda'], ['c1', 'vdb']]);
    expect(p.incomplete[0]!.reason).toMatch(/only the metadata of c2 was deleted/);
  });
  it('a disk that is gone: nothing to do there, no error', () => {
    const p = planDelete(s, ['c2'], live({}, ['vdb']));
    expect(p.actions).toEqual([merge('vda', 'c1', ['c2']), remove('vda', 'c2')]);
  });
});

describe('changes since (temporary bitmap)', () => {
  it('independent: the checkpoint bitmap alone', () => {
    expect(changesSinceBitmaps(chain3('independent'), 'c1', 'vda', live())).toEqual(['c1']);
  });
  it('chained: the checkpoint and every later one up to current, oldest first', () => {
    const s = chain3('chained');
    expect(changesSinceBitmaps(s, 'c1', 'vda', live())).toEqual(['c1', 'c2', 'c3']);
    expect(changesSinceBitmaps(s, 'c2', 'vda', live())).toEqual(['c2', 'c3']);
    expect(changesSinceBitmaps(s, 'c3', 'vda', live())).toEqual(['c3']);
  });
  it('chained: checkpoints without a bitmap on the disk are skipped', () => {
    const s = st('chained', [cp('c1'), cp('c2', 'c1', { vda: 'bitmap', vdb: 'no' }), cp('c3', 'c2')], 'c3');
    expect(changesSinceBitmaps(s, 'c1', 'vdb', live())).toEqual(['c1', 'c3']);
  });
  it('refuses, with the reason, when it cannot be computed', () => {
    const s = chain3('chained');
    expect(() => changesSinceBitmaps(s, 'zz', 'vda', live())).toThrow('checkpoint zz not found');
    expect(() => changesSinceBitmaps(st('chained', [cp('c1', undefined, { vda: 'bitmap', vdb: 'no' })], 'c1'), 'c1', 'vdb', live())).toThrow('checkpoint c1 has no bitmap on vdb (the disk was not part of it)');
    expect(() => changesSinceBitmaps(s, 'c1', 'vda', live({ 'vda/c2': 'inconsistent' }))).toThrow('bitmap c2 of checkpoint c2 on vda is inconsistent');
    expect(() => changesSinceBitmaps(s, 'c1', 'vda', live({ 'vda/c3': 'missing' }))).toThrow('bitmap c3 of checkpoint c3 is missing on vda');
    const branch = st('chained', [cp('c1'), cp('c2', 'c1'), cp('c3', 'c1')], 'c3');
    expect(() => changesSinceBitmaps(branch, 'c2', 'vda', live())).toThrow(/c2 is not an ancestor of the current checkpoint c3/);
    const inc = chain3('chained');
    (inc.checkpoints.get('c1')!.disks[0] as { incomplete?: string }).incomplete = 'lost';
    expect(() => changesSinceBitmaps(inc, 'c1', 'vda', live())).toThrow('checkpoint c1 cannot be used on vda: lost');
  });
  it('planTempBitmap: a disabled non-persistent temp bitmap filled by one merge', () => {
    expect(planTempBitmap(chain3('chained'), 'c2', 'vdb', 'tidemark-tmp-1', live())).toEqual([
      { type: 'block-dirty-bitmap-add', data: { node: 'vdb-fmt', name: 'tidemark-tmp-1', persistent: false, disabled: true } },
      merge('vdb', 'tidemark-tmp-1', ['c2', 'c3']),
    ]);
  });
});

describe('planRollbackCreate', () => {
  it('is "delete newest" in both layouts', () => {
    expect(planRollbackCreate(chain3('chained'), 'c3', live())).toEqual(planDelete(chain3('chained'), ['c3'], live()).actions);
    expect(planRollbackCreate(chain3('independent'), 'c3', live())).toEqual([remove('vda', 'c3'), remove('vdb', 'c3')]);
  });
  it('only for the current checkpoint', () => {
    expect(() => planRollbackCreate(chain3('chained'), 'c2', live())).toThrow(/c2 is not the current checkpoint/);
  });
});

function assertNoUseAfterRemove(actions: QmpAction[]): void {
  const gone = new Set<string>();
  for (const a of actions) {
    const names = [a.data.name, a.data.target, ...((a.data.bitmaps as string[] | undefined) ?? [])].filter((n) => typeof n === 'string');
    for (const n of names) {
      if (a.type !== 'block-dirty-bitmap-add') expect(gone.has(`${a.data.node}/${n}`), `${a.type} uses removed ${n}`).toBe(false);
    }
    if (a.type === 'block-dirty-bitmap-remove') gone.add(`${a.data.node}/${a.data.name}`);
  }
}

// ----------------------------------------------------------------------------------------------
// Model check: a tiny bitmap machine that executes the planned actions the way QEMU does, driven
// by random create / write / delete sequences. After every step, for every checkpoint on the
// current path, the union of changesSinceBitmaps must equal the blocks really written since it.

class Machine {
  bitmaps = new Map<string, { on: boolean; dirty: Set<number> }>(); // key disk/name
  run(actions: QmpAction[]): void {
    const copy = new Map([...this.bitmaps].map(([k, v]) => [k, { on: v.on, dirty: new Set(v.dirty) }]));
    for (const a of actions) {
      const disk = String(a.data.node).replace(/-fmt$/, '');
      const key = (n: unknown) => `${disk}/${String(n)}`;
      const need = (n: unknown) => {
        const b = copy.get(key(n));
        if (!b) throw new Error(`${a.type}: bitmap ${String(n)} not found on ${disk}`);
        return b;
      };
      switch (a.type) {
        case 'block-dirty-bitmap-add':
          if (copy.has(key(a.data.name))) throw new Error(`Bitmap already exists: ${String(a.data.name)}`);
          copy.set(key(a.data.name), { on: !a.data.disabled, dirty: new Set() });
          break;
        case 'block-dirty-bitmap-disable': need(a.data.name).on = false; break;
        case 'block-dirty-bitmap-enable': need(a.data.name).on = true; break;
        case 'block-dirty-bitmap-remove': need(a.data.name); copy.delete(key(a.data.name)); break;
        case 'block-dirty-bitmap-merge': {
          const t = need(a.data.target);
          for (const src of a.data.bitmaps as string[]) for (const x of need(src).dirty) t.dirty.add(x);
          break;
        }
        default: throw new Error(`unexpected action ${a.type}`);
      }
    }
    this.bitmaps = copy; // all or nothing, like a transaction
  }
  write(disk: string, block: number): void {
    for (const [k, b] of this.bitmaps) if (k.startsWith(`${disk}/`) && b.on) b.dirty.add(block);
  }
  union(disk: string, names: string[]): Set<number> {
    const out = new Set<number>();
    for (const n of names) for (const x of this.bitmaps.get(`${disk}/${n}`)!.dirty) out.add(x);
    return out;
  }
}

function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

describe.each(['independent', 'chained'] as const)('model check (%s)', (layout) => {
  it.each(Array.from({ length: 40 }, (_, i) => i + 1))('random sequence %i keeps changes-since exact', (seed) => {
    const r = rng(seed * 7919);
    const m = new Machine();
    let state: PlanState = { layout, checkpoints: new Map(), current: undefined };
    const truth = new Map<string, Map<string, Set<number>>>(); // checkpoint → disk → blocks written since
    const disks = ['vda', 'vdb'];
    const L: PlanLive = { node: (d) => `${d}-fmt`, bitmap: (d, b) => (m.bitmaps.has(`${d}/${b}`) ? 'ok' : 'missing') };
    let n = 0;
    for (let step = 0; step < 60; step++) {
      const x = r();
      const names = [...state.checkpoints.keys()];
      if (x < 0.3 || names.length === 0) {
        const name = `c${++n}`;
        const parts = Object.fromEntries(disks.map((d) => [d, r() < 0.8 ? 'bitmap' : 'no'])) as Record<string, 'bitmap' | 'no'>;
        const c = cp(name, state.current, parts);
        m.run(planCreate(state, c, L));
        state = { ...state, checkpoints: new Map([...state.checkpoints, [name, c]]), current: name };
        truth.set(name, new Map(disks.map((d) => [d, new Set<number>()])));
      } else if (x < 0.75) {
        const disk = disks[Math.floor(r() * 2)]!;
        const block = Math.floor(r() * 64);
        m.write(disk, block);
        for (const t of truth.values()) t.get(disk)!.add(block);
      } else {
        const victim = names[Math.floor(r() * names.length)]!;
        const mode = (['plain', 'plain', 'children', 'children-only'] as const)[Math.floor(r() * 4)]!;
        const p = planDelete(state, deleteOrder(state, victim, mode), L);
        assertNoUseAfterRemove(p.actions);
        m.run(p.actions);
        expect(p.incomplete).toEqual([]);
        state = p.state;
        for (const d of p.deleted) truth.delete(d);
      }
      // Invariants: every checkpoint on the current path gives exactly the blocks written since it.
      const path: string[] = [];
      for (let c = state.current; c !== undefined; c = state.checkpoints.get(c)?.parent) path.push(c);
      for (const c of path) {
        for (const d of disks) {
          if (!state.checkpoints.get(c)!.disks.some((e) => e.name === d && e.checkpoint === 'bitmap')) continue;
          const got = m.union(d, changesSinceBitmaps(state, c, d, L));
          expect([...got].sort((a, b) => a - b), `step ${step}: changes since ${c} on ${d}`).toEqual([...truth.get(c)!.get(d)!].sort((a, b) => a - b));
        }
      }
      // Exactly the checkpoint bitmaps exist, and recording matches the layout's rule.
      const expected = new Set<string>();
      for (const c of state.checkpoints.values()) for (const e of c.disks) if (e.checkpoint === 'bitmap') expected.add(`${e.name}/${c.name}`);
      expect(new Set(m.bitmaps.keys())).toEqual(expected);
      for (const key of expected) {
        const [d, c] = key.split('/') as [string, string];
        expect(m.bitmaps.get(key)!.on, `${key} recording`).toBe(shouldRecord(state, c, d));
      }
    }
  });
});

describe('model check: a naive remove loses data (negative control)', () => {
  it('chained middle delete without merge misses the deleted interval', () => {
    const m = new Machine();
    const L: PlanLive = { node: (d) => `${d}-fmt`, bitmap: () => 'ok' };
    let s: PlanState = { layout: 'chained', checkpoints: new Map(), current: undefined };
    const one = (name: string) => {
      const c = cp(name, s.current, { vda: 'bitmap' });
      m.run(planCreate(s, c, L));
      s = { ...s, checkpoints: new Map([...s.checkpoints, [name, c]]), current: name };
    };
    one('c1');
    m.write('vda', 1);
    one('c2');
    m.write('vda', 2);
    one('c3');
    m.write('vda', 3);
    const naive = new Machine();
    naive.bitmaps = new Map([...m.bitmaps].map(([k, v]) => [k, { on: v.on, dirty: new Set(v.dirty) }]));
    naive.run([remove('vda', 'c2')]);
    expect([...naive.union('vda', ['c1', 'c3'])].sort()).toEqual([1, 3]);
    const p = planDelete(s, ['c2'], L);
    m.run(p.actions);
    expect([...m.union('vda', changesSinceBitmaps(p.state, 'c1', 'vda', L))].sort()).toEqual([1, 2, 3]);
  });
});
