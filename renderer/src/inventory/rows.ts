// PURE: the rows of the backups view — one per backup, per backup that failed, and per manifest
// that cannot be read — with the figures an admin compares (size per disk, duration, throughput,
// last verification), and their sorting and filtering. Unit-tested in rows.test.ts.

import type { BackupInventory, BackupKind, BackupRecord, VerifyRecord } from '../../../shared/contract';

export type RowStatus = 'ok' | 'verify-failed' | 'broken-chain' | 'failed' | 'cancelled' | 'damaged';

export interface BackupRow {
  /** Backup id, or the unreadable manifest's file. */
  key: string;
  type: 'backup' | 'failed' | 'damaged';
  status: RowStatus;
  /** "full", "incremental", "incremental (vdb full)" … */
  kind: BackupKind | 'unknown';
  kindText: string;
  /** The checkpoint it measured changes from and the backup it builds on ("since c3 · on 2026…-000a"). */
  baseText: string;
  checkpoint?: string;
  startedAt?: number;
  durationMs?: number;
  /** Bytes of the layer files (what the backup takes in the repository). */
  size?: number;
  /** Bytes the backup copied (dirty or allocated bytes). */
  copied?: number;
  disks: { disk: string; kind: BackupKind; copied: number; size: number; virtualSize: number; fallbackReason?: string }[];
  /** Copied bytes per second of the backup's run. */
  throughput?: number;
  verified?: VerifyRecord;
  /** Backups that build on this one. */
  dependents: string[];
  /** Why it failed or cannot be read; why its chain is broken. */
  reason?: string;
  record?: BackupRecord;
}

/** Backups whose chain (on any disk) goes through `id`, nearest first (as the repository's dependents()). */
export function dependentsOf(id: string, oldestFirst: readonly BackupRecord[]): string[] {
  const hit = new Set([id]);
  const out: string[] = [];
  for (const m of oldestFirst) {
    if (m.disks.some((d) => d.base !== undefined && hit.has(d.base))) {
      out.push(m.id);
      hit.add(m.id);
    }
  }
  return out;
}

function kindText(b: BackupRecord): string {
  const odd = b.disks.filter((d) => d.kind !== b.kind);
  return odd.length === 0 ? b.kind : `${b.kind} (${odd.map((d) => `${d.name} ${d.kind}`).join(', ')})`;
}

function baseText(b: BackupRecord): string {
  const since = [...new Set(b.disks.map((d) => d.since).filter((s): s is string => s !== undefined))];
  const bases = [...new Set(b.disks.map((d) => d.base).filter((s): s is string => s !== undefined))];
  if (since.length === 0 && bases.length === 0) return '—';
  return [since.length ? `since ${since.join(', ')}` : '', bases.length ? `on ${bases.join(', ')}` : ''].filter(Boolean).join(' · ');
}

/** A repository problem's message without the absolute path it repeats (the row shows the file's name). */
function problemText(file: string, message: string): string {
  const own = `manifest ${file} `;
  if (message.startsWith(own)) return message.slice(own.length); // "is invalid: manifest.version: …"
  return message.split(file).join(file.split('/').pop() ?? file);
}

/** Every row of one VM's inventory, newest first. */
export function backupRows(inv: BackupInventory): BackupRow[] {
  const byId = new Map(inv.backups.map((b) => [b.id, b]));
  const rows: BackupRow[] = inv.backups.map((b) => {
    const durationMs = Math.max(0, b.completedAt - b.startedAt);
    const copied = b.disks.reduce((s, d) => s + d.bytesCopied, 0);
    const size = b.disks.reduce((s, d) => s + d.fileSize, 0);
    const missing = b.disks.find((d) => d.base !== undefined && !byId.has(d.base));
    const verified = inv.verified[b.id];
    const status: RowStatus = missing ? 'broken-chain' : verified && !verified.ok ? 'verify-failed' : 'ok';
    return {
      key: b.id, type: 'backup', status, kind: b.kind, kindText: kindText(b), baseText: baseText(b),
      ...(b.checkpoint !== undefined ? { checkpoint: b.checkpoint } : {}),
      startedAt: b.startedAt, durationMs, size, copied,
      disks: b.disks.map((d) => ({ disk: d.name, kind: d.kind, copied: d.bytesCopied, size: d.fileSize, virtualSize: d.virtualSize, ...(d.fallbackReason ? { fallbackReason: d.fallbackReason } : {}) })),
      ...(durationMs > 0 ? { throughput: copied / (durationMs / 1000) } : {}),
      ...(verified ? { verified } : {}),
      dependents: dependentsOf(b.id, inv.backups),
      ...(missing ? { reason: `${missing.name} builds on backup ${missing.base}, whose manifest is gone: this backup cannot be restored` } : {}),
      record: b,
    };
  });
  for (const f of inv.failed) {
    rows.push({
      key: f.id, type: 'failed', status: f.outcome, kind: 'unknown', kindText: f.outcome === 'cancelled' ? 'cancelled' : 'failed', baseText: '—',
      startedAt: f.startedAt, durationMs: Math.max(0, f.endedAt - f.startedAt), disks: [], dependents: [], reason: f.reason,
    });
  }
  for (const p of inv.problems) {
    rows.push({ key: p.file, type: 'damaged', status: 'damaged', kind: 'unknown', kindText: 'unreadable manifest', baseText: '—', disks: [], dependents: [], reason: problemText(p.file, p.message) });
  }
  return sortRows(rows, { key: 'time', dir: 'desc' });
}

export type SortKey = 'time' | 'kind' | 'size' | 'copied' | 'duration' | 'throughput' | 'verified';
export interface Sort { key: SortKey; dir: 'asc' | 'desc' }

function sortValue(r: BackupRow, key: SortKey): number | string | undefined {
  switch (key) {
    case 'time': return r.startedAt;
    case 'kind': return r.kindText;
    case 'size': return r.size;
    case 'copied': return r.copied;
    case 'duration': return r.durationMs;
    case 'throughput': return r.throughput;
    case 'verified': return r.verified?.at;
  }
}

/** Sorted by `sort`; rows without the value (a failed backup has no size) always last; ties newest first. */
export function sortRows(rows: readonly BackupRow[], sort: Sort): BackupRow[] {
  const sign = sort.dir === 'asc' ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = sortValue(a, sort.key);
    const y = sortValue(b, sort.key);
    if (x === undefined || y === undefined) {
      if (x !== y) return x === undefined ? 1 : -1;
    } else if (x !== y) return (x < y ? -1 : 1) * sign;
    return (b.startedAt ?? 0) - (a.startedAt ?? 0) || a.key.localeCompare(b.key);
  });
}

export interface RowFilter {
  /** Words that must all appear in the id, kind, base, checkpoint, status or reason (case-insensitive). */
  text: string;
  kind: BackupKind | 'all';
  /** Show failed backups and unreadable manifests (shown by default: they are what needs attention). */
  problems: boolean;
}

export function filterRows(rows: readonly BackupRow[], f: RowFilter): BackupRow[] {
  const words = f.text.toLowerCase().split(/\s+/).filter(Boolean);
  return rows.filter((r) => {
    if (r.type !== 'backup' && !f.problems) return false;
    if (f.kind !== 'all' && r.kind !== f.kind && !(r.type === 'backup' && r.disks.some((d) => d.kind === f.kind))) return false;
    if (words.length === 0) return true;
    const hay = [r.key, r.kindText, r.baseText, r.checkpoint ?? '', statusText(r.status), r.reason ?? ''].join(' ').toLowerCase();
    return words.every((w) => hay.includes(w));
  });
}

export function statusText(s: RowStatus): string {
  switch (s) {
    case 'ok': return 'ok';
    case 'verify-failed': return 'verification failed';
    case 'broken-chain': return 'chain broken';
    case 'failed': return 'failed';
    case 'cancelled': return 'cancelled';
    case 'damaged': return 'unreadable';
  }
}
