// backup:* and restore:run over the VM's driver and the repository. Long operations run as host
// jobs (progress, log, job:cancel); the call resolves when the job has ended, with its result and
// its final job. Loaded on first use (most CLI commands never need it).
//
// Backup records are the manifests as written: `vm.id` is the VM's durable identity (UUID, else
// name), not the contract's VM id. A manifest's VM is found with registry.byIdentity.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackupDetails, BackupStatusInfo, Handlers, RestoreOutcome } from '../../../shared/contract';
import { readLock } from '../../engine/backup/lock';
import { BackupRepository } from '../../engine/backup/repository';
import { restoreInPlace, restoreTo } from '../../engine/backup/restore';
import { verifyBackups } from '../../engine/backup/verify';
import { forgetVerifications, recordVerifications, verifyRecords } from '../../engine/backup/verify-history';
import { fleetEntries, repositoryUsage, vmInventory } from '../../engine/backup/inventory';
import { namesIdentity } from '../../engine/identity';
import { journalPath } from '../../engine/retention/journal';
import { metadataRestoreHooks } from '../../engine/qmp-driver/restore-hooks';
import type { HostContext } from './context';
import { finishRetentionFirst, pendingRetention } from './retention-guard';

type BackupChannels = 'backup:begin' | 'backup:list' | 'backup:info' | 'backup:verify' | 'backup:delete' | 'backup:status' | 'backup:cancel' | 'restore:run'
  | 'backup:inventory' | 'backup:fleet';

/** The repository at `p`, or the default one (STATE/backups, created on first use). */
export function repositories(stateDir: string) {
  const defaultRepo = path.join(path.resolve(stateDir), 'backups');
  const repoPath = (p: string | undefined) => path.resolve(p ?? defaultRepo);
  const openRepo = (p: string | undefined, create = false) => BackupRepository.open(repoPath(p), { create: create || p === undefined });
  return { repoPath, openRepo };
}

export function backupHandlers(ctx: HostContext): Pick<Handlers, BackupChannels> {
  const { repoPath, openRepo } = repositories(ctx.stateDir);
  const { registry, jobs } = ctx;

  return {
    async 'backup:begin'(vmId, options) {
      if (options.noCheckpoint && options.checkpoint !== undefined) throw new Error('--checkpoint and --no-checkpoint cannot be combined');
      const vm = registry.vm(vmId);
      await vm.ready();
      const repo = openRepo(options.repo, true);
      const what = options.full ? 'full' : options.since !== undefined ? `since ${options.since}` : 'incremental';
      try {
        const { job, result } = await jobs.run({ kind: 'backup', vmId, title: `Backup (${what}) to ${repo.root}`, progress: [] }, async (reporter) => {
          await finishRetentionFirst(repo, vm.identity()?.key, (l) => reporter.log(l));
          return vm.backup.begin({
          mode: 'push', repo, full: options.full, since: options.since, checkpoint: options.noCheckpoint ? false : options.checkpoint, disks: options.disks, speedMiBps: options.speedMiBps, quiesce: options.quiesce,
          }, reporter);
        }, (r) => `backup ${r.backupId}`);
        return { job, backup: result.manifest! };
      } finally {
        await ctx.changed(vmId).catch(() => undefined);
      }
    },

    async 'backup:list'(repoArg, vm) {
      const root = repoPath(repoArg);
      if (repoArg === undefined && !fs.existsSync(root)) return { repo: root, backups: [], problems: [] };
      const repo = openRepo(repoArg);
      const scan = repo.scan();
      // `vm` is a VM id (the manifests' VM is found through its identity) or a durable identity.
      const identity = vm === undefined ? undefined : registry.find(vm)?.identity();
      const backups = vm === undefined ? scan.manifests : scan.manifests.filter((m) => {
        const mine = { key: m.vm.id, ...(m.vm.name ? { name: m.vm.name } : {}), ...(m.vm.uuid ? { uuid: m.vm.uuid } : {}) };
        return namesIdentity(mine, vm) || (identity !== undefined && m.vm.id === identity.key);
      });
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
      const repo = openRepo(repoArg);
      const started = Date.now();
      const report = await verifyBackups(repo, ids && ids.length > 0 ? { ids } : {});
      // Kept per backup for the backups view; a verification that cannot be recorded still reports.
      try {
        repo.assertWritable('record the verification');
        recordVerifications(repo, repo.list(), verifyRecords(report, Date.now(), Date.now() - started));
      } catch {
        // the report is the answer; its record is a convenience
      }
      // An unfinished prune leaves a chain whose files run ahead of their manifests: say why, and how to finish.
      const vms = new Set(repo.list().filter((m) => !ids?.length || ids.includes(m.id)).map((m) => m.vm.id));
      for (const key of vms) {
        const pending = pendingRetention(repo, key);
        if (pending) report.problems.push({ file: journalPath(repo, key), message: pending });
      }
      return { ...report, ok: report.ok && report.problems.length === 0 };
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
      forgetVerifications(repo, gone);
      return { deleted: gone.map((x) => x.id) };
    },

    async 'backup:inventory'(vmId, repoArg) {
      const root = repoPath(repoArg);
      const empty = { repo: root, exists: false, backups: [], problems: [], failed: [], verified: {}, running: false };
      if (!fs.existsSync(root)) return empty;
      const repo = openRepo(repoArg);
      const usage = repositoryUsage(repo.root);
      // The VM's folder is its durable identity; a VM never connected has none yet.
      const key = registry.find(vmId)?.identity()?.key;
      if (key === undefined) return { ...empty, exists: true, repo: repo.root, usage };
      return { ...vmInventory(repo, key), usage };
    },

    async 'backup:fleet'(repoArg) {
      const root = repoPath(repoArg);
      if (!fs.existsSync(root)) return { repo: root, exists: false, vms: [] };
      const repo = openRepo(repoArg);
      return { repo: repo.root, exists: true, vms: fleetEntries(repo, (identity) => registry.byIdentity(identity)?.id) };
    },

    async 'backup:status'(vmId, repoArg) {
      const vm = registry.vm(vmId);
      await vm.ready();
      const none: BackupStatusInfo = { running: false, stale: false, progress: [], log: [] };
      if (!fs.existsSync(repoPath(repoArg))) return none;
      return vm.backup.status(openRepo(repoArg));
    },

    async 'backup:cancel'(vmId, repoArg) {
      const mine = jobs.list(vmId).find((j) => j.kind === 'backup' && j.state === 'running');
      const vm = registry.vm(vmId);
      await vm.ready();
      const repo = openRepo(repoArg);
      const key = vm.identity()?.key;
      const held = key === undefined ? undefined : readLock(repo, key);
      if (mine && held?.alive && held.journal.pid === process.pid) {
        // This process runs it: cancelling its job rolls it back.
        await jobs.cancel(mine.id);
        return { backupId: held.journal.backupId, how: 'cancelled' as const };
      }
      const r = await vm.backup.cancel(repo);
      await ctx.changed(vmId).catch(() => undefined);
      return r;
    },

    async 'restore:run'(req) {
      if ((req.to === undefined) === (req.inPlace === undefined)) throw new Error('restore needs exactly one of --to PATH or --in-place IMAGE');
      if (req.noSafetyCopy && !req.inPlace) throw new Error('--no-safety-copy only applies to --in-place');
      const repo = openRepo(req.repo);
      const m = repo.get(req.backup);
      const pending = pendingRetention(repo, m.vm.id);
      if (pending) throw new Error(`cannot restore backup ${m.id} yet: ${pending}`);
      // The job belongs to the VM the backup is of, when the host knows it.
      const vm = registry.byIdentity(m.vm.id);
      const title = req.to ? `Restore ${req.to.disk} from backup ${m.id} to ${req.to.path}` : `In-place restore of ${req.inPlace!.map((t) => t.disk).join(', ')} from backup ${m.id}`;
      const progress = (req.to ? [req.to.disk] : req.inPlace!.map((t) => t.disk)).map((disk) => ({ disk, total: m.disks.find((d) => d.name === disk)?.virtualSize ?? 0 }));
      const { job, result } = await jobs.run({ kind: 'restore', vmId: vm?.id ?? m.vm.id, title, progress }, async (reporter): Promise<Omit<RestoreOutcome, 'job'> & { summary: string }> => {
        if (req.to) {
          const r = await restoreTo({ repo, backup: m.id, disk: req.to.disk, to: req.to.path, format: req.to.format, reporter });
          return { backup: m.id, restored: [{ disk: r.disk, path: r.path, format: r.format, virtualSize: r.virtualSize }], needsFull: {}, summary: `restored ${r.disk} to ${r.path}` };
        }
        // A VM the host does not list may still have Tidemark metadata (QMP mode): record the restore there.
        const hooks = vm?.restore ?? metadataRestoreHooks(ctx.stateDir, m.vm.id);
        const r = await restoreInPlace({ repo, backup: m.id, targets: req.inPlace!, noSafetyCopy: req.noSafetyCopy, hooks, reporter });
        return {
          backup: m.id,
          restored: r.restored.map((x) => ({ disk: x.disk, path: x.path, format: x.format, virtualSize: x.virtualSize, ...(x.safetyCopy ? { safetyCopy: x.safetyCopy } : {}) })),
          needsFull: r.needsFull,
          ...(r.branch ? { branch: r.branch } : {}),
          summary: `restored ${r.restored.map((x) => x.disk).join(', ')} in place`,
        };
      }, (r) => r.summary);
      const { summary: _summary, ...outcome } = result;
      return { job, ...outcome };
    },
  };
}
