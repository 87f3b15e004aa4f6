// PURE planning: the QMP transaction actions for creating and deleting checkpoints and for
// filling a temporary bitmap, in both bitmap layouts. No I/O here; the engine executes the
// actions as one transaction and records the metadata the plan returns.
//
// Terms: a checkpoint "has a bitmap on disk d" when its disk entry says checkpoint='bitmap'.
// The "predecessor" of X on d is the nearest ancestor of X that has a bitmap on d. In the
// chained layout the "recording" bitmap of d is the nearest checkpoint at or above `current`
// with a bitmap on d; every other checkpoint bitmap of d is disabled and covers only its own
// interval (from its creation until its successor's).

import type { BitmapLayout, CheckpointDisk } from '../../../shared/domain';
import type { QmpAction } from './api';

export interface PlanCheckpoint {
  name: string;
  parent?: string;
  disks: CheckpointDisk[];
}

export interface PlanState {
  layout: BitmapLayout;
  checkpoints: ReadonlyMap<string, PlanCheckpoint>;
  current?: string;
}

/** What QEMU has right now for one bitmap. */
export type LiveBitmap = 'ok' | 'inconsistent' | 'missing';
/** Disk name → format node name; bitmap lookup (present and consistent?). */
export interface PlanLive {
  node(disk: string): string;
  bitmap(disk: string, bitmap: string): LiveBitmap;
}

export function diskEntry(cp: PlanCheckpoint, disk: string): CheckpointDisk | undefined {
  return cp.disks.find((d) => d.name === disk && d.checkpoint === 'bitmap');
}

export function bitmapOf(cp: PlanCheckpoint, disk: string): string | undefined {
  const d = diskEntry(cp, disk);
  return d ? (d.bitmap ?? cp.name) : undefined;
}

/** Ancestors of `name`, nearest first (stops at a missing parent or a cycle). */
export function ancestors(state: PlanState, name: string): PlanCheckpoint[] {
  const out: PlanCheckpoint[] = [];
  const seen = new Set([name]);
  let p = state.checkpoints.get(name)?.parent;
  while (p !== undefined && !seen.has(p)) {
    const cp = state.checkpoints.get(p);
    if (!cp) break;
    out.push(cp);
    seen.add(p);
    p = cp.parent;
  }
  return out;
}

/** Nearest ancestor of `name` with a bitmap on `disk`. */
export function predecessor(state: PlanState, name: string, disk: string): PlanCheckpoint | undefined {
  return ancestors(state, name).find((a) => bitmapOf(a, disk) !== undefined);
}

/** The checkpoint whose bitmap records writes to `disk` in the chained layout. */
export function recordingCheckpoint(state: PlanState, disk: string): PlanCheckpoint | undefined {
  if (state.current === undefined) return undefined;
  const cur = state.checkpoints.get(state.current);
  if (!cur) return undefined;
  if (bitmapOf(cur, disk) !== undefined) return cur;
  return predecessor(state, cur.name, disk);
}

/** Should this checkpoint's bitmap on `disk` be recording, given the layout? */
export function shouldRecord(state: PlanState, name: string, disk: string): boolean {
  if (state.layout === 'independent') return true;
  return recordingCheckpoint(state, disk)?.name === name;
}

function act(type: string, data: Record<string, unknown>): QmpAction {
  return { type, data };
}

/**
 * Create: one persistent bitmap per disk that takes part; in the chained layout also disable the
 * disk's recording bitmap (skipped when that bitmap is missing or inconsistent: QEMU refuses it).
 * `cp.parent` must be `state.current`.
 */
export function planCreate(state: PlanState, cp: PlanCheckpoint, live: PlanLive): QmpAction[] {
  if (state.checkpoints.has(cp.name)) throw new Error(`checkpoint ${cp.name} already exists`);
  if (cp.parent !== state.current) throw new Error(`a new checkpoint's parent must be the current checkpoint (${state.current ?? 'none'}), not ${cp.parent ?? 'none'}`);
  const actions: QmpAction[] = [];
  for (const d of cp.disks) {
    if (d.checkpoint !== 'bitmap') continue;
    const node = live.node(d.name);
    actions.push(act('block-dirty-bitmap-add', { node, name: d.bitmap ?? cp.name, persistent: true }));
    if (state.layout === 'chained') {
      const prev = recordingCheckpoint(state, d.name);
      const prevBitmap = prev && bitmapOf(prev, d.name);
      if (prevBitmap && live.bitmap(d.name, prevBitmap) === 'ok') {
        actions.push(act('block-dirty-bitmap-disable', { node, name: prevBitmap }));
      }
    }
  }
  return actions;
}

export interface DeletePlan {
  actions: QmpAction[];
  /** The state after the deletion (children re-parented, current moved up). */
  state: PlanState;
  deleted: string[];
  /** Surviving children that got a new parent (final parents). */
  reparented: { name: string; parent?: string }[];
  /** Surviving checkpoints whose bitmap on a disk lost part of its interval (chained), with why. */
  incomplete: { checkpoint: string; disk: string; reason: string }[];
}

/** Which checkpoints a delete mode removes, deepest first (each before its ancestors). */
export function deleteOrder(state: PlanState, name: string, mode: 'plain' | 'children' | 'children-only' | 'metadata'): string[] {
  if (!state.checkpoints.has(name)) throw new Error(`checkpoint ${name} not found`);
  if (mode === 'plain' || mode === 'metadata') return [name];
  const byParent = new Map<string, string[]>();
  for (const cp of state.checkpoints.values()) {
    if (cp.parent === undefined) continue;
    byParent.set(cp.parent, [...(byParent.get(cp.parent) ?? []), cp.name]);
  }
  const out: string[] = [];
  const visit = (n: string, seen: Set<string>) => {
    if (seen.has(n)) return;
    seen.add(n);
    for (const c of byParent.get(n) ?? []) visit(c, seen);
    out.push(n); // post-order: children first
  };
  visit(name, new Set());
  return mode === 'children-only' ? out.filter((n) => n !== name) : out;
}

function without(state: PlanState, name: string): PlanState {
  const cp = state.checkpoints.get(name)!;
  const next = new Map<string, PlanCheckpoint>();
  for (const [k, v] of state.checkpoints) {
    if (k === name) continue;
    next.set(k, v.parent === name ? { ...v, parent: cp.parent } : v);
  }
  return { layout: state.layout, checkpoints: next, current: state.current === name ? cp.parent : state.current };
}

/**
 * Delete `names` (in the given order, as from deleteOrder) in one transaction.
 * `metadataOnly`: no bitmap is touched (the bitmaps become foreign); in the chained layout the
 * ancestors then miss that interval and are marked incomplete.
 */
export function planDelete(state: PlanState, names: string[], live: PlanLive, metadataOnly = false): DeletePlan {
  const actions: QmpAction[] = [];
  const incomplete: DeletePlan['incomplete'] = [];
  let s = state;
  const removed = new Set<string>(); // bitmaps removed earlier in this transaction: gone for later actions
  const status = (disk: string, bitmap: string): LiveBitmap => (removed.has(`${disk}\0${bitmap}`) ? 'missing' : live.bitmap(disk, bitmap));
  const markAncestors = (x: string, disk: string, reason: string) => {
    for (const a of ancestors(s, x)) if (bitmapOf(a, disk) !== undefined) incomplete.push({ checkpoint: a.name, disk, reason });
  };
  for (const name of names) {
    const cp = s.checkpoints.get(name);
    if (!cp) throw new Error(`checkpoint ${name} not found`);
    for (const d of cp.disks) {
      const bitmap = bitmapOf(cp, d.name);
      if (bitmap === undefined) continue;
      const lost = (why: string) => `changes recorded on ${d.name} between checkpoint ${name} and its successor were lost (${why})`;
      if (metadataOnly) {
        if (s.layout === 'chained') markAncestors(name, d.name, lost(`only the metadata of ${name} was deleted; its bitmap stays as a foreign bitmap`));
        continue;
      }
      const node = () => live.node(d.name); // only asked for when an action needs it (the disk may be gone)
      const mine = status(d.name, bitmap);
      if (s.layout === 'chained') {
        const prev = predecessor(s, name, d.name);
        const prevBitmap = prev && bitmapOf(prev, d.name);
        const prevOk = prevBitmap !== undefined && status(d.name, prevBitmap) === 'ok';
        const recording = recordingCheckpoint(s, d.name)?.name === name;
        if (prevBitmap && mine === 'ok' && prevOk) {
          actions.push(act('block-dirty-bitmap-merge', { node: node(), target: prevBitmap, bitmaps: [bitmap] }));
          if (recording) actions.push(act('block-dirty-bitmap-enable', { node: node(), name: prevBitmap }));
        } else if (prevBitmap) {
          const why = mine !== 'ok' ? `bitmap ${bitmap} was ${mine}` : `bitmap ${prevBitmap} was ${status(d.name, prevBitmap)}, so nothing could be merged into it`;
          markAncestors(name, d.name, lost(why));
          // The predecessor must take over recording, or nothing on this disk would record at all.
          if (recording && prevOk) actions.push(act('block-dirty-bitmap-enable', { node: node(), name: prevBitmap }));
        }
      }
      if (mine !== 'missing') {
        actions.push(act('block-dirty-bitmap-remove', { node: node(), name: bitmap }));
        removed.add(`${d.name}\0${bitmap}`);
      }
    }
    s = without(s, name);
  }
  const deleted = new Set(names);
  const reparented = [...s.checkpoints.values()]
    .filter((cp) => cp.parent !== state.checkpoints.get(cp.name)?.parent)
    .map((cp) => ({ name: cp.name, parent: cp.parent }));
  return {
    actions,
    state: s,
    deleted: [...deleted],
    reparented,
    incomplete: dedupe(incomplete.filter((i) => !deleted.has(i.checkpoint))),
  };
}

function dedupe<T extends { checkpoint: string; disk: string }>(xs: T[]): T[] {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = `${x.checkpoint}\0${x.disk}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * The bitmaps whose union is "changes on `disk` since checkpoint `since`": independent → its own
 * bitmap; chained → its bitmap and every later one on the path to the current checkpoint.
 * Throws, naming the reason, when that cannot be computed.
 */
export function changesSinceBitmaps(state: PlanState, since: string, disk: string, live: Pick<PlanLive, 'bitmap'>): string[] {
  const cp = state.checkpoints.get(since);
  if (!cp) throw new Error(`checkpoint ${since} not found`);
  const own = bitmapOf(cp, disk);
  if (own === undefined) throw new Error(`checkpoint ${since} has no bitmap on ${disk} (the disk was not part of it)`);
  let chain: PlanCheckpoint[] = [cp];
  if (state.layout === 'chained') {
    if (state.current === undefined) throw new Error(`there is no current checkpoint, so changes since ${since} cannot be computed`);
    const path = [state.checkpoints.get(state.current)!, ...ancestors(state, state.current)];
    const at = path.findIndex((p) => p.name === since);
    if (at < 0) throw new Error(`checkpoint ${since} is not an ancestor of the current checkpoint ${state.current}; in the chained layout changes are only known along that path`);
    chain = path.slice(0, at + 1).reverse().filter((p) => bitmapOf(p, disk) !== undefined);
  }
  const out: string[] = [];
  for (const p of chain) {
    const b = bitmapOf(p, disk)!;
    const st = live.bitmap(disk, b);
    if (st === 'missing') throw new Error(`bitmap ${b} of checkpoint ${p.name} is missing on ${disk}`);
    if (st === 'inconsistent') throw new Error(`bitmap ${b} of checkpoint ${p.name} on ${disk} is inconsistent (QEMU was not shut down cleanly)`);
    out.push(b);
  }
  const inc = diskEntry(cp, disk)?.incomplete;
  if (inc) throw new Error(`checkpoint ${since} cannot be used on ${disk}: ${inc}`);
  return out;
}

/** Actions that fill the temporary bitmap `tmpName` on `disk` with the changes since `since`. */
export function planTempBitmap(state: PlanState, since: string, disk: string, tmpName: string, live: PlanLive): QmpAction[] {
  const bitmaps = changesSinceBitmaps(state, since, disk, live);
  const node = live.node(disk);
  return [
    act('block-dirty-bitmap-add', { node, name: tmpName, persistent: false, disabled: true }),
    act('block-dirty-bitmap-merge', { node, target: tmpName, bitmaps }),
  ];
}

/** Undo a checkpoint that was just created (it is current): the same as deleting the newest. */
export function planRollbackCreate(stateWithIt: PlanState, name: string, live: PlanLive): QmpAction[] {
  if (stateWithIt.current !== name) throw new Error(`checkpoint ${name} is not the current checkpoint; only a just-created one can be rolled back`);
  return planDelete(stateWithIt, [name], live).actions;
}
