// Arrow-key movement in the checkpoint tree (WAI-ARIA treeview; every node is always expanded):
// ↑/↓ previous/next in visible order (preorder, siblings by time), ← parent, → first child,
// Home/End first/last node. Pure, so it is unit-tested apart from the DOM.

import type { TreeLayout } from './lanes';

export type NavKey = 'ArrowUp' | 'ArrowDown' | 'ArrowLeft' | 'ArrowRight' | 'Home' | 'End';

export function isNavKey(key: string): key is NavKey {
  return key === 'ArrowUp' || key === 'ArrowDown' || key === 'ArrowLeft' || key === 'ArrowRight' || key === 'Home' || key === 'End';
}

/** The node focus moves to, or `from` itself when there is nowhere to go. */
export function moveFocus(layout: TreeLayout, from: string | undefined, key: NavKey): string | undefined {
  const nodes = layout.nodes;
  if (nodes.length === 0) return undefined;
  const i = from === undefined ? -1 : nodes.findIndex((n) => n.name === from);
  if (i === -1) return key === 'End' ? nodes[nodes.length - 1]!.name : nodes[0]!.name;
  const node = nodes[i]!;
  switch (key) {
    case 'ArrowDown':
      return nodes[Math.min(i + 1, nodes.length - 1)]!.name;
    case 'ArrowUp':
      return nodes[Math.max(i - 1, 0)]!.name;
    case 'ArrowRight':
      return node.children[0] ?? node.name;
    case 'ArrowLeft':
      return node.parent ?? node.name;
    case 'Home':
      return nodes[0]!.name;
    case 'End':
      return nodes[nodes.length - 1]!.name;
  }
}
