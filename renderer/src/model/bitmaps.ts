// Facts about checkpoint bitmaps that follow from the checkpoint tree and the layout (pure; the
// store, the timeline and the dialogs all use them): which bitmap a checkpoint has on a disk, its
// predecessor in the chained layout, when a chained bitmap stopped recording, and which bitmaps
// together make up "changes since X".

import type { BitmapLayout, Checkpoint } from '../../../shared/domain';

export { TEMP_BITMAP_PREFIX } from '../../../shared/names';

/** The bitmap `cp` has on `disk`, if any. */
export function bitmapOn(cp: Checkpoint, disk: string): string | undefined {
  const d = cp.disks.find((x) => x.name === disk);
  return d && bitmapOfDisk(cp, d);
}

/** The bitmap of one of `cp`'s disk entries, if it has one: named after the checkpoint unless the entry names it. */
export function bitmapOfDisk(cp: Checkpoint, d: Checkpoint['disks'][number]): string | undefined {
  return d.checkpoint === 'bitmap' ? (d.bitmap ?? cp.name) : undefined;
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

/**
 * The bitmaps whose union is "changed since `baseline`" on `disk`: the baseline's own bitmap in the
 * independent layout; in the chained layout also every later bitmap on the path to the current
 * checkpoint (each covers only its own interval).
 */
export function baselineBitmaps(
  checkpoints: readonly Checkpoint[], layout: BitmapLayout | undefined, baseline: string, current: string | undefined, disk: string,
): string[] {
  // The independent layout needs only the baseline: found by a scan (the last of that name, as the
  // index below), without indexing every checkpoint. This runs per disk for the timeline, the figures
  // and the dirty maps; at 1,000 checkpoints × 8 disks the indexes were megabytes of garbage on the
  // first render, collected while the just-arrived data was still young.
  let base: Checkpoint | undefined;
  for (let i = checkpoints.length - 1; i >= 0 && !base; i--) if (checkpoints[i]!.name === baseline) base = checkpoints[i];
  if (!base) return [];
  const own = bitmapOn(base, disk);
  if (layout !== 'chained' || current === undefined) return own === undefined ? [] : [own];
  const byName = new Map(checkpoints.map((c) => [c.name, c]));
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

/**
 * What "changes since the baseline" on a disk depends on: the names and counts of the bitmaps
 * that make it up (the union changes only when one of them gains bits). Temporary bitmaps are
 * not part of it, or measuring (which makes one) would look like a change.
 */
export function chainFingerprint(bitmapNames: readonly string[], live: readonly { name?: string; count?: number }[] | undefined): string {
  // One or two names (the independent layout, a short chain): looked up in place, not by an index of
  // the disk's every bitmap (a thousand of them, per disk, per call). The last count of a name wins in both.
  if (bitmapNames.length <= 2) return bitmapNames.map((n) => `${n}=${countOf(live, n) ?? 'missing'}`).join(',');
  const counts = new Map<string, number>();
  for (const b of live ?? []) if (b.name !== undefined && b.count !== undefined) counts.set(b.name, b.count);
  return bitmapNames.map((n) => `${n}=${counts.get(n) ?? 'missing'}`).join(',');
}

function countOf(live: readonly { name?: string; count?: number }[] | undefined, name: string): number | undefined {
  let count: number | undefined;
  for (const b of live ?? []) if (b.name === name && b.count !== undefined) count = b.count;
  return count;
}
