// Backups and restore in the store (the issue 3 channels, and issue 5's pull mode): the repository
// in use, the backups of each VM, starting a push or pull backup or a restore. Those calls resolve
// when their job has ended; progress arrives meanwhile as job:update events (kept in the jobs
// slice). An export-only pull resolves once its NBD exports are open; it lasts until pull:end.

import type { StoreApi } from 'zustand/vanilla';
import type { AppApi, BackupListing, JobInfo } from '../../../shared/contract';
import type { VmInfo } from '../../../shared/domain';
import { isSameVm } from '../model/vm-ids';
import type { AppState, BackupSlice, PullExportView, PullSession } from './types';

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

/** The state after a backup:list answer: the records of `vmId` (matched by its id, or UUID from `info`). */
export function withBackupList(s: AppState, vmId: string, listing: BackupListing, info: VmInfo | undefined): Partial<AppState> {
  const mine = listing.backups.filter((b) => isSameVm(b.vm.id, vmId, info) || (b.vm.uuid !== undefined && isSameVm(b.vm.uuid, vmId, info)));
  return { backups: { ...s.backups, [vmId]: mine }, repositoryResolved: listing.repo, backupsError: undefined };
}

/** backup:list of the repository in use (the whole repository: it is filtered per VM here). */
export function askBackupList(api: AppApi, repo: string | undefined): Promise<BackupListing> {
  // An `undefined` repo in the middle of the argument list would reach the host as null over JSON.
  return repo === undefined ? api.invoke('backup:list') : api.invoke('backup:list', repo);
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
        const listing = await askBackupList(api, get().repository);
        set((s) => withBackupList(s, vmId, listing, get().byVm[vmId]?.info));
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
