// The checkpoint engine: plan (plan.ts, pure) → execute (one QMP transaction for all disks) →
// record (store.ts). Every operation first re-reads the metadata and the live VM, checks health,
// and holds the VM's metadata lock while it changes anything.
//
// A checkpoint prepared for a caller's transaction (backups, pulls) is recorded as "pending" until
// commitCreate/rollbackCreate, so health elsewhere says "being created by backup X" rather than
// calling its bitmaps foreign. Pending checkpoints whose process died (or whose operation ended
// without resolving them) are rolled back by the next create, prepare or delete.

import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import type {
  BitmapLayout, ChangesSince, Checkpoint, CheckpointDisk, CreateCheckpointOptions, DeleteMode, DeleteResult, HealthIssue, HealthReport, ListFilter, VmInfo,
} from '../../../shared/domain';
import { QmpConnectionError, QmpError } from '../../qmp/errors';
import { TEMP_BITMAP_PREFIX, validateCheckpointName } from '../names';
import { discoverVm, type QmpExecutor } from '../vm/discovery';
import type { CheckpointEngineApi, PreparedCheckpoint, QmpAction } from './api';
import { bitmapIsValidForCheckpoint, checkHealth, type PendingInput } from './health';
import { isProcessAlive, ownStartTime } from '../../os/process-liveness';
import {
  changesSinceBitmaps, deleteOrder, planCreate, planDelete, planRollbackCreate, planTempBitmap, type LiveBitmap, type PlanLive, type PlanState,
} from './plan';
import { listCheckpoints } from './query';
import { MetadataStore, type PendingCheckpoint, type StagedChanges, type VmRecord } from './store';
import { formatCheckpointXml, parseCheckpointXml, type ParsedCheckpointXml } from './xml';

export interface CheckpointEngineOptions {
  /** The QMP endpoint string the client is connected to (part of the identity when QEMU has no uuid/name). */
  endpoint: string;
  stateDir: string;
  /** How long to wait for another process's metadata lock (default 5 s). */
  lockWaitMs?: number;
}

const VALID_MODES: readonly DeleteMode[] = ['plain', 'children', 'children-only', 'metadata'];

/** A name given by the user, quoted in messages when it holds anything unusual ("vda\n", "../x"). */
function shown(name: string): string {
  return /^[\w.:@+-]+$/.test(name) ? name : JSON.stringify(name);
}

export class CheckpointEngine implements CheckpointEngineApi {
  readonly vmId: string;
  private vmRec: VmRecord | undefined;
  private checkpoints = new Map<string, Checkpoint>();
  private lastVm: VmInfo;
  private lastIssues: HealthIssue[] = [];
  private readonly inLock = new AsyncLocalStorage<boolean>();
  private mutex: Promise<void> = Promise.resolve();
  /** The command of the lock hold in progress (what a pending checkpoint's owner is called). */
  private holdCommand = 'checkpoint operation';
  /** Pending checkpoints this engine prepared during the current lock hold and has not resolved. */
  private readonly heldPending = new Set<string>();
  private closed = false;

  private constructor(
    private readonly client: QmpExecutor,
    private readonly store: MetadataStore,
    vm: VmInfo,
    private readonly opts: CheckpointEngineOptions,
  ) {
    this.vmId = vm.id;
    this.lastVm = vm;
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

  /** Re-reads metadata and the live VM; updates the cached health. */
  private async refresh(): Promise<VmInfo> {
    this.assertOpen();
    this.reload();
    let vm: VmInfo;
    try {
      vm = await discoverVm(this.client, this.opts.endpoint);
    } catch (e) {
      if (e instanceof QmpConnectionError) throw new Error(`QEMU at ${this.opts.endpoint} is gone (${e.message}); nothing was changed`, { cause: e });
      throw e;
    }
    if (vm.id !== this.vmId) throw new Error(`the VM at ${this.opts.endpoint} is now ${vm.id}, not ${this.vmId}; reopen the engine`);
    this.lastVm = vm;
    this.lastIssues = this.computeHealth(vm);
    return vm;
  }

  /** After a change was recorded: a QEMU that went away just now does not turn success into failure. */
  private async refreshAfterChange(): Promise<void> {
    try {
      await this.refresh();
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
    const disks = new Map(vm.disks.map((d) => [d.name, d]));
    return {
      node: (disk) => {
        const d = disks.get(disk);
        if (!d) throw new Error(`disk ${disk} is not attached to VM ${this.label}`);
        return d.nodeName;
      },
      bitmap: (disk, name): LiveBitmap => {
        const b = disks.get(disk)?.bitmaps.find((x) => x.name === name);
        return !b ? 'missing' : b.inconsistent ? 'inconsistent' : 'ok';
      },
    };
  }

  private computeHealth(vm: VmInfo): HealthIssue[] {
    return checkHealth({ layout: this.layout() ?? 'independent', checkpoints: this.checkpoints, current: this.vmRec?.current, disks: vm.disks, pending: this.pending() });
  }

  /** Pending checkpoints with the state of their owner: still at work, died, or gave up on them. */
  private pending(): PendingInput[] {
    return this.store.loadPending().map((record: PendingCheckpoint) => ({
      checkpoint: record.checkpoint,
      command: record.owner.command,
      pid: record.owner.pid,
      status: !isProcessAlive(record.owner.pid, record.owner.start) ? 'interrupted' : record.abandoned ? 'abandoned' : 'in-progress',
    }));
  }

  /**
   * Rolls back the bitmaps of pending checkpoints whose operation is over (its process died, or it
   * ended without commit or rollback) and forgets them; forgets markers of recorded checkpoints.
   * Runs under the lock, before a create or delete. Returns the names rolled back.
   */
  private async reapLeftovers(vm: VmInfo): Promise<string[]> {
    const reaped: string[] = [];
    for (const p of this.pending()) {
      const cp = p.checkpoint;
      if (this.checkpoints.has(cp.name)) {
        this.store.removePending(cp.name); // committed; the process died before it removed the marker
        continue;
      }
      if (p.status === 'in-progress') continue;
      const live = this.live(vm);
      if (cp.disks.some((d) => d.checkpoint === 'bitmap' && vm.disks.some((x) => x.name === d.name) && live.bitmap(d.name, d.bitmap ?? cp.name) !== 'missing')) {
        const state = this.planState();
        const withIt: PlanState = { layout: cp.layout, checkpoints: new Map([...state.checkpoints, [cp.name, cp]]), current: cp.name };
        const actions = planRollbackCreate(withIt, cp.name, live);
        this.assertNotBusy(actions, vm);
        await this.transaction(actions, `removing the bitmaps of checkpoint ${cp.name}, left by ${p.status === 'interrupted' ? 'an interrupted' : 'an unfinished'} ${p.command} (pid ${p.pid})`);
      }
      this.store.removePending(cp.name);
      reaped.push(cp.name);
    }
    if (reaped.length > 0) await this.refresh();
    return reaped;
  }

  /**
   * End of a lock hold: a pending checkpoint this engine prepared and did not resolve is either
   * forgotten (its bitmaps were never created: the caller's transaction failed or never ran) or
   * marked abandoned (its bitmaps exist: the next create or delete rolls them back).
   */
  private async settleHeldPending(): Promise<void> {
    if (this.heldPending.size === 0) return;
    const names = new Set(this.heldPending);
    this.heldPending.clear();
    try {
      const vm = await discoverVm(this.client, this.opts.endpoint);
      for (const p of this.store.loadPending()) {
        if (!names.has(p.checkpoint.name) || p.owner.pid !== process.pid) continue;
        const exists = p.checkpoint.disks.some((d) => d.checkpoint === 'bitmap' && vm.disks.find((x) => x.name === d.name)?.bitmaps.some((b) => b.name === (d.bitmap ?? p.checkpoint.name)));
        if (exists) this.store.writePending({ ...p, abandoned: true });
        else this.store.removePending(p.checkpoint.name);
      }
    } catch {
      // QEMU or the state directory is gone: the marker stays; its owner's death makes it a left-over
    }
  }

  private baseRecord(vm: VmInfo): VmRecord {
    return { id: vm.id, name: vm.name, uuid: vm.uuid, endpoint: vm.endpoint, layout: this.vmRec?.layout, current: this.vmRec?.current };
  }

  /** Runs one QMP transaction; a refusal by QEMU means no disk changed. */
  private async transaction(actions: QmpAction[], what: string): Promise<void> {
    if (actions.length === 0) return;
    try {
      await this.client.execute('transaction', { actions });
    } catch (e) {
      if (e instanceof QmpError) throw new Error(`${what} failed; QEMU changed nothing: ${e.desc}`, { cause: e });
      throw new Error(`${what}: the outcome is unknown (${(e as Error).message}); check the VM's health`, { cause: e });
    }
  }

  /** A clear error instead of QEMU's when an action would touch a bitmap held by a job. */
  private assertNotBusy(actions: QmpAction[], vm: VmInfo): void {
    const byNode = new Map(vm.disks.map((d) => [d.nodeName, d]));
    for (const a of actions) {
      const disk = byNode.get(String(a.data.node));
      if (!disk) continue;
      const names = [a.data.name, a.data.target, ...((a.data.bitmaps as unknown[] | undefined) ?? [])].filter((n): n is string => typeof n === 'string');
      for (const n of names) {
        if (disk.bitmaps.find((b) => b.name === n)?.busy) throw new Error(`bitmap ${n} on ${disk.name} is in use by a running job; try again when it has finished`);
      }
    }
  }

  // ---------------------------------------------------------------- locking

  async withLock<T>(fn: () => Promise<T>, command = 'checkpoint operation'): Promise<T> {
    this.assertOpen();
    if (this.inLock.getStore()) return fn(); // re-entrant within one engine's async call chain
    const prev = this.mutex;
    let done!: () => void;
    this.mutex = new Promise<void>((r) => (done = r));
    await prev;
    try {
      const release = await this.store.lock(command, this.opts.lockWaitMs);
      this.holdCommand = command;
      try {
        return await this.inLock.run(true, fn);
      } finally {
        await this.settleHeldPending();
        release();
      }
    } finally {
      done();
    }
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

  private chooseLayout(requested: BitmapLayout | undefined): BitmapLayout {
    const stored = this.vmRec?.layout;
    if (this.checkpoints.size === 0) return requested ?? stored ?? 'independent';
    const inUse = stored ?? 'independent';
    if (requested && requested !== inUse) {
      throw new Error(`VM ${this.label} uses the ${inUse} bitmap layout; it can only change when the VM has no checkpoints (it has ${this.checkpoints.size})`);
    }
    return inUse;
  }

  private nameTaken(name: string, vm: VmInfo): boolean {
    return this.checkpoints.has(name) || vm.disks.some((d) => d.bitmaps.some((b) => b.name === name));
  }

  private defaultName(vm: VmInfo): string {
    const base = String(Math.floor(Date.now() / 1000));
    if (!this.nameTaken(base, vm)) return base;
    for (let i = 2; ; i++) if (!this.nameTaken(`${base}-${i}`, vm)) return `${base}-${i}`;
  }

  private chooseDisks(vm: VmInfo, requested: CreateCheckpointOptions['disks']): CheckpointDisk[] {
    const byName = new Map(vm.disks.map((d) => [d.name, d]));
    const asked = new Map<string, 'bitmap' | 'no'>();
    for (const r of requested ?? []) {
      if (!byName.has(r.name)) throw new Error(`unknown disk ${shown(r.name)} (VM ${this.label} has ${vm.disks.map((d) => d.name).join(', ') || 'no disks'})`);
      if (asked.has(r.name)) throw new Error(`disk ${shown(r.name)} is listed twice`);
      if (r.checkpoint !== 'bitmap' && r.checkpoint !== 'no') throw new Error(`disk ${r.name}: checkpoint must be "bitmap" or "no"`);
      asked.set(r.name, r.checkpoint);
    }
    return vm.disks.map((d) => {
      const want = asked.get(d.name) ?? (d.bitmapCapable ? 'bitmap' : 'no');
      if (want === 'bitmap' && !d.bitmapCapable) throw new Error(`disk ${d.name} cannot hold a checkpoint bitmap: ${d.bitmapIncapableReason ?? 'unsupported image'}`);
      return want === 'bitmap' ? { name: d.name, checkpoint: 'bitmap' } : { name: d.name, checkpoint: 'no' };
    });
  }

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
      if ((await this.reapLeftovers(vm)).length > 0) vm = this.lastVm;
      const layout = this.chooseLayout(options.layout);
      const name = options.name === undefined ? this.defaultName(vm) : validateCheckpointName(options.name);
      if (this.checkpoints.has(name)) throw new Error(`checkpoint ${name} already exists`);
      const disks = this.chooseDisks(vm, options.disks);
      for (const d of disks) {
        if (d.checkpoint !== 'bitmap') continue;
        if (vm.disks.find((x) => x.name === d.name)!.bitmaps.some((b) => b.name === name)) {
          throw new Error(
            `bitmap ${name} already exists on ${d.name} (foreign? remove it or pick another name; ` +
              `if it is a checkpoint's bitmap whose metadata was deleted, checkpoint-create --redefine takes it back)`,
          );
        }
        d.bitmap = name;
      }
      const now = Date.now();
      const checkpoint: Checkpoint = {
        name,
        ...(options.description !== undefined ? { description: options.description } : {}),
        ...(this.current() ? { parent: this.current()!.name } : {}),
        creationTime: Math.floor(now / 1000),
        createdAtMs: now,
        disks,
        layout,
      };
      const actions = planCreate({ ...this.planState(), layout }, checkpoint, this.live(vm));
      this.assertNotBusy(actions, vm);
      if (markPending) {
        const start = ownStartTime();
        const owner = { pid: process.pid, command: this.holdCommand, since: new Date().toISOString(), ...(start !== undefined ? { start } : {}) };
        try {
          this.store.writePending({ checkpoint, owner });
        } catch (e) {
          throw new Error(`${(e as Error).message}; nothing was changed`, { cause: e });
        }
        this.heldPending.add(name);
      }
      return { checkpoint, actions };
    }, 'prepare checkpoint');
  }

  /** Forgets the pending record of a checkpoint that was committed or rolled back. */
  private resolvePending(name: string): void {
    this.heldPending.delete(name);
    try {
      this.store.removePending(name);
    } catch {
      // a marker that cannot be removed now is cleaned up later (its checkpoint is recorded or gone)
    }
  }

  /** The new checkpoint's metadata, written aside until commit (it becomes current). */
  private stageRecord(prepared: PreparedCheckpoint): StagedChanges {
    const cp = prepared.checkpoint;
    return this.store.stage({ write: [cp], vm: { ...this.baseRecord(this.lastVm), layout: cp.layout, current: cp.name } });
  }

  /** Stages metadata before QEMU is touched: if the state directory cannot take it, nothing changed. */
  private stageBefore(stage: () => StagedChanges): StagedChanges {
    try {
      return stage();
    } catch (e) {
      throw new Error(`${(e as Error).message}; nothing was changed`, { cause: e });
    }
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
      const vm = await this.refresh();
      const cp = prepared.checkpoint;
      if (this.checkpoints.has(cp.name)) throw new Error(`checkpoint ${cp.name} already exists`);
      if (cp.parent !== this.current()?.name) {
        throw new Error(`the current checkpoint changed since checkpoint ${cp.name} was prepared (now ${this.current()?.name ?? 'none'}); prepare and commit inside withLock`);
      }
      for (const d of cp.disks) {
        if (d.checkpoint === 'bitmap' && this.live(vm).bitmap(d.name, d.bitmap ?? cp.name) !== 'ok') {
          throw new Error(`cannot record checkpoint ${cp.name}: its bitmap is not on ${d.name} (did its actions run?)`);
        }
      }
      this.record(prepared);
      this.resolvePending(cp.name);
      this.lastIssues = this.computeHealth(vm);
    }, `commit checkpoint ${prepared.checkpoint.name}`);
  }

  /** Undoes a prepared checkpoint whose actions ran (chained: merge back, re-enable predecessor). */
  async rollbackCreate(prepared: PreparedCheckpoint): Promise<void> {
    await this.withLock(async () => {
      const vm = await this.refresh();
      const cp = prepared.checkpoint;
      const recorded = this.checkpoints.has(cp.name);
      const state = this.planState();
      const withIt: PlanState = recorded
        ? state
        : { layout: cp.layout, checkpoints: new Map([...state.checkpoints, [cp.name, cp]]), current: cp.name };
      const live = this.live(vm);
      // Nothing to undo when none of its bitmaps exist (never created, or already cleaned up).
      const created = cp.disks.some((d) => d.checkpoint === 'bitmap' && vm.disks.some((x) => x.name === d.name) && live.bitmap(d.name, d.bitmap ?? cp.name) !== 'missing');
      if (recorded || created) {
        const actions = planRollbackCreate(withIt, cp.name, live);
        this.assertNotBusy(actions, vm);
        await this.transaction(actions, `rolling back checkpoint ${cp.name}`);
      }
      if (recorded) {
        this.store.writeVm({ ...this.baseRecord(vm), current: cp.parent });
        this.store.removeCheckpoint(cp.name);
        this.reload();
      }
      this.resolvePending(cp.name);
      await this.refresh();
    }, `roll back checkpoint ${prepared.checkpoint.name}`);
  }

  async create(options: CreateCheckpointOptions = {}): Promise<Checkpoint> {
    if (options.name !== undefined) validateCheckpointName(options.name); // before anything is touched
    return this.withLock(async () => {
      // No pending record: the metadata is committed in this same hold, right after the transaction.
      const prepared = await this.prepare(options, false);
      // Metadata first, aside: a state directory that cannot take it fails before QEMU changes.
      const staged = this.stageBefore(() => this.stageRecord(prepared));
      try {
        await this.transaction(prepared.actions, `creating checkpoint ${prepared.checkpoint.name}`);
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
    if (!VALID_MODES.includes(mode)) throw new Error(`unknown delete mode ${JSON.stringify(mode)} (use ${VALID_MODES.join(', ')})`);
    return this.withLock(async () => {
      let vm = await this.refresh();
      const reaped = await this.reapLeftovers(vm);
      if (reaped.length > 0) vm = this.lastVm;
      if (!this.checkpoints.has(name)) {
        // A left-over pending checkpoint is deleted by rolling it back (done just above).
        if (reaped.includes(name)) return { deleted: [name], reparented: [] };
        const busy = this.pending().find((p) => p.checkpoint.name === name);
        if (busy) throw new Error(`checkpoint ${name} is being created by ${busy.command} (pid ${busy.pid}); it cannot be deleted until that operation ends`);
      }
      this.get(name);
      const order = deleteOrder(this.planState(), name, mode);
      if (order.length === 0) return { deleted: [], reparented: [] };
      const plan = planDelete(this.planState(), order, this.live(vm), mode === 'metadata');
      this.assertNotBusy(plan.actions, vm);

      // The new metadata is staged before QEMU changes; committed after: survivors first (a crash
      // in between leaves a valid tree), then vm.json, then the removals.
      const changed = new Map<string, Checkpoint>();
      const cpOf = (n: string) => changed.get(n) ?? structuredClone(this.checkpoints.get(n)!);
      for (const r of plan.reparented) {
        const cp = cpOf(r.name);
        if (r.parent === undefined) delete cp.parent;
        else cp.parent = r.parent;
        changed.set(r.name, cp);
      }
      for (const inc of plan.incomplete) {
        const cp = cpOf(inc.checkpoint);
        const d = cp.disks.find((x) => x.name === inc.disk);
        if (d && !d.incomplete) d.incomplete = inc.reason;
        changed.set(inc.checkpoint, cp);
      }
      const staged = this.stageBefore(() => this.store.stage({ write: [...changed.values()], vm: { ...this.baseRecord(vm), current: plan.state.current }, remove: plan.deleted }));
      try {
        await this.transaction(plan.actions, `deleting checkpoint ${order.length > 1 ? order.join(', ') : name}`);
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
    return planTempBitmap(this.planState(), since, disk, tmpName, this.live(this.lastVm));
  }

  async changesSince(name: string): Promise<ChangesSince> {
    return this.withLock(async () => {
      const vm = await this.refresh();
      return this.measureChanges(vm, name);
    }, `changes since ${name}`);
  }

  private async measureChanges(vm: VmInfo, name: string): Promise<ChangesSince> {
    const cp = this.get(name);
    const tag = randomBytes(6).toString('hex');
    const rows: ChangesSince['disks'] = [];
    const temps: { disk: string; node: string; tmp: string }[] = [];
    const actions: QmpAction[] = [];
    for (const d of vm.disks) {
      const row = { disk: d.name, bytes: 0, granularity: d.granularity, virtualSize: d.virtualSize, usable: false } as ChangesSince['disks'][number];
      rows.push(row);
      try {
        const bitmaps = changesSinceBitmaps(this.planState(), cp.name, d.name, this.live(vm));
        row.granularity = d.bitmaps.find((b) => b.name === bitmaps[0])?.granularity ?? d.granularity;
        const tmp = `${TEMP_BITMAP_PREFIX}changes-${tag}-${temps.length}`;
        actions.push(...this.tempBitmapActions(cp.name, d.name, tmp));
        temps.push({ disk: d.name, node: d.nodeName, tmp });
        row.usable = true;
      } catch (e) {
        row.reason = (e as Error).message;
      }
    }
    this.assertNotBusy(actions, vm);
    try {
      await this.transaction(actions, `measuring changes since ${name}`);
      if (temps.length) {
        const nodes = await this.client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string; count: number }[] }[]>('query-named-block-nodes', { flat: true });
        for (const t of temps) {
          const count = nodes.find((n) => n['node-name'] === t.node)?.['dirty-bitmaps']?.find((b) => b.name === t.tmp)?.count;
          const row = rows.find((r) => r.disk === t.disk)!;
          if (count === undefined) {
            row.usable = false;
            row.reason = `temporary bitmap ${t.tmp} vanished before it could be read`;
          } else row.bytes = count;
        }
      }
    } finally {
      await this.removeTemps(temps);
    }
    return { checkpoint: name, disks: rows };
  }

  private async removeTemps(temps: { node: string; tmp: string }[]): Promise<void> {
    if (temps.length === 0) return;
    const actions = temps.map((t) => ({ type: 'block-dirty-bitmap-remove', data: { node: t.node, name: t.tmp } }));
    try {
      await this.client.execute('transaction', { actions });
    } catch {
      // Some were never added (the add failed): remove the others one by one.
      for (const a of actions) await this.client.execute('block-dirty-bitmap-remove', a.data).catch(() => undefined);
    }
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
      const cp = structuredClone(this.get(name));
      const changes = await this.measureChanges(vm, name);
      for (const d of cp.disks) {
        const row = changes.disks.find((r) => r.disk === d.name);
        if (d.checkpoint === 'bitmap' && row?.usable) d.size = row.bytes;
      }
      return formatCheckpointXml(cp, { noDomain: options.noDomain });
    }, `dumpxml ${name} --size`);
  }

  async createFromXml(xml: string, options: { redefine?: boolean; validate?: boolean } = {}): Promise<Checkpoint> {
    const parsed = parseCheckpointXml(xml);
    if (!options.redefine) {
      if (options.validate) throw new Error('"validate" only applies to a redefinition');
      if (parsed.parent !== undefined) throw new Error('a new checkpoint cannot name its parent (it is always the current checkpoint); use redefine to record an existing one');
      return this.withLock(async () => {
        const vm = await this.refresh();
        // As libvirt: listed disks default to checkpoint='bitmap', unlisted ones to 'no'.
        const disks = parsed.disks
          ? vm.disks.map((d) => {
              const listed = parsed.disks!.find((x) => x.name === d.name);
              return { name: d.name, checkpoint: listed?.checkpoint ?? 'no' } as const;
            })
          : undefined;
        this.assertDisksKnown(parsed, vm);
        return this.create({ name: parsed.name, description: parsed.description, disks });
      }, 'create checkpoint from XML');
    }
    if (parsed.name === undefined) throw new Error('a redefined checkpoint needs a <name>');
    const name = parsed.name;
    return this.withLock(async () => {
      const vm = await this.refresh();
      if (parsed.parent !== undefined && !this.checkpoints.has(parsed.parent)) throw new Error(`parent ${parsed.parent} for checkpoint ${name} not found`);
      // As libvirt: metadata for a disk the VM does not have is refused, even without validate.
      this.assertDisksKnown(parsed, vm);
      const layout = this.layout() ?? 'independent';
      const disks: CheckpointDisk[] = (parsed.disks ?? []).map((d) => {
        const out: CheckpointDisk = { name: d.name, checkpoint: d.checkpoint };
        if (d.checkpoint === 'bitmap') out.bitmap = d.bitmap ?? name;
        return out;
      });
      if (options.validate) {
        for (const d of disks) {
          if (d.checkpoint !== 'bitmap') continue;
          const disk = vm.disks.find((x) => x.name === d.name);
          const ok = disk ? bitmapIsValidForCheckpoint(disk, d.bitmap!, layout).ok : false;
          if (!ok) throw new Error(`checkpoint inconsistent: missing or broken bitmap '${d.bitmap}' for disk '${d.name}'`);
        }
      }
      const existing = this.checkpoints.get(name);
      if (existing) {
        const same = existing.parent === parsed.parent && JSON.stringify(existing.disks.map((d) => [d.name, d.checkpoint])) === JSON.stringify(disks.map((d) => [d.name, d.checkpoint]));
        if (!same) throw new Error(`checkpoint ${name} already exists with a different definition`);
      }
      const creationTime = parsed.creationTime ?? existing?.creationTime ?? Math.floor(Date.now() / 1000);
      const cp: Checkpoint = {
        name,
        ...(parsed.description !== undefined ? { description: parsed.description } : {}),
        ...(parsed.parent !== undefined ? { parent: parsed.parent } : {}),
        creationTime,
        createdAtMs: existing?.createdAtMs ?? creationTime * 1000,
        disks: existing ? existing.disks : disks,
        layout,
        ...(parsed.domainXml !== undefined ? { domainXml: parsed.domainXml } : {}),
      };
      // A redefinition continues the current line: it becomes current when there is none or
      // when its parent is the current checkpoint (so redefining a saved series in order works).
      const cur = this.vmRec?.current;
      const becomesCurrent = !existing && (cur === undefined || !this.checkpoints.has(cur) || cur === parsed.parent);
      this.stageBefore(() => this.store.stage({ write: [cp], vm: { ...this.baseRecord(vm), layout, current: becomesCurrent ? name : cur } })).commit();
      this.reload();
      await this.refreshAfterChange();
      return this.get(name);
    }, `redefine checkpoint ${name}`);
  }

  private assertDisksKnown(parsed: ParsedCheckpointXml, vm: VmInfo): void {
    for (const d of parsed.disks ?? []) {
      if (!vm.disks.some((x) => x.name === d.name)) throw new Error(`unknown disk ${shown(d.name)} in checkpoint XML (VM ${this.label} has ${vm.disks.map((x) => x.name).join(', ') || 'no disks'})`);
    }
  }

  async close(): Promise<void> {
    // The QMP client belongs to the caller; wait for a running operation, then refuse new ones.
    await this.mutex;
    this.closed = true;
  }
}
