// Backup labels never cover another backup's glyph: each keeps only the forms that end before the
// next glyph to its right, newer backups win the room, and the plot's end still bounds them.
import { describe, expect, it } from 'vitest';
import { placeBackupLabels } from './BandBackups';

const forms = (long: number, short: number) => [{ text: 'long', width: long }, { text: 'short', width: short }];

describe('placeBackupLabels', () => {
  it('shortens or drops a label that would run over the next glyph, and keeps the newest one whole', () => {
    // glyphs at 0, 40, 60, 200: the label of 0 starts at 8 and must end by 40 - 5 - 2 = 33
    const marks = [
      { key: 'a', bx: 0, options: forms(50, 20) },
      { key: 'b', bx: 40, options: forms(50, 20) },
      { key: 'c', bx: 60, options: forms(50, 20) },
      { key: 'd', bx: 200, options: forms(50, 20) },
    ];
    const placed = placeBackupLabels(marks, 1000);
    expect(placed.get('a')?.text).toBe('short'); // 8..28 ends before 33
    expect(placed.has('b')).toBe(false); // 48.. must end by 53: nothing fits
    expect(placed.get('c')?.text).toBe('long'); // 68..118 ends before 193
    expect(placed.get('d')?.text).toBe('long');
    for (const [key, o] of placed) {
      const m = marks.find((x) => x.key === key)!;
      for (const g of marks) if (g.key !== key) expect(g.bx + 5 <= m.bx + 8 || g.bx - 5 >= m.bx + 8 + o.width).toBe(true);
    }
  });

  it('lets a glyph at the same time or left of a label be, and stops at the plot end', () => {
    const placed = placeBackupLabels([
      { key: 'old', bx: 100, options: forms(30, 10) },
      { key: 'new', bx: 100.5, options: forms(30, 10) },
    ], 1000);
    // both start at ~108 and overlap: the newer one keeps the room
    expect([...placed.keys()]).toEqual(['new']);
    expect(placeBackupLabels([{ key: 'x', bx: 950, options: forms(60, 30) }], 1000).get('x')?.text).toBe('short');
  });

  it('leaves every label out where the glyphs stand closer than any word', () => {
    const marks = Array.from({ length: 5000 }, (_, i) => ({ key: `k${i}`, bx: i * 3, options: forms(60, 24) }));
    const placed = placeBackupLabels(marks, 15_000);
    // glyphs 3 px apart leave no room at all for words
    expect(placed.size).toBe(0);
  });
});
