// backup:prune, backup:merge, backup:finish-retention and schedule:* over engine/retention and
// engine/schedule. A prune needs the VM's durable identity only (its backups are keyed by it), not
// a running VM; a schedule names the VM's QMP endpoint, the state folder and the repository, so
// its unattended run reaches the same VM and backups. Loaded on first use.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Handlers, RetentionReport, ScheduleInfo, ScheduleWhere } from '../../../shared/contract';
import { findOnPath } from '../../os/find-on-path';
import type { BackupRepository } from '../../engine/backup/repository';
import { applyRetention, finishInterruptedRetention, type RetentionOutcome } from '../../engine/retention/retention';
import { defaultScheduleId, SCHEDULE_FORMAT, type ScheduleSpec } from '../../engine/schedule/spec';
import { addSchedule, listSchedules, removeSchedule, scheduleTarget, type ListedSchedule } from '../../engine/schedule/store';
import { labInfo } from '../../engine/lab/demo';
import { repositories } from './backup';
import type { HostContext } from './context';

type RetentionChannels = 'backup:prune' | 'backup:merge' | 'backup:finish-retention' | 'schedule:add' | 'schedule:list' | 'schedule:remove';

function report(o: RetentionOutcome, repo: BackupRepository): RetentionReport {
  return {
    vmId: o.vmId, repo: repo.root, what: o.what, dryRun: o.dryRun,
    kept: o.kept, removed: o.removed, merged: o.merged, rebased: o.rebased,
    preview: o.preview, checkpointsFreed: o.checkpointsFreed,
    ...(o.finishedEarlier ? { finishedEarlier: { what: o.finishedEarlier.what, stepsRun: o.finishedEarlier.stepsRun, stepsTotal: o.finishedEarlier.stepsTotal } } : {}),
    ...(o.result ? { result: { stepsRun: o.result.stepsRun, stepsTotal: o.result.stepsTotal, bytesFreed: o.result.bytesFreed } } : {}),
  };
}

function info(s: ListedSchedule): ScheduleInfo {
  const { format: _f, version: _v, command: _c, ...rest } = s.spec;
  return { ...rest, files: s.files, ...(s.next !== undefined ? { next: s.next } : {}) };
}

/** `node bin/tidemark.js`, as absolute paths: what a schedule's service runs. */
function tidemarkCommand(): string[] {
  let dir = __dirname;
  let bin: string | undefined;
  for (let i = 0; i < 7 && !bin; i++, dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'bin', 'tidemark.js');
    if (fs.existsSync(candidate)) bin = candidate;
  }
  if (!bin) throw new Error('cannot find bin/tidemark.js beside this installation; schedules run the Tidemark command line');
  // Inside Electron, process.execPath is the app, not Node: the service needs a node on the PATH.
  const node = process.versions.electron === undefined
    ? process.execPath
    : findOnPath('node');
  if (!node) throw new Error('schedules run the Tidemark command line with Node.js, and no node was found on the PATH');
  return [node, bin];
}

function where(w: ScheduleWhere | undefined) {
  const unitDir = w?.unitDir === undefined ? undefined : path.resolve(w.unitDir);
  return scheduleTarget({ user: w?.user ?? false, ...(unitDir !== undefined ? { unitDir } : {}) });
}

export function retentionHandlers(ctx: HostContext): Pick<Handlers, RetentionChannels> {
  const { openRepo } = repositories(ctx.stateDir);
  const { registry } = ctx;

  /** The VM's durable identity key (what its backups are filed under): as last seen, else after connecting. */
  async function vmKey(vmId: string): Promise<string> {
    const vm = registry.vm(vmId);
    if (vm.identity() === undefined) await vm.ready();
    const key = vm.identity()?.key;
    if (key === undefined) throw new Error(`VM ${vmId} has not been seen yet: connect to it once before pruning its backups`);
    return key;
  }

  async function retention(vmId: string, repoArg: string | undefined, o: Omit<Parameters<typeof applyRetention>[0], 'repo' | 'vmId'>): Promise<RetentionReport> {
    const repo = openRepo(repoArg);
    const outcome = await applyRetention({ repo, vmId: await vmKey(vmId), ...o });
    return report(outcome, repo);
  }

  return {
    async 'backup:prune'(vmId, o) {
      return retention(vmId, o.repo, { ...(o.policy ? { policy: o.policy } : {}), ...(o.maxChain !== undefined ? { maxChain: o.maxChain } : {}), dryRun: o.dryRun ?? false });
    },

    async 'backup:merge'(vmId, o) {
      return retention(vmId, o.repo, { maxChain: o.maxChain, dryRun: o.dryRun ?? false });
    },

    async 'backup:finish-retention'(vmId, repoArg) {
      const repo = openRepo(repoArg);
      const key = await vmKey(vmId);
      const r = await finishInterruptedRetention(repo, key);
      return { vmId: key, repo: repo.root, ...(r ? { finished: { what: r.what, stepsRun: r.stepsRun, stepsTotal: r.stepsTotal, removed: r.removed } } : {}) };
    },

    async 'schedule:add'(vmId, o) {
      const vm = registry.vm(vmId);
      const summary = vm.summary();
      const key = await vmKey(vmId);
      // The demo VM: its second socket (the app holds the first while it runs).
      const endpoint = summary.kind === 'demo' ? labInfo(ctx.labDir).qmpSecondary : summary.endpoint;
      const connect = path.isAbsolute(endpoint) ? `unix:${endpoint}` : endpoint; // --connect also takes a bare socket path
      const name = vm.identity()?.name;
      const user = o.user ?? false;
      const spec: ScheduleSpec = {
        format: SCHEDULE_FORMAT, version: 1,
        id: o.id ?? defaultScheduleId(name ?? summary.label, o.every),
        vm: { id: key, ...(name !== undefined ? { name } : {}) },
        every: o.every, connect, stateDir: ctx.stateDir,
        ...(o.repo !== undefined ? { repo: path.resolve(o.repo) } : {}),
        mode: o.mode ?? 'push',
        ...(o.policy !== undefined ? { policy: o.policy } : {}),
        ...(o.maxChain !== undefined ? { maxChain: o.maxChain } : {}),
        user, command: tidemarkCommand(), createdAt: Date.now(),
      };
      const added = await addSchedule(spec, where(o));
      return { schedule: info({ spec: added.spec, files: added.files, ...(added.next !== undefined ? { next: added.next } : {}) }), normalized: added.normalized, todo: added.todo };
    },

    async 'schedule:list'(w) {
      const t = where(w);
      const listed = await listSchedules(t);
      return { target: { kind: t.kind, dir: t.dir, user: t.user }, schedules: listed.schedules.map(info), problems: listed.problems };
    },

    async 'schedule:remove'(id, w) {
      return { id, ...(await removeSchedule(id, where(w))) };
    },
  };
}
