// Which bitmaps each disk holds, and which disks are alike for their lanes. A VM's checkpoints
// normally cover every disk, and QEMU lists each disk's bitmaps in creation order, so a VM's disks
// mostly hold the same bitmaps in the same states: diskLanes builds such a lane once and gives the
// other disks a copy with their own counts (the first render runs its loops over one disk, not eight).

import type { BitmapInfo, Checkpoint } from '../../../shared/domain';
import { bitmapOfDisk } from '../model/bitmaps';

/** A checkpoint with a bitmap on a disk, and the bitmap's name. */
export interface OnDisk {
  cp: Checkpoint;
  bitmap: string;
}

/**
 * Per disk (in the order of `disks`), the checkpoints with a bitmap on it and the bitmap's name, in
 * checkpoint order: bitmapOn() for every checkpoint and disk, but in one pass over each checkpoint's
 * disks (a search per checkpoint and disk was most of a cold diskLanes at 1,000 × 8).
 */
export function bitmapsOnDisks(checkpoints: readonly Checkpoint[], disks: readonly string[]): OnDisk[][] {
  const index = new Map(disks.map((d, i) => [d, i]));
  const out = disks.map(() => [] as OnDisk[]);
  const seenAt = disks.map(() => -1); // a checkpoint's first entry for a disk is the one that counts
  for (let c = 0; c < checkpoints.length; c++) {
    const cp = checkpoints[c]!;
    for (const d of cp.disks) {
      const i = index.get(d.name);
      if (i === undefined || seenAt[i] === c) continue;
      seenAt[i] = c;
      const bitmap = bitmapOfDisk(cp, d);
      if (bitmap !== undefined) out[i]!.push({ cp, bitmap });
    }
  }
  return out;
}

/** The same checkpoints with the same bitmap names, in the same order. */
export function sameOnDisk(a: readonly OnDisk[], b: readonly OnDisk[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.cp !== b[i]!.cp || a[i]!.bitmap !== b[i]!.bitmap) return false;
  return true;
}

/**
 * The same live bitmaps, by name and the flags a lane reads, in the same order (both unknown counts
 * too); their counts may differ. Same order, so a bitmap's place in one list is its place in the other.
 */
export function sameLiveFlags(a: readonly BitmapInfo[] | undefined, b: readonly BitmapInfo[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.name !== y.name || x.recording !== y.recording || x.busy !== y.busy || x.inconsistent !== y.inconsistent) return false;
  }
  return true;
}
