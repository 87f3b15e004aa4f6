// PURE: the QMP side of a backup plan. Per disk, the names of the QEMU objects a backup creates
// (job, target or fleece node, temporary bitmap) and the temporary bitmap's actions; then the one
// transaction of a push backup and of a pull backup.
//
// Pull's fleecing method: the legacy `blockdev-backup sync=none` into a qcow2 overlay whose backing
// is the disk (notes §6 A), not copy-before-write + snapshot-access (§6 B). Why:
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

import type { DiskInfo } from '../../../shared/domain';
import type { QmpAction } from '../checkpoints/api';
import type { BackupPlan, DiskPlan } from '../backup/plan';

export interface BackupNames {
  jobId(i: number): string;
  targetNode(i: number): string;
  tmpBitmap(i: number): string;
}

/** QEMU object names for backup `tag` (6 hex digits): jobs, target nodes (≤ 31 chars) and temporary bitmaps. */
export function backupNames(tag: string): BackupNames {
  return {
    jobId: (i) => `tidemark-bk-${tag}-${i}`,
    targetNode: (i) => `tidemark-bkt-${tag}-${i}`,
    tmpBitmap: (i) => `tidemark-tmp-bk-${tag}-${i}`,
  };
}

/** One planned disk as QEMU sees it. */
export interface QmpDiskRun {
  plan: DiskPlan;
  jobId: string;
  /** The push target's node, or the pull's fleece node. */
  targetNode: string;
  /** Temporary merged bitmap of the changes since the base (incremental/differential). */
  tmpBitmap?: string;
  /** add + merge of the temporary bitmap. */
  bitmapActions: QmpAction[];
}

/**
 * Names and temporary-bitmap actions for every planned disk. `tempBitmapActions` is the checkpoint
 * engine's; the plan already asked whether each base is usable, so it does not throw here.
 */
export function qmpDiskRuns(plan: BackupPlan, names: BackupNames, tempBitmapActions: (since: string, disk: string, tmp: string) => QmpAction[]): QmpDiskRun[] {
  return plan.disks.map((d, i) => {
    const run: QmpDiskRun = { plan: d, jobId: names.jobId(i), targetNode: names.targetNode(i), bitmapActions: [] };
    if (d.kind !== 'full' && d.since !== undefined) {
      run.tmpBitmap = names.tmpBitmap(i);
      run.bitmapActions = tempBitmapActions(d.since, d.disk.name, run.tmpBitmap);
    }
    return run;
  });
}

/**
 * The push transaction, in order: temporary bitmaps (add + merge), then the new checkpoint's
 * actions, then one blockdev-backup per disk with auto-finalize and auto-dismiss off, so that
 * all jobs are finalized together or cancelled together.
 */
export function backupActions(
  disks: QmpDiskRun[],
  options: { checkpointActions?: QmpAction[]; speed?: number; fullSync?: (disk: DiskInfo) => 'full' | 'top'; copyRange?: boolean },
): QmpAction[] {
  const actions: QmpAction[] = [];
  for (const d of disks) actions.push(...d.bitmapActions);
  actions.push(...(options.checkpointActions ?? []));
  for (const d of disks) {
    const data: Record<string, unknown> = {
      'job-id': d.jobId,
      device: d.plan.disk.nodeName,
      target: d.targetNode,
      'auto-finalize': false,
      'auto-dismiss': false,
    };
    if (d.plan.kind === 'full') {
      data.sync = options.fullSync?.(d.plan.disk) ?? 'full';
    } else {
      // sync=bitmap + bitmap-mode=never: the temporary bitmap is read, never cleared (G6).
      data.sync = 'bitmap';
      data.bitmap = d.tmpBitmap;
      data['bitmap-mode'] = 'never';
    }
    if (options.speed !== undefined && options.speed > 0) data.speed = options.speed;
    // copy_file_range instead of QEMU's bounce buffers, when copy-range.ts says it is safe.
    if (options.copyRange) data['x-perf'] = { 'use-copy-range': true };
    actions.push({ type: 'blockdev-backup', data });
  }
  return actions;
}

/** The pull transaction: temporary bitmaps, the new checkpoint, then one sync=none fleecing job per disk. */
export function pullActions(disks: QmpDiskRun[], checkpointActions: QmpAction[] = []): QmpAction[] {
  const actions: QmpAction[] = [];
  for (const d of disks) actions.push(...d.bitmapActions);
  actions.push(...checkpointActions);
  for (const d of disks) {
    actions.push({ type: 'blockdev-backup', data: { 'job-id': d.jobId, device: d.plan.disk.nodeName, target: d.targetNode, sync: 'none' } });
  }
  return actions;
}

/** blockdev-add of the fleece overlay: an empty qcow2 whose backing is the live disk's node. */
export function fleeceNodeArgs(nodeName: string, file: string, sourceNode: string): Record<string, unknown> {
  return { driver: 'qcow2', 'node-name': nodeName, file: { driver: 'file', filename: file }, backing: sourceNode };
}
