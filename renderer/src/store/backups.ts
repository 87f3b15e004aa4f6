// Backups and restore in the store (the issue 3 channels, and issue 5's pull mode): the repository
// in use, the backups of each VM, starting a push or pull backup or a restore. Those calls resolve
// when their job has ended; progress arrives meanwhile as job:update events (kept in the jobs
// slice). An export-only pull resolves once its NBD exports are open; it lasts until pull:end.

import type { StoreApi } from 'zustand/vanilla';
import type {
  AppApi, BackupBeginOptions, BackupBeginResult, BackupRecord, JobInfo, PullBeginOptions, PullBeginResult, PullExportInfo,
  PullExportOptions, RestoreOutcome, RestoreRequest,
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
  /** Pull mode: Tidemark copies the dirty extents over NBD into the repository. */
  startPull(options: PullBeginOptions): Promise<PullBeginResult>;
  /** Export-only pull: opens the NBD exports for an outside tool; ends with endPullExport. */
  startPullExport(options: Omit<PullExportOptions, 'tcp'>): Promise<PullSession>;
  /** Reports how the outside copy went: success records the pull's checkpoint, failure rolls it back. */
  endPullExport(session: PullSession, outcome: 'success' | 'failure'): Promise<{ backupId: string }>;
  /** Open export-only pulls started from this page, by job id. */
  pullSessions: Record<string, PullSession>;
  onJobEnded(job: JobInfo): void;
}

/** One disk of an export-only pull as the page shows it (recovered from the job log after a reload). */
export type PullExportView = Pick<PullExportInfo, 'disk' | 'uri'> & Partial<Omit<PullExportInfo, 'disk' | 'uri'>>;

export interface PullSession {
  vmId: string;
  jobId: string;
  exports: PullExportView[];
  /** The repository whose lock the pull holds (undefined: the host's default). */
  repo?: string;
  /** Set once pull:end was answered (the job ends a moment later). */
  ended?: 'success' | 'failure';
}

export const EXPORT_ONLY_TITLE = 'Pull backup (export only)';

/**
 * The exports of a running export-only pull, read back from its job log ("vda: nbd+unix:///… (changes
 * since c1: qemu:dirty-bitmap:…)"), for a page that did not start it (reloaded, or another window).
 */
export function sessionFromJob(job: JobInfo, repo: string | undefined): PullSession | undefined {
  if (job.kind !== 'pull' || job.state !== 'running' || job.title !== EXPORT_ONLY_TITLE) return undefined;
  const exports: PullExportView[] = [];
  for (const line of job.log) {
    // Host job lines start with an ISO time ("2026-11-23T04:11:07.324Z vda: nbd+unix:///…").
    const m = /^(?:\d{4}-\d\d-\d\dT[\d:.]+Z )?(\S+): (nbds?(?:\+unix)?:\/\/\S+)(?: \(changes since (.+): (qemu:dirty-bitmap:\S+)\))?$/.exec(line);
    if (m && !exports.some((e) => e.disk === m[1])) exports.push({ disk: m[1]!, uri: m[2]!, ...(m[3] ? { since: m[3], dirtyContext: m[4] } : {}) });
  }
  return exports.length > 0 ? { vmId: job.vmId, jobId: job.id, exports, ...(repo !== undefined ? { repo } : {}) } : undefined;
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

    pullSessions: {},

    async startPull(options) {
      const vmId = get().selectedVmId;
      if (vmId === undefined) throw new Error('no VM is selected');
      const repo = get().repository;
      const result = await api.invoke('pull:begin', vmId, { ...options, ...(repo !== undefined && options.repo === undefined ? { repo } : {}) });
      set((s) => ({ jobs: { ...s.jobs, [result.job.id]: result.job } }));
      get().announce(`Pull backup ${result.backup.id} finished`);
      await get().loadBackups(vmId);
      return result;
    },

    async startPullExport(options) {
      const vmId = get().selectedVmId;
      if (vmId === undefined) throw new Error('no VM is selected');
      const repo = options.repo ?? get().repository;
      const result = await api.invoke('pull:export', vmId, { ...options, ...(repo !== undefined ? { repo } : {}) });
      const session: PullSession = { vmId, jobId: result.jobId, exports: result.exports, ...(repo !== undefined ? { repo } : {}) };
      // The job may already have ended (cancelled at once): keep no session for it then.
      const ended = get().jobs[result.jobId];
      if (!ended || ended.state === 'running') set((s) => ({ pullSessions: { ...s.pullSessions, [result.jobId]: session } }));
      get().announce(`NBD exports open for ${result.exports.map((e) => e.disk).join(', ')}`);
      return session;
    },

    async endPullExport(session, outcome) {
      // Never an undefined trailing argument: JSON would turn it into null.
      const r = session.repo !== undefined
        ? await api.invoke('pull:end', session.vmId, outcome, session.repo)
        : await api.invoke('pull:end', session.vmId, outcome);
      // Kept (as ended) until its job's end arrives, so nothing offers to end it twice meanwhile.
      set((s) => {
        const pullSessions = { ...s.pullSessions };
        if (s.jobs[session.jobId]?.state === 'running') pullSessions[session.jobId] = { ...session, ended: outcome };
        else delete pullSessions[session.jobId];
        return { pullSessions };
      });
      return r;
    },

    onJobEnded(job) {
      if (job.kind === 'pull' && get().pullSessions[job.id]) {
        set((s) => {
          const pullSessions = { ...s.pullSessions };
          delete pullSessions[job.id];
          return { pullSessions };
        });
      }
      if (job.kind !== 'backup' && job.kind !== 'restore' && job.kind !== 'pull') return;
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
