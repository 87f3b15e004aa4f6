// Labels on one row of the timeline never overprint: each label is placed only where it does not
// overlap a label already placed or a fixed obstacle (the NOW node and its text), in priority order
// (the current and the selected checkpoint first), then left to right. A label that does not fit
// tries its shorter forms (name without age, a shorter name) and is otherwise left out: its thing
// keeps its glyph, its tooltip and its place in the tables and the tree's accessible names.
// Widths are estimated from character counts (SVG text cannot be measured before it is drawn).

/** Approximate advance of one character at the timeline's label sizes (DejaVu/Liberation Sans). */
export const CHAR_PX = { 11: 6.3, 10: 5.9 } as const;

export function textWidth(text: string, size: keyof typeof CHAR_PX = 11): number {
  return text.length * CHAR_PX[size];
}

export interface LabelOption {
  text: string;
  width: number;
}

export interface LabelCandidate {
  key: string;
  /** Left edge of the label. */
  x: number;
  /** Forms in preference order (longest first). */
  options: readonly LabelOption[];
  /** Higher is placed first. */
  priority?: number;
}

export interface Interval {
  x0: number;
  x1: number;
}

/**
 * The chosen form of each placed label, by key. Two passes, so that one long label does not starve
 * its neighbours: first every label gets its shortest form where that fits (in priority order, then
 * left to right), then each placed label grows to its longest form that still fits.
 */
export function placeLabels(candidates: readonly LabelCandidate[], obstacles: readonly Interval[] = [], gap = 6): Map<string, LabelOption> {
  const order = [...candidates].filter((c) => c.options.length > 0).sort((a, b) => (b.priority ?? 0) - (a.priority ?? 0) || a.x - b.x);
  const boxes = new Map<string, Interval>();
  const out = new Map<string, LabelOption>();
  const fits = (iv: Interval, self?: string) =>
    !obstacles.some((p) => iv.x0 < p.x1 + gap && p.x0 < iv.x1 + gap) &&
    ![...boxes].some(([k, p]) => k !== self && iv.x0 < p.x1 + gap && p.x0 < iv.x1 + gap);
  for (const c of order) {
    const o = c.options[c.options.length - 1]!;
    const iv = { x0: c.x, x1: c.x + o.width };
    if (!fits(iv)) continue;
    boxes.set(c.key, iv);
    out.set(c.key, o);
  }
  for (const c of order) {
    if (!out.has(c.key)) continue;
    for (const o of c.options) {
      if (o === out.get(c.key)) break;
      const iv = { x0: c.x, x1: c.x + o.width };
      if (!fits(iv, c.key)) continue;
      boxes.set(c.key, iv);
      out.set(c.key, o);
      break;
    }
  }
  return out;
}
