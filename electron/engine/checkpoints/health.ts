// PURE: metadata × live bitmaps → health issues, each with what it means for the admin.
// Foreign bitmaps (no metadata, not ours) are reported and never touched. Temporary bitmaps
// (tidemark-tmp-*) and anonymous ones (held by running jobs) are neither ours to judge nor foreign.
// Bitmaps of a pending checkpoint (prepared for a backup's transaction, not yet recorded) are ours
// too: "being created" while its operation runs, "left over" once that operation died or gave up.

import type { BitmapInfo, BitmapLayout, Checkpoint, DiskInfo, HealthIssue } from '../../../shared/domain';
import { TEMP_BITMAP_PREFIX } from '../names';
import { ancestors, bitmapOf, predecessor, shouldRecord, type PlanState } from './plan';

/** A checkpoint prepared by some operation but not recorded (yet). */
export interface PendingInput {
  checkpoint: Checkpoint;
  /** The operation that prepared it ("backup 2026…") and its process. */
  command: string;
  pid: number;
  /** in-progress: its operation still runs; interrupted: its process died; abandoned: its operation
   *  ended without committing or rolling it back. */
  status: 'in-progress' | 'interrupted' | 'abandoned';
}

export interface HealthInput {
  layout: BitmapLayout;
  checkpoints: ReadonlyMap<string, Checkpoint>;
  current?: string;
  disks: DiskInfo[];
  pending?: PendingInput[];
}

function liveBitmap(disk: DiskInfo | undefined, name: string): BitmapInfo | undefined {
  return disk?.bitmaps.find((b) => b.name === name);
}

/** "checkpoints c1, c2" for the ancestors that also lose their base on this disk (chained). */
function alsoAffected(state: PlanState, cp: string, disk: string): string {
  if (state.layout !== 'chained') return '';
  const older = ancestors(state, cp).filter((a) => bitmapOf(a, disk) !== undefined).map((a) => a.name);
  return older.length ? ` (nor can the older ${older.length === 1 ? 'checkpoint' : 'checkpoints'} ${older.join(', ')}, whose changes pass through it)` : '';
}

/** The pending checkpoints (not recorded) with the disks where their bitmaps exist now. */
function livePending(input: HealthInput): { p: PendingInput; disks: { disk: string; bitmap: string }[] }[] {
  const disks = new Map(input.disks.map((d) => [d.name, d]));
  return (input.pending ?? [])
    .filter((p) => !input.checkpoints.has(p.checkpoint.name))
    .map((p) => ({
      p,
      disks: p.checkpoint.disks.flatMap((d) => {
        const bitmap = bitmapOf(p.checkpoint, d.name);
        return bitmap !== undefined && liveBitmap(disks.get(d.name), bitmap) ? [{ disk: d.name, bitmap }] : [];
      }),
    }))
    .filter((x) => x.disks.length > 0);
}

function pendingIssue(p: PendingInput, disk: string, bitmap: string, layout: BitmapLayout, predecessor: string | undefined): HealthIssue {
  const cp = p.checkpoint.name;
  const base = { disk, checkpoint: cp, bitmap };
  if (p.status === 'in-progress') {
    return {
      ...base, state: 'checkpoint-pending', severity: 'info',
      message: `bitmap ${bitmap} on ${disk} belongs to checkpoint ${cp}, being created by ${p.command} (pid ${p.pid})`,
      consequence: `it becomes checkpoint ${cp} when that operation succeeds and is removed if it fails`,
    };
  }
  const how = p.status === 'interrupted' ? 'an interrupted' : 'an unfinished';
  const now = `(checkpoint-delete ${cp} does it now)`;
  return {
    ...base, state: 'checkpoint-left-over', severity: 'warning',
    message: `bitmap ${bitmap} on ${disk} was left by ${how} ${p.command} (pid ${p.pid}); checkpoint ${cp} was never recorded`,
    consequence: layout === 'chained' && predecessor !== undefined
      ? `writes to ${disk} since checkpoint ${predecessor} are tracked in it rather than in ${predecessor}'s bitmap; ` +
        `the next checkpoint change or backup of this VM merges it back into ${predecessor} and removes it ${now}`
      : `it is no checkpoint and no backup can use it; the next checkpoint change or backup of this VM removes it ${now}`,
  };
}

export function checkHealth(input: HealthInput): HealthIssue[] {
  const issues: HealthIssue[] = [];
  const state: PlanState = { layout: input.layout, checkpoints: input.checkpoints, current: input.current };
  const disks = new Map(input.disks.map((d) => [d.name, d]));
  const ours = new Map<string, Set<string>>(); // disk → bitmap names owned by a checkpoint
  const pending = livePending(input);
  // Where a pending checkpoint's bitmap exists, it is the newest on that disk: in the chained layout
  // it records and its predecessor is disabled, as after a create.
  const stateOn = (disk: string): PlanState => {
    const p = pending.find((x) => x.disks.some((d) => d.disk === disk))?.p;
    if (!p) return state;
    return { layout: state.layout, checkpoints: new Map([...input.checkpoints, [p.checkpoint.name, p.checkpoint]]), current: p.checkpoint.name };
  };

  if (input.current !== undefined && !input.checkpoints.has(input.current)) {
    issues.push({
      state: 'metadata-missing', severity: 'warning', disk: '', checkpoint: input.current,
      message: `the current checkpoint ${input.current} has no metadata`,
      consequence: 'the next checkpoint will have no parent',
    });
  }
  for (const cp of input.checkpoints.values()) {
    if (cp.parent !== undefined && !input.checkpoints.has(cp.parent)) {
      issues.push({
        state: 'metadata-missing', severity: 'warning', disk: '', checkpoint: cp.name,
        message: `the parent ${cp.parent} of checkpoint ${cp.name} has no metadata`,
        consequence: `${cp.name} is shown as a root of the checkpoint tree`,
      });
    }
  }

  for (const cp of input.checkpoints.values()) {
    for (const d of cp.disks) {
      const bitmap = bitmapOf(cp, d.name);
      if (bitmap === undefined) continue;
      if (!ours.has(d.name)) ours.set(d.name, new Set());
      ours.get(d.name)!.add(bitmap);
      const disk = disks.get(d.name);
      const base = { disk: d.name, checkpoint: cp.name, bitmap };
      const unusable = `checkpoint ${cp.name} cannot be used as a base for ${d.name}${alsoAffected(state, cp.name, d.name)}; the next backup of ${d.name} based on it will be full`;
      if (!disk) {
        issues.push({ ...base, state: 'bitmap-missing', severity: 'error', message: `disk ${d.name} of checkpoint ${cp.name} is no longer attached to the VM`, consequence: unusable });
        continue;
      }
      const live = liveBitmap(disk, bitmap);
      if (!live) {
        issues.push({ ...base, state: 'bitmap-missing', severity: 'error', message: `bitmap ${bitmap} of checkpoint ${cp.name} is missing on ${d.name}`, consequence: unusable });
        continue;
      }
      if (live.inconsistent) {
        issues.push({
          ...base, state: 'bitmap-inconsistent', severity: 'error',
          message: `bitmap ${bitmap} on ${d.name} is inconsistent (QEMU was not shut down cleanly)`,
          consequence: `${unusable}; delete the checkpoint to clean up`,
        });
        continue;
      }
      if (d.incomplete) {
        issues.push({ ...base, state: 'bitmap-missing', severity: 'warning', message: `checkpoint ${cp.name} misses changes on ${d.name}: ${d.incomplete}`, consequence: unusable });
      }
      if (live.busy) {
        issues.push({ ...base, state: 'bitmap-busy', severity: 'info', message: `bitmap ${bitmap} on ${d.name} is in use by a running job`, consequence: `checkpoint ${cp.name} cannot be changed or deleted until that job ends` });
      }
      const expect = shouldRecord(stateOn(d.name), cp.name, d.name);
      if (expect && !live.recording) {
        issues.push({
          ...base, state: 'bitmap-not-recording', severity: 'error',
          message: `bitmap ${bitmap} on ${d.name} is not recording`,
          consequence: `writes to ${d.name} are not tracked for checkpoint ${cp.name}${alsoAffected(state, cp.name, d.name)}; a backup based on it would miss data, so it is refused`,
        });
      } else if (!expect && live.recording) {
        issues.push({
          ...base, state: 'bitmap-recording-unexpectedly', severity: 'warning',
          message: `bitmap ${bitmap} on ${d.name} is recording, but in the chained layout only the newest checkpoint's bitmap should`,
          consequence: `backups of ${d.name} based on ${cp.name} or older checkpoints copy more than needed (still correct)`,
        });
      }
    }
  }

  for (const { p, disks: on } of pending) {
    for (const { disk, bitmap } of on) {
      if (!ours.has(disk)) ours.set(disk, new Set());
      ours.get(disk)!.add(bitmap);
      const pred = predecessor(stateOn(disk), p.checkpoint.name, disk)?.name;
      issues.push(pendingIssue(p, disk, bitmap, input.layout, pred));
    }
  }

  for (const disk of input.disks) {
    if (!disk.bitmapCapable) {
      issues.push({
        state: 'disk-incapable', severity: 'info', disk: disk.name,
        message: `${disk.name} cannot hold checkpoint bitmaps: ${disk.bitmapIncapableReason ?? 'unsupported image'}`,
        consequence: `checkpoints leave ${disk.name} out; every backup of ${disk.name} is full`,
      });
    }
    const mine = ours.get(disk.name) ?? new Set<string>();
    for (const b of disk.bitmaps) {
      if (b.name === undefined || b.name.startsWith(TEMP_BITMAP_PREFIX) || mine.has(b.name)) continue;
      issues.push({
        state: 'foreign-bitmap', severity: 'info', disk: disk.name, bitmap: b.name,
        message: `foreign bitmap ${b.name} on ${disk.name} is left alone`,
        consequence: `Tidemark neither uses nor changes it; a checkpoint named ${b.name} cannot be created`,
      });
    }
  }
  return issues;
}

export type BitmapValidity = { ok: true } | { ok: false; reason: string };

/**
 * libvirt's redefine-validate check for one disk, per layout:
 *  1. the bitmap is present on the top image (the format node we see);
 *  2. contiguity down the backing chain is not checked: Tidemark only uses the top layer;
 *  3. recording: required in the independent layout; in the chained layout a disabled bitmap is
 *     valid too (it holds its own interval), so only presence and consistency count;
 *  4. persistent and not inconsistent.
 */
export function bitmapIsValidForCheckpoint(disk: DiskInfo, name: string, layout: BitmapLayout = 'independent'): BitmapValidity {
  const b = liveBitmap(disk, name);
  if (!b) return { ok: false, reason: `bitmap ${name} is not present on ${disk.name}` };
  if (b.inconsistent) return { ok: false, reason: `bitmap ${name} on ${disk.name} is inconsistent` };
  if (!b.persistent) return { ok: false, reason: `bitmap ${name} on ${disk.name} is not persistent` };
  if (layout === 'independent' && !b.recording) return { ok: false, reason: `bitmap ${name} on ${disk.name} is not recording` };
  return { ok: true };
}
