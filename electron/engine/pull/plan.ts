// PURE planning of a pull copy: turning NBD block status (allocation, dirty bitmap) into "read
// these bytes" / "write zeroes here". Any driver that exports a point in time over NBD (QEMU's own
// server, libvirt's pull mode) copies through this.

import { NBD_STATE_DIRTY, NBD_STATE_ZERO } from '../../nbd/protocol';
import type { Extent } from '../../nbd/client';

export interface CopyOp {
  offset: number;
  length: number;
  /** data: read it from the export and write it; zero: make it read as zeroes in the layer. */
  op: 'data' | 'zero';
}

/**
 * What to copy into the new layer. A full layer starts empty (reads as zeroes), so only extents
 * that are not known zeroes are read. An incremental layer sits on its base, so every dirty
 * extent must be written, zeroes included (as explicit zeroes, G7), and nothing else.
 * `allocation` is base:allocation of the fleece export; `dirty` is its qemu:dirty-bitmap context.
 * For an incremental, `allocation` need only cover the dirty ranges (`dirtyRanges`), in order.
 */
export function copyOps(kind: 'full' | 'incremental' | 'differential', allocation: Extent[], dirty?: Extent[]): CopyOp[] {
  const out: CopyOp[] = [];
  const push = (offset: number, length: number, op: CopyOp['op']) => {
    if (length <= 0) return;
    const last = out[out.length - 1];
    if (last && last.op === op && last.offset + last.length === offset) last.length += length;
    else out.push({ offset, length, op });
  };
  if (kind === 'full') {
    for (const a of allocation) if (!(a.flags & NBD_STATE_ZERO)) push(a.offset, a.length, 'data');
    return out;
  }
  if (!dirty) throw new Error(`a ${kind} pull needs the dirty bitmap's extents`);
  // Walk both sorted extent lists together: the intersection of dirty ranges with allocation states.
  let i = 0;
  for (const d of dirty) {
    if (!(d.flags & NBD_STATE_DIRTY)) continue;
    let pos = d.offset;
    const end = d.offset + d.length;
    while (pos < end) {
      while (i < allocation.length && allocation[i]!.offset + allocation[i]!.length <= pos) i++;
      const a = allocation[i];
      if (!a || a.offset > pos) throw new Error(`no allocation status for offset ${pos}: the maps do not cover the same disk`);
      const stop = Math.min(end, a.offset + a.length);
      push(pos, stop - pos, a.flags & NBD_STATE_ZERO ? 'zero' : 'data');
      pos = stop;
    }
  }
  return out;
}

/**
 * The ranges an incremental copy needs the allocation status of: the dirty extents, merged when
 * closer than `joinGap` bytes (one block status request for several nearby extents). Asking only
 * these, not the whole disk, keeps the cost with the dirty bytes, not with the disk's size.
 */
export function dirtyRanges(dirty: Extent[], joinGap = 0): { offset: number; length: number }[] {
  if (!Number.isSafeInteger(joinGap) || joinGap < 0) throw new RangeError(`join gap must be a non-negative integer, got ${joinGap}`);
  const out: { offset: number; length: number }[] = [];
  for (const d of dirty) {
    if (!(d.flags & NBD_STATE_DIRTY) || d.length <= 0) continue;
    const last = out[out.length - 1];
    if (last && d.offset < last.offset + last.length) throw new Error(`the dirty map is not in order at offset ${d.offset}`);
    if (last && d.offset - (last.offset + last.length) <= joinGap) last.length = d.offset + d.length - last.offset;
    else out.push({ offset: d.offset, length: d.length });
  }
  return out;
}

/** Splits operations into pieces of at most `max` bytes (reads and writes of a bounded size). */
export function splitOps(ops: CopyOp[], max: number): CopyOp[] {
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`piece size must be a positive integer, got ${max}`);
  const out: CopyOp[] = [];
  for (const o of ops) {
    // Zeroes carry no payload: only data is split.
    if (o.op === 'zero') {
      out.push(o);
      continue;
    }
    for (let pos = 0; pos < o.length; pos += max) out.push({ offset: o.offset + pos, length: Math.min(max, o.length - pos), op: 'data' });
  }
  return out;
}

/**
 * The plan in whole clusters of the layer, for a writer that takes only whole clusters (the last may
 * end at the disk's end). Data grows outward to its clusters: the bytes around a change come from the
 * same point-in-time export, so they are what the base shows there. A zero range keeps its whole
 * clusters; the clusters it only partly covers become data (read, so the rest of them stays right).
 * Operations stay in order and never overlap (a cluster two ranges touch is written once, as data).
 */
export function alignOps(ops: CopyOp[], clusterSize: number, diskSize: number): CopyOp[] {
  const out: CopyOp[] = [];
  const push = (offset: number, end: number, op: CopyOp['op']) => {
    const prev = out[out.length - 1];
    // Two ranges share at most the one cluster both partly cover, and that is data on both sides
    // (zero ranges keep only whole clusters): it is written once, by the earlier.
    if (prev && offset < prev.offset + prev.length) offset = prev.offset + prev.length;
    if (end <= offset) return;
    if (prev && prev.op === op && prev.offset + prev.length === offset) prev.length += end - offset;
    else out.push({ offset, length: end - offset, op });
  };
  const down = (n: number) => n - (n % clusterSize);
  const up = (n: number) => Math.min(diskSize, Math.ceil(n / clusterSize) * clusterSize);
  for (const o of ops) {
    const end = o.offset + o.length;
    if (o.op === 'data') {
      push(down(o.offset), up(end), 'data');
      continue;
    }
    const zFrom = Math.ceil(o.offset / clusterSize) * clusterSize;
    const zTo = end === diskSize ? end : down(end);
    if (zFrom >= zTo) {
      push(down(o.offset), up(end), 'data');
      continue;
    }
    if (zFrom > o.offset) push(down(o.offset), zFrom, 'data');
    push(zFrom, zTo, 'zero');
    if (zTo < end) push(zTo, up(end), 'data');
  }
  return out;
}
