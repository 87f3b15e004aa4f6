// Prune and merge of one VM's backups: select → plan → (dry run: stop) → lock → finish an
// interrupted run → re-plan on what is there now → execute → measure. This is what backup-prune,
// backup-merge and scheduled runs call.
//
// The lock is the repository's backup lock (lock.ts), taken with a journal whose backupId starts
// with "retention-": a backup of the VM is refused while a prune runs and a prune while a backup
// runs (BackupBusyError either way). A lock left by a dead prune is ours to clear; a lock left by a
// dead backup is not (its checkpoint must be rolled back in QEMU first), so the prune refuses.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RetentionReport } from '../../../shared/contract/retention';
import { BackupBusyError, BackupLock, removeLock, StaleBackupError } from '../backup/lock';
import type { BackupManifest } from '../backup/manifest';
import type { BackupRepository } from '../backup/repository';
import { finishJournal, runPlan, type ExecuteOptions, type ExecuteResult } from './execute';
import { journalPath, readJournal } from './journal';
import { readAllManifests, RetentionRefusedError } from './manifests';
import { hostTimeZone } from './periods';
import { planRetention, type RetentionPlan } from './plan';
import { retentionPreview, type RetentionPreview } from './preview';
import { validatePolicy, type KeepPolicy } from './policy';
import { selectPoints, validateMaxChain } from './selection';

export const RETENTION_LOCK_PREFIX = 'retention-';

/** A backup, prune or merge of the VM is running: try again later (the CLI exits 75, EX_TEMPFAIL). */
export class RetentionBusyError extends RetentionRefusedError {
  constructor(message: string) {
    super(message);
    this.name = 'RetentionBusyError';
  }
}

export interface RetentionOptions extends ExecuteOptions {
  repo: BackupRepository;
  vmId: string;
  /** Keep rules (prune); absent: keep every point the chain length allows (merge). */
  policy?: KeepPolicy;
  /** Forever-forward: no chain longer than this many layers. */
  maxChain?: number;
  /** Time zone of the keep rules' periods (default: the host's). */
  timeZone?: string;
  dryRun?: boolean;
}

/** The decisions in the contract's words (shared/contract/retention.ts), plus what only the engine keeps. */
export interface RetentionOutcome extends Pick<RetentionReport, 'vmId' | 'what' | 'dryRun' | 'kept' | 'removed' | 'merged' | 'rebased'> {
  plan: RetentionPlan;
  /** The simulator's table (rows newest first; dry runs print it). */
  preview: RetentionPreview;
  /** Checkpoints that only removed backups used; delete them with checkpoint-delete to drop their bitmaps. */
  checkpointsFreed: string[];
  /** An interrupted prune or merge that was finished first. */
  finishedEarlier?: ExecuteResult;
  /** After a real run: what was done and the bytes freed on disk (allocated blocks of the VM's layers). */
  result?: ExecuteResult & { bytesFreed: number };
}

/** Points a restore's new branch still needs: the anchor of a branch no backup has built on yet. */
export function branchPins(repo: BackupRepository, vmId: string, manifests: BackupManifest[]): Map<string, string> {
  const pins = new Map<string, string>();
  for (const bp of repo.branchPoints(vmId)) {
    const used = manifests.some((m) => m.since === bp.checkpoint || m.disks.some((d) => d.since === bp.checkpoint));
    if (!used && manifests.some((m) => m.id === bp.backup)) pins.set(bp.backup, `branch point: the next backup after restore checkpoint ${bp.checkpoint} builds on it`);
  }
  return pins;
}

function describeRun(o: RetentionOptions): string {
  const rules = Object.entries(o.policy ?? {}).filter(([, n]) => n).map(([k, n]) => `--keep-${k} ${n}`);
  if (o.maxChain !== undefined) rules.push(`--max-chain ${o.maxChain}`);
  return `${Object.keys(o.policy ?? {}).length > 0 ? 'prune' : 'merge'} ${rules.join(' ')}`;
}

/** Allocated bytes of every layer file of the VM. */
function layerBytes(repo: BackupRepository, vmId: string): number {
  const dir = path.join(repo.vmDir(vmId), 'disks');
  let total = 0;
  for (const d of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    for (const f of fs.readdirSync(path.join(dir, d))) {
      const st = fs.statSync(path.join(dir, d, f), { throwIfNoEntry: false });
      if (st?.isFile()) total += st.blocks * 512;
    }
  }
  return total;
}

function decide(o: RetentionOptions, manifests: BackupManifest[], what: string): Omit<RetentionOutcome, 'dryRun'> {
  const sel = selectPoints(manifests, { policy: o.policy, maxChain: o.maxChain, timeZone: o.timeZone, pinned: branchPins(o.repo, o.vmId, manifests) });
  const plan = planRetention(o.vmId, manifests, sel.kept.keys());
  const newestFirst = [...manifests].reverse();
  return {
    vmId: o.vmId,
    what,
    kept: newestFirst.filter((m) => sel.kept.has(m.id)).map((m) => ({ id: m.id, reasons: sel.kept.get(m.id)! })),
    removed: newestFirst.filter((m) => sel.removed.has(m.id)).map((m) => ({ id: m.id, reason: sel.removed.get(m.id)! })),
    merged: plan.steps.flatMap((s) => (s.op === 'fold' ? [{ disk: s.disk, child: s.child, layers: [s.into, ...s.through], becomesFull: s.newBase === undefined }] : [])),
    rebased: plan.steps.flatMap((s) => (s.op === 'rebase' ? [{ disk: s.disk, child: s.child, from: s.oldBase, ...(s.newBase !== undefined ? { onto: s.newBase } : {}) }] : [])),
    plan,
    preview: retentionPreview(manifests, plan, sel, o.timeZone ?? hostTimeZone()),
    checkpointsFreed: plan.checkpointsFreed,
  };
}

/** Takes the VM's backup lock for a prune or merge; clears a lock left by a dead prune. */
export function acquireRetentionLock(repo: BackupRepository, vmId: string, what: string): BackupLock {
  const init = {
    backupId: `${RETENTION_LOCK_PREFIX}${new Date().toISOString().replace(/[-:.TZ]/g, '').slice(0, 14)}`,
    purpose: 'retention' as const,
    vmId, endpoint: '', startedAt: Date.now(), phase: 'preparing' as const, kind: 'full' as const, executed: false, disks: [], progress: [],
    log: [`${what} of VM ${vmId}'s backups (retention holds the backup lock)`],
  };
  try {
    return BackupLock.acquire(repo, init);
  } catch (e) {
    if (e instanceof BackupBusyError) {
      const j = e.journal;
      throw new RetentionBusyError(j.backupId.startsWith(RETENTION_LOCK_PREFIX)
        ? `a prune or merge of VM ${JSON.stringify(vmId)} is already running (process ${j.pid} on ${j.host}, since ${new Date(j.startedAt).toISOString()})`
        : `a backup of VM ${JSON.stringify(vmId)} is running (backup ${j.backupId}, process ${j.pid}); prune or merge when it has finished`);
    }
    if (!(e instanceof StaleBackupError)) throw e;
    if (e.journal && e.journal.backupId.startsWith(RETENTION_LOCK_PREFIX)) {
      removeLock(repo, vmId); // a dead prune's lock: its journal (not the lock) says what is left to do
      return BackupLock.acquire(repo, init);
    }
    throw new RetentionRefusedError(`an earlier backup of VM ${JSON.stringify(vmId)}${e.journal ? ` (${e.journal.backupId}, process ${e.journal.pid})` : ''} did not finish; run backup-cancel (or the next backup-begin) to clean it up, then prune again`);
  }
}

/** Prune (policy) and/or merge (maxChain) one VM's backups, or show what that would do (dryRun). */
export async function applyRetention(o: RetentionOptions): Promise<RetentionOutcome> {
  if (o.policy !== undefined) o = { ...o, policy: validatePolicy(o.policy) };
  if (o.maxChain !== undefined) validateMaxChain(o.maxChain);
  if (Object.keys(o.policy ?? {}).length === 0 && o.maxChain === undefined) {
    throw new RetentionRefusedError('nothing to decide: give keep rules (--keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly) and/or --max-chain N');
  }
  const what = describeRun(o);
  if (o.dryRun) {
    const pending = readJournal(o.repo, o.vmId);
    if (pending) {
      throw new RetentionRefusedError(`an interrupted ${pending.what} of VM ${JSON.stringify(o.vmId)} has ${pending.steps.length - pending.done} of ${pending.steps.length} steps left; run it without --dry-run to finish it, then preview again`);
    }
    return { ...decide(o, readAllManifests(o.repo, o.vmId), what), dryRun: true };
  }
  const lock = acquireRetentionLock(o.repo, o.vmId, what);
  try {
    const before = layerBytes(o.repo, o.vmId);
    const finishedEarlier = await finishJournal(o.repo, o.vmId, o);
    const decided = decide(o, readAllManifests(o.repo, o.vmId), what);
    const run = await runPlan(o.repo, decided.plan, what, o);
    const result = { ...run, bytesFreed: before - layerBytes(o.repo, o.vmId) };
    return { ...decided, dryRun: false, ...(finishedEarlier ? { finishedEarlier } : {}), result };
  } finally {
    lock.release();
  }
}

/**
 * Finishes a prune or merge a crash left unfinished (under the lock); undefined when none was
 * pending. Commands that read or write the VM's backups can call this first.
 */
export async function finishInterruptedRetention(repo: BackupRepository, vmId: string, options: ExecuteOptions = {}): Promise<ExecuteResult | undefined> {
  if (!readJournal(repo, vmId)) return undefined;
  const lock = acquireRetentionLock(repo, vmId, 'finish an interrupted prune');
  try {
    return await finishJournal(repo, vmId, options);
  } finally {
    lock.release();
  }
}

/** True when a prune or merge of the VM was interrupted and not yet finished. */
export function retentionPending(repo: BackupRepository, vmId: string): boolean {
  return fs.existsSync(journalPath(repo, vmId));
}
