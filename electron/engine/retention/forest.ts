// PURE: the layers of one disk of one VM as a forest. Each backup point that holds the disk has one
// layer; its parent is the layer its qcow2 backing file names (the manifest's `base`). A full is a
// root; an incremental or differential hangs under its base; a branch point (after an in-place
// restore) is a layer with several children.

import type { BackupKind, BackupManifest, BackupManifestDisk } from '../backup/manifest';

export interface LayerNode {
  point: string;
  base?: string;
  /** Child points (layers whose backing file is this one), oldest first. */
  children: string[];
  fileSize: number;
  since?: string;
  kind: BackupKind;
  startedAt: number;
}

export type Forest = Map<string, LayerNode>;

/** Every disk name that appears in the manifests, sorted. */
export function disksOf(manifests: BackupManifest[]): string[] {
  return [...new Set(manifests.flatMap((m) => m.disks.map((d) => d.name)))].sort();
}

export function diskEntry(m: BackupManifest, disk: string): BackupManifestDisk | undefined {
  return m.disks.find((d) => d.name === disk);
}

function byAge(a: LayerNode, b: LayerNode): number {
  return a.startedAt - b.startedAt || (a.point < b.point ? -1 : a.point > b.point ? 1 : 0);
}

/** The forest of `disk`; throws naming the backups when a base is missing or the chain loops. */
export function buildForest(manifests: BackupManifest[], disk: string): Forest {
  const forest: Forest = new Map();
  for (const m of manifests) {
    const d = diskEntry(m, disk);
    if (!d) continue;
    forest.set(m.id, { point: m.id, base: d.base, children: [], fileSize: d.fileSize, since: d.since, kind: d.kind, startedAt: m.startedAt });
  }
  for (const n of forest.values()) {
    if (n.base === undefined) continue;
    const parent = forest.get(n.base);
    if (!parent) {
      throw new Error(`backup ${n.point}'s layer of ${disk} builds on backup ${n.base}, which is not in the repository; the chain is already broken (see backup-verify), so retention leaves this VM alone`);
    }
    parent.children.push(n.point);
  }
  for (const n of forest.values()) n.children.sort((a, b) => byAge(forest.get(a)!, forest.get(b)!));
  // A loop would make some layer unreachable from every root.
  const reached = new Set<string>();
  const stack = roots(forest);
  while (stack.length > 0) {
    const id = stack.pop()!;
    reached.add(id);
    stack.push(...forest.get(id)!.children);
  }
  if (reached.size !== forest.size) {
    const loop = [...forest.keys()].find((id) => !reached.has(id));
    throw new Error(`the backup chain of ${disk} loops at backup ${loop}; retention leaves this VM alone (see backup-verify)`);
  }
  return forest;
}

/** Root layers (fulls), oldest first. */
export function roots(forest: Forest): string[] {
  return [...forest.values()].filter((n) => n.base === undefined).sort(byAge).map((n) => n.point);
}

/** Ancestors of `id` (its base, the base's base, …, the root). */
export function ancestors(forest: Forest, id: string): string[] {
  const out: string[] = [];
  for (let b = forest.get(id)?.base; b !== undefined; b = forest.get(b)?.base) out.push(b);
  return out;
}

/** Layers in pre-order (a parent before its children), roots oldest first. */
export function preOrder(forest: Forest): string[] {
  const out: string[] = [];
  const stack = roots(forest).reverse();
  while (stack.length > 0) {
    const id = stack.pop()!;
    out.push(id);
    stack.push(...[...forest.get(id)!.children].reverse());
  }
  return out;
}

/** Points whose subtree (the layer itself or any descendant) holds a point of `keep`. */
export function liveLayers(forest: Forest, keep: Set<string>): Set<string> {
  const live = new Set<string>();
  for (const id of preOrder(forest).reverse()) {
    const n = forest.get(id)!;
    if (keep.has(id) || n.children.some((c) => live.has(c))) live.add(id);
  }
  return live;
}
