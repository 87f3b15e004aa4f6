// The time axis can compress idle stretches, so a burst of checkpoints after hours of nothing stays
// readable: every gap between two consecutive events (checkpoints, backups, now) that is longer
// than a threshold C is drawn as if it lasted C·(1 + log10(gap / C) / 2) — a 2-hour gap with
// C = 16 s takes ~36 s of axis — and marked as a break with its real length. Times near events keep
// their real spacing. (The c/2 next to each event stays real; the rest of the gap takes
// (c/2)·log10(gap/c).) The map is piecewise linear and monotonic, so the zoom and pan of
// timescale.ts work unchanged on "axis time"; only ticks and labels go back to real time.
//
// C follows the data: four times the median gap between events, at least MIN_IDLE_MS (1 s), so
// bursts (checkpoints made by a script a fraction of a second apart) and everyday cadences both
// keep their rhythm while the long pauses between them shrink.

export interface IdleBreak {
  /** The real time between the two events around it (what its label says). */
  gap: number;
  /** The real stretch drawn compressed (the gap less c/2 kept real at each end). */
  t0: number;
  t1: number;
  /** Where it lies on the axis. */
  a0: number;
  a1: number;
}

export interface TimeWarp {
  /** Real time (ms) → axis time (ms); identity outside compressed gaps' cumulative shift. */
  toAxis(t: number): number;
  /** Axis time → real time. */
  toTime(a: number): number;
  /** The compressed gaps, in time order. */
  breaks: readonly IdleBreak[];
}

export const IDENTITY_WARP: TimeWarp = { toAxis: (t) => t, toTime: (a) => a, breaks: [] };

/** Gaps shorter than this are never compressed. */
export const MIN_IDLE_MS = 1000;

/** Axis length of a compressed gap of real length `gap` (> c): grows with the gap's order of magnitude. */
export function compressedLength(gap: number, c: number): number {
  return c * (1 + Math.log10(gap / c) / 2);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** The idle threshold for these event times: four times the median gap, at least MIN_IDLE_MS. */
export function idleThreshold(sortedTimes: readonly number[]): number {
  const gaps: number[] = [];
  for (let i = 1; i < sortedTimes.length; i++) {
    const g = sortedTimes[i]! - sortedTimes[i - 1]!;
    if (g > 0) gaps.push(g);
  }
  return Math.max(MIN_IDLE_MS, 4 * median(gaps));
}

/**
 * A warp that compresses the idle gaps between `times` and `now`. `pad` (ms, real) is kept
 * uncompressed after each event, so a span or label right after an event keeps its real length.
 */
export function compressIdle(times: readonly number[], now: number): TimeWarp {
  const sorted = [...new Set([...times.filter(Number.isFinite), now])].sort((a, b) => a - b);
  if (sorted.length < 2) return IDENTITY_WARP;
  const c = idleThreshold(sorted);
  // Breakpoints: real time → axis time at the start and end of each compressed gap.
  const breaks: IdleBreak[] = [];
  let shift = 0; // axis - real, accumulated
  for (let i = 1; i < sorted.length; i++) {
    const t0 = sorted[i - 1]!;
    const t1 = sorted[i]!;
    const gap = t1 - t0;
    if (gap <= c) continue;
    // Keep c/2 real on each side of the gap, compress the middle.
    const k0 = t0 + c / 2;
    const k1 = t1 - c / 2;
    const len = compressedLength(gap, c) - c;
    breaks.push({ gap, t0: k0, t1: k1, a0: k0 + shift, a1: k0 + shift + len });
    shift += len - (k1 - k0);
  }
  if (breaks.length === 0) return IDENTITY_WARP;
  const toAxis = (t: number): number => {
    // Binary search for the last break starting at or before t.
    let lo = 0;
    let hi = breaks.length - 1;
    let k = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (breaks[mid]!.t0 <= t) {
        k = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (k === -1) return t;
    const b = breaks[k]!;
    if (t < b.t1) return b.a0 + ((t - b.t0) / (b.t1 - b.t0)) * (b.a1 - b.a0);
    return b.a1 + (t - b.t1);
  };
  const toTime = (a: number): number => {
    let lo = 0;
    let hi = breaks.length - 1;
    let k = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (breaks[mid]!.a0 <= a) {
        k = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (k === -1) return a;
    const b = breaks[k]!;
    if (a < b.a1) return b.t0 + ((a - b.a0) / (b.a1 - b.a0)) * (b.t1 - b.t0);
    return b.t1 + (a - b.a1);
  };
  return { toAxis, toTime, breaks };
}

/** "2 h 14 min", "3 d 4 h", "45 s": the real length of an idle break. */
export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}
