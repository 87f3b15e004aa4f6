// Pending checkpoints. A checkpoint prepared for a caller's transaction (backups, pulls) is
// recorded in STATE/vms/<vm>/pending/ until commitCreate or rollbackCreate, so health in any process
// says "being created by backup X" rather than calling its bitmaps foreign. This module keeps that
// bookkeeping: who owns a record and whether its owner still runs, the records this engine prepared
// during the current lock hold and what becomes of them when the hold ends, and the left-overs
// (owner died, or its operation ended without resolving them) that the next create, prepare or
// delete rolls back. The record files themselves are read and written by store.ts.

import type { Checkpoint, DiskInfo, VmInfo } from '../../../shared/domain';
import { isProcessAlive, ownStartTime } from '../../os/process-liveness';
import type { PendingInput } from './health';
import { withUnrecorded, type PlanLive, type PlanState } from './plan';
import type { MetadataStore, PendingCheckpoint } from './store';

/** Does any bitmap of `cp` exist on the VM now (its actions ran, at least in part)? */
export function hasLiveBitmap(cp: Checkpoint, disks: readonly DiskInfo[]): boolean {
  return cp.disks.some((d) => d.checkpoint === 'bitmap' && disks.find((x) => x.name === d.name)?.bitmaps.some((b) => b.name === (d.bitmap ?? cp.name)) === true);
}

/** The state of a record's owner: still at work, died (or its pid was reused), or gave up on it. */
export function ownerStatus(record: Pick<PendingCheckpoint, 'abandoned'>, ownerAlive: boolean): PendingInput['status'] {
  return !ownerAlive ? 'interrupted' : record.abandoned ? 'abandoned' : 'in-progress';
}

/**
 * What a create, prepare or delete does with a pending record first: forget it when its checkpoint
 * is recorded (committed; the owner died before removing the record), keep it while its operation
 * runs, else roll it back (a left-over).
 */
export function leftoverAction(p: Pick<PendingInput, 'status'>, recorded: boolean): 'forget' | 'keep' | 'roll-back' {
  if (recorded) return 'forget';
  return p.status === 'in-progress' ? 'keep' : 'roll-back';
}

/** Refuses to commit prepared `cp` when it is recorded already, the current checkpoint moved since it was prepared, or a bitmap of it is not there. */
export function assertCommittable(cp: Checkpoint, recorded: boolean, current: string | undefined, live: Pick<PlanLive, 'bitmap'>): void {
  if (recorded) throw new Error(`checkpoint ${cp.name} already exists`);
  if (cp.parent !== current) {
    throw new Error(`the current checkpoint changed since checkpoint ${cp.name} was prepared (now ${current ?? 'none'}); prepare and commit inside withLock`);
  }
  for (const d of cp.disks) {
    if (d.checkpoint === 'bitmap' && live.bitmap(d.name, d.bitmap ?? cp.name) !== 'ok') {
      throw new Error(`cannot record checkpoint ${cp.name}: its bitmap is not on ${d.name} (did its actions run?)`);
    }
  }
}

/**
 * The state to plan undoing prepared `cp` from: the recorded one when it was committed, else with it
 * added as current; undefined when there is nothing to undo (not recorded, none of its bitmaps exist).
 */
export function rollbackState(state: PlanState, cp: Checkpoint, recorded: boolean, disks: readonly DiskInfo[]): PlanState | undefined {
  if (recorded) return state;
  return hasLiveBitmap(cp, disks) ? withUnrecorded(state, cp) : undefined;
}

export class PendingCheckpoints {
  /** Pending checkpoints this engine prepared during the current lock hold and has not resolved. */
  private readonly held = new Set<string>();

  constructor(private readonly store: MetadataStore) {}

  /** Every pending checkpoint with the state of its owner. */
  list(): PendingInput[] {
    return this.store.loadPending().map((record) => ({
      checkpoint: record.checkpoint,
      command: record.owner.command,
      pid: record.owner.pid,
      status: ownerStatus(record, isProcessAlive(record.owner.pid, record.owner.start)),
    }));
  }

  /** Records `checkpoint` as pending, owned by this process and its operation `command`. */
  add(checkpoint: Checkpoint, command: string): void {
    const start = ownStartTime();
    const owner = { pid: process.pid, command, since: new Date().toISOString(), ...(start !== undefined ? { start } : {}) };
    try {
      this.store.writePending({ checkpoint, owner });
    } catch (e) {
      throw new Error(`${(e as Error).message}; nothing was changed`, { cause: e });
    }
    this.held.add(checkpoint.name);
  }

  /** Forgets the record of a checkpoint that was committed or rolled back. */
  resolve(name: string): void {
    this.held.delete(name);
    try {
      this.store.removePending(name);
    } catch {
      // a record that cannot be removed now is cleaned up later (its checkpoint is recorded or gone)
    }
  }

  /**
   * End of a lock hold: a pending checkpoint this engine prepared and did not resolve is either
   * forgotten (its bitmaps were never created: the caller's transaction failed or never ran) or
   * marked abandoned (its bitmaps exist: the next create or delete rolls them back).
   */
  async settle(liveVm: () => Promise<VmInfo>): Promise<void> {
    if (this.held.size === 0) return;
    const names = new Set(this.held);
    this.held.clear();
    try {
      const vm = await liveVm();
      for (const p of this.store.loadPending()) {
        if (!names.has(p.checkpoint.name) || p.owner.pid !== process.pid) continue;
        if (hasLiveBitmap(p.checkpoint, vm.disks)) this.store.writePending({ ...p, abandoned: true });
        else this.store.removePending(p.checkpoint.name);
      }
    } catch {
      // QEMU or the state directory is gone: the record stays; its owner's death makes it a left-over
    }
  }

  /**
   * Rolls back the bitmaps of left-over pending checkpoints (`rollBack` undoes one checkpoint's
   * bitmaps in one transaction) and forgets them; forgets records of recorded checkpoints. Runs under
   * the lock, before a create or delete. Returns the names rolled back.
   */
  async reapLeftovers(vm: VmInfo, isRecorded: (name: string) => boolean, rollBack: (cp: Checkpoint, what: string) => Promise<void>): Promise<string[]> {
    const reaped: string[] = [];
    for (const p of this.list()) {
      const cp = p.checkpoint;
      const action = leftoverAction(p, isRecorded(cp.name));
      if (action === 'keep') continue;
      if (action === 'roll-back') {
        if (hasLiveBitmap(cp, vm.disks)) {
          await rollBack(cp, `removing the bitmaps of checkpoint ${cp.name}, left by ${p.status === 'interrupted' ? 'an interrupted' : 'an unfinished'} ${p.command} (pid ${p.pid})`);
        }
        reaped.push(cp.name);
      }
      this.store.removePending(cp.name);
    }
    return reaped;
  }
}
