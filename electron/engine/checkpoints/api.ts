// The checkpoint engine's public surface. The CLI, the host service, backups and pull mode code
// against this interface; engine.ts implements it.

import type {
  BitmapLayout, ChangesSince, Checkpoint, CreateCheckpointOptions, DeleteMode, DeleteResult, HealthReport, ListFilter, VmInfo,
} from '../../../shared/domain';

/** Runs a checkpoint's or a backup's one QMP transaction inside something (quiesce: a guest freeze). */
export type AroundTransaction = <T>(transaction: () => Promise<T>) => Promise<T>;

export type { CreateCheckpointOptions, DeleteResult, ListFilter };

/** One action of a QMP `transaction`. */
export interface QmpAction {
  type: string;
  data: Record<string, unknown>;
}


/** A checkpoint prepared but not yet executed: its actions go into a caller's transaction (backups). */
export interface PreparedCheckpoint {
  checkpoint: Checkpoint;
  actions: QmpAction[];
}

export interface CheckpointEngineApi {
  readonly vmId: string;
  /** Live VM state (re-queried; inside a withLock hold QEMU is read once, at the first read: live-vm.ts). */
  vm(): Promise<VmInfo>;
  health(): Promise<HealthReport>;
  layout(): BitmapLayout | undefined;
  list(filter?: ListFilter): Checkpoint[];
  /** Throws an error naming the checkpoint when it does not exist. */
  get(name: string): Checkpoint;
  parent(name: string): Checkpoint | undefined;
  current(): Checkpoint | undefined;
  /** `around` wraps only the one transaction (quiesce: the guest's file systems frozen for it). */
  create(options?: CreateCheckpointOptions, around?: AroundTransaction): Promise<Checkpoint>;
  delete(name: string, mode?: DeleteMode): Promise<DeleteResult>;
  /** Dirty bytes per disk since `name`, via a temporary merged bitmap (created and removed). */
  changesSince(name: string): Promise<ChangesSince>;
  dumpXml(name: string, options?: { size?: boolean; noDomain?: boolean }): Promise<string>;
  createFromXml(xml: string, options?: { redefine?: boolean; validate?: boolean }): Promise<Checkpoint>;

  // Seams for backups and pull mode: a checkpoint created inside a caller's transaction.
  /** Plans the checkpoint and records it as pending (STATE/vms/<vm>/pending/), so that health in any
   *  process reports its bitmaps as "being created by <command>" instead of foreign. Call prepare,
   *  run the actions and commit (or roll back) inside one withLock: at the end of that lock hold an
   *  unresolved pending checkpoint is forgotten (no bitmaps) or marked abandoned (bitmaps exist).
   *  Pending checkpoints of a dead process, or abandoned ones, are left-overs: health warns, and the
   *  next prepare/create/delete rolls them back (delete(name) of a left-over does just that). */
  prepareCreate(options?: CreateCheckpointOptions): Promise<PreparedCheckpoint>;
  /** Records a prepared checkpoint after its actions succeeded (it becomes current); forgets the pending record. */
  commitCreate(prepared: PreparedCheckpoint): Promise<void>;
  /** Undoes a prepared checkpoint whose actions ran but whose backup failed (both layouts); forgets the
   *  pending record. Nothing to undo (no bitmaps, not recorded) is fine: it can be called again. */
  rollbackCreate(prepared: PreparedCheckpoint): Promise<void>;
  /** Actions that fill temporary bitmap `tmpName` on `disk` with the changes since `since`
   *  (add non-persistent disabled + merge). Throws, naming the reason, if `since` is unusable on that disk.
   *  `tmpName` must start with "tidemark-tmp-". In one transaction with a prepared checkpoint, put these
   *  actions first: they describe the state before the new checkpoint. */
  tempBitmapActions(since: string, disk: string, tmpName: string): QmpAction[];
  /** Runs `fn` holding the VM's metadata lock; `command` is shown to whoever finds the lock held. */
  withLock<T>(fn: () => Promise<T>, command?: string): Promise<T>;
  close(): Promise<void>;
}
