// The checkpoint tree drawn on the time axis: a real role="tree" of role="treeitem"s named by
// checkpoint, with a roving tabindex and arrow-key movement (tree-nav.ts). Enter or double-click
// opens details, never a destructive action (P14). The NOW node is hollow and carries how much
// changed since the current checkpoint (P2).

import { useEffect, useMemo, useRef, useState, type KeyboardEvent, type ReactElement } from 'react';
import type { Checkpoint } from '../../../shared/domain';
import { formatAbsolute, formatBytes, formatRelative } from '../format';
import { TREE_PAD, type TimelineModel } from './model';
import { timeToX, type TimeView } from './timescale';
import { isNavKey, moveFocus } from './tree-nav';

const CHAR_W = 6.3; // approximate width of an 11 px label character
/** Zoomed out, a node closer than this to the previous drawn one on its lane is not drawn. */
const MIN_NODE_PX = 8;

export interface TreeLayerProps {
  model: TimelineModel;
  vmLabel: string;
  checkpoints: readonly Checkpoint[];
  current?: string;
  selected?: string;
  now: number;
  view: TimeView;
  plotW: number;
  /** Bytes changed since the current checkpoint (live), for the NOW node. */
  changed?: number;
  onSelect(name: string): void;
  onOpen(name: string): void;
  /** Bring a time into view (when keyboard focus moves to a node that is off-screen). */
  onReveal?(t: number): void;
}

export function laneY(lane: number, rowH: number): number {
  return TREE_PAD + lane * rowH + rowH / 2;
}

function itemLabel(cp: Checkpoint | undefined, name: string, isCurrent: boolean, now: number): string {
  if (!cp) return name;
  const disks = cp.disks.filter((d) => d.checkpoint === 'bitmap').map((d) => d.name);
  const parts = [name, `created ${formatAbsolute(cp.createdAtMs)} (${formatRelative(cp.createdAtMs, now)})`];
  parts.push(disks.length > 0 ? `bitmaps on ${disks.join(', ')}` : 'no disk bitmaps');
  if (isCurrent) parts.push('current checkpoint');
  return parts.join(', ');
}

export function TreeLayer(props: TreeLayerProps) {
  const { model, view, plotW, now, current, selected } = props;
  const { tree, rowH } = model;
  const x = (t: number) => timeToX(view, plotW, t);
  const byName = useMemo(() => new Map(props.checkpoints.map((c) => [c.name, c])), [props.checkpoints]);
  const [focused, setFocused] = useState<string | undefined>(undefined);
  const itemRefs = useRef(new Map<string, SVGGElement>());
  const pendingFocus = useRef<string | undefined>(undefined);

  // The roving tab stop: the focused node, else the selection, else the current checkpoint, else the first.
  const tabStop = [focused, selected, current, tree.nodes[0]?.name].find((n) => n !== undefined && tree.byName.has(n));

  useEffect(() => {
    const name = pendingFocus.current;
    if (name === undefined) return;
    const el = itemRefs.current.get(name);
    if (el) {
      pendingFocus.current = undefined;
      el.focus();
    }
  });

  const focusNode = (name: string) => {
    setFocused(name);
    props.onSelect(name);
    const node = tree.byName.get(name);
    if (node) {
      const px = x(node.time);
      if ((px < 0 || px > plotW) && props.onReveal) props.onReveal(node.time);
    }
    pendingFocus.current = name;
    itemRefs.current.get(name)?.focus();
  };

  const onKeyDown = (e: KeyboardEvent<SVGGElement>) => {
    if (isNavKey(e.key)) {
      e.preventDefault();
      const next = moveFocus(tree, tabStop, e.key);
      if (next !== undefined) focusNode(next);
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      if (tabStop === undefined) return;
      if (e.key === 'Enter') props.onOpen(tabStop);
      else props.onSelect(tabStop);
    }
  };

  // Visible window with a margin; off-screen nodes are not drawn (except the tab stop, which must exist).
  const margin = (view.t1 - view.t0) * 0.05;
  const lo = view.t0 - margin;
  const hi = view.t1 + margin;

  // Per lane, left to right: which nodes to draw (zoomed out, nodes closer than MIN_NODE_PX to the
  // previous drawn one are skipped — the table of checkpoints and the arrow keys still reach them),
  // and which get a label (name and age where it fits before the next node, else the name).
  const { drawn, labels } = useMemo(() => {
    const perLane = new Map<number, { name: string; px: number; age: string }[]>();
    for (const n of tree.nodes) {
      if (n.time < lo || n.time > hi) continue;
      const list = perLane.get(n.lane) ?? [];
      list.push({ name: n.name, px: timeToX(view, plotW, n.time), age: formatRelative(n.time, now) });
      perLane.set(n.lane, list);
    }
    const drawnSet = new Set<string>();
    const out = new Map<string, 'full' | 'name'>();
    for (const all of perLane.values()) {
      all.sort((a, b) => a.px - b.px);
      const list: typeof all = [];
      let lastPx = -Infinity;
      for (const item of all) {
        if (item.px - lastPx < MIN_NODE_PX) continue;
        list.push(item);
        lastPx = item.px;
        drawnSet.add(item.name);
      }
      for (let i = 0; i < list.length; i++) {
        const room = (list[i + 1]?.px ?? Infinity) - list[i]!.px - 18;
        if ((list[i]!.name.length + list[i]!.age.length + 2) * CHAR_W < room) out.set(list[i]!.name, 'full');
        else if (list[i]!.name.length * CHAR_W < room) out.set(list[i]!.name, 'name');
      }
    }
    return { drawn: drawnSet, labels: out };
  }, [tree, view, plotW, lo, hi, now]);

  // All edges in two paths (current lineage, the rest): one DOM element each, however many nodes.
  let edgesCurrent = '';
  let edgesOther = '';
  const items: ReactElement[] = [];
  for (const n of tree.nodes) {
    const visible = n.time >= lo && n.time <= hi;
    const parent = n.parent !== undefined ? tree.byName.get(n.parent) : undefined;
    if (parent && !(parent.time > hi || n.time < lo)) {
      const px = x(parent.time);
      const nx = x(n.time);
      const py = laneY(parent.lane, rowH);
      const cy = laneY(n.lane, rowH);
      if (parent.lane !== n.lane || nx - px >= 0.5) {
        const d = parent.lane === n.lane ? `M${px.toFixed(1)},${py}H${nx.toFixed(1)}` : `M${px.toFixed(1)},${py}V${cy}H${nx.toFixed(1)}`;
        if (n.onCurrentPath) edgesCurrent += d;
        else edgesOther += d;
      }
    }
    const special = n.name === tabStop || n.name === current || n.name === selected;
    if (!special && (!visible || !drawn.has(n.name))) continue;
    const cp = byName.get(n.name);
    const isCurrent = n.name === current;
    const isSelected = n.name === selected;
    const cx = x(n.time);
    const cy = laneY(n.lane, rowH);
    const cls = ['treeitem', isCurrent ? 'is-current' : '', isSelected ? 'is-selected' : '', n.onCurrentPath || current === undefined ? '' : 'is-muted']
      .filter(Boolean).join(' ');
    const label = labels.get(n.name) ?? (isSelected || isCurrent ? 'name' : undefined);
    items.push(
      <g
        key={n.name}
        ref={(el) => {
          if (el) itemRefs.current.set(n.name, el);
          else itemRefs.current.delete(n.name);
        }}
        role="treeitem"
        className={cls}
        tabIndex={n.name === tabStop ? 0 : -1}
        aria-label={itemLabel(cp, n.name, isCurrent, now)}
        aria-level={n.level}
        aria-posinset={n.posInSet}
        aria-setsize={n.setSize}
        aria-selected={isSelected}
        aria-expanded={n.children.length > 0 ? true : undefined}
        data-name={n.name}
        onClick={() => focusNode(n.name)}
        onDoubleClick={() => props.onOpen(n.name)}
        onFocus={() => setFocused(n.name)}
      >
        <title>{`${n.name}\n${cp ? formatAbsolute(cp.createdAtMs) : ''}${cp?.description ? `\n${cp.description}` : ''}`}</title>
        {/* A generous hit target: the node and its label. */}
        <rect className="hit" x={cx - 10} y={cy - 19} width={20 + (label ? n.name.length * CHAR_W + 6 : 0)} height={29} />
        <circle className="focus-ring" cx={cx} cy={cy} r={10} />
        <circle className="node" cx={cx} cy={cy} r={isCurrent ? 6.5 : 5.5} />
        {label && (
          <text className="node-label" x={cx + 9} y={cy - 7}>
            {n.name}
            {label === 'full' && <tspan className="node-age">{`  ${formatRelative(n.time, now)}`}</tspan>}
          </text>
        )}
      </g>,
    );
  }

  const nowLane = tree.nowLane;
  const cur = current !== undefined ? tree.byName.get(current) : undefined;
  const nowX = x(now);
  const changedText = props.changed !== undefined && cur ? `${formatBytes(props.changed)} changed since ${cur.name}` : cur ? `since ${cur.name}` : 'no checkpoint yet';
  // On the canvas the name is shortened: the current checkpoint's own label sits just left of NOW.
  const shortName = cur && cur.name.length > 13 ? `${cur.name.slice(0, 12)}…` : cur?.name;
  const changedShort = props.changed !== undefined && cur ? `${formatBytes(props.changed)} changed since ${shortName}` : cur ? `since ${shortName}` : 'no checkpoint yet';
  const nowY = laneY(nowLane ?? 0, rowH);

  return (
    <g className="tree-layer">
      <g className="edges" aria-hidden="true">
        {edgesOther && <path className="edge" d={edgesOther} />}
        {edgesCurrent && <path className="edge edge-current" d={edgesCurrent} />}
        {cur && nowLane !== undefined && (
          <path className="edge edge-now" d={cur.lane === nowLane ? `M${x(cur.time)},${laneY(cur.lane, rowH)}H${nowX - 8}` : `M${x(cur.time)},${laneY(cur.lane, rowH)}V${nowY}H${nowX - 8}`} />
        )}
      </g>
      <g role="tree" aria-label={`Checkpoints of ${props.vmLabel}`} aria-multiselectable={false} onKeyDown={onKeyDown}>
        {items}
      </g>
      <g className="now-node" role="img" aria-label={`Now: ${changedText}`} transform={`translate(${nowX},${nowY})`}>
        <title>{`Now (${formatAbsolute(now)}): ${changedText}`}</title>
        <circle r={7.5} />
        <text className="now-label" x={12} y={4}>NOW<tspan className="now-sub">{`  ${changedShort}`}</tspan></text>
      </g>
    </g>
  );
}
