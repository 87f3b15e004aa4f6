// The two sides of a backup session (session.ts). A backup is ONE operation with two modes, as
// libvirt's virDomainBackupBegin: push (the hypervisor writes the layers) or pull (the point in
// time is exported over NBD and read by Tidemark or an outside tool). Everything both modes share
// (the lock and journal, the plan, checksummed layers, the manifest written last, the checkpoint
// committed or rolled back, crash recovery) is the session's. What differs is a strategy: how the
// hypervisor is told to fix the point in time and move the data. Nothing here knows QMP; the QMP
// driver's strategies live in engine/qmp-driver/, a libvirt driver brings its own.

import type { BitmapLayout, Checkpoint, CreateCheckpointOptions, VmInfo } from '../../../shared/domain';
import type { DurableIdentity } from '../identity';
import type { OperationLog } from '../operation';
import type { BackupJournal, JournalDisk, StrategyJournal } from './lock';
import type { BackupPlan, DiskPlan } from './plan';
import type { LayerFacts } from './record';

/** A checkpoint prepared to be created inside the backup's one operation (its shape is the driver's). */
export interface PendingCheckpoint {
  checkpoint: Checkpoint;
}

/** What the session needs to know about the VM to plan a backup, read once under the VM's lock. */
export interface SourceView {
  vm: VmInfo;
  checkpoints: Checkpoint[];
  current?: string;
  layout?: BitmapLayout;
  /** Why the changes on `disk` since `since` cannot be had, or undefined when they can. */
  changesUnusable(since: string, disk: string): string | undefined;
}

/** The VM being backed up, as its driver presents it to a session. */
export interface BackupSource<P extends PendingCheckpoint = PendingCheckpoint> {
  readonly identity: DurableIdentity;
  /** Runs `fn` holding the VM's checkpoint lock (nothing else changes its checkpoints meanwhile). */
  withLock<T>(fn: () => Promise<T>, command: string): Promise<T>;
  /** Health re-checked, then the live VM and its checkpoints. */
  inspect(): Promise<SourceView>;
  prepareCheckpoint(options: CreateCheckpointOptions): Promise<P>;
  commitCheckpoint(prepared: P): Promise<void>;
  /** Undoes a prepared checkpoint whose operation ran. */
  rollbackCheckpoint(prepared: P): Promise<void>;
  /** The checkpoint names recorded now. */
  checkpointNames(): Promise<Set<string>>;
  /** False when the hypervisor is gone (its bitmaps died with it: nothing to roll back there). */
  isAlive(): boolean;
  /** Undoes what a strategy of this driver left in the hypervisor, from a dead backup's journal. */
  recover(strategy: StrategyJournal | undefined, journal: BackupJournal, log: OperationLog): Promise<void>;
}

/** One planned layer: where it is written (partial) and where it ends up. */
export interface LayerTarget {
  plan: DiskPlan;
  /** REPO/vms/<vm>/disks/<disk>/<id>.qcow2.partial while it is written. */
  partial: string;
  /** The same without .partial, after it was checksummed. */
  final: string;
}

/** What a strategy works with while the session runs it. */
export interface StrategyRun<P extends PendingCheckpoint = PendingCheckpoint> {
  backupId: string;
  vm: VmInfo;
  plan: BackupPlan;
  targets: LayerTarget[];
  /** The backup's checkpoint, once prepared (its actions go into the one operation). */
  checkpoint?: P;
  log: OperationLog;
  /** Aborts on cancel (job:cancel, backup-cancel) or when something trips (reason: an Error). */
  signal: AbortSignal;
  /** Stops the backup: everything is rolled back with `reason` as the cause. */
  abort(reason: Error): void;
  /** True (and aborts) when backup-cancel asked from another process; checked at the strategy's own pace too. */
  cancelRequested(): boolean;
  /** Call right after the one operation succeeded: from now on a crash means the checkpoint's bitmaps exist. */
  markExecuted(): void;
  /** Records the strategy's own state in the journal (what to undo if this process dies). */
  journal(state: unknown, patch?: Partial<Pick<BackupJournal, 'progress' | 'log'>>): void;
  /** The generic per-disk journal entries. */
  journalDisks: JournalDisk[];
}

/** Bytes each disk's layer received, by disk name. */
export type CopiedBytes = Map<string, number>;

/** An NBD export of the point in time, for an export-only pull. */
export interface PointExport {
  disk: string;
  kind: DiskPlan['kind'];
  since?: string;
  /** nbd+unix:///NAME?socket=PATH or nbds://HOST:PORT/NAME. */
  uri: string;
  exportName: string;
  /** The metadata context of the changes since `since` (incremental/differential). */
  dirtyContext?: string;
  size: number;
}

export interface BackupStrategy<P extends PendingCheckpoint = PendingCheckpoint> {
  readonly mode: 'push' | 'pull';
  /** Written to the journal: which recovery undoes it ("qmp-push"). */
  readonly name: string;
  /** The manifest's `tool`. */
  readonly tool: string;
  /** With pull: copy nothing, publish the exports and wait for backup-end. */
  readonly exportOnly: boolean;
  /** The last words of a rollback message: what was deleted. */
  readonly rollbackNote: string;
  /** Refuses at once, before anything is created (e.g. the hypervisor runs another Tidemark backup). */
  check(): Promise<void>;
  /** Before the checkpoint is prepared: targets, scratch images, nodes (journaled as created). */
  setup(run: StrategyRun<P>): Promise<void>;
  /** THE one operation: fixes the point in time, creates the checkpoint's bitmaps, starts the jobs. */
  start(run: StrategyRun<P>): Promise<void>;
  /** Export-only pull: the exports an outside tool reads. */
  exports?(run: StrategyRun<P>): PointExport[];
  /** Moves the data into the layers (waits for the jobs, or copies over NBD); the bytes per disk. */
  transfer(run: StrategyRun<P>): Promise<CopiedBytes>;
  /** After success: ends the jobs and removes what it put into the hypervisor; layers are closed after it. */
  finish(run: StrategyRun<P>): Promise<void>;
  /** After a failure: undoes what it put into the hypervisor (best effort); its own scratch files too. */
  rollback(run: StrategyRun<P>): Promise<void>;
  /** After finish: a layer's virtual size and its source's compat as the hypervisor reported them
   *  (recordLayer then runs no `qemu-img info`); undefined: recordLayer reads them with qemu-img. */
  layerFacts?(disk: string): LayerFacts | undefined;
  /** After finish: the end of the strategy's own syncs of this disk's layer while it was written
   *  (rejects with their first error); recordLayer's sync runs beside it. */
  earlyWriteback?(disk: string): Promise<void> | undefined;
  /** Why a failure happened, in words that name the real cause (e.g. the hypervisor went away). */
  explain?(reason: string): string;
  /** e.g. "fleecing peak 3.0 MiB", for the last log line. */
  summary?(): string | undefined;
  /** Largest size the scratch (fleece) images reached. */
  scratchPeakBytes?(): number;
}
