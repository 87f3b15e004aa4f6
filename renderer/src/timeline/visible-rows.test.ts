import { describe, expect, it } from 'vitest';
import { rowsNearView } from './visible-rows';

const rows = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({ top: 400 + i * 200, height: 200 }));

describe('rowsNearView', () => {
  it('keeps the rows within one view height above and below the visible part', () => {
    // View 0..300: drawn range -300..600 → rows at 400 (0) and 600 (touches the end: not drawn).
    expect(rowsNearView(rows, 0, 300)).toBe('0');
    // View 900..1200: drawn range 600..1500 → rows 1 (600..800) through 5 (1400..1600).
    expect(rowsNearView(rows, 900, 300)).toBe('1,2,3,4,5');
  });

  it('is empty when no row is near, and undefined (draw everything) without a laid-out box', () => {
    expect(rowsNearView(rows, 5000, 300)).toBe('');
    expect(rowsNearView(rows, 0, 0)).toBeUndefined();
    expect(rowsNearView(rows, 0, NaN)).toBeUndefined();
  });
});
