import { describe, expect, it } from 'vitest';
import { copyOps, dirtyRanges, splitOps } from './plan';

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
