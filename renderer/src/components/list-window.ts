// PURE: which rows of a long list of fixed-height rows to render (issue 11): the rows in view plus
// a few on each side, and the heights of the spacers that stand in for the rest, so the scroll
// box keeps its full height and its scroll bar tells where the view is.

export interface ListWindow {
  /** First rendered row (inclusive) and the end (exclusive). */
  start: number;
  end: number;
  /** Pixels above and below the rendered rows. */
  before: number;
  after: number;
}

/**
 * The rows of `count` rows of `rowHeight` px to render when the box shows `viewHeight` px from
 * `scrollTop`, with `overscan` more on each side.
 */
export function listWindow(count: number, rowHeight: number, scrollTop: number, viewHeight: number, overscan: number): ListWindow {
  if (count <= 0) return { start: 0, end: 0, before: 0, after: 0 };
  const top = Math.max(0, scrollTop);
  let start = Math.max(0, Math.floor(top / rowHeight) - overscan);
  let end = Math.min(count, Math.ceil((top + Math.max(0, viewHeight)) / rowHeight) + overscan);
  if (start >= count) start = Math.max(0, count - 1 - overscan);
  if (end <= start) end = Math.min(count, start + 1);
  return { start, end, before: start * rowHeight, after: (count - end) * rowHeight };
}

/**
 * The scrollTop that brings row `index` fully into a box showing `viewHeight` px from `scrollTop`
 * below a sticky header of `headerHeight` px; `scrollTop` itself when the row is already in view.
 */
export function scrollToRow(index: number, rowHeight: number, scrollTop: number, viewHeight: number, headerHeight = 0): number {
  const top = index * rowHeight;
  const bottom = top + rowHeight;
  if (top < scrollTop) return top;
  if (bottom > scrollTop + viewHeight - headerHeight) return Math.max(0, bottom - (viewHeight - headerHeight));
  return scrollTop;
}

/** What the table body holds, top to bottom: a rendered row, or a spacer of `gap` px. */
export type ListPart = { row: number } | { gap: number };

/**
 * The window's rows with spacers around them, and the `pinned` row (the one with the tab stop or
 * the keyboard focus) rendered in its place even when it is scrolled far away, so focus never
 * sits on a row that is not there and Tab always finds the list's one stop.
 */
export function listParts(win: ListWindow, count: number, rowHeight: number, pinned?: number): ListPart[] {
  const rows: number[] = [];
  for (let i = win.start; i < win.end; i++) rows.push(i);
  if (pinned !== undefined && pinned >= 0 && pinned < count && (pinned < win.start || pinned >= win.end)) {
    if (pinned < win.start) rows.unshift(pinned);
    else rows.push(pinned);
  }
  const parts: ListPart[] = [];
  let next = 0;
  for (const i of rows) {
    if (i > next) parts.push({ gap: (i - next) * rowHeight });
    parts.push({ row: i });
    next = i + 1;
  }
  if (count > next) parts.push({ gap: (count - next) * rowHeight });
  return parts;
}
