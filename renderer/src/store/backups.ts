// Backups and restore in the store (the issue 3 channels): the repository in use, the backups of
// each VM, starting a backup or a restore. Backup and restore calls resolve when their job has
// ended; progress arrives meanwhile as job:update events (kept in the jobs slice).

import type { StoreApi } from 'zustand/vanilla';
import type {
  AppApi, BackupBeginOptions, BackupBeginResult, BackupRecord, JobInfo, RestoreOutcome, RestoreRequest,
} from '../../../shared/contract';
import type { Checkpoint } from '../../../shared/domain';
import type { BackupKind, BackupMark } from '../timeline/model';
import { isSameVm, type AppState } from './store';

export interface BackupSlice {
  /** Repository chosen by the user (undefined: the host's default, STATE/backups). */
  repository?: string;
  /** The repository path the host resolved (from the last listing). */
  repositoryResolved?: string;
  /** Backups per VM, oldest first. */
  backups: Record<string, BackupRecord[]>;
  backupsError?: string;
  setRepository(path: string | undefined): void;
  loadBackups(vmId: string): Promise<void>;
  startBackup(options: BackupBeginOptions): Promise<BackupBeginResult>;
  runRestore(request: RestoreRequest): Promise<RestoreOutcome>;
  onJobEnded(job: JobInfo): void;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function createBackupSlice(api: AppApi, set: StoreApi<AppState>['setState'], get: StoreApi<AppState>['getState']): BackupSlice {
  return {
    backups: {},

    setRepository(path) {
      set({ repository: path && path.trim() !== '' ? path.trim() : undefined });
      const vmId = get().selectedVmId;
      if (vmId !== undefined) void get().loadBackups(vmId);
    },

    async loadBackups(vmId) {
      try {
        // List the whole repository and filter here: an `undefined` repo in the middle of the
        // argument list would reach the host as null over JSON.
        const repo = get().repository;
        const listing = repo === undefined ? await api.invoke('backup:list') : await api.invoke('backup:list', repo);
        const info = get().byVm[vmId]?.info;
        const mine = listing.backups.filter((b) => isSameVm(b.vm.id, vmId, info) || (b.vm.uuid !== undefined && isSameVm(b.vm.uuid, vmId, info)));
        set((s) => ({ backups: { ...s.backups, [vmId]: mine }, repositoryResolved: listing.repo, backupsError: undefined }));
      } catch (e) {
        set({ backupsError: message(e) });
      }
    },

    async startBackup(options) {
      const vmId = get().selectedVmId;
      if (vmId === undefined) throw new Error('no VM is selected');
      const repo = get().repository;
      const result = await api.invoke('backup:begin', vmId, { ...options, ...(repo !== undefined && options.repo === undefined ? { repo } : {}) });
      set((s) => ({ jobs: { ...s.jobs, [result.job.id]: result.job } }));
      get().announce(`Backup ${result.backup.id} finished`);
      await get().loadBackups(vmId);
      return result;
    },

    async runRestore(request) {
      const repo = get().repository;
      const outcome = await api.invoke('restore:run', { ...request, ...(repo !== undefined && request.repo === undefined ? { repo } : {}) });
      set((s) => ({ jobs: { ...s.jobs, [outcome.job.id]: outcome.job } }));
      return outcome;
    },

    onJobEnded(job) {
      if (job.kind !== 'backup' && job.kind !== 'restore') return;
      for (const vm of get().vms) if (isSameVm(job.vmId, vm.id, get().byVm[vm.id]?.info)) void get().loadBackups(vm.id);
    },
  };
}

// ---------------------------------------------------------------- what the timeline draws

/** "Backup (since c3) to /repo", "Backup (full) to …", "Backup (incremental) to …" → kind and base. */
export function parseBackupTitle(title: string): { kind: BackupKind; since?: string } {
  const m = /^Backup \((full|incremental|since (.+))\) to /.exec(title);
  if (!m) return { kind: 'full' };
  if (m[1] === 'full') return { kind: 'full' };
  if (m[1] === 'incremental') return { kind: 'incremental' };
  return { kind: 'incremental', since: m[2] };
}

/**
 * Timeline markers: every backup in the repository (■ full, ◧ incremental, ◇ differential, per
 * disk what was actually done), plus running and failed/cancelled backup jobs (✕ stays visible).
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
    });
  });
  for (const j of jobs) {
    if (j.kind !== 'backup' || !isThisVm(j.vmId) || j.state === 'succeeded') continue;
    const { kind, since } = parseBackupTitle(j.title);
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
    });
  }
  return marks;
}
