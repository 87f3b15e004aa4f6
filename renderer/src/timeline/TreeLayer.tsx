// The checkpoint tree drawn on the time axis: a real role="tree" of role="treeitem"s named by
// checkpoint, with a roving tabindex and arrow-key movement (tree-nav.ts). Enter or double-click
// opens details, Delete opens the delete dialog (which asks first), Escape clears the selection;
// nothing destructive happens on a key alone (P14). The NOW node is hollow and carries how much
// changed since the current checkpoint (P2). Labels never overprint (labels.ts): long names are
// shortened with an ellipsis (the full name is in the tooltip and the item's accessible name).

import { memo, useEffect, useMemo, useRef, useState, type KeyboardEvent, type ReactElement } from 'react';
import type { Checkpoint } from '../../../shared/domain';
import { displayName, formatAbsolute, formatBytes, formatRelative, shortName } from '../format';
import { TREE_PAD, type TimelineModel } from './model';
import { placeLabels, textWidth, type Interval } from './labels';
import { isNavKey, moveFocus } from './tree-nav';
import { at, type XScale } from './geometry';

/** Zoomed out, a node closer than this to the previous drawn one on its lane is not drawn. */
const MIN_NODE_PX = 8;
/** Longest label on the canvas, in characters (the rest is in the tooltip and the details). */
const LABEL_CHARS = 28;

export interface TreeLayerProps {
  model: TimelineModel;
  vmLabel: string;
  checkpoints: readonly Checkpoint[];
  current?: string;
  selected?: string;
  now: number;
  x: XScale;
  plotW: number;
  /** Bytes changed since the current checkpoint (live), for the NOW node. */
  changed?: number;
  onSelect(name: string): void;
  onOpen(name: string): void;
  /** Delete on a focused checkpoint: open the delete dialog for it. */
  onDelete?(name: string): void;
  /** Escape: clear the selection. */
  onClearSelection?(): void;
  /** Move keyboard focus to this checkpoint's item (changes of `token` re-apply it). */
  focusRequest?: { name: string; token: number };
  /** While the user zooms or pans: no labels (they come back when the view settles). */
  draft?: boolean;
}

export function laneY(lane: number, rowH: number): number {
  return TREE_PAD + lane * rowH + rowH / 2;
}

function itemLabel(cp: Checkpoint | undefined, name: string, isCurrent: boolean, now: number): string {
  const shown = displayName(name);
  if (!cp) return shown;
  const disks = cp.disks.filter((d) => d.checkpoint === 'bitmap').map((d) => d.name);
  const parts = [shown, `created ${formatAbsolute(cp.createdAtMs)} (${formatRelative(cp.createdAtMs, now)})`];
  parts.push(disks.length > 0 ? `bitmaps on ${disks.join(', ')}` : 'no disk bitmaps');
  if (isCurrent) parts.push('current checkpoint');
  return parts.join(', ');
}

/** Memoized: a parent render that changes none of its props (a figure, a disk map) skips the tree. */
export const TreeLayer = memo(function TreeLayer(props: TreeLayerProps) {
  const { model, x, plotW, now, current, selected } = props;
  const { tree, rowH } = model;
  const byName = useMemo(() => new Map(props.checkpoints.map((c) => [c.name, c])), [props.checkpoints]);
  // Each node's words (accessible name, tooltip) only change with the clock, not with the view:
  // computed once per clock tick, on demand, not on every zoom frame.
  const words = useMemo(() => {
    const cache = new Map<string, { aria: string; title: string }>();
    return (name: string) => {
      let w = cache.get(name);
      if (!w) {
        const cp = byName.get(name);
        w = {
          aria: itemLabel(cp, name, name === current, now),
          title: `${displayName(name)}\n${cp ? formatAbsolute(cp.createdAtMs) : ''}${cp?.description ? `\n${cp.description}` : ''}`,
        };
        cache.set(name, w);
      }
      return w;
    };
  }, [byName, current, now]);
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

  const focusRequest = props.focusRequest;
  useEffect(() => {
    if (!focusRequest) return;
    setFocused(focusRequest.name);
    pendingFocus.current = focusRequest.name;
    itemRefs.current.get(focusRequest.name)?.focus();
  }, [focusRequest]);

  const focusNode = (name: string) => {
    setFocused(name);
    props.onSelect(name);
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
    } else if (e.key === 'Delete' && tabStop !== undefined && props.onDelete) {
      e.preventDefault();
      props.onDelete(tabStop);
    } else if (e.key === 'Escape' && selected !== undefined && props.onClearSelection) {
      e.preventDefault();
      e.stopPropagation();
      props.onClearSelection();
    }
  };

  const nowX = x(now);
  const nowLane = tree.nowLane;
  const cur = current !== undefined ? tree.byName.get(current) : undefined;
  const changedText = props.changed !== undefined && cur ? `${formatBytes(props.changed)} changed since ${displayName(cur.name)}` : cur ? `since ${displayName(cur.name)}` : 'no checkpoint yet';
  const changedShort = props.changed !== undefined && cur ? `${formatBytes(props.changed)} since ${shortName(cur.name, 14)}` : cur ? `since ${shortName(cur.name, 14)}` : 'no checkpoint yet';
  // NOW's words go right of it when there is room, else left; either way they are an obstacle for
  // the labels of its lane.
  const nowTextW = (5 + changedShort.length) * 7.6; // bold: wider than textWidth()'s estimate
  const nowRight = nowX + 12 + nowTextW <= plotW;
  const nowBox: Interval = nowRight ? { x0: nowX - 10, x1: nowX + 12 + nowTextW } : { x0: nowX - 10 - nowTextW, x1: nowX + 10 };

  // Per lane, left to right: which nodes to draw (zoomed out, nodes closer than MIN_NODE_PX to the
  // previous drawn one are skipped — the table of checkpoints and the arrow keys still reach them),
  // and which get a label: the current and the selected first, then left to right, each only
  // where it overprints no other label (labels may pass over later nodes' circles, not words).
  const { drawn, labels } = useMemo(() => {
    const perLane = new Map<number, { name: string; px: number }[]>();
    for (const n of tree.nodes) {
      const px = x(n.time);
      if (px < -30 || px > plotW + 30) continue;
      const list = perLane.get(n.lane) ?? [];
      list.push({ name: n.name, px });
      perLane.set(n.lane, list);
    }
    const drawnSet = new Set<string>();
    const out = new Map<string, { text: string; full: boolean }>();
    for (const [lane, all] of perLane) {
      all.sort((a, b) => a.px - b.px);
      let lastPx = -Infinity;
      const shown: typeof all = [];
      for (const item of all) {
        const special = item.name === current || item.name === selected;
        if (!special && item.px - lastPx < MIN_NODE_PX) continue;
        shown.push(item);
        lastPx = item.px;
        drawnSet.add(item.name);
      }
      if (props.draft) continue;
      const placed = placeLabels(shown.map((item) => {
        const name = shortName(item.name, LABEL_CHARS);
        const age = `  ${formatRelative(byName.get(item.name)?.createdAtMs ?? now, now)}`;
        const options = [{ text: `${name}\u0000${age}`, width: textWidth(name + age) }, { text: name, width: textWidth(name) }];
        const shorter = shortName(item.name, 10);
        if (shorter !== name) options.push({ text: shorter, width: textWidth(shorter) });
        return { key: item.name, x: item.px + 9, options, priority: item.name === selected ? 2 : item.name === current ? 1 : 0 };
      }), lane === nowLane ? [nowBox] : [], 3); // widths are estimated on the wide side: 3 px is enough
      for (const [name, o] of placed) {
        const [text, age] = o.text.split('\u0000');
        out.set(name, { text: text!, full: age !== undefined });
      }
    }
    return { drawn: drawnSet, labels: out };
  }, [tree, x, plotW, now, current, selected, byName, nowLane, nowBox.x0, nowBox.x1, props.draft]);

  // All edges in two paths (current lineage, the rest): one DOM element each, however many nodes.
  let edgesCurrent = '';
  let edgesOther = '';
  const items: ReactElement[] = [];
  const labelEls: ReactElement[] = [];
  for (const n of tree.nodes) {
    const cx = x(n.time);
    const visible = cx >= -30 && cx <= plotW + 30;
    const parent = n.parent !== undefined ? tree.byName.get(n.parent) : undefined;
    if (parent) {
      const px = x(parent.time);
      if (!(px > plotW + 30 || cx < -30)) {
        const py = laneY(parent.lane, rowH);
        const cy = laneY(n.lane, rowH);
        if (parent.lane !== n.lane || cx - px >= 0.5) {
          const d = parent.lane === n.lane ? `M${px.toFixed(1)},${py}H${cx.toFixed(1)}` : `M${px.toFixed(1)},${py}V${cy}H${cx.toFixed(1)}`;
          if (n.onCurrentPath) edgesCurrent += d;
          else edgesOther += d;
        }
      }
    }
    const special = n.name === tabStop || n.name === current || n.name === selected;
    if (!special && (!visible || !drawn.has(n.name))) continue;
    const isCurrent = n.name === current;
    const isSelected = n.name === selected;
    const cy = laneY(n.lane, rowH);
    const cls = ['treeitem', isCurrent ? 'is-current' : '', isSelected ? 'is-selected' : '', n.onCurrentPath || current === undefined ? '' : 'is-muted']
      .filter(Boolean).join(' ');
    const label = labels.get(n.name);
    if (label) {
      // Labels live in their own layer under the items: an item's box is its node, so a label that
      // passes over later nodes never takes their clicks.
      labelEls.push(
        <text key={n.name} className={`node-label${n.onCurrentPath || current === undefined ? '' : ' is-muted'}${isSelected ? ' is-selected' : ''}`} transform={at(cx + 9, cy - 7)} onClick={() => focusNode(n.name)}>
          {label.text}
          {label.full && <tspan className="node-age">{`  ${formatRelative(n.time, now)}`}</tspan>}
        </text>,
      );
    }
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
        aria-label={words(n.name).aria}
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
        <title>{words(n.name).title}</title>
        {/* A generous hit target around the node. */}
        <rect className="hit" x={cx - 9} y={cy - 11} width={18} height={22} />
        {/* Only the tab stop can take focus, so only it needs a focus ring. */}
        {n.name === tabStop && <circle className="focus-ring" cx={cx} cy={cy} r={10} />}
        <circle className="node" cx={cx} cy={cy} r={isCurrent ? 6.5 : 5.5} />
      </g>,
    );
  }

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
      <g className="node-labels" aria-hidden="true">{labelEls}</g>
      <g role="tree" aria-label={`Checkpoints of ${props.vmLabel}`} aria-multiselectable={false} onKeyDown={onKeyDown}>
        {items}
      </g>
      <g className="now-node" role="img" aria-label={`Now: ${changedText}`} transform={`translate(${nowX},${nowY})`}>
        <title>{`Now (${formatAbsolute(now)}): ${changedText}`}</title>
        <circle r={7.5} />
        {/* Right of the node, or — without room there — left of it and above the line that leads to it. */}
        <text className="now-label" x={nowRight ? 12 : -10} y={nowRight ? 4 : -8} textAnchor={nowRight ? 'start' : 'end'}>NOW<tspan className="now-sub">{`  ${changedShort}`}</tspan></text>
      </g>
    </g>
  );
});
