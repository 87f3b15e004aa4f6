// The time axis: a linear map from a visible time window [t0, t1] (ms) to pixels [0, width],
// with zoom around a point, pan, fit, and ticks at round calendar steps. Pure, so the
// timeline's zoom behaviour is unit-tested without a browser. The window is in axis time: real
// time through a TimeWarp (warp.ts) when idle stretches are compressed.

import type { TimeWarp } from './warp';

export interface TimeView {
  t0: number;
  t1: number;
}

/** Narrowest window (1 s) and widest (20 years): beyond these zooming stops. */
export const MIN_SPAN_MS = 1000;
export const MAX_SPAN_MS = 20 * 365 * 86400_000;

export function timeToX(view: TimeView, width: number, t: number): number {
  return ((t - view.t0) / (view.t1 - view.t0)) * width;
}

export function xToTime(view: TimeView, width: number, x: number): number {
  return view.t0 + (x / width) * (view.t1 - view.t0);
}

/** Shortest window fitted to data, so a few checkpoints seconds apart are not one dot. */
export const MIN_FIT_SPAN_MS = 4_000;

/**
 * A window showing every time in `times` plus `now`, leaving `leftPx` before the first and
 * `rightPx` after the last (room for the NOW label and the end-of-lane figures).
 */
export function fitView(times: readonly number[], now: number, width: number, leftPx = 40, rightPx = 300): TimeView {
  let lo = now;
  let hi = now;
  for (const t of times) {
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  const span = Math.min(Math.max(hi - lo, MIN_FIT_SPAN_MS), MAX_SPAN_MS);
  if (hi - lo < MIN_FIT_SPAN_MS) lo = hi - span;
  const dataPx = Math.max(width - leftPx - rightPx, width * 0.3, 1);
  const msPerPx = span / dataPx;
  return { t0: lo - leftPx * msPerPx, t1: hi + rightPx * msPerPx };
}

/** Zoom by `factor` (>1 zooms in) keeping the time under pixel `x` fixed. */
export function zoomAt(view: TimeView, width: number, x: number, factor: number): TimeView {
  const anchor = xToTime(view, width, x);
  const span = view.t1 - view.t0;
  const next = Math.min(MAX_SPAN_MS, Math.max(MIN_SPAN_MS, span / factor));
  const ratio = width > 0 ? x / width : 0.5;
  const t0 = anchor - next * ratio;
  return { t0, t1: t0 + next };
}

/** Pan by `dx` pixels (positive moves the content right, i.e. shows earlier times). */
export function panBy(view: TimeView, width: number, dx: number): TimeView {
  const dt = (dx / width) * (view.t1 - view.t0);
  return { t0: view.t0 - dt, t1: view.t1 - dt };
}

/** Keep the window's width but put `t` at `fraction` of the width (for "jump to now"). */
export function centerOn(view: TimeView, t: number, fraction = 0.85): TimeView {
  const span = view.t1 - view.t0;
  return { t0: t - span * fraction, t1: t - span * fraction + span };
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const STEPS = [
  SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND,
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
  DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 182 * DAY, 365 * DAY, 2 * 365 * DAY, 5 * 365 * DAY,
];

export interface Tick {
  t: number;
  label: string;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

function tickLabel(t: number, step: number): string {
  const d = new Date(t);
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  if (step < MINUTE) return `${hm}:${pad2(d.getSeconds())}`;
  if (step < DAY) return d.getHours() === 0 && d.getMinutes() === 0 ? `${d.getMonth() + 1}/${d.getDate()}` : hm;
  if (step < 365 * DAY) return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  return String(d.getFullYear());
}

/**
 * Ticks at a round step chosen so that labels are at least `minPx` apart, aligned to local time.
 * With a warp (compressed idle stretches) the view is in axis time: ticks are placed in real time
 * on the uncompressed stretches only (inside a compressed gap the scale is not the step's).
 */
export function ticks(view: TimeView, width: number, minPx = 90, warp?: TimeWarp): Tick[] {
  const span = view.t1 - view.t0;
  if (!(span > 0) || !(width > 0)) return [];
  const wanted = (span / width) * minPx;
  const step = STEPS.find((s) => s >= wanted) ?? STEPS[STEPS.length - 1]!;
  const toAxis = warp?.toAxis ?? ((t: number) => t);
  const toTime = warp?.toTime ?? ((a: number) => a);
  // The uncompressed stretches of the visible window, in real time.
  const r0 = toTime(view.t0);
  const r1 = toTime(view.t1);
  const stretches: [number, number][] = [];
  let from = r0;
  for (const b of warp?.breaks ?? []) {
    if (b.t1 <= r0 || b.t0 >= r1) continue;
    if (b.t0 > from) stretches.push([from, b.t0]);
    from = Math.max(from, b.t1);
  }
  if (from < r1) stretches.push([from, r1]);
  const out: Tick[] = [];
  let lastPx = -Infinity;
  for (const [s0, s1] of stretches) {
    // Align to local midnight offsets so hour ticks land on the hour in the user's zone.
    const tzOffset = new Date(s0).getTimezoneOffset() * MINUTE;
    const first = Math.ceil((s0 - tzOffset) / step) * step + tzOffset;
    for (let t = first; t <= s1 && out.length < 200; t += step) {
      const px = ((toAxis(t) - view.t0) / span) * width;
      if (px - lastPx < minPx * 0.6) continue; // across a break, two stretches' ticks can meet
      out.push({ t, label: tickLabel(t, step) });
      lastPx = px;
    }
  }
  return out;
}
