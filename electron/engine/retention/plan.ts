// PURE: the exact steps that remove backup points from one VM's chains without changing what any
// kept point restores. Per disk (each disk's layers form a forest, see forest.ts):
//
//   drop    a removed point's layer that no kept point depends on: its manifest entry goes, then
//           the file.
//   rebase  a removed layer with several children that lead to kept points: every child but one is
//           rebased (qemu-img rebase, safe mode, on a copy) onto the base of the removed run, so it
//           holds what it used to read through the removed layers.
//   fold    a run of removed layers r1 ← r2 ← … ← rk with one child c leading on (c kept): c and
//           r2…rk are committed into r1 (qemu-img commit -b r1), and r1's file becomes c's layer
//           (renamed to c's name). c then builds on r1's base with r1's `since`; when r1 was a full,
//           c becomes a full. The oldest layer is where data lands, so forever-forward merging
//           writes only the incrementals, never rewrites the full.
//
// Order: drops first (leaves first), then per removed run its rebases, then its fold; runs in
// pre-order, so a fold only ever reads files nothing else has changed in a content-visible way.

import type { BackupKind, BackupManifest } from '../backup/manifest';
import { buildForest, disksOf, liveLayers, preOrder, roots, type Forest } from './forest';

export interface DropStep {
  op: 'drop';
  disk: string;
  point: string;
  /** Size of the deleted file. */
  bytes: number;
}

/** What the rewritten layer's manifest entry says afterwards. */
export interface NewLink {
  /** The new base point (none: the layer becomes a full). */
  newBase?: string;
  since?: string;
  kind: BackupKind;
}

export interface RebaseStep extends NewLink {
  op: 'rebase';
  disk: string;
  child: string;
  oldBase: string;
  /** The file may grow by up to this much (the data it read through the removed layers). */
  growthMax: number;
}

export interface FoldStep extends NewLink {
  op: 'fold';
  disk: string;
  /** The oldest removed layer: its file receives the data and becomes the child's layer. */
  into: string;
  /** Removed layers between `into` and `child`, oldest first (committed too, then deleted). */
  through: string[];
  /** The kept layer on top. */
  child: string;
  /** Files deleted by the fold (the child's old file and `through`); `into` grows by at most as much. */
  bytesMax: number;
}

export type RetentionStep = DropStep | RebaseStep | FoldStep;

export interface LayerAfter {
  point: string;
  disk: string;
  base?: string;
  kind: BackupKind;
  /** Layers from the full to this point, after the plan. */
  chainLength: number;
  /** The layer file changes (fold or rebase): its SHA-256 and size are recomputed. */
  rewritten: boolean;
}

export interface RetentionPlan {
  format: 'tidemark-retention-plan';
  version: 1;
  vmId: string;
  /** Ids of the manifests the plan was made from. */
  basis: string[];
  kept: string[];
  removed: string[];
  steps: RetentionStep[];
  /** Every kept point's layers after the plan. */
  after: LayerAfter[];
  /** Estimated bytes freed: at least (worst overlap) and at most (full overlap). */
  bytesFreed: { atLeast: number; atMost: number };
  /** Checkpoints that only removed points used: they could now be deleted (never done here). */
  checkpointsFreed: string[];
}

interface Link {
  base?: string;
  since?: string;
  kind: BackupKind;
  size: number;
}

/** Plans the removal of every point of `manifests` (one VM) that is not in `keep`. */
export function planRetention(vmId: string, manifests: BackupManifest[], keep: Iterable<string>): RetentionPlan {
  const keepSet = new Set(keep);
  for (const id of keepSet) if (!manifests.some((m) => m.id === id)) throw new Error(`cannot keep backup ${id}: it is not a backup of VM ${vmId}`);
  for (const m of manifests) if (m.vm.id !== vmId) throw new Error(`backup ${m.id} belongs to VM ${m.vm.id}, not ${vmId}`);
  const steps: RetentionStep[] = [];
  const after: LayerAfter[] = [];
  for (const disk of disksOf(manifests)) {
    const forest = buildForest(manifests, disk);
    const { rewritten, links } = planDisk(disk, forest, keepSet, steps);
    for (const id of preOrder(forest)) {
      if (!keepSet.has(id)) continue;
      let length = 1;
      for (let b = links.get(id)!.base; b !== undefined; b = links.get(b)!.base) length++;
      const l = links.get(id)!;
      after.push({ point: id, disk, ...(l.base !== undefined ? { base: l.base } : {}), kind: l.kind, chainLength: length, rewritten: rewritten.has(id) });
    }
  }
  let atLeast = 0;
  let atMost = 0;
  for (const s of steps) {
    if (s.op === 'drop') {
      atLeast += s.bytes;
      atMost += s.bytes;
    } else if (s.op === 'rebase') {
      atLeast -= s.growthMax;
    } else {
      atMost += s.bytesMax;
    }
  }
  const removed = manifests.filter((m) => !keepSet.has(m.id));
  const keptManifests = manifests.filter((m) => keepSet.has(m.id));
  const sinceAfter = new Set(after.map((a) => linkSince(a, steps, manifests)).filter((x): x is string => x !== undefined));
  const checkpointsFreed = [...new Set(removed.map((m) => m.checkpoint).filter((c): c is string => c !== undefined))]
    .filter((c) => !keptManifests.some((m) => m.checkpoint === c) && !sinceAfter.has(c))
    .sort();
  return {
    format: 'tidemark-retention-plan',
    version: 1,
    vmId,
    basis: manifests.map((m) => m.id),
    kept: keptManifests.map((m) => m.id),
    removed: removed.map((m) => m.id),
    steps,
    after,
    bytesFreed: { atLeast, atMost },
    checkpointsFreed,
  };
}

/** The `since` a kept layer has after the plan (rewritten by its last fold or rebase, else unchanged). */
function linkSince(a: LayerAfter, steps: RetentionStep[], manifests: BackupManifest[]): string | undefined {
  for (let i = steps.length - 1; i >= 0; i--) {
    const s = steps[i]!;
    if (s.disk === a.disk && s.op !== 'drop' && s.child === a.point) return s.since;
  }
  return manifests.find((m) => m.id === a.point)?.disks.find((d) => d.name === a.disk)?.since;
}

function planDisk(disk: string, forest: Forest, keep: Set<string>, steps: RetentionStep[]): { rewritten: Set<string>; links: Map<string, Link> } {
  const live = liveLayers(forest, keep);
  const links = new Map<string, Link>();
  const children = new Map<string, string[]>();
  for (const n of forest.values()) {
    links.set(n.point, { base: n.base, since: n.since, kind: n.kind, size: n.fileSize });
    children.set(n.point, n.children.filter((c) => live.has(c)));
  }
  // 1. Layers no kept point depends on, leaves first.
  for (const id of preOrder(forest).reverse()) {
    if (!live.has(id)) steps.push({ op: 'drop', disk, point: id, bytes: forest.get(id)!.fileSize });
  }
  // 2. Removed runs, parents before children.
  const rewritten = new Set<string>();
  const visit = (id: string): void => {
    if (keep.has(id)) {
      for (const c of children.get(id)!) visit(c);
      return;
    }
    const head = links.get(id)!;
    const target: NewLink = { ...(head.base !== undefined ? { newBase: head.base } : {}), ...(head.base !== undefined && head.since !== undefined ? { since: head.since } : {}), kind: head.base === undefined ? 'full' : head.kind };
    const run = [id];
    const later: string[] = [];
    let readThrough = head.size;
    let top: string;
    for (let cur = id; ; ) {
      const kids = children.get(cur)!;
      if (kids.length === 0) throw new Error(`internal: removed layer ${cur} of ${disk} is live but has no live child`);
      // The child that stays on the fold path: the largest (a rebase would copy its data), else the newest.
      const survivor = kids.reduce((best, c) => (links.get(c)!.size >= links.get(best)!.size ? c : best));
      for (const c of kids) {
        if (c === survivor) continue;
        steps.push({ op: 'rebase', disk, child: c, oldBase: cur, ...target, growthMax: readThrough });
        links.set(c, { ...links.get(c)!, base: target.newBase, since: target.since, kind: target.kind, size: links.get(c)!.size + readThrough });
        rewritten.add(c);
        later.push(c);
      }
      if (keep.has(survivor)) {
        top = survivor;
        break;
      }
      run.push(survivor);
      readThrough += links.get(survivor)!.size;
      cur = survivor;
    }
    const deleted = links.get(top)!.size + run.slice(1).reduce((sum, r) => sum + links.get(r)!.size, 0);
    steps.push({ op: 'fold', disk, into: id, through: run.slice(1), child: top, ...target, bytesMax: deleted });
    links.set(top, { base: target.newBase, since: target.since, kind: target.kind, size: head.size + deleted });
    rewritten.add(top);
    for (const r of run) links.delete(r);
    visit(top);
    for (const c of later) visit(c);
  };
  for (const r of roots(forest)) if (live.has(r)) visit(r);
  return { rewritten, links };
}
