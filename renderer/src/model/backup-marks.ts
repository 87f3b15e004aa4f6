// Backups as the timeline and the details show them: every backup of the repository plus the
// running and failed backup jobs, each a marker bracketed back to the checkpoint it measured from.

import type { BackupKind, BackupRecord, JobInfo } from '../../../shared/contract';
import type { Checkpoint } from '../../../shared/domain';

export type { BackupKind };

/** A backup as the timeline shows it: a marker bracketed back to its base checkpoint. */
export interface BackupMark {
  id: string;
  time: number;
  kind: BackupKind;
  state: 'ok' | 'failed' | 'running';
  /** The checkpoint the backup measured from (incremental/differential). */
  base?: string;
  baseTime?: number;
  /** Disks this backup covers, with bytes copied when known. */
  disks: { disk: string; bytes?: number; kind?: BackupKind; reason?: string }[];
  /** Why it failed, when it did. */
  error?: string;
  /** Pull mode: Tidemark copied the point in time over NBD (issue 5); push otherwise. */
  pull?: boolean;
}

/** "Backup (since c3) to /repo", "Backup (full) to …", "Backup (incremental) to …" → kind and base. */
export function parseBackupTitle(title: string): { kind: BackupKind; since?: string } {
  const m = /^Backup \((full|incremental|since (.+))\) to /.exec(title);
  if (!m) return { kind: 'full' };
  if (m[1] === 'full') return { kind: 'full' };
  if (m[1] === 'incremental') return { kind: 'incremental' };
  return { kind: 'incremental', since: m[2] };
}

/** A pull job's kind and base, from its log ("pull incremental backup of vda (incremental since c1), …"). */
export function parsePullLog(log: readonly string[]): { kind: BackupKind; since?: string } {
  for (const line of log) {
    const m = /pull (full|incremental|differential) backup of .*?since ([^,)\s]+)\)|pull (full|incremental|differential) backup of /.exec(line);
    if (m) return m[1] ? { kind: m[1] as BackupKind, since: m[2] } : { kind: m[3] as BackupKind };
  }
  return { kind: 'full' };
}

/**
 * Timeline markers: every backup in the repository (■ full, ◧ incremental, ◇ differential, per
 * disk what was actually done; push and pull alike), plus running and failed/cancelled backup and
 * pull jobs (✕ stays visible).
 * A backup "since X" is incremental when X is the checkpoint of the previous backup of that
 * chain, otherwise differential.
 */
export function backupMarks(records: readonly BackupRecord[], checkpoints: readonly Checkpoint[], jobs: readonly JobInfo[], isThisVm: (id: string) => boolean, allDisks: readonly string[]): BackupMark[] {
  const cpTime = new Map(checkpoints.map((c) => [c.name, c.createdAtMs]));
  const sorted = [...records].sort((a, b) => a.startedAt - b.startedAt);
  const timeOf = (checkpoint: string | undefined): number | undefined => {
    if (checkpoint === undefined) return undefined;
    return cpTime.get(checkpoint) ?? sorted.find((r) => r.checkpoint === checkpoint)?.startedAt;
  };
  const marks: BackupMark[] = [];
  sorted.forEach((r, i) => {
    // The previous backup's checkpoint: measuring from it continues the chain (incremental).
    const previous = sorted.slice(0, i).reverse().find((p) => p.checkpoint !== undefined)?.checkpoint;
    const diskKind = (k: BackupKind, since: string | undefined): BackupKind => (k === 'full' ? 'full' : since !== undefined && since === previous ? 'incremental' : 'differential');
    marks.push({
      id: r.id,
      time: r.startedAt,
      kind: diskKind(r.kind, r.since),
      state: 'ok',
      base: r.since,
      baseTime: timeOf(r.since),
      disks: r.disks.map((d) => ({ disk: d.name, bytes: d.bytesCopied, kind: diskKind(d.kind, d.since ?? r.since), ...(d.fallbackReason ? { reason: `full: ${d.fallbackReason}` } : {}) })),
      ...(r.tool.endsWith('(pull)') ? { pull: true } : {}),
    });
  });
  for (const j of jobs) {
    if ((j.kind !== 'backup' && j.kind !== 'pull') || !isThisVm(j.vmId) || j.state === 'succeeded') continue;
    const { kind, since } = j.kind === 'pull' ? parsePullLog(j.log) : parseBackupTitle(j.title);
    const disks = j.progress.length > 0 ? j.progress.map((p) => p.disk) : allDisks;
    marks.push({
      id: j.id,
      time: j.startedAt,
      kind,
      state: j.state === 'running' ? 'running' : 'failed',
      base: since,
      baseTime: timeOf(since),
      disks: disks.map((disk) => ({ disk })),
      error: j.state === 'cancelled' ? 'cancelled' : j.error,
      ...(j.kind === 'pull' ? { pull: true } : {}),
    });
  }
  return marks;
}
