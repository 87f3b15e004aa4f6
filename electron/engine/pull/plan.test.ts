import { describe, expect, it } from 'vitest';
import { copyOps, splitOps } from './plan';

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

describe('splitOps', () => {
  it('splits data into bounded pieces and leaves zero ranges whole', () => {
    expect(splitOps([{ offset: 0, length: 10, op: 'data' }, { offset: 10, length: 100, op: 'zero' }], 4)).toEqual([
      { offset: 0, length: 4, op: 'data' }, { offset: 4, length: 4, op: 'data' }, { offset: 8, length: 2, op: 'data' }, { offset: 10, length: 100, op: 'zero' },
    ]);
    expect(() => splitOps([], 0)).toThrow(/piece size must be a positive integer/);
  });
});
