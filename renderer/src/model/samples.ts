// Live dirty counts over time: what the dirty-bytes area under each disk band draws.
//
// Every vm:bitmaps event (about two a second while the guest writes) carries the count of every
// bitmap of every disk; in the independent layout all of them change with each write. Keeping each
// event would grow without bound (1,000 checkpoints × 8 disks is 8,000 counts an event), so each
// bitmap keeps its own series of at most HISTORY_POINTS points: when full, the older half is
// thinned to every other point, so recent history stays fine-grained and old history coarsens.
// Memory is bounded by the number of bitmaps, not by how long the page stays open.

/** Points kept per bitmap before the older half is thinned. */
export const HISTORY_POINTS = 64;

/**
 * One bitmap's counts over time: `t[i]` (ms) and `c[i]` (dirty bytes) for i < n, oldest first.
 * Plain arrays that grow as points come (most bitmaps never change: one point each), never past
 * HISTORY_POINTS.
 */
export interface CountSeries {
  t: number[];
  c: number[];
  n: number;
}

/** A disk's history: a series per bitmap name. Mutable; the store wraps it in a new object on change. */
export type DiskHistory = Map<string, CountSeries>;

function thin(s: CountSeries): void {
  // Older half: keep the later point of each pair; then slide the newer half down.
  const half = s.n >> 1;
  let w = 0;
  for (let i = 1; i < half; i += 2) {
    s.t[w] = s.t[i]!;
    s.c[w] = s.c[i]!;
    w++;
  }
  for (let i = half; i < s.n; i++) {
    s.t[w] = s.t[i]!;
    s.c[w] = s.c[i]!;
    w++;
  }
  s.n = w;
  s.t.length = w;
  s.c.length = w;
}

/**
 * Adds the counts seen at `at` to a disk's history (only counts that changed make a point) and
 * drops the series of bitmaps that no longer exist. Returns true when anything changed.
 */
export function recordCounts(history: DiskHistory, at: number, counts: ReadonlyMap<string, number>): boolean {
  let changed = false;
  for (const name of [...history.keys()]) {
    if (!counts.has(name)) {
      history.delete(name);
      changed = true;
    }
  }
  for (const [name, count] of counts) {
    const s = history.get(name);
    if (!s) {
      // Made with its first point (not an empty series pushed to): the first intake of a VM's
      // counts (8,000 at 1,000 checkpoints × 8 disks) is on the timeline's first render.
      history.set(name, { t: [at], c: [count], n: 1 });
      changed = true;
      continue;
    }
    if (s.n > 0 && s.c[s.n - 1] === count) continue;
    if (s.n > 0 && at < s.t[s.n - 1]!) continue; // out of order: keep the series monotonic in time
    if (s.n === HISTORY_POINTS) thin(s);
    s.t.push(at);
    s.c.push(count);
    s.n++;
    changed = true;
  }
  return changed;
}

/**
 * The first counts of an empty history: what recordCounts records for them, without building a map
 * of the counts first. A bitmap without a name or a count (a driver that cannot tell) is not
 * history and is skipped, as recordDisk does; a name seen twice keeps its last count.
 */
export function firstCounts(history: DiskHistory, at: number, bitmaps: readonly { name?: string; count?: number }[]): boolean {
  let changed = false;
  for (const b of bitmaps) {
    if (b.name === undefined || b.count === undefined) continue;
    history.set(b.name, { t: [at], c: [b.count], n: 1 });
    changed = true;
  }
  return changed;
}

export interface DirtyPoint {
  t: number;
  bytes: number;
}

export interface DirtySeries {
  points: DirtyPoint[];
  /** When the page first saw these bitmaps' counts; before it the curve is not observed. */
  observedFrom?: number;
}

/**
 * The area series of a baseline made of `bitmaps`: 0 at the baseline's creation, then the sum of
 * the bitmaps' counts wherever one of them changed — exactly the changes when there is one bitmap,
 * an upper bound of their union when several contribute — held flat until `now`.
 */
export function dirtySeries(history: DiskHistory | undefined, bitmaps: readonly string[], baselineTime: number, now: number): DirtySeries {
  if (bitmaps.length === 0) return { points: [] };
  const series = bitmaps.map((b) => history?.get(b)).filter((s): s is CountSeries => s !== undefined && s.n > 0);
  const points: DirtyPoint[] = [{ t: baselineTime, bytes: 0 }];
  if (series.length === 0) {
    if (now > baselineTime) points.push({ t: now, bytes: 0 });
    return { points };
  }
  // Merge the series in time order, carrying each bitmap's last count forward.
  const idx = series.map(() => 0);
  const last = series.map(() => 0);
  let observedFrom = Infinity;
  for (const s of series) observedFrom = Math.min(observedFrom, s.t[0]!);
  for (;;) {
    let next = Infinity;
    for (let k = 0; k < series.length; k++) if (idx[k]! < series[k]!.n) next = Math.min(next, series[k]!.t[idx[k]!]!);
    if (next === Infinity) break;
    for (let k = 0; k < series.length; k++) {
      const s = series[k]!;
      while (idx[k]! < s.n && s.t[idx[k]!] === next) {
        last[k] = s.c[idx[k]!]!;
        idx[k] = idx[k]! + 1;
      }
    }
    if (next < baselineTime) continue;
    let sum = 0;
    for (const v of last) sum += v;
    points.push({ t: next, bytes: sum });
  }
  const end = points[points.length - 1]!;
  if (now > end.t) points.push({ t: now, bytes: end.bytes });
  return { points, observedFrom: Math.max(observedFrom, baselineTime) };
}
