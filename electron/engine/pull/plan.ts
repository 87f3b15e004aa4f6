// PURE planning of a pull-mode backup: the QMP transaction that fixes the point in time, and the
// copy operations that turn NBD block status into "read these bytes" / "write zeroes here".
//
// Fleecing method: the legacy `blockdev-backup sync=none` into a qcow2 overlay whose backing is
// the disk (notes §6 A), not copy-before-write + snapshot-access (§6 B). Why:
//  * it is a transaction action, so the temporary bitmaps, the new checkpoint and the point in
//    time are one atomic `transaction`, as every Tidemark operation is (plan → execute → record).
//    cbw + snapshot-access needs blockdev-add and qom-set, which are not transaction actions: the
//    guest must be stopped around ~9 commands (≈4.5 ms measured), each of which can fail half-way;
//  * the export reads everywhere: with a cbw `bitmap`, reads outside it fail with EINVAL (G9), so
//    `--export-only` consumers such as nbdcopy of the whole export would break;
//  * QEMU 7.2 serialises the job's copy-before-write against reads of the fleece image
//    (block-copy always sets BDRV_REQ_SERIALISING since 6.2), so a read cannot see a guest write
//    that raced it; libvirt 9.0 uses this same scheme for its pull mode.
// Its cost: the fleece image takes every cluster the guest overwrites during the pull, and QEMU
// 7.2 cannot make a fleece write failure break the snapshot instead of the guest write. So the
// fleece file's growth and its filesystem's free space are watched, and the pull is abandoned
// (everything rolled back) long before it could fill up.

import { NBD_STATE_DIRTY, NBD_STATE_ZERO } from '../../nbd/protocol';
import type { Extent } from '../../nbd/client';
import type { QmpAction } from '../checkpoints/api';
import type { BackupPlan } from '../backup/plan';

/** The transaction: temporary bitmaps, the new checkpoint, then one sync=none fleecing job per disk. */
export function pullActions(plan: BackupPlan, checkpointActions: QmpAction[] = []): QmpAction[] {
  const actions: QmpAction[] = [];
  for (const d of plan.disks) actions.push(...d.bitmapActions);
  actions.push(...checkpointActions);
  for (const d of plan.disks) {
    actions.push({ type: 'blockdev-backup', data: { 'job-id': d.jobId, device: d.disk.nodeName, target: d.targetNode, sync: 'none' } });
  }
  return actions;
}

/** blockdev-add of the fleece overlay: an empty qcow2 whose backing is the live disk's node. */
export function fleeceNodeArgs(nodeName: string, file: string, sourceNode: string): Record<string, unknown> {
  return { driver: 'qcow2', 'node-name': nodeName, file: { driver: 'file', filename: file }, backing: sourceNode };
}

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
