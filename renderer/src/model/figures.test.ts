import { describe, expect, it } from 'vitest';
import type { BitmapInfo } from '../../../shared/domain';
import { chainFingerprint } from './bitmaps';
import { changedFigure } from './figures';

const bm = (name: string, count: number): BitmapInfo => ({ name, recording: true, persistent: true, busy: false, inconsistent: false, count, granularity: 65536 });
const MiB = 1024 * 1024;

describe('how much changed since a baseline: exact, or a range that says so', () => {
  it('one bitmap: its live count is the answer, exactly', () => {
    expect(changedFigure({ bitmaps: ['c3'], live: [bm('c3', 5 * MiB)], measured: [] })).toEqual({ kind: 'exact', bytes: 5 * MiB, basis: 'bitmap c3 (live count)' });
  });

  it('a chain: never "≤ 0 B" — the engine’s merge when it matches the counts now, else a range', () => {
    const live = [bm('c1', 40 * MiB), bm('c2', 8 * MiB), bm('c3', 0)];
    const chain = ['c1', 'c2', 'c3'];
    const now = chainFingerprint(chain, live);
    // Nothing measured yet: between the largest bitmap and the sum.
    expect(changedFigure({ bitmaps: chain, live, measured: [] })).toMatchObject({ kind: 'range', low: 40 * MiB, high: 48 * MiB });
    // Measured for these very counts: exact.
    const exact = changedFigure({ bitmaps: chain, live, measured: [{ bytes: 46 * MiB, fingerprint: now, at: 1, source: 'dirty map' }] });
    expect(exact).toMatchObject({ kind: 'exact', bytes: 46 * MiB });
    expect(exact.basis).toMatch(/^merge of 3 bitmaps \(c1 \+ c2 \+ c3\), dirty map read at/);
    // Measured before more writes: a lower bound only.
    const later = [bm('c1', 40 * MiB), bm('c2', 8 * MiB), bm('c3', 4 * MiB)];
    expect(changedFigure({ bitmaps: chain, live: later, measured: [{ bytes: 46 * MiB, fingerprint: now, at: 1, source: 'measured' }] }))
      .toMatchObject({ kind: 'range', low: 46 * MiB, high: 52 * MiB });
  });

  it('a chain where only one bitmap has changes: the sum is exact', () => {
    expect(changedFigure({ bitmaps: ['c1', 'c2'], live: [bm('c1', 0), bm('c2', 3 * MiB)], measured: [] })).toMatchObject({ kind: 'exact', bytes: 3 * MiB });
  });

  it('a missing bitmap: not known, and why', () => {
    expect(changedFigure({ bitmaps: ['c1', 'c2'], live: [bm('c2', 1)], measured: [] })).toEqual({ kind: 'unknown', basis: 'bitmap c1 is missing' });
  });
});
