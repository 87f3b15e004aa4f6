// While a wheel or drag gesture lasts, the plot is moved by one transform on its wrapping <g>
// instead of re-rendering every element per frame (issue 11: that re-render was most of a frame).
// x is linear in axis time, so what is drawn for one window maps onto another by x' = k·x + tx:
// exact for a pan (k = 1); a zoom stretches circles and glyphs in x until the view settles, then
// the timeline renders the window properly (labels come back at the same moment).

import type { TimeView } from './timescale';

/** The transform that shows what was drawn for `drawn` as if it had been drawn for `target`. */
export function gestureTransform(drawn: TimeView, target: TimeView, plotW: number): { k: number; tx: number } {
  const span = target.t1 - target.t0;
  return { k: (drawn.t1 - drawn.t0) / span, tx: ((drawn.t0 - target.t0) / span) * plotW };
}

/** The SVG `transform` attribute for gestureTransform's result. */
export function transformAttr({ k, tx }: { k: number; tx: number }): string {
  return k === 1 ? `translate(${tx},0)` : `translate(${tx},0) scale(${k},1)`;
}
