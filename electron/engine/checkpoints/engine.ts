// The checkpoint engine: plan (plan*.ts, pure) → execute (execute.ts: one QMP transaction for all
// disks) → record (store.ts). Every operation first re-reads the metadata and the live VM, checks
// health, and holds the VM's metadata lock while it changes anything.
//
// A checkpoint prepared for a caller's transaction (backups, pulls) is recorded as "pending" until
// commitCreate/rollbackCreate (pending.ts), so health elsewhere says "being created by backup X"
// rather than calling its bitmaps foreign. Pending checkpoints whose process died (or whose
// operation ended without resolving them) are rolled back by the next create, prepare or delete.

import { randomBytes } from 'node:crypto';
import type {
  BitmapLayout, ChangesSince, Checkpoint, CreateCheckpointOptions, DeleteMode, DeleteResult, HealthIssue, HealthReport, ListFilter, VmInfo,
} from '../../../shared/domain';
import { TEMP_BITMAP_PREFIX, validateCheckpointName } from '../names';
import { discoverVm, type QmpExecutor } from '../vm/discovery';
import type { AroundTransaction, CheckpointEngineApi, PreparedCheckpoint, QmpAction } from './api';
import { assertNotBusy, liveView, measureChanges, runTransaction } from './execute';
import { checkHealth } from './health';
import { LockHolds } from './hold';
import { LiveVm } from './live-vm';
import { assertCommittable, PendingCheckpoints, rollbackState } from './pending';
import {
  assertDeleteMode, deleteOrder, planCreate, planDelete, planNewCheckpoint, planRollbackCreate, updatedSurvivors, withUnrecorded, type PlanLive, type PlanState,
} from './plan';
import { planTempBitmap, withSizes } from './plan-changes';
import { checkXmlRequest, disksFromXml, planRedefine } from './plan-redefine';
import { listCheckpoints } from './query';
import { MetadataStore, stageBefore, type StagedChanges, type VmRecord } from './store';
import { formatCheckpointXml, parseCheckpointXml } from './xml';

export interface CheckpointEngineOptions {
  /** The QMP endpoint string the client is connected to (part of the identity when QEMU has no uuid/name). */
  endpoint: string;
  stateDir: string;
  /** How long to wait for another process's metadata lock (default 5 s). */
  lockWaitMs?: number;
}

export class CheckpointEngine implements CheckpointEngineApi {
  readonly vmId: string;
  private vmRec: VmRecord | undefined;
  private checkpoints = new Map<string, Checkpoint>();
  private readonly liveVm: LiveVm;
  private lastIssues: HealthIssue[] = [];
  private readonly holds: LockHolds;
  /** The command of the lock hold in progress (what a pending checkpoint's owner is called). */
  private holdCommand = 'checkpoint operation';
  private readonly pending: PendingCheckpoints;
  private closed = false;

  private constructor(
    private readonly client: QmpExecutor,
    private readonly store: MetadataStore,
    vm: VmInfo,
    private readonly opts: CheckpointEngineOptions,
  ) {
    this.vmId = vm.id;
    this.liveVm = new LiveVm(client, opts.endpoint, vm.id, vm);
    this.pending = new PendingCheckpoints(store);
    this.holds = new LockHolds({
      acquire: async (command) => {
        const release = await store.lock(command, opts.lockWaitMs);
        this.holdCommand = command;
        this.liveVm.forgetHeld();
        return release;
      },
      beforeRelease: async () => {
        this.liveVm.forgetHeld();
        await this.pending.settle(() => discoverVm(client, opts.endpoint));
      },
    });
  }

  /** Discovers the VM, loads its metadata and checks health. Throws on damaged metadata. */
  static async open(client: QmpExecutor, opts: CheckpointEngineOptions): Promise<CheckpointEngine> {
    const vm = await discoverVm(client, opts.endpoint);
    const engine = new CheckpointEngine(client, new MetadataStore(opts.stateDir, vm.id, vm.name), vm, opts);
    engine.reload();
    engine.lastIssues = engine.computeHealth(vm);
    return engine;
  }

  // ---------------------------------------------------------------- state

  private reload(): void {
    const { vm, checkpoints } = this.store.load();
    this.vmRec = vm;
    this.checkpoints = checkpoints;
  }

  /** Re-reads metadata and the live VM (once per lock hold: live-vm.ts); updates the cached health. */
  private async refresh(): Promise<VmInfo> {
    this.assertOpen();
    this.reload();
    const vm = await this.liveVm.read(this.holds.inside);
    this.lastIssues = this.computeHealth(vm);
    return vm;
  }

  /** After a transaction (ours or a caller's): metadata and the bitmaps re-read; the cached health updated. */
  private async refreshBitmaps(): Promise<VmInfo> {
    this.assertOpen();
    this.reload();
    const vm = await this.liveVm.rereadBitmaps(this.holds.inside);
    this.lastIssues = this.computeHealth(vm);
    return vm;
  }

  /** After a change was recorded: a QEMU that went away just now does not turn success into failure. */
  private async refreshAfterChange(): Promise<void> {
    try {
      await this.refreshBitmaps();
    } catch {
      // the next operation re-reads everything anyway
    }
  }

  /** How messages name the VM: "name (id)" when it has a name. */
  private get label(): string {
    return this.store.label;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the checkpoint engine was closed');
  }

  private planState(): PlanState {
    // A current checkpoint without metadata (reported by health) counts as none.
    return { layout: this.layout() ?? 'independent', checkpoints: this.checkpoints, current: this.current()?.name };
  }

  private live(vm: VmInfo): PlanLive {
    return liveView(vm, this.label);
  }

  private computeHealth(vm: VmInfo): HealthIssue[] {
    return checkHealth({ layout: this.layout() ?? 'independent', checkpoints: this.checkpoints, current: this.vmRec?.current, disks: vm.disks, pending: this.pending.list() });
  }

  /** Rolls back left-over pending checkpoints (see pending.ts); returns the names rolled back. */
  private async reapLeftovers(vm: VmInfo): Promise<string[]> {
    const reaped = await this.pending.reapLeftovers(vm, (name) => this.checkpoints.has(name), (cp, what) => this.undoBitmaps(withUnrecorded(this.planState(), cp), cp, vm, what));
    if (reaped.length > 0) await this.refreshBitmaps();
    return reaped;
  }

  /** Undoes the bitmaps of `cp`, current in `stateWithIt` (chained: merge back, re-enable predecessor). */
  private async undoBitmaps(stateWithIt: PlanState, cp: Checkpoint, vm: VmInfo, what: string): Promise<void> {
    const actions = planRollbackCreate(stateWithIt, cp.name, this.live(vm));
    assertNotBusy(actions, vm);
    await runTransaction(this.client, actions, what);
  }

  private baseRecord(vm: VmInfo): VmRecord {
    return { id: vm.id, name: vm.name, uuid: vm.uuid, endpoint: vm.endpoint, layout: this.vmRec?.layout, current: this.vmRec?.current };
  }

  // ---------------------------------------------------------------- locking

  async withLock<T>(fn: () => Promise<T>, command = 'checkpoint operation'): Promise<T> {
    this.assertOpen();
    return this.holds.run(command, fn); // re-entrant within one engine's async call chain
  }

  // ---------------------------------------------------------------- queries

  async vm(): Promise<VmInfo> {
    return this.refresh();
  }

  async health(): Promise<HealthReport> {
    await this.refresh();
    return { vmId: this.vmId, checkedAt: Date.now(), issues: this.lastIssues };
  }

  layout(): BitmapLayout | undefined {
    return this.vmRec?.layout;
  }

  get(name: string): Checkpoint {
    const cp = this.checkpoints.get(name);
    if (!cp) throw new Error(`checkpoint ${name} not found`);
    return cp;
  }

  parent(name: string): Checkpoint | undefined {
    const p = this.get(name).parent;
    return p === undefined ? undefined : this.checkpoints.get(p);
  }

  current(): Checkpoint | undefined {
    const c = this.vmRec?.current;
    return c === undefined ? undefined : this.checkpoints.get(c);
  }

  list(filter: ListFilter = {}): Checkpoint[] {
    return listCheckpoints(this.checkpoints, filter);
  }

  // ---------------------------------------------------------------- create

  /**
   * Checks and plans a new checkpoint without executing it, and records it as pending (until
   * commitCreate or rollbackCreate) so that others see its bitmaps as being created, not foreign.
   * Prepare, run and commit inside one withLock: when the lock is released, an unresolved pending
   * checkpoint is forgotten (no bitmaps) or marked abandoned (bitmaps exist).
   */
  async prepareCreate(options: CreateCheckpointOptions = {}): Promise<PreparedCheckpoint> {
    return this.prepare(options, true);
  }

  private async prepare(options: CreateCheckpointOptions, markPending: boolean): Promise<PreparedCheckpoint> {
    if (options.name !== undefined) validateCheckpointName(options.name);
    return this.withLock(async () => {
      let vm = await this.refresh();
      if ((await this.reapLeftovers(vm)).length > 0) vm = this.liveVm.last;
      const checkpoint = planNewCheckpoint({
        options, storedLayout: this.vmRec?.layout, checkpoints: this.checkpoints, current: this.current()?.name, disks: vm.disks, nowMs: Date.now(), vmLabel: this.label,
      });
      const actions = planCreate({ ...this.planState(), layout: checkpoint.layout }, checkpoint, this.live(vm));
      assertNotBusy(actions, vm);
      if (markPending) this.pending.add(checkpoint, this.holdCommand);
      return { checkpoint, actions };
    }, 'prepare checkpoint');
  }

  /** The new checkpoint's metadata, written aside until commit (it becomes current). */
  private stageRecord(prepared: PreparedCheckpoint): StagedChanges {
    const cp = prepared.checkpoint;
    return this.store.stage({ write: [cp], vm: { ...this.baseRecord(this.liveVm.last), layout: cp.layout, current: cp.name } });
  }

  private record(prepared: PreparedCheckpoint): void {
    try {
      this.stageRecord(prepared).commit();
    } catch (e) {
      throw new Error(`${(e as Error).message}; checkpoint ${prepared.checkpoint.name} was not recorded`, { cause: e });
    }
    this.reload();
  }

  /** Records a prepared checkpoint whose actions succeeded; it becomes current. */
  async commitCreate(prepared: PreparedCheckpoint): Promise<void> {
    await this.withLock(async () => {
      const vm = await this.refreshBitmaps(); // after the caller's transaction
      const cp = prepared.checkpoint;
      assertCommittable(cp, this.checkpoints.has(cp.name), this.current()?.name, this.live(vm));
      this.record(prepared);
      this.pending.resolve(cp.name);
      this.lastIssues = this.computeHealth(vm);
    }, `commit checkpoint ${prepared.checkpoint.name}`);
  }

  /** Undoes a prepared checkpoint whose actions ran (chained: merge back, re-enable predecessor). */
  async rollbackCreate(prepared: PreparedCheckpoint): Promise<void> {
    await this.withLock(async () => {
      const vm = await this.refreshBitmaps(); // after the caller's transaction (if it ran)
      const cp = prepared.checkpoint;
      const recorded = this.checkpoints.has(cp.name);
      // Nothing to undo when none of its bitmaps exist (never created, or already cleaned up).
      const undoFrom = rollbackState(this.planState(), cp, recorded, vm.disks);
      if (undoFrom) await this.undoBitmaps(undoFrom, cp, vm, `rolling back checkpoint ${cp.name}`);
      if (recorded) {
        this.store.writeVm({ ...this.baseRecord(vm), current: cp.parent });
        this.store.removeCheckpoint(cp.name);
        this.reload();
      }
      this.pending.resolve(cp.name);
      await this.refreshBitmaps();
    }, `roll back checkpoint ${prepared.checkpoint.name}`);
  }

  async create(options: CreateCheckpointOptions = {}, around: AroundTransaction = (t) => t()): Promise<Checkpoint> {
    if (options.name !== undefined) validateCheckpointName(options.name); // before anything is touched
    return this.withLock(async () => {
      // No pending record: the metadata is committed in this same hold, right after the transaction.
      const prepared = await this.prepare(options, false);
      // Metadata first, aside: a state directory that cannot take it fails before QEMU changes.
      const staged = stageBefore(() => this.stageRecord(prepared));
      try {
        await around(() => runTransaction(this.client, prepared.actions, `creating checkpoint ${prepared.checkpoint.name}`));
      } catch (e) {
        staged.abort();
        throw e;
      }
      staged.commit();
      this.reload();
      await this.refreshAfterChange(); // so tempBitmapActions etc. see the new bitmaps
      return prepared.checkpoint;
    }, `create checkpoint ${options.name ?? ''}`.trim());
  }

  // ---------------------------------------------------------------- delete

  async delete(name: string, mode: DeleteMode = 'plain'): Promise<DeleteResult> {
    assertDeleteMode(mode);
    return this.withLock(async () => {
      let vm = await this.refresh();
      const reaped = await this.reapLeftovers(vm);
      if (reaped.length > 0) vm = this.liveVm.last;
      if (!this.checkpoints.has(name)) {
        // A left-over pending checkpoint is deleted by rolling it back (done just above).
        if (reaped.includes(name)) return { deleted: [name], reparented: [] };
        const busy = this.pending.list().find((p) => p.checkpoint.name === name);
        if (busy) throw new Error(`checkpoint ${name} is being created by ${busy.command} (pid ${busy.pid}); it cannot be deleted until that operation ends`);
      }
      this.get(name);
      const order = deleteOrder(this.planState(), name, mode);
      if (order.length === 0) return { deleted: [], reparented: [] };
      const plan = planDelete(this.planState(), order, this.live(vm), mode === 'metadata');
      assertNotBusy(plan.actions, vm);

      // The new metadata is staged before QEMU changes; committed after: survivors first (a crash
      // in between leaves a valid tree), then vm.json, then the removals.
      const survivors = updatedSurvivors(this.checkpoints, plan);
      const staged = stageBefore(() => this.store.stage({ write: survivors, vm: { ...this.baseRecord(vm), current: plan.state.current }, remove: plan.deleted }));
      try {
        await runTransaction(this.client, plan.actions, `deleting checkpoint ${order.length > 1 ? order.join(', ') : name}`);
      } catch (e) {
        staged.abort();
        throw e;
      }
      staged.commit();
      await this.refreshAfterChange();
      return { deleted: plan.deleted, reparented: plan.reparented };
    }, `delete checkpoint ${name}`);
  }

  // ---------------------------------------------------------------- changes since

  tempBitmapActions(since: string, disk: string, tmpName: string): QmpAction[] {
    if (!tmpName.startsWith(TEMP_BITMAP_PREFIX)) throw new Error(`temporary bitmap name ${JSON.stringify(tmpName)} must start with "${TEMP_BITMAP_PREFIX}"`);
    this.get(since);
    return planTempBitmap(this.planState(), since, disk, tmpName, this.live(this.liveVm.last));
  }

  async changesSince(name: string): Promise<ChangesSince> {
    return this.withLock(async () => {
      const vm = await this.refresh();
      return this.measureChanges(vm, name);
    }, `changes since ${name}`);
  }

  private async measureChanges(vm: VmInfo, name: string): Promise<ChangesSince> {
    const cp = this.get(name);
    return measureChanges(this.client, vm, this.planState(), this.live(vm), cp, randomBytes(6).toString('hex'));
  }

  // ---------------------------------------------------------------- XML

  async dumpXml(name: string, options: { size?: boolean; noDomain?: boolean } = {}): Promise<string> {
    if (!options.size) {
      // Reading only: no lock, so a dump works while another process holds it.
      await this.refresh();
      return formatCheckpointXml(this.get(name), { noDomain: options.noDomain });
    }
    // --size adds (and removes) temporary bitmaps: under the lock, like any change.
    return this.withLock(async () => {
      const vm = await this.refresh();
      const changes = await this.measureChanges(vm, name);
      return formatCheckpointXml(withSizes(this.get(name), changes), { noDomain: options.noDomain });
    }, `dumpxml ${name} --size`);
  }

  async createFromXml(xml: string, options: { redefine?: boolean; validate?: boolean } = {}): Promise<Checkpoint> {
    const parsed = parseCheckpointXml(xml);
    checkXmlRequest(parsed, options);
    if (!options.redefine) {
      return this.withLock(async () => {
        const vm = await this.refresh();
        const disks = disksFromXml(parsed, vm.disks, this.label);
        return this.create({ name: parsed.name, description: parsed.description, disks });
      }, 'create checkpoint from XML');
    }
    const name = parsed.name!;
    return this.withLock(async () => {
      const vm = await this.refresh();
      const layout = this.layout() ?? 'independent';
      const { checkpoint, current } = planRedefine({
        parsed: { ...parsed, name }, checkpoints: this.checkpoints, current: this.vmRec?.current, layout, disks: vm.disks,
        validate: Boolean(options.validate), nowMs: Date.now(), vmLabel: this.label,
      });
      stageBefore(() => this.store.stage({ write: [checkpoint], vm: { ...this.baseRecord(vm), layout, current } })).commit();
      this.reload();
      await this.refreshAfterChange();
      return this.get(name);
    }, `redefine checkpoint ${name}`);
  }

  async close(): Promise<void> {
    // The QMP client belongs to the caller; wait for a running operation, then refuse new ones.
    await this.holds.idle();
    this.closed = true;
  }
}
