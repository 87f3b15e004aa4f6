// The contract's issue-3 channels (backup:*, restore:run) over the backup engine. The host service
// spreads these into its handlers; long operations run as host jobs (progress, log, job:cancel)
// and the call resolves when the job has ended, with its result.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type {
  BackupDetails, BackupStatusInfo, Handlers, JobInfo, RestoreOutcome,
} from '../../../shared/contract';
import type { QmpClient } from '../../qmp/client';
import type { CheckpointEngineApi } from '../checkpoints/api';
import { readLock } from './lock';
import { backupStatus, cancelBackup, runBackup } from './push';
import { BackupRepository } from './repository';
import { restoreInPlace, restoreTo } from './restore';
import { verifyBackups } from './verify';

/** The parts of the host's job runner the backup channels use (JobRunner fits). */
export interface BackupJobs {
  start(
    spec: { kind: JobInfo['kind']; vmId: string; title: string; progress: { disk: string; total: number }[] },
    run: (ctx: { signal: AbortSignal; progress(disk: string, done: number, total?: number): void; log(line: string): void }) => Promise<string | void>,
  ): JobInfo;
  list(vmId?: string): JobInfo[];
  cancel(jobId: string): Promise<JobInfo>;
}

export interface BackupServiceDeps {
  stateDir: string;
  /** The engine of a connected VM (connecting on demand). */
  engineOf(vmId: string): Promise<CheckpointEngineApi>;
  /** The QMP client behind that engine (call after engineOf). */
  clientOf(vmId: string): QmpClient;
  jobs: BackupJobs;
  /** Tell listeners that a VM's checkpoints changed. */
  changed(vmId: string): Promise<void>;
}

type BackupChannels = 'backup:begin' | 'backup:list' | 'backup:info' | 'backup:verify' | 'backup:delete' | 'backup:status' | 'backup:cancel' | 'restore:run';

export function backupHandlers(deps: BackupServiceDeps): Pick<Handlers, BackupChannels> {
  const defaultRepo = path.join(path.resolve(deps.stateDir), 'backups');
  const repoPath = (p: string | undefined) => path.resolve(p ?? defaultRepo);
  const openRepo = (p: string | undefined, create = false) => BackupRepository.open(repoPath(p), { create: create || p === undefined });

  /** Runs `work` as a host job; resolves when the job has ended (with its final JobInfo), rejects with its error. */
  async function asJob<T>(
    spec: Parameters<BackupJobs['start']>[0],
    work: (ctx: Parameters<Parameters<BackupJobs['start']>[1]>[0]) => Promise<{ value: T; summary: string }>,
  ): Promise<{ job: JobInfo; value: T }> {
    let value: T | undefined;
    let error: unknown;
    let finished!: () => void;
    const done = new Promise<void>((r) => (finished = r));
    const started = deps.jobs.start(spec, async (ctx) => {
      try {
        const r = await work(ctx);
        value = r.value;
        return r.summary;
      } catch (e) {
        error = e;
        throw e;
      } finally {
        finished();
      }
    });
    await done;
    // The runner records the outcome right after `run` settles.
    let job = started;
    for (let i = 0; i < 100; i++) {
      job = deps.jobs.list(spec.vmId).find((j) => j.id === started.id) ?? job;
      if (job.state !== 'running') break;
      await new Promise((r) => setImmediate(r));
    }
    if (error !== undefined) throw error;
    return { job, value: value as T };
  }

  /** Feeds a backup/restore JobLog's updates into the host job (new log lines, per-disk progress). */
  function bridge(ctx: { progress(disk: string, done: number, total?: number): void; log(line: string): void }) {
    let sent = 0;
    return (j: JobInfo) => {
      for (const p of j.progress) ctx.progress(p.disk, p.done, p.total);
      for (; sent < j.log.length; sent++) ctx.log(j.log[sent]!.replace(/^\S+ /, ''));
    };
  }

  return {
    async 'backup:begin'(vmId, options) {
      if (options.noCheckpoint && options.checkpoint !== undefined) throw new Error('--checkpoint and --no-checkpoint cannot be combined');
      const engine = await deps.engineOf(vmId);
      const client = deps.clientOf(vmId);
      const repo = openRepo(options.repo, true);
      const what = options.full ? 'full' : options.since !== undefined ? `since ${options.since}` : 'incremental';
      try {
        const { job, value } = await asJob({ kind: 'backup', vmId, title: `Backup (${what}) to ${repo.root}`, progress: [] }, async (ctx) => {
          const m = await runBackup(engine, client, {
            repo,
            full: options.full,
            since: options.since,
            checkpoint: options.noCheckpoint ? false : options.checkpoint,
            disks: options.disks,
            speedMiBps: options.speedMiBps,
            signal: ctx.signal,
            onUpdate: bridge(ctx),
          });
          return { value: m, summary: `backup ${m.id}` };
        });
        return { job, backup: value };
      } finally {
        await deps.changed(vmId).catch(() => undefined);
      }
    },

    async 'backup:list'(repoArg, vm) {
      const root = repoPath(repoArg);
      if (repoArg === undefined && !fs.existsSync(root)) return { repo: root, backups: [], problems: [] };
      const repo = openRepo(repoArg);
      const scan = repo.scan();
      const backups = vm === undefined ? scan.manifests : scan.manifests.filter((m) => m.vm.id === vm || m.vm.name === vm || m.vm.uuid === vm);
      return { repo: repo.root, backups, problems: scan.problems };
    },

    async 'backup:info'(id, repoArg) {
      const repo = openRepo(repoArg);
      const m = repo.get(id);
      const all = repo.list(m.vm.id);
      const chains = m.disks.map((d) => {
        try {
          return { disk: d.name, layers: repo.chain(m, d.name, all).map((l) => l.manifest.id) };
        } catch {
          return { disk: d.name, layers: [m.id] };
        }
      });
      let log: string[] = [];
      try {
        log = fs.readFileSync(repo.logPath(m.vm.id, m.id), 'utf8').split('\n').filter(Boolean);
      } catch {
        // no log kept
      }
      const out: BackupDetails = { repo: repo.root, backup: m, chains, dependents: repo.dependents(m.id, all).map((x) => x.id), log };
      return out;
    },

    async 'backup:verify'(repoArg, ids) {
      return verifyBackups(openRepo(repoArg), ids && ids.length > 0 ? { ids } : {});
    },

    async 'backup:delete'(id, options) {
      const repo = openRepo(options?.repo);
      const m = repo.get(id);
      const held = readLock(repo, m.vm.id);
      if (held?.alive) throw new Error(`a backup of VM ${m.vm.name ?? m.vm.id} is running (${held.journal.backupId}); delete backups when it has finished`);
      const all = repo.list(m.vm.id);
      const dependents = repo.dependents(id, all);
      if (dependents.length > 0 && !options?.withDependents) {
        throw new Error(`backup ${id} is the base of ${dependents.map((d) => d.id).join(', ')}; deleting it alone would break ${dependents.length === 1 ? 'that backup' : 'those backups'} (use --with-dependents to delete them too)`);
      }
      const gone = [m, ...dependents];
      repo.deleteBackups(gone);
      return { deleted: gone.map((x) => x.id) };
    },

    async 'backup:status'(vmId, repoArg) {
      const engine = await deps.engineOf(vmId);
      const root = repoPath(repoArg);
      const none: BackupStatusInfo = { running: false, stale: false, progress: [], log: [] };
      if (!fs.existsSync(root)) return none;
      const st = await backupStatus(openRepo(repoArg), engine.vmId, deps.clientOf(vmId));
      if (!st.journal) return none;
      const j = st.journal;
      const progress = st.jobs?.length ? st.jobs.map((x) => ({ disk: x.disk, done: x.done, total: x.total })) : j.progress;
      const out: BackupStatusInfo = { running: st.running, stale: st.stale, backupId: j.backupId, phase: j.phase, pid: j.pid, startedAt: j.startedAt, kind: j.kind, progress, log: j.log };
      if (j.since !== undefined) out.since = j.since;
      if (j.checkpoint !== undefined) out.checkpoint = j.checkpoint;
      return out;
    },

    async 'backup:cancel'(vmId, repoArg) {
      const mine = deps.jobs.list(vmId).find((j) => j.kind === 'backup' && j.state === 'running');
      const engine = await deps.engineOf(vmId);
      const repo = openRepo(repoArg);
      const held = readLock(repo, engine.vmId);
      if (mine && held?.alive && held.journal.pid === process.pid) {
        await deps.jobs.cancel(mine.id);
        return { backupId: held.journal.backupId, how: 'cancelled' as const };
      }
      const r = await cancelBackup(engine, deps.clientOf(vmId), repo);
      await deps.changed(vmId).catch(() => undefined);
      return r;
    },

    async 'restore:run'(req) {
      if ((req.to === undefined) === (req.inPlace === undefined)) throw new Error('restore needs exactly one of --to PATH or --in-place IMAGE');
      if (req.noSafetyCopy && !req.inPlace) throw new Error('--no-safety-copy only applies to --in-place');
      const repo = openRepo(req.repo);
      const m = repo.get(req.backup);
      const title = req.to ? `Restore ${req.to.disk} from backup ${m.id} to ${req.to.path}` : `In-place restore of ${req.inPlace!.map((t) => t.disk).join(', ')} from backup ${m.id}`;
      const progress = (req.to ? [req.to.disk] : req.inPlace!.map((t) => t.disk)).map((disk) => ({ disk, total: m.disks.find((d) => d.name === disk)?.virtualSize ?? 0 }));
      const { job, value } = await asJob({ kind: 'restore', vmId: m.vm.id, title, progress }, async (ctx) => {
        if (req.to) {
          const r = await restoreTo({ repo, backup: m.id, disk: req.to.disk, to: req.to.path, format: req.to.format, signal: ctx.signal, onUpdate: bridge(ctx) });
          const out: Omit<RestoreOutcome, 'job'> = { backup: m.id, restored: [{ disk: r.disk, path: r.path, format: r.format, virtualSize: r.virtualSize }], needsFull: {} };
          return { value: out, summary: `restored ${r.disk} to ${r.path}` };
        }
        const r = await restoreInPlace({ repo, backup: m.id, targets: req.inPlace!, noSafetyCopy: req.noSafetyCopy, stateDir: deps.stateDir, signal: ctx.signal, onUpdate: bridge(ctx) });
        const out: Omit<RestoreOutcome, 'job'> = {
          backup: m.id,
          restored: r.restored.map((x) => ({ disk: x.disk, path: x.path, format: x.format, virtualSize: x.virtualSize, ...(x.safetyCopy ? { safetyCopy: x.safetyCopy } : {}) })),
          needsFull: r.needsFull,
          ...(r.branch ? { branch: r.branch } : {}),
        };
        return { value: out, summary: `restored ${r.restored.map((x) => x.disk).join(', ')} in place` };
      });
      return { job, ...value };
    },
  };
}
