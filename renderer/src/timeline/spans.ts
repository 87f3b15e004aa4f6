// Per-disk bitmap lanes (ux-principles §5.2): one span per checkpoint bitmap, from the checkpoint's
// time to now while it records, or to when it stopped recording. The state comes from QEMU's live
// flags (never assumed from the layout): inconsistent > busy > recording/disabled; a bitmap the
// metadata expects but QEMU does not have is "missing" (a gap marker, not a span).
//
// When a disabled bitmap stopped recording is derived from the tree: in the chained layout a
// bitmap is disabled when the next checkpoint that has a bitmap on that disk is created after it
// (its "successor": a descendant whose nearest bitmap-holding ancestor on that disk is it).

import type { BitmapInfo, BitmapLayout, Checkpoint } from '../../../shared/domain';
import { bitmapOn, stopTimes, TEMP_BITMAP_PREFIX } from '../model/bitmaps';

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
