import { describe, expect, it } from 'vitest';
import { alignOps, copyOps, dirtyRanges, splitOps } from './plan';

const K = 1024;
const DATA = 0;
const ZERO = 2; // NBD_STATE_ZERO
const HOLE_ZERO = 3;

describe('copyOps', () => {
  const allocation = [
    { offset: 0, length: 64 * K, flags: DATA },
    { offset: 64 * K, length: 64 * K, flags: HOLE_ZERO },
    { offset: 128 * K, length: 64 * K, flags: ZERO },
    { offset: 192 * K, length: 64 * K, flags: DATA },
  ];

  it('full: reads everything not known to be zero, skipping holes and zero clusters', () => {
    expect(copyOps('full', allocation)).toEqual([{ offset: 0, length: 64 * K, op: 'data' }, { offset: 192 * K, length: 64 * K, op: 'data' }]);
  });

  it('incremental: only dirty ranges, zeroes written explicitly where the export reads zero', () => {
    const dirty = [
      { offset: 0, length: 32 * K, flags: 0 },
      { offset: 32 * K, length: 160 * K, flags: 1 }, // spans data, hole and zero extents
      { offset: 192 * K, length: 32 * K, flags: 0 },
      { offset: 224 * K, length: 32 * K, flags: 1 },
    ];
    expect(copyOps('incremental', allocation, dirty)).toEqual([
      { offset: 32 * K, length: 32 * K, op: 'data' },
      { offset: 64 * K, length: 128 * K, op: 'zero' }, // hole+zero and zero merge
      { offset: 224 * K, length: 32 * K, op: 'data' },
    ]);
  });

  it('with nothing dirty, copies nothing', () => {
    expect(copyOps('differential', allocation, [{ offset: 0, length: 256 * K, flags: 0 }])).toEqual([]);
  });

  it('refuses maps that do not line up, and a missing dirty map', () => {
    expect(() => copyOps('incremental', allocation.slice(0, 1), [{ offset: 0, length: 256 * K, flags: 1 }])).toThrow(/no allocation status for offset 65536/);
    expect(() => copyOps('incremental', allocation)).toThrow(/needs the dirty bitmap's extents/);
  });
});

describe('copyOps with allocation asked only over the dirty ranges', () => {
  const G = 1024 * 1024 * 1024;
  // A 1 TiB disk: two dirty extents far apart; allocation is known only where they are.
  const dirty = [
    { offset: 0, length: 4 * G, flags: 0 },
    { offset: 4 * G, length: 256 * K, flags: 1 },
    { offset: 4 * G + 256 * K, length: 1020 * G - 256 * K, flags: 0 },
    { offset: 1024 * G - 128 * K, length: 128 * K, flags: 1 },
  ];

  it('asks for exactly the dirty ranges, in order', () => {
    expect(dirtyRanges(dirty)).toEqual([{ offset: 4 * G, length: 256 * K }, { offset: 1024 * G - 128 * K, length: 128 * K }]);
  });

  it('gives the same operations as a whole-disk allocation map, zeroes still written explicitly', () => {
    const ranged = [
      { offset: 4 * G, length: 192 * K, flags: DATA },
      { offset: 4 * G + 192 * K, length: 64 * K, flags: HOLE_ZERO }, // the guest wrote zeroes: must reach the layer
      { offset: 1024 * G - 128 * K, length: 128 * K, flags: ZERO },
    ];
    const whole = [
      { offset: 0, length: 4 * G, flags: HOLE_ZERO },
      ...ranged.slice(0, 2),
      { offset: 4 * G + 256 * K, length: 1020 * G - 384 * K, flags: DATA },
      ranged[2]!,
    ];
    const expected = [
      { offset: 4 * G, length: 192 * K, op: 'data' },
      { offset: 4 * G + 192 * K, length: 64 * K, op: 'zero' },
      { offset: 1024 * G - 128 * K, length: 128 * K, op: 'zero' },
    ];
    expect(copyOps('incremental', ranged, dirty)).toEqual(expected);
    expect(copyOps('incremental', whole, dirty)).toEqual(expected);
  });

  it('a ranged map that misses part of a dirty range is refused, naming the offset', () => {
    const short = [{ offset: 4 * G, length: 128 * K, flags: DATA }, { offset: 1024 * G - 128 * K, length: 128 * K, flags: DATA }];
    expect(() => copyOps('incremental', short, dirty)).toThrow(new RegExp(`no allocation status for offset ${4 * G + 128 * K}`));
  });

  it('joins dirty extents closer than the gap into one range; refuses a map out of order', () => {
    const near = [{ offset: 0, length: 64 * K, flags: 1 }, { offset: 64 * K, length: 64 * K, flags: 0 }, { offset: 128 * K, length: 64 * K, flags: 1 }, { offset: 10 * G, length: 64 * K, flags: 1 }];
    expect(dirtyRanges(near, 64 * K)).toEqual([{ offset: 0, length: 192 * K }, { offset: 10 * G, length: 64 * K }]);
    expect(dirtyRanges(near)).toEqual([{ offset: 0, length: 64 * K }, { offset: 128 * K, length: 64 * K }, { offset: 10 * G, length: 64 * K }]);
    expect(() => dirtyRanges([{ offset: 128 * K, length: 64 * K, flags: 1 }, { offset: 0, length: 64 * K, flags: 1 }])).toThrow(/not in order at offset 0/);
  });
});

describe('splitOps', () => {
  it('splits data into bounded pieces and leaves zero ranges whole', () => {
    expect(splitOps([{ offset: 0, length: 10, op: 'data' }, { offset: 10, length: 100, op: 'zero' }], 4)).toEqual([
      { offset: 0, length: 4, op: 'data' }, { offset: 4, length: 4, op: 'data' }, { offset: 8, length: 2, op: 'data' }, { offset: 10, length: 100, op: 'zero' },
    ]);
    expect(() => splitOps([], 0)).toThrow(/piece size must be a positive integer/);
  });
});

describe('alignOps: the plan in whole clusters', () => {
  const C = 64 * 1024;
  const data = (offset: number, length: number) => ({ offset, length, op: 'data' as const });
  const zero = (offset: number, length: number) => ({ offset, length, op: 'zero' as const });

  it('keeps an aligned plan as it is', () => {
    const ops = [data(0, C), zero(2 * C, 3 * C), data(8 * C, 2 * C)];
    expect(alignOps(ops, C, 100 * C)).toEqual(ops);
  });

  it('grows data to its clusters and merges what then touches', () => {
    expect(alignOps([data(100, 10), data(C - 5, 10)], C, 100 * C)).toEqual([data(0, 2 * C)]);
  });

  it('keeps whole zero clusters and reads the clusters a zero range only partly covers', () => {
    expect(alignOps([zero(C / 2, 3 * C)], C, 100 * C)).toEqual([data(0, C), zero(C, 2 * C), data(3 * C, C)]);
    expect(alignOps([zero(10, 20)], C, 100 * C)).toEqual([data(0, C)]);
  });

  it('gives a cluster that data and zeroes share to data, once', () => {
    expect(alignOps([data(0, C / 2), zero(C / 2, 2 * C)], C, 100 * C)).toEqual([data(0, C), zero(C, C), data(2 * C, C)]);
  });

  it('ends at the disk, whose last cluster may be partial', () => {
    const size = 10 * C + 512;
    expect(alignOps([data(10 * C + 100, 100)], C, size)).toEqual([data(10 * C, 512)]);
    expect(alignOps([zero(9 * C, C + 512)], C, size)).toEqual([zero(9 * C, C + 512)]);
  });

  it('covers every byte of the plan and nothing outside its clusters, on random plans', () => {
    for (let n = 0; n < 300; n++) {
      const size = (50 + Math.floor(Math.random() * 50)) * C + Math.floor(Math.random() * 4) * 512;
      const ops: { offset: number; length: number; op: 'data' | 'zero' }[] = [];
      for (let pos = Math.floor(Math.random() * C); pos < size; ) {
        const length = Math.min(size - pos, 512 * (1 + Math.floor(Math.random() * 300)));
        ops.push({ offset: pos, length, op: Math.random() < 0.5 ? 'data' : 'zero' });
        pos += length + 512 * Math.floor(Math.random() * 400);
      }
      const out = alignOps(ops, C, size);
      for (let i = 0; i < out.length; i++) {
        const o = out[i]!;
        expect(o.offset % C).toBe(0);
        expect((o.offset + o.length) % C === 0 || o.offset + o.length === size).toBe(true);
        if (i > 0) expect(o.offset).toBeGreaterThanOrEqual(out[i - 1]!.offset + out[i - 1]!.length);
      }
      // every planned byte is written (data stays data), and zeroes only inside one planned zero range
      const covering = (p: number) => out.find((o) => p >= o.offset && p < o.offset + o.length);
      for (const o of ops) {
        for (let p = o.offset; p < o.offset + o.length; p += 512) {
          const c = covering(p);
          expect(c).toBeDefined();
          if (o.op === 'data') expect(c!.op).toBe('data');
        }
      }
      for (const o of out.filter((x) => x.op === 'zero')) {
        expect(ops.some((s) => s.op === 'zero' && s.offset <= o.offset && s.offset + s.length >= o.offset + o.length)).toBe(true);
      }
      const clusterOf = (p: number) => Math.floor(p / C);
      for (const o of out) {
        for (let c = clusterOf(o.offset); c <= clusterOf(o.offset + o.length - 1); c++) {
          expect(ops.some((s) => clusterOf(s.offset) <= c && clusterOf(s.offset + s.length - 1) >= c)).toBe(true);
        }
      }
    }
  });
});
