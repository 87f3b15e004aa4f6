// PURE planning of "changes since a checkpoint": which checkpoint bitmaps hold them on a disk, and
// the actions that merge those into a temporary bitmap (for backups, pulls and --size). No I/O.

import type { ChangesSince, Checkpoint } from '../../../shared/domain';
import type { QmpAction } from './api';
import { ancestors, bitmapOf, diskEntry, type PlanCheckpoint, type PlanLive, type PlanState } from './plan';

/**
 * The bitmaps whose union is "changes on `disk` since checkpoint `since`": independent → its own
 * bitmap; chained → its bitmap and every later one on the path to the current checkpoint.
 * Throws, naming the reason, when that cannot be computed.
 */
export function changesSinceBitmaps(state: PlanState, since: string, disk: string, live: Pick<PlanLive, 'bitmap'>): string[] {
  const cp = state.checkpoints.get(since);
  if (!cp) throw new Error(`checkpoint ${since} not found`);
  const own = bitmapOf(cp, disk);
  if (own === undefined) throw new Error(`checkpoint ${since} has no bitmap on ${disk} (the disk was not part of it)`);
  let chain: PlanCheckpoint[] = [cp];
  if (state.layout === 'chained') {
    if (state.current === undefined) throw new Error(`there is no current checkpoint, so changes since ${since} cannot be computed`);
    const path = [state.checkpoints.get(state.current)!, ...ancestors(state, state.current)];
    const at = path.findIndex((p) => p.name === since);
    if (at < 0) throw new Error(`checkpoint ${since} is not an ancestor of the current checkpoint ${state.current}; in the chained layout changes are only known along that path`);
    chain = path.slice(0, at + 1).reverse().filter((p) => bitmapOf(p, disk) !== undefined);
  }
  const out: string[] = [];
  for (const p of chain) {
    const b = bitmapOf(p, disk)!;
    const st = live.bitmap(disk, b);
    if (st === 'missing') throw new Error(`bitmap ${b} of checkpoint ${p.name} is missing on ${disk}`);
    if (st === 'inconsistent') throw new Error(`bitmap ${b} of checkpoint ${p.name} on ${disk} is inconsistent (QEMU was not shut down cleanly)`);
    out.push(b);
  }
  const inc = diskEntry(cp, disk)?.incomplete;
  if (inc) throw new Error(`checkpoint ${since} cannot be used on ${disk}: ${inc}`);
  return out;
}

/** Actions that fill the temporary bitmap `tmpName` on `disk` with the changes since `since`. */
export function planTempBitmap(state: PlanState, since: string, disk: string, tmpName: string, live: PlanLive): QmpAction[] {
  const bitmaps = changesSinceBitmaps(state, since, disk, live);
  const node = live.node(disk);
  return [
    { type: 'block-dirty-bitmap-add', data: { node, name: tmpName, persistent: false, disabled: true } },
    { type: 'block-dirty-bitmap-merge', data: { node, target: tmpName, bitmaps } },
  ];
}

/** A copy of `cp` with each bitmap disk's size from measured changes, where usable (dumpxml --size). */
export function withSizes(cp: Checkpoint, changes: ChangesSince): Checkpoint {
  const out = structuredClone(cp);
  for (const d of out.disks) {
    const row = changes.disks.find((r) => r.disk === d.name);
    if (d.checkpoint === 'bitmap' && row?.usable) d.size = row.bytes;
  }
  return out;
}
