// One backup session, whatever the mode and the driver: lock (with stale recovery) → plan (pure,
// plan.ts) → the strategy's one operation, which also creates the new checkpoint → the data moves
// → record (layers checksummed, then the manifest, the commit point, then the checkpoint) → done.
// Any failure before the manifest is written rolls everything back: the strategy undoes what it
// put into the hypervisor, the checkpoint is rolled back, partial layers are deleted. Earlier
// backups and checkpoints are never touched. The journal in the lock file says at every step what
// exists, so backup-status and backup-cancel work from any process, and a backup whose process
// died is cleaned up by the next one (recoverStale).

import * as fs from 'node:fs';
import { validateCheckpointName } from '../names';
import { OperationLog, type OperationReporter } from '../operation';
import { cancelMarker, endMarker, waitForEnd } from './control';
import { BackupLock, StaleBackupError, type BackupJournal } from './lock';
import { newBackupId, type BackupManifest, type BackupManifestDisk } from './manifest';
import { planBackup, type BackupPlan, type BackupRequest } from './plan';
import { shortChecksum } from './checksum';
import { buildManifest, recordLayer, TOOL, writeLogFile } from './record';
import { recoverStale } from './recover';
import type { BackupRepository } from './repository';
import type { BackupSource, BackupStrategy, LayerTarget, PendingCheckpoint, PointExport, StrategyRun } from './strategy';
import { usedCodePath } from '../../os/code-paths';

export { TOOL };
export { recoverStale };

/** What to back up; the same for push and pull. */
export interface BackupSpec {
  repo: BackupRepository;
  /** Full backup of every disk. */
  full?: boolean;
  /** Changes since this checkpoint (incremental if it is the newest backed-up one, else differential). */
  since?: string;
  /** Name of the checkpoint created with the backup; false: none (--no-checkpoint); default: the backup id. */
  checkpoint?: string | false;
  /** Disks to back up (default: all). */
  disks?: string[];
  /** Export-only pulls: called with the exports once an outside tool can read them. */
  onExports?: (exports: PointExport[]) => void;
}

export interface SessionResult {
  backupId: string;
  /** The manifest (absent for an export-only pull: nothing was written to the repository). */
  manifest?: BackupManifest;
  /** The checkpoint created with the backup. */
  checkpoint?: string;
  /** Largest size the scratch (fleece) images reached, for pulls. */
  scratchPeakBytes: number;
}

export class BackupFailedError extends Error {
  constructor(message: string, readonly backupId: string, readonly cancelled: boolean, readonly log: string[]) {
    super(message);
    this.name = 'BackupFailedError';
  }
}

/** The reason a session aborts with when it was cancelled (rather than failed). */
export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

type JournalInit = Omit<BackupJournal, 'pid' | 'startTicks' | 'host' | 'updatedAt'>;

/** Runs one backup of `source` with `strategy`. Resolves when it is recorded (or, export-only, ended). */
export async function runBackupSession<P extends PendingCheckpoint>(source: BackupSource<P>, strategy: BackupStrategy<P>, spec: BackupSpec, reporter: OperationReporter): Promise<SessionResult> {
  if (spec.full && spec.since !== undefined) throw new Error('--full and --since cannot be combined');
  if (typeof spec.checkpoint === 'string') validateCheckpointName(spec.checkpoint);
  const repo = spec.repo;
  const key = source.identity.key;
  const id = newBackupId();
  const log = new OperationLog(reporter);
  const init: JournalInit = {
    backupId: id, vmId: key, endpoint: '', startedAt: Date.now(), phase: 'preparing', kind: 'full', executed: false, disks: [], progress: [], log: [],
    mode: strategy.mode, ...(strategy.exportOnly ? { exportOnly: true } : {}), strategy: { name: strategy.name },
  };
  const lock = await acquireBackupLock(source, repo, init, log);
  const clearMarkers = () => {
    fs.rmSync(cancelMarker(repo, key), { force: true });
    fs.rmSync(endMarker(repo, key), { force: true });
  };
  clearMarkers();
  try {
    // Refuse at once (rather than wait for the VM's lock) while the hypervisor runs another Tidemark backup.
    await strategy.check();
    const what = strategy.mode === 'pull' ? 'pull backup' : 'backup';
    return await source.withLock(() => new Session(source, strategy, spec, id, lock, log).run(), `${what} ${id}`);
  } finally {
    lock.release();
    clearMarkers();
  }
}

/**
 * Takes the repository's backup lock for a new backup. A lock left by a backup whose process died
 * is cleaned up first (its checkpoint rolled back, its partial files removed); a live one is
 * refused with BackupBusyError.
 */
async function acquireBackupLock<P extends PendingCheckpoint>(source: BackupSource<P>, repo: BackupRepository, init: JournalInit, log: OperationLog): Promise<BackupLock> {
  try {
    return BackupLock.acquire(repo, init);
  } catch (e) {
    if (!(e instanceof StaleBackupError)) throw e;
    log.add(`cleaning up after an earlier backup that did not finish (${e.journal?.backupId ?? 'unknown'})`);
    await source.withLock(() => recoverStale(source, repo, e.journal, log), 'clean up an unfinished backup');
    return BackupLock.acquire(repo, init);
  }
}

/** One run, under the VM's lock: plan → the strategy's one operation → transfer → record. */
class Session<P extends PendingCheckpoint> {
  private readonly abort = new AbortController();
  private readonly key: string;
  private readonly noun: string;

  constructor(
    private readonly source: BackupSource<P>,
    private readonly strategy: BackupStrategy<P>,
    private readonly spec: BackupSpec,
    private readonly id: string,
    private readonly lock: BackupLock,
    private readonly log: OperationLog,
  ) {
    this.key = source.identity.key;
    this.noun = strategy.mode === 'pull' ? 'pull' : 'backup';
  }

  /**
   * Journal updates are for crash recovery (and backup-status); failing to write one (a full disk)
   * must not mask the real outcome. Only what recovery reads is written at once (the disks and the
   * strategy's state before anything is created, the prepared checkpoint, `executed`); `staged`
   * patches (phases for backup-status) ride along with the next write.
   */
  private journal(patch: Partial<BackupJournal>, staged = false): void {
    try {
      if (staged) this.lock.stage(patch);
      else this.lock.update(patch);
    } catch (e) {
      if (!this.log.lines.some((l) => l.includes('cannot update the backup journal'))) this.log.add(`cannot update the backup journal: ${(e as Error).message}`);
    }
  }

  private throwIfAborted(): void {
    const s = this.abort.signal;
    if (s.aborted) throw s.reason instanceof Error ? s.reason : new CancelledError();
  }

  private async plan(): Promise<{ plan: BackupPlan; view: Awaited<ReturnType<BackupSource<P>['inspect']>> }> {
    const { repo } = this.spec;
    const request: BackupRequest = this.spec.full ? { mode: 'full' } : this.spec.since !== undefined ? { mode: 'since', checkpoint: this.spec.since } : { mode: 'auto' };
    const view = await this.source.inspect();
    const plan = planBackup({
      vm: view.vm, request, disks: this.spec.disks, checkpoints: view.checkpoints, current: view.current, backups: repo.list(this.key),
      branchPoints: repo.branchPoints(this.key), needsFull: repo.needsFull(this.key),
      layerExists: (bid, disk) => fs.existsSync(repo.imagePath(this.key, disk, bid)),
      changesUnusable: (since, disk) => view.changesUnusable(since, disk),
    });
    return { plan, view };
  }

  async run(): Promise<SessionResult> {
    const { repo } = this.spec;
    const reporterSignal = this.log.reporter.signal;
    await this.strategy.check();
    if (!this.strategy.exportOnly) {
      // Only unfinished layers: a layer no readable manifest names may belong to a manifest this
      // version cannot read (a newer Tidemark's, a damaged one); backup-verify reports those.
      for (const f of repo.partialFiles(this.key)) {
        repo.removeFile(f);
        this.log.add(`removed ${f}: an unfinished layer (left by an interrupted backup)`);
      }
    }
    const { plan, view } = await this.plan();
    for (const n of plan.notes) this.log.add(n);
    const checkpointName = this.spec.checkpoint === false ? undefined : (this.spec.checkpoint ?? this.id);
    if (checkpointName !== undefined && view.checkpoints.some((c) => c.name === checkpointName)) {
      throw new Error(`checkpoint ${JSON.stringify(checkpointName)} already exists; choose another name with --checkpoint`);
    }
    const wantsCheckpoint = checkpointName !== undefined && plan.checkpointDisks.some((d) => d.checkpoint === 'bitmap');
    if (checkpointName !== undefined && !wantsCheckpoint) this.log.add('no checkpoint is created: none of the disks backed up can hold a bitmap');
    const prefix = this.strategy.mode === 'pull' ? 'pull ' : '';
    this.log.add(`${prefix}${plan.kind} backup of ${plan.disks.map((d) => `${d.disk.name} (${d.kind}${d.since ? ` since ${d.since}` : ''})`).join(', ')}${wantsCheckpoint ? `, new checkpoint ${checkpointName}` : ''}`);
    usedCodePath(`${this.strategy.mode}-${plan.kind}`); // the CLI's code cache then holds this kind's code (os/code-paths.ts)

    const targets: LayerTarget[] = plan.disks.map((d) => {
      const final = repo.imagePath(this.key, d.disk.name, this.id);
      return { plan: d, final, partial: `${final}.partial` };
    });
    const journalDisks = targets.map((t) => ({ disk: t.plan.disk.name, kind: t.plan.kind, partialImage: t.partial }));
    // Written by the strategy's first journal entry in setup, before it creates anything (else right after setup).
    this.journal({ endpoint: view.vm.endpoint, kind: plan.kind, since: plan.since, checkpoint: wantsCheckpoint ? checkpointName : undefined, disks: journalDisks, log: this.log.lines }, true);

    const marker = cancelMarker(repo, this.key);
    let executed = false;
    const cancelRequested = () => {
      if (!this.abort.signal.aborted && fs.existsSync(marker)) {
        this.log.add('cancel requested (backup-cancel)');
        this.abort.abort(new CancelledError());
      }
      return this.abort.signal.aborted;
    };
    const run: StrategyRun<P> = {
      backupId: this.id, vm: view.vm, plan, targets, log: this.log, signal: this.abort.signal, journalDisks,
      abort: (reason) => {
        if (!this.abort.signal.aborted) this.abort.abort(reason);
      },
      cancelRequested,
      journal: (state, patch) => this.journal({ ...patch, strategy: { name: this.strategy.name, state } }),
      markExecuted: () => {
        if (executed) return;
        executed = true;
        this.journal({ executed: true, phase: 'running' });
      },
    };
    const onAbort = () => run.abort(new CancelledError());
    reporterSignal.addEventListener('abort', onAbort);
    if (reporterSignal.aborted) onAbort();
    const watch = setInterval(cancelRequested, 200);
    let manifestWritten = false;
    try {
      await this.strategy.setup(run);
      if (this.lock.hasStaged) this.journal({});
      if (wantsCheckpoint) {
        const description = `${prefix}backup ${this.id}`;
        run.checkpoint = await this.source.prepareCheckpoint({ name: checkpointName, description, disks: plan.checkpointDisks });
        this.journal({ prepared: run.checkpoint }); // needed to roll the checkpoint back if this process dies: must be on disk first
      }
      this.throwIfAborted();
      await this.strategy.start(run);
      run.markExecuted();
      if (this.strategy.exportOnly) return await this.waitForEnd(run);

      const copied = await this.strategy.transfer(run);
      this.throwIfAborted();
      // Phases from here are for backup-status only: nothing recovery reads changes until the manifest
      // (whose existence is what it checks), so they ride along with a later write, if any.
      this.journal({ phase: 'finalizing' }, true);
      await this.strategy.finish(run);

      // Record: layers renamed into place and checksummed, then the manifest (the commit point), then the checkpoint.
      this.journal({ phase: 'recording' }, true);
      // Every disk's layer at once (one disk's sync beside another's hash); all settle before a failure is handled.
      const recorded = await Promise.allSettled(targets.map((t) => {
        const d = t.plan;
        const bitmap = wantsCheckpoint && plan.checkpointDisks.some((c) => c.name === d.disk.name && c.checkpoint === 'bitmap');
        return recordLayer(d, t.partial, t.final, this.id, copied.get(d.disk.name) ?? 0, bitmap, this.strategy.layerFacts?.(d.disk.name), this.strategy.earlyWriteback?.(d.disk.name));
      }));
      const disks: BackupManifestDisk[] = [];
      for (const r of recorded) {
        if (r.status === 'rejected') throw r.reason;
        disks.push(r.value);
        this.log.add(`${r.value.name}: ${r.value.kind}, ${r.value.bytesCopied} bytes copied, layer ${r.value.fileSize} bytes, ${shortChecksum(r.value)}…`);
      }
      const manifest = buildManifest({
        id: this.id, vm: view.vm, kind: plan.kind, since: plan.since, checkpoint: wantsCheckpoint ? checkpointName : undefined, layout: view.layout,
        startedAt: this.log.startedAt, tool: this.strategy.tool, disks,
      });
      this.throwIfAborted();
      repo.writeManifest(manifest);
      manifestWritten = true;
      await this.commitCheckpoint(run);
      // Complete from here on: what follows may fail without undoing the backup.
      try {
        const marks = repo.needsFull(this.key);
        for (const d of disks) if (d.kind === 'full') delete marks[d.name];
        repo.setNeedsFull(this.key, marks);
      } catch (e) {
        this.log.add(`cannot update the full-backup marks (${(e as Error).message}); the next backup of those disks may be full again`);
      }
      this.complete();
      writeLogFile(repo, this.key, this.id, this.log);
      return { backupId: this.id, manifest, ...(manifest.checkpoint ? { checkpoint: manifest.checkpoint } : {}), scratchPeakBytes: this.strategy.scratchPeakBytes?.() ?? 0 };
    } catch (e) {
      throw await this.rollBack(run, e, executed, manifestWritten);
    } finally {
      clearInterval(watch);
      reporterSignal.removeEventListener('abort', onAbort);
    }
  }

  private async commitCheckpoint(run: StrategyRun<P>): Promise<void> {
    if (!run.checkpoint) return;
    await this.source.commitCheckpoint(run.checkpoint);
    this.log.add(`checkpoint ${run.checkpoint.checkpoint.name} recorded`);
    run.checkpoint = undefined; // recorded: nothing to roll back any more
  }

  private complete(): void {
    const extra = this.strategy.summary?.();
    this.log.add(`${this.noun} ${this.id} complete${extra ? ` (${extra})` : ''}`);
  }

  /** Export-only: publish the exports, wait for backup-end, then end the operation and record its checkpoint. */
  private async waitForEnd(run: StrategyRun<P>): Promise<SessionResult> {
    const list = this.strategy.exports?.(run) ?? [];
    for (const e of list) this.log.add(`${e.disk}: ${e.uri}${e.dirtyContext ? ` (changes since ${e.since}: ${e.dirtyContext})` : ''}`);
    this.log.add('waiting for backup-end');
    this.spec.onExports?.(list);
    const outcome = await waitForEnd(endMarker(this.spec.repo, this.key), this.abort.signal);
    if (outcome !== 'success') throw new Error('backup-end reported that the outside copy failed');
    this.throwIfAborted();
    this.log.add('backup-end: the outside copy succeeded');
    this.journal({ phase: 'finalizing' });
    await this.strategy.finish(run);
    const checkpoint = run.checkpoint?.checkpoint.name;
    await this.commitCheckpoint(run);
    this.complete();
    return { backupId: this.id, ...(checkpoint ? { checkpoint } : {}), scratchPeakBytes: this.strategy.scratchPeakBytes?.() ?? 0 };
  }

  /** Undoes everything; the error to throw names what happened and what was undone. */
  private async rollBack(run: StrategyRun<P>, e: unknown, executed: boolean, manifestWritten: boolean): Promise<BackupFailedError> {
    const signal = this.abort.signal;
    const cancelled = (signal.aborted && signal.reason instanceof CancelledError) || e instanceof CancelledError;
    const raw = signal.aborted && signal.reason instanceof Error ? signal.reason.message : (e as Error).message;
    this.log.add(cancelled ? 'cancelled: rolling back' : `failed: ${raw}; rolling back`);
    this.journal({ phase: 'rolling-back', log: this.log.lines.slice(-50) });
    await this.strategy.rollback(run).catch((err: Error) => this.log.add(`clean-up in the hypervisor incomplete: ${err.message}`));
    const notes: string[] = [];
    const cp = run.checkpoint;
    if (cp && executed) {
      try {
        await this.source.rollbackCheckpoint(cp);
        notes.push(`checkpoint ${cp.checkpoint.name} rolled back`);
      } catch (err) {
        // With the hypervisor gone there is nothing to roll back: the bitmaps it created died with it, and the checkpoint was never recorded.
        notes.push(this.source.isAlive()
          ? `checkpoint ${cp.checkpoint.name} could not be rolled back (${(err as Error).message}); delete it with checkpoint-delete`
          : `checkpoint ${cp.checkpoint.name} was never recorded (QEMU is gone, and with it the bitmaps it created)`);
      }
    } else if (cp) notes.push(`checkpoint ${cp.checkpoint.name} was not created`);
    const repo = this.spec.repo;
    if (manifestWritten) repo.removeFile(repo.manifestPath(this.key, this.id));
    for (const t of run.targets) {
      repo.removeFile(t.partial);
      repo.removeFile(t.final);
    }
    if (!this.source.isAlive() && executed) {
      // QEMU may still hold this backup's jobs, nodes and bitmaps (only the connection is gone):
      // the journal stays, marked stale, so the next command or backup-cancel cleans them up.
      this.lock.abandon(`the connection to the hypervisor was lost during backup ${this.id}`);
      notes.push('the hypervisor could not be cleaned up (connection lost): the next backup or backup-cancel does it');
    }
    notes.push(this.strategy.rollbackNote);
    for (const n of notes) this.log.add(n);
    // Asked only now: by the end of the rollback a vanished hypervisor has certainly been noticed.
    const reason = cancelled ? raw : (this.strategy.explain?.(raw) ?? raw);
    const msg = `${this.noun} ${this.id} ${cancelled ? 'was cancelled' : `failed: ${reason}`}; ${notes.join('; ')}`;
    if (!this.strategy.exportOnly) writeLogFile(this.spec.repo, this.key, this.id, this.log);
    return new BackupFailedError(msg, this.id, cancelled, this.log.lines);
  }
}
