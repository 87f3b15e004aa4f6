// PURE: dirty extents from NBD block status, and a fixed-size heatmap of them (the fraction of
// each region that is dirty), for drawing a disk as a strip of cells.

import type { DirtyExtent } from '../../../shared/contract';

/** NBD extents of a qemu:dirty-bitmap context → dirty/clean extents (bit 0 = dirty), merged. */
export function toDirtyExtents(extents: { offset: number; length: number; flags: number }[]): DirtyExtent[] {
  const out: DirtyExtent[] = [];
  for (const e of extents) {
    const dirty = (e.flags & 1) === 1;
    const last = out[out.length - 1];
    if (last && last.dirty === dirty && last.offset + last.length === e.offset) last.length += e.length;
    else out.push({ offset: e.offset, length: e.length, dirty });
  }
  return out;
}

export function dirtyBytes(extents: DirtyExtent[]): number {
  return extents.reduce((sum, e) => sum + (e.dirty ? e.length : 0), 0);
}

/**
 * Splits [0, size) into `count` equal regions (the last may be shorter) and returns, per region,
 * the dirty fraction in [0, 1]. Extents must be sorted and not overlap.
 */
export function bucketize(extents: DirtyExtent[], size: number, count: number): { buckets: number[]; bucketBytes: number } {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`bucket count must be a positive integer, got ${count}`);
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`disk size must be a non-negative integer, got ${size}`);
  if (size === 0) return { buckets: new Array<number>(count).fill(0), bucketBytes: 0 };
  const bucketBytes = Math.ceil(size / count);
  const dirty = new Array<number>(count).fill(0);
  for (const e of extents) {
    if (!e.dirty) continue;
    let pos = Math.max(0, e.offset);
    const end = Math.min(size, e.offset + e.length);
    while (pos < end) {
      const b = Math.floor(pos / bucketBytes);
      const bEnd = Math.min((b + 1) * bucketBytes, end);
      dirty[b]! += bEnd - pos;
      pos = bEnd;
    }
  }
  const buckets = dirty.map((d, b) => {
    const regionSize = Math.min(bucketBytes, size - b * bucketBytes);
    return regionSize > 0 ? d / regionSize : 0;
  });
  return { buckets, bucketBytes };
}
