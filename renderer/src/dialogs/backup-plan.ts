// What a backup will do, before it runs (P11): the base an incremental continues from, and per disk
// the bytes it will copy — measured from the bitmaps (exact when measured), or, for a disk copied
// in full, the disk's size, which is an upper bound and is said to be one (only allocated data is
// copied). Pure, so the wording is unit-tested.

import type { BackupRecord } from '../../../shared/contract';
import type { ChangesSince, Checkpoint, VmInfo } from '../../../shared/domain';
import { formatBytes } from '../format';

export type Kind = 'incremental' | 'differential' | 'full';

/** The checkpoint an incremental continues from: the newest backup's checkpoint that still exists. */
export function incrementalBase(backups: readonly BackupRecord[], checkpoints: readonly Checkpoint[]): { checkpoint: string; backup: BackupRecord } | undefined {
  const names = new Set(checkpoints.map((c) => c.name));
  const sorted = [...backups].sort((a, b) => b.startedAt - a.startedAt);
  const b = sorted.find((r) => r.checkpoint !== undefined && names.has(r.checkpoint));
  return b ? { checkpoint: b.checkpoint!, backup: b } : undefined;
}

export interface DiskEstimate {
  disk: string;
  bytes: number;
  /** Why this disk is copied in full although a base was chosen. */
  fallback?: string;
}

/**
 * Bytes each disk would copy: the dirty bytes since the base, or the whole disk when full or when
 * the changes cannot be used — the bitmap is unusable, or (given the repository's backups) no
 * backup there holds the disk at the base checkpoint, so there is no layer to build on.
 */
export function estimateBytes(info: VmInfo, kind: Kind, changes: ChangesSince | undefined, chosen: readonly string[], backups?: readonly BackupRecord[]): DiskEstimate[] | undefined {
  return chosen.map((name) => {
    const d = info.disks.find((x) => x.name === name)!;
    if (kind === 'full') return { disk: name, bytes: d.virtualSize };
    if (!d.bitmapCapable) return { disk: name, bytes: d.virtualSize, fallback: `${name} cannot hold bitmaps${d.bitmapIncapableReason ? ` (${d.bitmapIncapableReason})` : ''}` };
    if (changes && backups && !backups.some((b) => b.checkpoint === changes.checkpoint && b.disks.some((x) => x.name === name && x.checkpointBitmap))) {
      return { disk: name, bytes: d.virtualSize, fallback: `no backup in this repository holds ${name} at ${changes.checkpoint}` };
    }
    const c = changes?.disks.find((x) => x.disk === name);
    if (!changes) return { disk: name, bytes: Number.NaN };
    if (!c) return { disk: name, bytes: d.virtualSize, fallback: `${changes.checkpoint} has no bitmap on ${name}` };
    if (!c.usable) return { disk: name, bytes: d.virtualSize, fallback: c.reason ?? `the bitmap of ${changes.checkpoint} on ${name} is unusable` };
    return { disk: name, bytes: c.bytes };
  });
}

/** The footer's one line: what is measured, and what is only bounded by disk sizes. */
export function estimateSummary(estimates: readonly DiskEstimate[], kind: Kind): string {
  if (estimates.some((e) => Number.isNaN(e.bytes))) return 'Measuring…';
  const bounded = estimates.filter((e) => kind === 'full' || e.fallback !== undefined);
  const measured = estimates.filter((e) => !bounded.includes(e));
  const sum = (xs: readonly DiskEstimate[]) => xs.reduce((s, e) => s + e.bytes, 0);
  if (bounded.length === 0) return `${formatBytes(sum(measured))} to copy (measured from the bitmaps)`;
  const bound = `up to ${formatBytes(sum(bounded))} for ${bounded.map((e) => e.disk).join(', ')} copied in full (disk size: only allocated data is copied, often far less)`;
  if (measured.length === 0) return `${bound[0]!.toUpperCase()}${bound.slice(1)}`;
  return `${formatBytes(sum(measured))} measured from the bitmaps + ${bound}`;
}
