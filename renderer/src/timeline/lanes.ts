// The checkpoint tree laid out on a time axis: git-style straight lanes (ux-principles §5.3).
//
// The tree is built under a synthetic root, so several roots or orphans whose parent was deleted never
// throw. Hand-written, not d3-hierarchy's stratify: every d3-hierarchy constructor sets each node's
// height by walking up its ancestors from every node in pre-order, which is quadratic on a chain, and a
// VM's checkpoints are mostly one (10,000 in a line: 160 against 75 ms; 30,000: 1,052 against 195 ms;
// bench/tree-layout.ts, bench/README.md phase 15). Rows are not taken from a tidy tree layout either:
// it moves existing rows when a node is added. Instead lanes are assigned online, in creation order:
//  - a node takes its parent's lane when it is the first child there and the lane is still free
//    from the parent's time on;
//  - otherwise it takes the lowest lane that is free over [parent time, node time] (a lane is free
//    after the time of the last node placed in it), else a new lane at the bottom.
// Every decision depends only on nodes created earlier, so adding a checkpoint never moves an
// existing row. The NOW pseudo-node is placed afterwards and reserves nothing.

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

/** A node of the hierarchy under the synthetic root (depth 0); children sorted by creation time, then name. */
interface TreeNode {
  name: string;
  time: number;
  parent?: TreeNode;
  children: TreeNode[];
  depth: number;
  /** 1-based position among its siblings, and their count. */
  posInSet: number;
  setSize: number;
  /** Creation order that never puts a child before its parent: max(own time, parent's). */
  eff: number;
}

function compareByTime(a: { time: number; name: string }, b: { time: number; name: string }): number {
  return a.time - b.time || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * The hierarchy under a synthetic root, in pre-order (a parent before its children, siblings in
 * order; the root first). Throws on duplicate names and on parent cycles, naming a checkpoint.
 */
function buildHierarchy(input: readonly TreeInput[]): TreeNode[] {
  const root: TreeNode = { name: '', time: -Infinity, children: [], depth: 0, posInSet: 1, setSize: 1, eff: -Infinity };
  const byName = new Map<string, TreeNode>();
  for (const n of input) {
    if (byName.has(n.name)) throw new Error(`duplicate checkpoint name ${JSON.stringify(n.name)}`);
    byName.set(n.name, { name: n.name, time: n.time, children: [], depth: 0, posInSet: 1, setSize: 1, eff: n.time });
  }
  for (const n of input) {
    // Orphans (parent deleted or unknown) and self-parents hang off the synthetic root.
    const node = byName.get(n.name)!;
    const parent = (n.parent !== undefined && n.parent !== n.name && byName.get(n.parent)) || root;
    if (parent !== root) node.parent = parent;
    parent.children.push(node);
  }
  const out: TreeNode[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const node = stack.pop()!;
    out.push(node);
    const children = node.children.sort(compareByTime);
    for (let i = children.length - 1; i >= 0; i--) {
      const c = children[i]!;
      c.depth = node.depth + 1;
      c.posInSet = i + 1;
      c.setSize = children.length;
      if (c.parent) c.eff = Math.max(c.time, c.parent.eff);
      stack.push(c);
    }
  }
  // A node not reached from the root is on a parent cycle or below one: its parents lead to the cycle.
  if (out.length <= input.length) {
    const reached = new Set(out);
    let onCycle = [...byName.values()].find((n) => !reached.has(n))!;
    for (const seen = new Set<TreeNode>(); !seen.has(onCycle); onCycle = onCycle.parent!) seen.add(onCycle);
    throw new Error(`checkpoint ${JSON.stringify(onCycle.name)} is its own ancestor (a parent cycle)`);
  }
  return out;
}

/** Lanes, visible order and ARIA positions. Throws on duplicate names or cycles, naming the offending checkpoint. */
export function layoutTree(input: readonly TreeInput[], current?: string): TreeLayout {
  const all = buildHierarchy(input).slice(1); // without the synthetic root

  // Creation order that never puts a child before its parent (clock skew, redefined checkpoints):
  // by effective time, ties broken by depth, then time and name.
  const order = [...all].sort((a, b) => a.eff - b.eff || a.depth - b.depth || compareByTime(a, b));

  const lane = new Map<TreeNode, number>();
  const laneEnd: number[] = []; // effective time of the last node placed in each lane
  const laneHasChild = new Set<TreeNode>(); // parents whose lane was already inherited
  const lowestFree = (from: number): number => {
    for (let i = 0; i < laneEnd.length; i++) if (laneEnd[i]! < from) return i;
    return laneEnd.length;
  };
  for (const node of order) {
    const parent = node.parent;
    let l: number;
    if (parent !== undefined) {
      const pl = lane.get(parent)!;
      if (!laneHasChild.has(parent) && laneEnd[pl] === parent.eff) {
        l = pl;
        laneHasChild.add(parent);
      } else {
        l = lowestFree(parent.eff);
      }
    } else {
      l = lowestFree(-Infinity); // a root starts its own lane: sharing one would look like a chain
    }
    lane.set(node, l);
    laneEnd[l] = node.eff;
  }

  // NOW follows the current checkpoint: its lane if nothing was placed after it there.
  const cur = current !== undefined ? all.find((n) => n.name === current) : undefined;
  let nowLane: number | undefined;
  if (cur) {
    const cl = lane.get(cur)!;
    nowLane = laneEnd[cl] === cur.eff ? cl : lowestFree(cur.eff);
  }
  const currentPath = new Set<TreeNode>();
  for (let n = cur; n; n = n.parent) currentPath.add(n);

  const nodes: LaidOutNode[] = [];
  const byName = new Map<string, LaidOutNode>();
  for (const node of all) {
    const laid: LaidOutNode = {
      name: node.name,
      parent: node.parent?.name,
      time: node.time,
      lane: lane.get(node)!,
      level: node.depth,
      posInSet: node.posInSet,
      setSize: node.setSize,
      children: node.children.map((c) => c.name),
      onCurrentPath: currentPath.has(node),
    };
    nodes.push(laid);
    byName.set(laid.name, laid);
  }
  const laneCount = Math.max(laneEnd.length, nowLane !== undefined ? nowLane + 1 : 0);
  return { nodes, byName, nowLane, laneCount };
}
