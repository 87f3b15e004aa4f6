// Live dirty counts over time: what the dirty-bytes area under each disk band draws.

/**
 * One live sample of a disk at time `at`: the dirty counts of the bitmaps that changed since the
 * previous sample (the first sample holds all). Delta-encoded because with many checkpoints every
 * event carries every bitmap, and most of them (disabled ones) never change.
 */
export interface DiskSample {
  at: number;
  counts: Record<string, number>;
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
