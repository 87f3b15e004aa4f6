// The checkpoint tree laid out on a time axis: git-style straight lanes (ux-principles §5.3).
//
// d3-hierarchy's stratify gives the tree (with a synthetic root, so several roots or orphans whose
// parent was deleted never throw). Rows are NOT taken from d3.tree(): the tidy layout moves
// existing rows when a node is added. Instead lanes are assigned online, in creation order:
//  - a node takes its parent's lane when it is the first child there and the lane is still free
//    from the parent's time on;
//  - otherwise it takes the lowest lane that is free over [parent time, node time] (a lane is free
//    after the time of the last node placed in it), else a new lane at the bottom.
// Every decision depends only on nodes created earlier, so adding a checkpoint never moves an
// existing row. The NOW pseudo-node is placed afterwards and reserves nothing.

import { stratify, type HierarchyNode } from 'd3-hierarchy';

export interface TreeInput {
  name: string;
  parent?: string;
  /** Creation time in ms. */
  time: number;
}

export interface LaidOutNode {
  name: string;
  /** The parent that exists in the input (undefined for roots and orphans). */
  parent?: string;
  time: number;
  lane: number;
  /** 1-based depth for aria-level. */
  level: number;
  /** 1-based position among siblings and the sibling count (aria-posinset / aria-setsize). */
  posInSet: number;
  setSize: number;
  children: string[];
  /** On the path from a root to the current checkpoint. */
  onCurrentPath: boolean;
}

export interface TreeLayout {
  /** Nodes in visible (preorder, siblings by time) order. */
  nodes: LaidOutNode[];
  byName: Map<string, LaidOutNode>;
  /** Lane of the NOW node, or undefined when there is no current checkpoint. */
  nowLane?: number;
  laneCount: number;
}

const SYNTHETIC_ROOT = '\u0000root';

interface Row {
  id: string;
  parentId?: string;
  time: number;
}

function compareByTime(a: { time: number; name: string }, b: { time: number; name: string }): number {
  return a.time - b.time || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** The hierarchy under a synthetic root; children sorted by creation time, then name. */
export function buildHierarchy(input: readonly TreeInput[]): HierarchyNode<Row> {
  const names = new Set<string>();
  for (const n of input) {
    if (names.has(n.name)) throw new Error(`duplicate checkpoint name ${JSON.stringify(n.name)}`);
    names.add(n.name);
  }
  const rows: Row[] = [{ id: SYNTHETIC_ROOT, time: -Infinity }];
  for (const n of input) {
    // Orphans (parent deleted or unknown) and self-parents hang off the synthetic root.
    const parentKnown = n.parent !== undefined && n.parent !== n.name && names.has(n.parent);
    rows.push({ id: n.name, parentId: parentKnown ? n.parent : SYNTHETIC_ROOT, time: n.time });
  }
  const root = stratify<Row>()
    .id((r) => r.id)
    .parentId((r) => r.parentId)(rows);
  for (const node of preorder(root)) node.children?.sort((a, b) => compareByTime({ time: a.data.time, name: a.data.id }, { time: b.data.time, name: b.data.id }));
  return root;
}

/**
 * The nodes in pre-order (a parent before its children, siblings in order), as d3's eachBefore, but
 * by plain loops: d3 walks with generators, slow as the cold code of a first render (issue 11).
 */
function preorder<T>(root: HierarchyNode<T>): HierarchyNode<T>[] {
  const out: HierarchyNode<T>[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    out.push(node);
    const children = node.children;
    if (children) for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
  }
  return out;
}

/**
 * Lanes, visible order and ARIA positions. Throws (from stratify) on duplicate names or cycles,
 * naming the offending checkpoint.
 */
export function layoutTree(input: readonly TreeInput[], current?: string): TreeLayout {
  const root = buildHierarchy(input);
  const all = preorder(root);

  // Creation order that never puts a child before its parent (clock skew, redefined checkpoints):
  // effective time = max(own time, parent's effective time); ties broken by depth, then name.
  const eff = new Map<string, number>();
  const order: HierarchyNode<Row>[] = [];
  all.forEach((node) => {
    if (node.data.id === SYNTHETIC_ROOT) return;
    const parentEff = node.parent && node.parent.data.id !== SYNTHETIC_ROOT ? eff.get(node.parent.data.id)! : -Infinity;
    eff.set(node.data.id, Math.max(node.data.time, parentEff));
    order.push(node);
  });
  order.sort((a, b) => eff.get(a.data.id)! - eff.get(b.data.id)! || a.depth - b.depth || compareByTime(
    { time: a.data.time, name: a.data.id }, { time: b.data.time, name: b.data.id }));

  const lane = new Map<string, number>();
  const laneEnd: number[] = []; // effective time of the last node placed in each lane
  const laneHasChild = new Set<string>(); // parents whose lane was already inherited
  const lowestFree = (from: number): number => {
    for (let i = 0; i < laneEnd.length; i++) if (laneEnd[i]! < from) return i;
    return laneEnd.length;
  };
  for (const node of order) {
    const id = node.data.id;
    const t = eff.get(id)!;
    const parent = node.parent && node.parent.data.id !== SYNTHETIC_ROOT ? node.parent.data.id : undefined;
    let l: number;
    if (parent !== undefined) {
      const pl = lane.get(parent)!;
      const pt = eff.get(parent)!;
      if (!laneHasChild.has(parent) && laneEnd[pl] === pt) {
        l = pl;
        laneHasChild.add(parent);
      } else {
        l = lowestFree(pt);
      }
    } else {
      l = lowestFree(-Infinity); // a root starts its own lane: sharing one would look like a chain
    }
    lane.set(id, l);
    laneEnd[l] = t;
  }

  // NOW follows the current checkpoint: its lane if nothing was placed after it there.
  let nowLane: number | undefined;
  if (current !== undefined && lane.has(current)) {
    const cl = lane.get(current)!;
    nowLane = laneEnd[cl] === eff.get(current) ? cl : lowestFree(eff.get(current)!);
  }

  const currentPath = new Set<string>();
  if (current !== undefined) {
    const cur = all.find((n) => n.data.id === current);
    for (let n = cur; n && n.data.id !== SYNTHETIC_ROOT; n = n.parent ?? undefined) currentPath.add(n.data.id);
  }

  const nodes: LaidOutNode[] = [];
  const byName = new Map<string, LaidOutNode>();
  all.forEach((node) => {
    if (node.data.id === SYNTHETIC_ROOT) return;
    const siblings = node.parent?.children ?? [node];
    const parentId = node.parent && node.parent.data.id !== SYNTHETIC_ROOT ? node.parent.data.id : undefined;
    const laid: LaidOutNode = {
      name: node.data.id,
      parent: parentId,
      time: node.data.time,
      lane: lane.get(node.data.id)!,
      level: node.depth,
      posInSet: siblings.indexOf(node) + 1,
      setSize: siblings.length,
      children: (node.children ?? []).map((c) => c.data.id),
      onCurrentPath: currentPath.has(node.data.id),
    };
    nodes.push(laid);
    byName.set(laid.name, laid);
  });
  const laneCount = Math.max(laneEnd.length, nowLane !== undefined ? nowLane + 1 : 0);
  return { nodes, byName, nowLane, laneCount };
}
