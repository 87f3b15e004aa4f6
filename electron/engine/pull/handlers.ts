// The contract's issue-5 channels (dirtymap:get, pull:*) over the dirty map and the pull engine.
// The host service spreads these into its handlers. Pulls run as host jobs (progress, log,
// job:cancel); an export-only pull's job holds its exports open until pull:end.

import * as path from 'node:path';
import type { Handlers, JobInfo, PullExportInfo } from '../../../shared/contract';
import type { BackupServiceDeps } from '../backup/handlers';
import { BackupRepository } from '../backup/repository';
import { readDirtyMap } from '../dirtymap/dirtymap';
import { requestPullEnd, runPull, type PullOptions } from './pull';

type PullChannels = 'dirtymap:get' | 'pull:begin' | 'pull:export' | 'pull:end' | 'pull:wait';
type JobCtx = Parameters<Parameters<BackupServiceDeps['jobs']['start']>[1]>[0];

const MiB = 1024 * 1024;

export function pullHandlers(deps: BackupServiceDeps): Pick<Handlers, PullChannels> {
  const defaultRepo = path.join(path.resolve(deps.stateDir), 'backups');
  // Beginning a backup creates the repository, as push backups do; everything else needs an existing one.
  const openRepo = (p: string | undefined, create = false) => BackupRepository.open(path.resolve(p ?? defaultRepo), { create: create || p === undefined });
  /** Export-only pulls of this process, by VM: resolves with the job when it ends. */
  const sessions = new Map<string, Promise<JobInfo>>();

  function bridge(ctx: JobCtx) {
    let sent = 0;
    return (j: JobInfo) => {
      for (const p of j.progress) ctx.progress(p.disk, p.done, p.total);
      for (; sent < j.log.length; sent++) ctx.log(j.log[sent]!.replace(/^\S+ /, ''));
    };
  }

  /** Starts `run` as a host job; `ended` resolves with the final JobInfo once the runner recorded it. */
  function startJob(spec: Parameters<BackupServiceDeps['jobs']['start']>[0], run: (ctx: JobCtx) => Promise<string>): { job: JobInfo; ended: Promise<JobInfo> } {
    let finished!: () => void;
    const done = new Promise<void>((r) => (finished = r));
    const job = deps.jobs.start(spec, async (ctx) => {
      try {
        return await run(ctx);
      } finally {
        finished();
      }
    });
    const ended = done.then(async () => {
      let j = job;
      for (let i = 0; i < 100; i++) {
        j = deps.jobs.list(spec.vmId).find((x) => x.id === job.id) ?? j;
        if (j.state !== 'running') break;
        await new Promise((r) => setImmediate(r));
      }
      return j;
    });
    return { job, ended };
  }

  function commonOptions(o: { full?: boolean; since?: string; checkpoint?: string; noCheckpoint?: boolean; disks?: string[]; fleeceDir?: string; fleeceMaxMiB?: number }): Partial<PullOptions> {
    if (o.noCheckpoint && o.checkpoint !== undefined) throw new Error('--checkpoint and --no-checkpoint cannot be combined');
    return {
      full: o.full, since: o.since, checkpoint: o.noCheckpoint ? false : o.checkpoint, disks: o.disks, fleeceDir: o.fleeceDir,
      ...(o.fleeceMaxMiB !== undefined ? { fleece: { maxBytes: Math.round(o.fleeceMaxMiB * MiB) } } : {}),
    };
  }

  return {
    async 'dirtymap:get'(vmId, disk, since, buckets) {
      const engine = await deps.engineOf(vmId);
      return readDirtyMap({ qmp: deps.clientOf(vmId), engine, stateDir: deps.stateDir }, { disk, since, buckets });
    },

    async 'pull:begin'(vmId, options) {
      const engine = await deps.engineOf(vmId);
      const client = deps.clientOf(vmId);
      const repo = openRepo(options.repo, true);
      const common = commonOptions(options);
      let out: Awaited<ReturnType<typeof runPull>> | undefined;
      let error: unknown;
      const { ended } = startJob({ kind: 'pull', vmId, title: `Pull backup to ${repo.root}`, progress: [] }, async (ctx) => {
        try {
          out = await runPull(engine, client, { ...common, repo, stateDir: deps.stateDir, signal: ctx.signal, onUpdate: bridge(ctx) });
          return `pull backup ${out.backupId}`;
        } catch (e) {
          error = e;
          throw e;
        }
      });
      const job = await ended;
      await deps.changed(vmId).catch(() => undefined);
      if (error !== undefined) throw error;
      if (out?.mode !== 'repository') throw new Error('internal error: the pull did not write into the repository');
      return { job, backup: out.manifest, fleecePeakBytes: out.fleecePeakBytes };
    },

    async 'pull:export'(vmId, options) {
      if (sessions.has(vmId)) throw new Error(`an export-only pull of VM ${vmId} is already open in this process; end it with pull:end`);
      const engine = await deps.engineOf(vmId);
      const client = deps.clientOf(vmId);
      const repo = openRepo(options.repo, true);
      const common = commonOptions(options);
      let ready!: (e: PullExportInfo[]) => void;
      const exportsReady = new Promise<PullExportInfo[]>((r) => (ready = r));
      let error: unknown;
      const { job, ended } = startJob({ kind: 'pull', vmId, title: 'Pull backup (export only)', progress: [] }, async (ctx) => {
        try {
          const r = await runPull(engine, client, {
            ...common, repo, stateDir: deps.stateDir, signal: ctx.signal, onUpdate: bridge(ctx),
            exportOnly: { onReady: ready, ...(options.tcp ? { tcp: options.tcp } : {}) },
          });
          return `pull ${r.backupId} ended: success`;
        } catch (e) {
          error = e;
          throw e;
        }
      });
      const session = ended.finally(() => {
        sessions.delete(vmId);
        void deps.changed(vmId).catch(() => undefined);
      });
      sessions.set(vmId, session);
      const first = await Promise.race([exportsReady, session.then(() => undefined)]);
      if (!first) throw error ?? new Error('the pull ended before its exports were ready');
      return { jobId: job.id, exports: first };
    },

    async 'pull:end'(vmId, outcome, repoArg) {
      // The repository knows the VM by the engine's id (its uuid), not by the host's alias ("demo").
      const engine = await deps.engineOf(vmId);
      return requestPullEnd(openRepo(repoArg), engine.vmId, outcome);
    },

    async 'pull:wait'(vmId) {
      const s = sessions.get(vmId);
      if (!s) throw new Error(`no export-only pull of VM ${vmId} is open in this process`);
      return s;
    },
  };
}
