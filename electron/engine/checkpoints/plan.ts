// PURE planning of checkpoint creation and deletion: the decisions (layout at a VM's first
// checkpoint, which disks get a bitmap, the default name, what a delete changes in the surviving
// records) and the QMP transaction actions, in both bitmap layouts. No I/O here; the engine executes
// the actions as one transaction and records the metadata the plan returns. Changes-since planning
// is in plan-changes.ts.
//
// Terms: a checkpoint "has a bitmap on disk d" when its disk entry says checkpoint='bitmap'.
// The "predecessor" of X on d is the nearest ancestor of X that has a bitmap on d. In the
// chained layout the "recording" bitmap of d is the nearest checkpoint at or above `current`
// with a bitmap on d; every other checkpoint bitmap of d is disabled and covers only its own
// interval (from its creation until its successor's).

import type { BitmapLayout, Checkpoint, CheckpointDisk, CreateCheckpointOptions, DeleteMode, DiskInfo } from '../../../shared/domain';
import { validateCheckpointName } from '../names';
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

/** A name given by the user, quoted in messages when it holds anything unusual ("vda\n", "../x"). */
export function shown(name: string): string {
  return /^[\w.:@+-]+$/.test(name) ? name : JSON.stringify(name);
}

/**
 * The layout of a new checkpoint. At a VM's first checkpoint (none recorded) it is the one asked
 * for, else the stored one, else independent; afterwards it is the VM's, and asking for another fails.
 */
export function chooseLayout(requested: BitmapLayout | undefined, stored: BitmapLayout | undefined, recorded: number, vmLabel: string): BitmapLayout {
  if (recorded === 0) return requested ?? stored ?? 'independent';
  const inUse = stored ?? 'independent';
  if (requested && requested !== inUse) {
    throw new Error(`VM ${vmLabel} uses the ${inUse} bitmap layout; it can only change when the VM has no checkpoints (it has ${recorded})`);
  }
  return inUse;
}

/** libvirt's default name, the time in seconds; then "-2", "-3"... while a checkpoint or any bitmap has it. */
export function defaultCheckpointName(nowMs: number, taken: ReadonlySet<string>): string {
  const base = String(Math.floor(nowMs / 1000));
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
}

/**
 * Which disks of the VM take part in new checkpoint `name` (create, checkpoint-create-as --diskspec):
 * a listed disk as asked ("bitmap" or "no"), an unlisted one when it can hold bitmaps. Every bitmap
 * is named after the checkpoint. Refused: an unknown or twice-listed disk, a disk that cannot hold
 * bitmaps listed as "bitmap", and a bitmap of that name already on a taking-part disk (never taken over).
 */
export function chooseDisks(disks: readonly DiskInfo[], requested: CreateCheckpointOptions['disks'], name: string, vmLabel: string): CheckpointDisk[] {
  const byName = new Map(disks.map((d) => [d.name, d]));
  const asked = new Map<string, 'bitmap' | 'no'>();
  for (const r of requested ?? []) {
    if (!byName.has(r.name)) throw new Error(`unknown disk ${shown(r.name)} (VM ${vmLabel} has ${disks.map((d) => d.name).join(', ') || 'no disks'})`);
    if (asked.has(r.name)) throw new Error(`disk ${shown(r.name)} is listed twice`);
    if (r.checkpoint !== 'bitmap' && r.checkpoint !== 'no') throw new Error(`disk ${r.name}: checkpoint must be "bitmap" or "no"`);
    asked.set(r.name, r.checkpoint);
  }
  const chosen: CheckpointDisk[] = disks.map((d) => {
    const want = asked.get(d.name) ?? (d.bitmapCapable ? 'bitmap' : 'no');
    if (want === 'bitmap' && !d.bitmapCapable) throw new Error(`disk ${d.name} cannot hold a checkpoint bitmap: ${d.bitmapIncapableReason ?? 'unsupported image'}`);
    return want === 'bitmap' ? { name: d.name, checkpoint: 'bitmap' } : { name: d.name, checkpoint: 'no' };
  });
  for (const d of chosen) {
    if (d.checkpoint !== 'bitmap') continue;
    if (disks.find((x) => x.name === d.name)!.bitmaps.some((b) => b.name === name)) {
      throw new Error(
        `bitmap ${name} already exists on ${d.name} (foreign? remove it or pick another name; ` +
          `if it is a checkpoint's bitmap whose metadata was deleted, checkpoint-create --redefine takes it back)`,
      );
    }
    d.bitmap = name;
  }
  return chosen;
}

export interface NewCheckpointInput {
  options: CreateCheckpointOptions;
  /** The layout in the VM's metadata, if any. */
  storedLayout: BitmapLayout | undefined;
  checkpoints: ReadonlyMap<string, PlanCheckpoint>;
  /** The current checkpoint (with metadata): the new one's parent. */
  current: string | undefined;
  disks: readonly DiskInfo[];
  nowMs: number;
  vmLabel: string;
}

/** The record of a new checkpoint (create, prepareCreate): layout, name, disks, child of the current one. */
export function planNewCheckpoint(input: NewCheckpointInput): Checkpoint {
  const { options, checkpoints, disks } = input;
  const layout = chooseLayout(options.layout, input.storedLayout, checkpoints.size, input.vmLabel);
  const taken = new Set([...checkpoints.keys(), ...disks.flatMap((d) => d.bitmaps.flatMap((b) => (b.name === undefined ? [] : [b.name])))]);
  const name = options.name === undefined ? defaultCheckpointName(input.nowMs, taken) : validateCheckpointName(options.name);
  if (checkpoints.has(name)) throw new Error(`checkpoint ${name} already exists`);
  return {
    name,
    ...(options.description !== undefined ? { description: options.description } : {}),
    ...(input.current !== undefined ? { parent: input.current } : {}),
    creationTime: Math.floor(input.nowMs / 1000),
    createdAtMs: input.nowMs,
    disks: chooseDisks(disks, options.disks, name, input.vmLabel),
    layout,
  };
}

/** The state with `cp`, prepared but not recorded, added as current: to plan undoing it. */
export function withUnrecorded(state: PlanState, cp: PlanCheckpoint & { layout: BitmapLayout }): PlanState {
  return { layout: cp.layout, checkpoints: new Map([...state.checkpoints, [cp.name, cp]]), current: cp.name };
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

const DELETE_MODES: readonly DeleteMode[] = ['plain', 'children', 'children-only', 'metadata'];

/** Refuses a delete mode that does not exist (it comes from IPC and the CLI). */
export function assertDeleteMode(mode: string): asserts mode is DeleteMode {
  if (!DELETE_MODES.includes(mode as DeleteMode)) throw new Error(`unknown delete mode ${JSON.stringify(mode)} (use ${DELETE_MODES.join(', ')})`);
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

/**
 * The records of surviving checkpoints that a delete changes (copies; the inputs stay as they are):
 * each re-parented child gets its new parent (none for a new root), and each disk whose bitmap lost
 * part of its interval is marked incomplete (a reason already there is kept).
 */
export function updatedSurvivors<T extends PlanCheckpoint>(checkpoints: ReadonlyMap<string, T>, plan: Pick<DeletePlan, 'reparented' | 'incomplete'>): T[] {
  const changed = new Map<string, T>();
  const copyOf = (n: string) => changed.get(n) ?? structuredClone(checkpoints.get(n)!);
  for (const r of plan.reparented) {
    const cp = copyOf(r.name);
    if (r.parent === undefined) delete cp.parent;
    else cp.parent = r.parent;
    changed.set(r.name, cp);
  }
  for (const inc of plan.incomplete) {
    const cp = copyOf(inc.checkpoint);
    const d = cp.disks.find((x) => x.name === inc.disk);
    if (d && !d.incomplete) d.incomplete = inc.reason;
    changed.set(inc.checkpoint, cp);
  }
  return [...changed.values()];
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

/** Undo a checkpoint that was just created (it is current): the same as deleting the newest. */
export function planRollbackCreate(stateWithIt: PlanState, name: string, live: PlanLive): QmpAction[] {
  if (stateWithIt.current !== name) throw new Error(`checkpoint ${name} is not the current checkpoint; only a just-created one can be rolled back`);
  return planDelete(stateWithIt, [name], live).actions;
}
