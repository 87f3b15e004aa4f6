// Small geometry helpers the timeline's layers share (no React, no imports).

/** Width of the left gutter (row titles); the plot starts right of it. */
export const GUTTER = 176;

/** Time (ms) → x in pixels within the plot, for the view being drawn. */
export type XScale = (t: number) => number;

/**
 * Where a text goes, as a transform: moving a <text> by its x attribute makes Blink lay its glyphs
 * out again (the bulk of a zoom frame's layout time); moving it by a transform does not.
 */
export function at(x: number, y: number): string {
  return `translate(${x.toFixed(1)},${y})`;
}
