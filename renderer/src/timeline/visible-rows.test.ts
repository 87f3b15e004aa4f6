import { describe, expect, it } from 'vitest';
import { rowsNearView } from './visible-rows';

const rows = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({ top: 400 + i * 200, height: 200 }));

describe('rowsNearView', () => {
  it('keeps the rows within half a view height above and below the visible part', () => {
    // View 0..300: drawn range -150..450 → only row 0 (400..600).
    expect(rowsNearView(rows, 0, 300)).toBe('0');
    // View 900..1200: drawn range 750..1350 → rows 1 (600..800) through 4 (1200..1400).
    expect(rowsNearView(rows, 900, 300)).toBe('1,2,3,4');
    // Touching is not intersecting: view 900..1100 draws 800..1200; row 1 ends at 800, row 4 starts at 1200.
    expect(rowsNearView(rows, 900, 200)).toBe('2,3');
  });

  it('is empty when no row is near, and undefined (draw everything) without a laid-out box', () => {
    expect(rowsNearView(rows, 5000, 300)).toBe('');
    expect(rowsNearView(rows, 0, 0)).toBeUndefined();
    expect(rowsNearView(rows, 0, NaN)).toBeUndefined();
  });
});
