import { describe, expect, it } from 'vitest';
import { firstCounts, recordCounts, type DiskHistory } from './samples';

describe('firstCounts (the first intake of a disk\'s counts)', () => {
  it('records what recordCounts records on an empty history', () => {
    const bitmaps = [
      { name: 'a', count: 0 }, { name: 'b', count: 65536 }, { name: undefined, count: 7 }, { name: 'no-count' }, { name: 'b', count: 131072 },
    ];
    const direct: DiskHistory = new Map();
    const viaMap: DiskHistory = new Map();
    const counts = new Map<string, number>();
    for (const b of bitmaps) if (b.name !== undefined && b.count !== undefined) counts.set(b.name, b.count);
    expect(firstCounts(direct, 1000, bitmaps)).toBe(recordCounts(viaMap, 1000, counts));
    expect([...direct]).toEqual([...viaMap]);
    expect(direct.get('b')).toEqual({ t: [1000], c: [131072], n: 1 });
    expect(direct.has('no-count')).toBe(false);
    // Later counts go through recordCounts as before.
    expect(recordCounts(direct, 2000, new Map([['a', 4096], ['b', 131072]]))).toBe(true);
    expect(direct.get('a')).toEqual({ t: [1000, 2000], c: [0, 4096], n: 2 });
  });

  it('reports no change when no bitmap has a count', () => {
    const h: DiskHistory = new Map();
    expect(firstCounts(h, 1, [{ name: 'a' }])).toBe(false);
    expect(h.size).toBe(0);
  });
});
