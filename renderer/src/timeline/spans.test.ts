import { describe, expect, it } from 'vitest';
import type { BitmapInfo } from '../../../shared/domain';
import { checkpoint } from '../test/fake-api';
import { baselineBitmaps, predecessorsOnDisk, stopTimes } from '../model/bitmaps';
import { dirtySeries, type DiskSample } from '../model/samples';
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

  it('folds spans beyond maxTracks into one overflow bar with a count', () => {
    const many = Array.from({ length: 10 }, (_, i) => checkpoint(`k${i}`, i ? `k${i - 1}` : undefined, 1000 * (i + 1), ['vda']));
    const live = new Map([['vda', many.map((c) => bm(c.name))]]);
    const [lane] = diskLanes({ checkpoints: many, layout: 'independent', disks: ['vda'], live, now: 20_000, maxTracks: 4 });
    expect(lane!.tracks).toBe(4);
    expect(lane!.overflow).toEqual({ count: 6, start: 5000, end: 20_000 });
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

  it('starts at zero at the baseline, sums the contributing counts per sample, and holds to now', () => {
    const samples: DiskSample[] = [
      { at: 500, counts: { c1: 999 } }, // before the baseline: ignored
      { at: 1500, counts: { c1: 100 } },
      { at: 2500, counts: { c1: 300, c2: 50 } },
      { at: 3500, counts: { c1: 300, c2: 80, c3: 10, other: 7777 } },
    ];
    expect(dirtySeries(samples, ['c1', 'c2', 'c3'], 1000, 4000)).toEqual([
      { t: 1000, bytes: 0 },
      { t: 1500, bytes: 100 },
      { t: 2500, bytes: 350 },
      { t: 3500, bytes: 390 },
      { t: 4000, bytes: 390 },
    ]);
    expect(dirtySeries(samples, [], 1000, 4000)).toEqual([]);
  });

  it('carries unchanged counts forward through delta-encoded samples', () => {
    const deltas: DiskSample[] = [
      { at: 500, counts: { c1: 40, c2: 7 } }, // full first sample, before the baseline
      { at: 1500, counts: { c3: 5 } }, // only c3 changed
      { at: 2500, counts: { other: 1 } }, // nothing that counts here: no point
      { at: 3000, counts: { c1: 50 } },
    ];
    expect(dirtySeries(deltas, ['c1', 'c2', 'c3'], 1000, 3000)).toEqual([
      { t: 1000, bytes: 0 },
      { t: 1500, bytes: 52 },
      { t: 3000, bytes: 62 },
    ]);
  });
});
