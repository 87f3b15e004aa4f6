// Per-disk bitmap lanes (ux-principles §5.2): one span per checkpoint bitmap, from the checkpoint's
// time to now while it records, or to when it stopped recording. The state comes from QEMU's live
// flags (never assumed from the layout): inconsistent > busy > recording/disabled; a bitmap the
// metadata expects but QEMU does not have is "missing" (a gap marker, not a span).
//
// When a disabled bitmap stopped recording is derived from the tree: in the chained layout a
// bitmap is disabled when the next checkpoint that has a bitmap on that disk is created after it
// (its "successor": a descendant whose nearest bitmap-holding ancestor on that disk is it).

import type { BitmapInfo, BitmapLayout, Checkpoint } from '../../../shared/domain';
import { stopTimes, TEMP_BITMAP_PREFIX } from '../model/bitmaps';
import { bitmapsOnDisks, sameLiveFlags, sameOnDisk, type OnDisk } from './like-disks';

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

/** The bitmaps of a lane folded into one row (the oldest ones, never the current or selected one). */
export interface FoldedGroup {
  count: number;
  start: number;
  end: number;
  /** How many of them record writes. */
  recording: number;
  /** Their states, each once. */
  states: SpanState[];
  /** The user opened the group: its bitmaps are drawn on tracks of their own as well. */
  open: boolean;
}

export interface DiskLane {
  disk: string;
  /** Every span; those folded into the group have track -1. */
  spans: BitmapSpan[];
  missing: MissingMark[];
  /** Sub-tracks in use for drawn spans (not counting the group's row). */
  tracks: number;
  /** More bitmaps than fit: the oldest are folded into one row that opens. */
  folded?: FoldedGroup;
  /** Bitmaps recording writes on this disk right now (each write is marked in every one of them). */
  recording: number;
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
  /** Rows a lane may use before its oldest bitmaps fold into a group (the group takes one of them). */
  maxTracks?: number;
  /** Checkpoints whose bitmaps are always drawn (the current and the selected one). */
  keep?: readonly (string | undefined)[];
  /** Disks whose folded group the user opened. */
  open?: ReadonlySet<string>;
}

/** A binary min-heap of numbers by a key (small, for packTracks). */
class MinHeap {
  private readonly items: number[] = [];
  constructor(private readonly key: (i: number) => number) {}
  get size(): number {
    return this.items.length;
  }
  peek(): number | undefined {
    return this.items[0];
  }
  push(x: number): void {
    const a = this.items;
    a.push(x);
    for (let i = a.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (this.key(a[p]!) <= this.key(a[i]!)) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): number | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.key(a[l]!) < this.key(a[m]!)) m = l;
        if (r < a.length && this.key(a[r]!) < this.key(a[m]!)) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

/** Packing order: by start, then by checkpoint name (a total order: names are unique in a lane). */
function byStart(a: BitmapSpan, b: BitmapSpan): number {
  return a.start - b.start || (a.checkpoint < b.checkpoint ? -1 : 1);
}

/**
 * Greedy interval packing in start order, each span on the lowest free track (stable when spans
 * are added later in time), over `sorted` (in byStart order) skipping the spans `take` refuses;
 * sets each taken span's track and returns the track count. O(n log n). With a `limit` it stops as
 * soon as more than `limit` tracks are needed (and returns limit + 1): enough to say "does not fit",
 * and in the independent layout, where every bitmap records until now, the difference between
 * packing a lane's thousand spans and packing a few.
 */
function packSorted(sorted: readonly BitmapSpan[], take: (i: number) => boolean, limit = Infinity): number {
  const ends: number[] = [];
  const busy = new MinHeap((t) => ends[t]!); // tracks in use, by end time
  const free = new MinHeap((t) => t); // tracks free again, by index
  for (let i = 0; i < sorted.length; i++) {
    if (!take(i)) continue;
    const s = sorted[i]!;
    while (busy.size > 0 && ends[busy.peek()!]! <= s.start) free.push(busy.pop()!);
    const t = free.size > 0 ? free.pop()! : ends.length;
    if (t >= limit) return limit + 1;
    ends[t] = s.end;
    s.track = t;
    busy.push(t);
  }
  return ends.length;
}

const ALL = () => true;

/**
 * Which spans get a track when they do not all fit in `maxTracks` rows: the kept ones (current,
 * selected), then the newest, as long as they pack into maxTracks - 1 rows (the last row is the
 * group's). The others are folded (track -1).
 */
function fold(spans: BitmapSpan[], maxTracks: number, keep: ReadonlySet<string>, open: boolean): { tracks: number; folded?: FoldedGroup } {
  // Sorted once: every packing below walks this order and skips the spans it leaves out.
  const sorted = [...spans].sort(byStart);
  // An open group draws every span on its own track: the whole packing. Otherwise only whether they
  // fit matters here (when they do not, every span's track is set again below).
  const all = packSorted(sorted, ALL, open ? Infinity : maxTracks);
  if (all <= maxTracks) return { tracks: all };
  // The others newest first are the sorted order backwards: rank[i] is the place of sorted[i]
  // among them (-1 for a kept span).
  const rank = new Array<number>(sorted.length);
  let others = 0;
  for (let i = sorted.length - 1; i >= 0; i--) rank[i] = keep.has(sorted[i]!.checkpoint) ? -1 : others++;
  const room = Math.max(1, maxTracks - 1);
  // The kept spans and the longest run of the newest others that packs into `room` rows. First-fit
  // in start order needs as many rows as the most spans overlapping at one time, which adding spans
  // never lowers: the runs that fit are the first k, found by bisection (trying one more span at a
  // time re-packed up to a thousand spans a thousand times per disk: ~100 ms in the chained layout).
  let lo = 0;
  let hi = others;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (packSorted(sorted, (i) => rank[i]! < mid, room) <= room) lo = mid;
    else hi = mid - 1;
  }
  const shown = (i: number) => rank[i]! < lo;
  const hidden = sorted.filter((_, i) => !shown(i));
  const hiddenSet = new Set(hidden);
  const folded: FoldedGroup = {
    count: hidden.length,
    start: Math.min(...hidden.map((s) => s.start)),
    end: Math.max(...hidden.map((s) => s.end)),
    recording: hidden.filter((s) => s.recording).length,
    states: [...new Set(spans.filter((s) => hiddenSet.has(s)).map((s) => s.state))], // in the lane's order
    open,
  };
  if (open) {
    // The bisection's packings moved tracks: the whole packing again, as drawn.
    return { tracks: packSorted(sorted, ALL), folded };
  }
  const tracks = packSorted(sorted, shown);
  for (const s of hidden) s.track = -1;
  return { tracks, folded };
}

/** Whether fold() would do the same with both lanes' spans (it reads nothing else of them). */
function sameForFold(a: readonly BitmapSpan[], b: readonly BitmapSpan[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.checkpoint !== y.checkpoint || x.start !== y.start || x.end !== y.end || x.state !== y.state || x.recording !== y.recording) return false;
  }
  return true;
}

/** A lane as built for its disk, with what a like disk's copy needs (each span's place in `live`). */
interface Built {
  lane: DiskLane;
  onDisk: readonly OnDisk[];
  live?: readonly BitmapInfo[];
  open: boolean;
  liveAt: number[];
}

/** `like`'s lane for another disk with the same bitmaps and flags (like-disks.ts): its own counts, its own objects. */
function copyLane(like: Built, disk: string, live: readonly BitmapInfo[] | undefined): DiskLane {
  const { lane, liveAt } = like;
  const spans = lane.spans.map((s, i): BitmapSpan => (live === undefined ? { ...s } : { ...s, count: live[liveAt[i]!]!.count }));
  const missing = lane.missing.map((m) => ({ ...m }));
  const folded = lane.folded && { ...lane.folded, states: [...lane.folded.states] };
  return { disk, spans, missing, tracks: lane.tracks, ...(folded ? { folded } : {}), recording: lane.recording, foreign: [...lane.foreign] };
}

export function diskLanes(input: LaneInput): DiskLane[] {
  const maxTracks = input.maxTracks ?? 6;
  const keep = new Set(input.keep?.filter((k): k is string => k !== undefined));
  const onDisks = bitmapsOnDisks(input.checkpoints, input.disks);
  // A disk with the same bitmaps and live flags as one already built takes a copy of its lane.
  const built: Built[] = [];
  // Disks that differ only in what fold() does not read (counts, foreign bitmaps, the live list's
  // order) still fold alike: a lane like one already folded takes its tracks instead of packing again.
  const folds: { spans: BitmapSpan[]; open: boolean; tracks: number; folded?: FoldedGroup }[] = [];
  return input.disks.map((disk, di) => {
    const live = input.live?.get(disk);
    const onDisk = onDisks[di]!;
    const open = input.open?.has(disk) ?? false;
    const same = built.find((b) => b.open === open && sameOnDisk(b.onDisk, onDisk) && sameLiveFlags(b.live, live));
    if (same) return copyLane(same, disk, live);
    const liveIndex = new Map<string, number>(); // the last of a name counts
    if (live) for (let i = 0; i < live.length; i++) if (live[i]!.name !== undefined) liveIndex.set(live[i]!.name!, i);
    const stops = input.layout === 'chained' ? stopTimes(input.checkpoints, disk) : new Map<string, number>();
    const spans: BitmapSpan[] = [];
    const liveAt: number[] = [];
    const missing: MissingMark[] = [];
    const known = new Set<string>();
    for (const { cp, bitmap } of onDisk) {
      known.add(bitmap);
      const start = cp.createdAtMs;
      if (live === undefined) {
        spans.push({ checkpoint: cp.name, bitmap, start, end: input.now, endKnown: false, state: 'unknown', recording: false, track: 0 });
        continue;
      }
      const at = liveIndex.get(bitmap);
      if (at === undefined) {
        missing.push({ checkpoint: cp.name, bitmap, time: start });
        continue;
      }
      const b = live[at]!;
      const stop = stops.get(cp.name);
      let end = input.now;
      let endKnown = true;
      if (!b.recording && !b.inconsistent) {
        if (stop !== undefined) end = Math.max(stop, start);
        else endKnown = false;
      }
      const state: SpanState = b.inconsistent ? 'inconsistent' : b.busy ? 'busy' : b.recording ? 'recording' : 'disabled';
      spans.push({ checkpoint: cp.name, bitmap, start, end, endKnown, state, count: b.count, recording: b.recording, track: 0 });
      liveAt.push(at);
    }
    const like = folds.find((f) => f.open === open && sameForFold(f.spans, spans));
    let tracks: number;
    let folded: FoldedGroup | undefined;
    if (like) {
      for (let i = 0; i < spans.length; i++) spans[i]!.track = like.spans[i]!.track;
      tracks = like.tracks;
      folded = like.folded && { ...like.folded, states: [...like.folded.states] };
    } else {
      ({ tracks, folded } = fold(spans, maxTracks, keep, open));
      folds.push({ spans, open, tracks, ...(folded ? { folded } : {}) });
    }
    const foreign = [...liveIndex.keys()].filter((n) => !known.has(n) && !n.startsWith(TEMP_BITMAP_PREFIX));
    const recording = spans.filter((s) => s.recording).length;
    const lane: DiskLane = { disk, spans, missing, tracks, ...(folded ? { folded } : {}), recording, foreign };
    built.push({ lane, onDisk, open, liveAt, ...(live ? { live } : {}) });
    return lane;
  });
}
