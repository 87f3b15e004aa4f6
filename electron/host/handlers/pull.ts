// dirtymap:get and pull:* over the VM's driver. Pulls run as host jobs (progress, log,
// job:cancel); an export-only pull's job holds its exports open until pull:end, which works from
// any process (the CLI's backup-end) without connecting to the VM. Loaded on first use.

import type { Handlers, JobInfo, PullExportInfo } from '../../../shared/contract';
import type { BackupBegin } from '../../engine/driver';
import { repositories } from './backup';
import type { HostContext } from './context';
import { finishRetentionFirst } from './retention-guard';

type PullChannels = 'dirtymap:get' | 'pull:begin' | 'pull:export' | 'pull:end' | 'pull:wait';

const MiB = 1024 * 1024;

export function pullHandlers(ctx: HostContext): Pick<Handlers, PullChannels> {
  const { openRepo } = repositories(ctx.stateDir);
  const { registry, jobs } = ctx;
  /** Export-only pulls of this process, by VM: resolves with the job when it ends. */
  const sessions = new Map<string, Promise<JobInfo>>();

  type Common = { full?: boolean; since?: string; checkpoint?: string; noCheckpoint?: boolean; disks?: string[]; fleeceDir?: string; fleeceMaxMiB?: number; quiesce?: BackupBegin['quiesce'] };
  function point(o: Common): Omit<BackupBegin, 'mode' | 'repo'> {
    if (o.noCheckpoint && o.checkpoint !== undefined) throw new Error('--checkpoint and --no-checkpoint cannot be combined');
    return {
      full: o.full, since: o.since, checkpoint: o.noCheckpoint ? false : o.checkpoint, disks: o.disks, quiesce: o.quiesce,
      scratch: { ...(o.fleeceDir !== undefined ? { dir: o.fleeceDir } : {}), ...(o.fleeceMaxMiB !== undefined ? { maxBytes: Math.round(o.fleeceMaxMiB * MiB) } : {}) },
    };
  }

  return {
    async 'dirtymap:get'(vmId, disk, since, buckets) {
      return registry.vm(vmId).dirtyMap(disk, since, buckets);
    },

    async 'pull:begin'(vmId, options) {
      const vm = registry.vm(vmId);
      await vm.ready();
      const repo = openRepo(options.repo, true);
      const spec: BackupBegin = { mode: 'pull', repo, ...point(options) };
      try {
        const { job, result } = await jobs.run({ kind: 'pull', vmId, title: `Pull backup to ${repo.root}`, progress: [] }, async (reporter) => {
          await finishRetentionFirst(repo, vm.identity()?.key, (l) => reporter.log(l));
          return vm.backup.begin(spec, reporter);
        }, (r) => `pull backup ${r.backupId}`);
        if (!result.manifest) throw new Error('internal error: the pull did not write into the repository');
        return { job, backup: result.manifest, fleecePeakBytes: result.scratchPeakBytes };
      } finally {
        await ctx.changed(vmId).catch(() => undefined);
      }
    },

    async 'pull:export'(vmId, options) {
      if (sessions.has(vmId)) throw new Error(`an export-only pull of VM ${vmId} is already open in this process; end it with pull:end`);
      const vm = registry.vm(vmId);
      await vm.ready();
      const repo = openRepo(options.repo, true);
      let ready!: (e: PullExportInfo[]) => void;
      const exportsReady = new Promise<PullExportInfo[]>((r) => (ready = r));
      const spec: BackupBegin = { mode: 'pull', repo, ...point(options), exportOnly: { onReady: ready, ...(options.tcp ? { tcp: options.tcp } : {}) } };
      const run = jobs.start({ kind: 'pull', vmId, title: 'Pull backup (export only)', progress: [] }, async (reporter) => {
        await finishRetentionFirst(repo, vm.identity()?.key, (l) => reporter.log(l));
        return vm.backup.begin(spec, reporter);
      }, (r) => `pull ${r.backupId} ended: success`);
      const session = run.ended.finally(() => {
        sessions.delete(vmId);
        void ctx.changed(vmId).catch(() => undefined);
      });
      sessions.set(vmId, session);
      const first = await Promise.race([exportsReady, run.result.then(() => undefined)]);
      if (!first) throw new Error('the pull ended before its exports were ready');
      return { jobId: run.job.id, exports: first };
    },

    async 'pull:end'(vmId, outcome, repoArg) {
      return registry.vm(vmId).backup.end(openRepo(repoArg), outcome);
    },

    async 'pull:wait'(vmId) {
      const s = sessions.get(vmId);
      if (!s) throw new Error(`no export-only pull of VM ${vmId} is open in this process`);
      return s;
    },
  };
}
