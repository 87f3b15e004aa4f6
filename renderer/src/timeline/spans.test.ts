import { describe, expect, it } from 'vitest';
import type { BitmapInfo } from '../../../shared/domain';
import { checkpoint } from '../test/fake-api';
import { baselineBitmaps, predecessorsOnDisk, stopTimes } from '../model/bitmaps';
import { dirtySeries, recordCounts, type DiskHistory } from '../model/samples';
import { diskLanes } from './spans';

const bm = (name: string, over: Partial<BitmapInfo> = {}): BitmapInfo => ({
  name, recording: true, persistent: true, busy: false, inconsistent: false, count: 0, granularity: 65536, ...over,
});

describe('chained layout: each bitmap covers only its own interval', () => {
  // c1 → c2 → c3 on vda; c2 has no bitmap on vdb.
  const cps = [
    checkpoint('c1', undefined, 1000, ['vda', 'vdb'], 'chained'),
    checkpoint('c2', 'c1', 2000, ['vda'], 'chained'),
    checkpoint('c3', 'c2', 3000, ['vda', 'vdb'], 'chained'),
  ];

  it('finds the predecessor on each disk (nearest ancestor with a bitmap there)', () => {
    expect(Object.fromEntries(predecessorsOnDisk(cps, 'vda'))).toEqual({ c1: undefined, c2: 'c1', c3: 'c2' });
    expect(predecessorsOnDisk(cps, 'vdb').get('c3')).toBe('c1');
  });

  it('derives when each bitmap stopped recording from its first successor', () => {
    expect(Object.fromEntries(stopTimes(cps, 'vda'))).toEqual({ c1: 2000, c2: 3000 });
    expect(Object.fromEntries(stopTimes(cps, 'vdb'))).toEqual({ c1: 3000 });
  });

  it('draws one recording span and disabled ones behind it, all on one track (the 2019 picture)', () => {
    const live = new Map([
      ['vda', [bm('c1', { recording: false, count: 65536 }), bm('c2', { recording: false, count: 131072 }), bm('c3', { count: 4096 })]],
      ['vdb', [bm('c1', { recording: false }), bm('c3')]],
    ]);
    const [vda] = diskLanes({ checkpoints: cps, layout: 'chained', disks: ['vda', 'vdb'], live, now: 5000 });
    expect(vda!.spans.map((s) => [s.checkpoint, s.state, s.start, s.end, s.track])).toEqual([
      ['c1', 'disabled', 1000, 2000, 0],
      ['c2', 'disabled', 2000, 3000, 0],
      ['c3', 'recording', 3000, 5000, 0],
    ]);
    expect(vda!.tracks).toBe(1);
    expect(vda!.spans.filter((s) => s.state === 'recording')).toHaveLength(1);
  });
});

describe('independent layout and live states', () => {
  const cps = [
    checkpoint('a', undefined, 1000, ['vda']),
    checkpoint('b', 'a', 2000, ['vda']),
    checkpoint('c', 'b', 3000, ['vda']),
  ];

  it('stacks concurrent recording bitmaps on their own tracks, newest highest', () => {
    const live = new Map([['vda', [bm('a'), bm('b'), bm('c')]]]);
    const [lane] = diskLanes({ checkpoints: cps, layout: 'independent', disks: ['vda'], live, now: 9000 });
    expect(lane!.spans.map((s) => [s.checkpoint, s.track, s.end])).toEqual([['a', 0, 9000], ['b', 1, 9000], ['c', 2, 9000]]);
    expect(lane!.tracks).toBe(3);
  });

  it('takes the state from QEMU flags: inconsistent over busy over recording', () => {
    const live = new Map([['vda', [bm('a', { inconsistent: true, recording: false }), bm('b', { busy: true }), bm('c', { recording: false })]]]);
    const [lane] = diskLanes({ checkpoints: cps, layout: 'independent', disks: ['vda'], live, now: 9000 });
    const byName = Object.fromEntries(lane!.spans.map((s) => [s.checkpoint, s]));
    expect(byName.a!.state).toBe('inconsistent');
    expect(byName.b!.state).toBe('busy');
    expect(byName.b!.recording).toBe(true);
    // A disabled bitmap in the independent layout has no derivable stop time: drawn to now, flagged.
    expect([byName.c!.state, byName.c!.end, byName.c!.endKnown]).toEqual(['disabled', 9000, false]);
  });

  it('marks bitmaps the metadata expects but QEMU lacks as missing, and lists foreign ones', () => {
    const live = new Map([['vda', [bm('a'), bm('c'), bm('someone-else'), bm('tidemark-tmp-1234')]]]);
    const [lane] = diskLanes({ checkpoints: cps, layout: 'independent', disks: ['vda'], live, now: 9000 });
    expect(lane!.missing).toEqual([{ checkpoint: 'b', bitmap: 'b', time: 2000 }]);
    expect(lane!.spans.map((s) => s.checkpoint)).toEqual(['a', 'c']);
    expect(lane!.foreign).toEqual(['someone-else']);
  });

  it('shows state unknown (not missing) when the VM is not connected', () => {
    const [lane] = diskLanes({ checkpoints: cps, layout: 'independent', disks: ['vda'], now: 9000 });
    expect(lane!.missing).toEqual([]);
    expect(lane!.spans.every((s) => s.state === 'unknown')).toBe(true);
  });

  it('folds the oldest spans beyond maxTracks into one group; the newest stay drawn', () => {
    const many = Array.from({ length: 10 }, (_, i) => checkpoint(`k${i}`, i ? `k${i - 1}` : undefined, 1000 * (i + 1), ['vda']));
    const live = new Map([['vda', many.map((c) => bm(c.name))]]);
    const [lane] = diskLanes({ checkpoints: many, layout: 'independent', disks: ['vda'], live, now: 20_000, maxTracks: 4 });
    expect(lane!.tracks).toBe(3); // three tracks + the group's row = maxTracks
    expect(lane!.folded).toEqual({ count: 7, start: 1000, end: 20_000, recording: 7, states: ['recording'], open: false });
    expect(lane!.spans.filter((s) => s.track >= 0).map((s) => s.checkpoint)).toEqual(['k7', 'k8', 'k9']);
    expect(lane!.recording).toBe(10);
  });

  it('never folds the current or the selected checkpoint, and opens the group on request', () => {
    const many = Array.from({ length: 40 }, (_, i) => checkpoint(`k${i}`, i ? `k${i - 1}` : undefined, 1000 * (i + 1), ['vda']));
    const live = new Map([['vda', many.map((c) => bm(c.name))]]);
    const [lane] = diskLanes({ checkpoints: many, layout: 'independent', disks: ['vda'], live, now: 50_000, maxTracks: 6, keep: ['k39', 'k3'] });
    const drawn = lane!.spans.filter((s) => s.track >= 0).map((s) => s.checkpoint);
    expect(drawn).toContain('k39');
    expect(drawn).toContain('k3');
    expect(drawn).toHaveLength(5);
    expect(lane!.folded!.count).toBe(35);
    // Newest on top: tracks increase with start time.
    const tracks = lane!.spans.filter((s) => s.track >= 0).sort((a, b) => a.start - b.start).map((s) => s.track);
    expect(tracks).toEqual([0, 1, 2, 3, 4]);
    const [open] = diskLanes({ checkpoints: many, layout: 'independent', disks: ['vda'], live, now: 50_000, maxTracks: 6, keep: ['k39'], open: new Set(['vda']) });
    expect(open!.spans.every((s) => s.track >= 0)).toBe(true);
    expect(open!.tracks).toBe(40);
    expect(open!.folded!.open).toBe(true);
  });

  it('packs a thousand concurrent bitmaps quickly (no quadratic packing)', () => {
    const many = Array.from({ length: 1000 }, (_, i) => checkpoint(`k${i}`, i ? `k${i - 1}` : undefined, 1000 * (i + 1), ['vda']));
    const live = new Map([['vda', many.map((c) => bm(c.name))]]);
    const [lane] = diskLanes({ checkpoints: many, layout: 'independent', disks: ['vda'], live, now: 2e6, open: new Set(['vda']) });
    expect(lane!.tracks).toBe(1000);
    expect(new Set(lane!.spans.map((s) => s.track)).size).toBe(1000);
  });

  it('keeps existing tracks when a checkpoint is added', () => {
    const live = (names: string[]) => new Map([['vda', names.map((n) => bm(n))]]);
    const before = diskLanes({ checkpoints: cps.slice(0, 2), layout: 'independent', disks: ['vda'], live: live(['a', 'b']), now: 9000 })[0]!;
    const after = diskLanes({ checkpoints: cps, layout: 'independent', disks: ['vda'], live: live(['a', 'b', 'c']), now: 9000 })[0]!;
    for (const s of before.spans) expect(after.spans.find((x) => x.checkpoint === s.checkpoint)!.track).toBe(s.track);
  });
});

describe('dirty bytes of a baseline', () => {
  const chained = [
    checkpoint('c1', undefined, 1000, ['vda'], 'chained'),
    checkpoint('c2', 'c1', 2000, ['vda'], 'chained'),
    checkpoint('c3', 'c2', 3000, ['vda'], 'chained'),
    checkpoint('side', 'c1', 2500, ['vda'], 'chained'),
  ];

  it('uses the baseline bitmap alone in the independent layout', () => {
    expect(baselineBitmaps(chained.map((c) => ({ ...c, layout: 'independent' as const })), 'independent', 'c1', 'c3', 'vda')).toEqual(['c1']);
  });

  it('sums the baseline and every later bitmap on the path to current in the chained layout', () => {
    expect(baselineBitmaps(chained, 'chained', 'c1', 'c3', 'vda')).toEqual(['c1', 'c2', 'c3']);
    expect(baselineBitmaps(chained, 'chained', 'c3', 'c3', 'vda')).toEqual(['c3']);
    // Not an ancestor of current: only its own bitmap.
    expect(baselineBitmaps(chained, 'chained', 'side', 'c3', 'vda')).toEqual(['side']);
    expect(baselineBitmaps(chained, 'chained', 'nope', 'c3', 'vda')).toEqual([]);
  });

  const history = (events: [number, Record<string, number>][]): DiskHistory => {
    const h: DiskHistory = new Map();
    const known = new Map<string, number>();
    for (const [at, counts] of events) {
      for (const [k, v] of Object.entries(counts)) known.set(k, v);
      recordCounts(h, at, new Map(known));
    }
    return h;
  };

  it('starts at zero at the baseline, sums the contributing counts wherever one changes, and holds to now', () => {
    const h = history([
      [500, { c1: 999 }], // before the baseline: carried, not drawn
      [1500, { c1: 100 }],
      [2500, { c1: 300, c2: 50 }],
      [3500, { c1: 300, c2: 80, c3: 10, other: 7777 }],
    ]);
    expect(dirtySeries(h, ['c1', 'c2', 'c3'], 1000, 4000)).toEqual({
      points: [{ t: 1000, bytes: 0 }, { t: 1500, bytes: 100 }, { t: 2500, bytes: 350 }, { t: 3500, bytes: 390 }, { t: 4000, bytes: 390 }],
      observedFrom: 1000,
    });
    expect(dirtySeries(h, [], 1000, 4000)).toEqual({ points: [] });
  });

  it('says from when the curve was observed (the page opened after the baseline)', () => {
    const h = history([[5000, { c1: 4096 }], [6000, { c1: 8192 }]]);
    expect(dirtySeries(h, ['c1'], 1000, 7000)).toEqual({
      points: [{ t: 1000, bytes: 0 }, { t: 5000, bytes: 4096 }, { t: 6000, bytes: 8192 }, { t: 7000, bytes: 8192 }],
      observedFrom: 5000,
    });
    // Nothing observed yet: flat at zero, not a made-up level.
    expect(dirtySeries(new Map(), ['c1'], 1000, 7000)).toEqual({ points: [{ t: 1000, bytes: 0 }, { t: 7000, bytes: 0 }] });
  });
});
