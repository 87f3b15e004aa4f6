// Which disk bands are near the visible part of the timeline's scroll box. At 1,000 checkpoints the
// tree fills most of the box and only one or two of eight bands are on screen; the others skip
// their lanes, backup marks and dirty-bytes area (most of the timeline's elements, and all of them
// move on every zoom frame), their gutter's words and their disk map's drawing until scrolling
// brings them near. Half a box height above and below is drawn too, so a wheel notch or two of
// scrolling never shows an empty band.

import { useLayoutEffect, useMemo, useRef, useState } from 'react';
import { onScrollOrResize } from '../scroll-box';

export interface Row {
  /** y of the row's top and its height, in the scroll box's content coordinates. */
  top: number;
  height: number;
}

/**
 * The indices of the rows that intersect [scrollTop − viewH/2, scrollTop + 1.5·viewH], joined by "," (a
 * string, so a scroll that keeps the same rows changes no state). undefined when the box has no
 * height (not laid out, or a test DOM): then every row is drawn.
 */
export function rowsNearView(rows: readonly Row[], scrollTop: number, viewH: number): string | undefined {
  if (!(viewH > 0)) return undefined;
  const lo = scrollTop - viewH / 2;
  const hi = scrollTop + 1.5 * viewH;
  return rows.flatMap((r, i) => (r.top + r.height > lo && r.top < hi ? [i] : [])).join(',');
}

/**
 * The set of row indices near the view of the scroll box `ref`, kept current on scroll and resize;
 * undefined means "draw every row". Rows are in the box's content coordinates. With `hintHeight`
 * (the box's expected height) the first render starts from it at the top, and the box's first
 * ResizeObserver report, after the frame's layout, corrects it: no layout is forced on mount.
 */
export function useRowsNearView(ref: React.RefObject<HTMLElement | null>, rows: readonly Row[], hintHeight?: number): ReadonlySet<number> | undefined {
  const [near, setNear] = useState<string | undefined>(() => (hintHeight !== undefined ? rowsNearView(rows, 0, hintHeight) : undefined));
  const hinted = useRef(near !== undefined);
  const latest = useRef(rows);
  latest.current = rows;
  // A new array with the same geometry (every live update builds one) needs no new measurement.
  const geometry = rows.map((r) => `${r.top}+${r.height}`).join(',');
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const update = () => setNear(rowsNearView(latest.current, el.scrollTop, el.clientHeight));
    if (!hinted.current || typeof ResizeObserver === 'undefined') update();
    hinted.current = false;
    return onScrollOrResize(el, update);
  }, [ref, geometry]);
  return useMemo(() => (near === undefined ? undefined : new Set(near === '' ? [] : near.split(',').map(Number))), [near]);
}

/** Whether row `i` is far from the view (useRowsNearView's set; undefined: every row is near). */
export function farFromView(near: ReadonlySet<number> | undefined, i: number): boolean {
  return near !== undefined && !near.has(i);
}
