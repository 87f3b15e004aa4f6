import { describe, expect, it } from 'vitest';
import { listParts, listWindow, scrollToRow } from './list-window';

describe('listWindow', () => {
  it('renders the rows in view and the overscan, spacers for the rest', () => {
    // 1,000 rows of 25 px, 250 px in view from 5,000 px: rows 200..209 in view.
    expect(listWindow(1000, 25, 5000, 250, 4)).toEqual({ start: 196, end: 214, before: 196 * 25, after: (1000 - 214) * 25 });
  });

  it('at the top and at the bottom stays inside the list', () => {
    expect(listWindow(1000, 25, 0, 250, 4)).toEqual({ start: 0, end: 14, before: 0, after: 986 * 25 });
    expect(listWindow(1000, 25, 1000 * 25 - 250, 250, 4)).toEqual({ start: 986, end: 1000, before: 986 * 25, after: 0 });
    // Scrolled past the end (the list shrank under the scroll position): the last rows, never none.
    const past = listWindow(10, 25, 10_000, 250, 2);
    expect(past.end).toBe(10);
    expect(past.start).toBeLessThan(10);
  });

  it('a short list is rendered whole; an empty one not at all', () => {
    expect(listWindow(3, 25, 0, 250, 4)).toEqual({ start: 0, end: 3, before: 0, after: 0 });
    expect(listWindow(0, 25, 0, 250, 4)).toEqual({ start: 0, end: 0, before: 0, after: 0 });
  });

  it('before the box is measured (height 0) renders at least the overscan', () => {
    const w = listWindow(1000, 25, 0, 0, 6);
    expect(w.start).toBe(0);
    expect(w.end).toBe(6);
  });

});

describe('listParts', () => {
  const height = (parts: ReturnType<typeof listParts>) => parts.reduce((h, p) => h + ('gap' in p ? p.gap : 25), 0);

  it('the window between two spacers; the parts add up to the whole list', () => {
    const parts = listParts(listWindow(1000, 25, 5000, 250, 4), 1000, 25);
    expect(parts[0]).toEqual({ gap: 196 * 25 });
    expect(parts[1]).toEqual({ row: 196 });
    expect(parts.at(-1)).toEqual({ gap: 786 * 25 });
    expect(parts.filter((p) => 'row' in p)).toHaveLength(18);
    expect(height(parts)).toBe(25_000);
  });

  it('keeps the pinned (focused) row rendered in its place when it is scrolled far away', () => {
    const below = listParts(listWindow(1000, 25, 0, 250, 4), 1000, 25, 700);
    expect(below.filter((p) => 'row' in p)).toHaveLength(15); // 14 in the window + the pinned one, not 700
    expect(below.slice(-3)).toEqual([{ gap: (700 - 14) * 25 }, { row: 700 }, { gap: 299 * 25 }]);
    expect(height(below)).toBe(25_000);
    const above = listParts(listWindow(1000, 25, 20_000, 250, 4), 1000, 25, 3);
    expect(above.slice(0, 3)).toEqual([{ gap: 75 }, { row: 3 }, { gap: (796 - 4) * 25 }]);
    expect(height(above)).toBe(25_000);
    // Inside the window, or out of range: nothing extra.
    expect(listParts(listWindow(1000, 25, 0, 250, 4), 1000, 25, 5)).toEqual(listParts(listWindow(1000, 25, 0, 250, 4), 1000, 25));
    expect(listParts(listWindow(3, 25, 0, 250, 4), 3, 25, 9)).toEqual([{ row: 0 }, { row: 1 }, { row: 2 }]);
  });
});

describe('scrollToRow', () => {
  it('scrolls only as far as needed, below the sticky header', () => {
    expect(scrollToRow(10, 25, 0, 250, 25)).toBe(11 * 25 - 225); // below the view: its bottom at the view's bottom
    expect(scrollToRow(2, 25, 500, 250, 25)).toBe(50); // above the view: its top at the top
    expect(scrollToRow(5, 25, 0, 250, 25)).toBe(0); // already in view
    expect(scrollToRow(0, 25, 0, 250)).toBe(0);
  });
});
