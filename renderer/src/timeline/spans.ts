// Per-disk bitmap lanes (ux-principles §5.2): one span per checkpoint bitmap, from the checkpoint's
// time to now while it records, or to when it stopped recording. The state comes from QEMU's live
// flags (never assumed from the layout): inconsistent > busy > recording/disabled; a bitmap the
// metadata expects but QEMU does not have is "missing" (a gap marker, not a span).
//
// When a disabled bitmap stopped recording is derived from the tree: in the chained layout a
// bitmap is disabled when the next checkpoint that has a bitmap on that disk is created after it
// (its "successor": a descendant whose nearest bitmap-holding ancestor on that disk is it).

import type { BitmapInfo, BitmapLayout, Checkpoint } from '../../../shared/domain';

export type SpanState = 'recording' | 'disabled' | 'busy' | 'inconsistent' | 'unknown';

export interface BitmapSpan {
  checkpoint: string;
  bitmap: string;
  start: number;
  end: number;
  /** False when the span runs to now only because the stop time cannot be derived. */
  endKnown: boolean;
  state: SpanState;
  /** Dirty bytes in this bitmap alone (live). */
  count?: number;
  /** Still recording as well as busy (busy is shown on top of it). */
  recording: boolean;
  /** Sub-track inside the disk band; 0 is the bottom. */
  track: number;
}

export interface MissingMark {
  checkpoint: string;
  bitmap: string;
  time: number;
}

export interface DiskLane {
  disk: string;
  spans: BitmapSpan[];
  missing: MissingMark[];
  /** Sub-tracks in use (at most maxTracks). */
  tracks: number;
  /** Spans that did not fit in maxTracks, drawn as one bar with a count. */
  overflow?: { count: number; start: number; end: number };
  /** Live bitmaps that belong to no checkpoint (another tool's, or a leftover temporary one). */
  foreign: string[];
}

export interface LaneInput {
  checkpoints: readonly Checkpoint[];
  layout?: BitmapLayout;
  disks: readonly string[];
  /** Live bitmaps per disk; undefined when not known (VM not connected). */
  live?: ReadonlyMap<string, readonly BitmapInfo[]>;
  now: number;
  maxTracks?: number;
}

export const TEMP_BITMAP_PREFIX = 'tidemark-tmp-';

function bitmapOn(cp: Checkpoint, disk: string): string | undefined {
  const d = cp.disks.find((x) => x.name === disk);
  if (!d || d.checkpoint !== 'bitmap') return undefined;
  return d.bitmap ?? cp.name;
}

/** For each checkpoint, its nearest ancestor that holds a bitmap on `disk` (the chained "predecessor"). */
export function predecessorsOnDisk(checkpoints: readonly Checkpoint[], disk: string): Map<string, string | undefined> {
  const byName = new Map(checkpoints.map((c) => [c.name, c]));
  const memo = new Map<string, string | undefined>();
  const find = (name: string, seen: Set<string>): string | undefined => {
    if (memo.has(name)) return memo.get(name);
    const cp = byName.get(name);
    let result: string | undefined;
    if (cp?.parent !== undefined && byName.has(cp.parent) && !seen.has(cp.parent)) {
      const parent = byName.get(cp.parent)!;
      seen.add(name);
      result = bitmapOn(parent, disk) !== undefined ? parent.name : find(parent.name, seen);
    }
    memo.set(name, result);
    return result;
  };
  for (const c of checkpoints) find(c.name, new Set());
  return memo;
}

/** Time each bitmap on `disk` stopped recording in the chained layout: its first successor's creation. */
export function stopTimes(checkpoints: readonly Checkpoint[], disk: string): Map<string, number> {
  const pred = predecessorsOnDisk(checkpoints, disk);
  const out = new Map<string, number>();
  for (const c of checkpoints) {
    if (bitmapOn(c, disk) === undefined) continue;
    const p = pred.get(c.name);
    if (p === undefined) continue;
    const prev = out.get(p);
    if (prev === undefined || c.createdAtMs < prev) out.set(p, c.createdAtMs);
  }
  return out;
}

/** Greedy interval packing in start order: stable when spans are added later in time. */
function packTracks(spans: BitmapSpan[], maxTracks: number): { tracks: number; overflow?: DiskLane['overflow'] } {
  const ends: number[] = [];
  let overflow: DiskLane['overflow'];
  const sorted = [...spans].sort((a, b) => a.start - b.start || (a.checkpoint < b.checkpoint ? -1 : 1));
  for (const s of sorted) {
    let t = ends.findIndex((e) => e <= s.start);
    if (t === -1) t = ends.length;
    ends[t] = s.end;
    s.track = t;
    if (t >= maxTracks) {
      overflow = overflow
        ? { count: overflow.count + 1, start: Math.min(overflow.start, s.start), end: Math.max(overflow.end, s.end) }
        : { count: 1, start: s.start, end: s.end };
    }
  }
  return { tracks: Math.min(ends.length, maxTracks), overflow };
}

export function diskLanes(input: LaneInput): DiskLane[] {
  const maxTracks = input.maxTracks ?? 6;
  return input.disks.map((disk) => {
    const live = input.live?.get(disk);
    const liveByName = new Map((live ?? []).filter((b) => b.name !== undefined).map((b) => [b.name!, b]));
    const stops = input.layout === 'chained' ? stopTimes(input.checkpoints, disk) : new Map<string, number>();
    const spans: BitmapSpan[] = [];
    const missing: MissingMark[] = [];
    const known = new Set<string>();
    for (const cp of input.checkpoints) {
      const bitmap = bitmapOn(cp, disk);
      if (bitmap === undefined) continue;
      known.add(bitmap);
      const start = cp.createdAtMs;
      if (live === undefined) {
        spans.push({ checkpoint: cp.name, bitmap, start, end: input.now, endKnown: false, state: 'unknown', recording: false, track: 0 });
        continue;
      }
      const b = liveByName.get(bitmap);
      if (!b) {
        missing.push({ checkpoint: cp.name, bitmap, time: start });
        continue;
      }
      const stop = stops.get(cp.name);
      let end = input.now;
      let endKnown = true;
      if (!b.recording && !b.inconsistent) {
        if (stop !== undefined) end = Math.max(stop, start);
        else endKnown = false;
      }
      const state: SpanState = b.inconsistent ? 'inconsistent' : b.busy ? 'busy' : b.recording ? 'recording' : 'disabled';
      spans.push({ checkpoint: cp.name, bitmap, start, end, endKnown, state, count: b.count, recording: b.recording, track: 0 });
    }
    const { tracks, overflow } = packTracks(spans, maxTracks);
    const foreign = [...liveByName.keys()].filter((n) => !known.has(n) && !n.startsWith(TEMP_BITMAP_PREFIX));
    return { disk, spans, missing, tracks, overflow, foreign };
  });
}

// ---------------------------------------------------------------- dirty bytes of a baseline over time

/**
 * One live sample of a disk at time `at`: the dirty counts of the bitmaps that changed since the
 * previous sample (the first sample holds all). Delta-encoded because with many checkpoints every
 * event carries every bitmap, and most of them (disabled ones) never change.
 */
export interface DiskSample {
  at: number;
  counts: Record<string, number>;
}

/**
 * The bitmaps whose union is "changed since `baseline`" on `disk`: the baseline's own bitmap in the
 * independent layout; in the chained layout also every later bitmap on the path to the current
 * checkpoint (each covers only its own interval).
 */
export function baselineBitmaps(
  checkpoints: readonly Checkpoint[], layout: BitmapLayout | undefined, baseline: string, current: string | undefined, disk: string,
): string[] {
  const byName = new Map(checkpoints.map((c) => [c.name, c]));
  const base = byName.get(baseline);
  if (!base) return [];
  const own = bitmapOn(base, disk);
  if (layout !== 'chained' || current === undefined) return own === undefined ? [] : [own];
  // Walk up from current to the baseline; if the baseline is not an ancestor, only its own bitmap counts.
  const path: Checkpoint[] = [];
  let found = false;
  const seen = new Set<string>();
  for (let c = byName.get(current); c && !seen.has(c.name); c = c.parent !== undefined ? byName.get(c.parent) : undefined) {
    seen.add(c.name);
    path.push(c);
    if (c.name === baseline) {
      found = true;
      break;
    }
  }
  if (!found) return own === undefined ? [] : [own];
  return path.map((c) => bitmapOn(c, disk)).filter((b): b is string => b !== undefined).reverse();
}

export interface DirtyPoint {
  t: number;
  bytes: number;
}

/**
 * The area series: starts at 0 at the baseline's creation, then the sum of the contributing
 * bitmaps' counts (carried forward through the delta-encoded samples) wherever one of them
 * changed — an upper bound of the union when several contribute — held flat until `now`.
 */
export function dirtySeries(samples: readonly DiskSample[], bitmaps: readonly string[], baselineTime: number, now: number): DirtyPoint[] {
  if (bitmaps.length === 0) return [];
  const points: DirtyPoint[] = [{ t: baselineTime, bytes: 0 }];
  const running = new Map<string, number>();
  for (const s of samples) {
    let changed = false;
    for (const b of bitmaps) {
      const c = s.counts[b];
      if (c !== undefined) {
        running.set(b, c);
        changed = true;
      }
    }
    if (!changed || s.at < baselineTime || running.size === 0) continue;
    let sum = 0;
    for (const c of running.values()) sum += c;
    points.push({ t: s.at, bytes: sum });
  }
  const last = points[points.length - 1]!;
  if (now > last.t) points.push({ t: now, bytes: last.bytes });
  return points;
}
