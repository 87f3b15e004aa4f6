// chainFingerprint and baselineBitmaps look one or two bitmaps up in place and index only longer
// chains (issue 11, first render): both ways must give the same answer.
import { describe, expect, it } from 'vitest';
import { checkpoint } from '../test/fake-api';
import { baselineBitmaps, chainFingerprint } from './bitmaps';

describe('chainFingerprint', () => {
  const live = [
    { name: 'a', count: 1 },
    { name: 'b', count: 2 },
    { name: 'a', count: 3 }, // a name listed twice: the last count wins
    { name: 'c' }, // a count the driver cannot tell is no count
    { count: 9 },
    { name: 'd', count: 4 },
  ];

  it('says the same for a name whether it is looked up alone or in a longer chain', () => {
    expect(chainFingerprint(['a'], live)).toBe('a=3');
    expect(chainFingerprint(['a', 'c'], live)).toBe('a=3,c=missing');
    expect(chainFingerprint(['a', 'c', 'd'], live)).toBe('a=3,c=missing,d=4');
    expect(chainFingerprint(['x', 'b'], undefined)).toBe('x=missing,b=missing');
    expect(chainFingerprint([], live)).toBe('');
  });
});

describe('baselineBitmaps', () => {
  it('finds the baseline in a long history without an index, and walks the chain with one', () => {
    const cps = Array.from({ length: 50 }, (_, i) => checkpoint(`c${i}`, i === 0 ? undefined : `c${i - 1}`, 1000 * i, ['vda'], 'chained'));
    expect(baselineBitmaps(cps, 'independent', 'c10', 'c49', 'vda')).toEqual(['c10']);
    expect(baselineBitmaps(cps, 'chained', 'c47', 'c49', 'vda')).toEqual(['c47', 'c48', 'c49']);
    expect(baselineBitmaps(cps, 'chained', 'nope', 'c49', 'vda')).toEqual([]);
    expect(baselineBitmaps(cps, 'independent', 'c10', 'c49', 'vdb')).toEqual([]);
  });
});
