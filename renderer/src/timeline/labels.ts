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

/** The chosen form of each placed label, by key. */
export function placeLabels(candidates: readonly LabelCandidate[], obstacles: readonly Interval[] = [], gap = 6): Map<string, LabelOption> {
  const placed: Interval[] = [...obstacles];
  const out = new Map<string, LabelOption>();
  const order = [...candidates].sort((a, b) => (b.priority ?? 0) - (a.priority ?? 0) || a.x - b.x);
  for (const c of order) {
    for (const o of c.options) {
      const iv = { x0: c.x, x1: c.x + o.width };
      if (placed.some((p) => iv.x0 < p.x1 + gap && p.x0 < iv.x1 + gap)) continue;
      placed.push(iv);
      out.set(c.key, o);
      break;
    }
  }
  return out;
}
