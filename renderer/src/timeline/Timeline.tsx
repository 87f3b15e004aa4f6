// The timeline: checkpoint tree on a time axis, a NOW node, and one band per disk with the bitmap
// spans, backup markers and the dirty-bytes area of the baseline — all sharing one x scale.
// Zoom with the wheel or the buttons, pan by dragging; the view follows NOW unless panned away
// (view-state.ts); idle stretches can be compressed (warp.ts); the tree is keyboard-navigable
// (TreeLayer).

import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type PointerEvent as ReactPointerEvent } from 'react';
import { formatAbsolute } from '../format';
import type { ChangedFigure } from '../model/figures';
import type { DiskMapState } from '../store/types';
import { BandGutters } from './BandGutters';
import { DiskBands } from './DiskBands';
import { buildStructure, changedSinceCurrent, withBands, type ModelInput } from './model';
import { panBy, ticks, zoomAt, type TimeView } from './timescale';
import { placeLabels, textWidth } from './labels';
import { at, GUTTER } from './geometry';
import { TreeLayer } from './TreeLayer';
import { ScheduleMarks } from './ScheduleMarks';
import type { ScheduleInfo } from '../../../shared/contract';
import { afterUserMove, effectiveView, jumpToNow, type ViewContext, type ViewState } from './view-state';
import { compressIdle, formatDuration, IDENTITY_WARP, type TimeWarp } from './warp';
import { useRowsNearView } from './visible-rows';
import { gestureTransform, transformAttr } from './gesture';
import type { BoxSize } from '../scroll-box';

export { GUTTER } from './geometry';
export const AXIS_H = 26;
const RIGHT_PAD = 12;
/** Labels come back this long after the last zoom or pan. */
export const SETTLE_MS = 180;
/** During a wheel or drag gesture the plot is re-rendered once the transform stretches it this much. */
const MAX_STRETCH = 2;

export interface TimelineProps extends Omit<ModelInput, 'baseline' | 'openGroups'> {
  vmLabel: string;
  selected?: string;
  onSelect(name: string): void;
  onOpen(name: string): void;
  /** Delete pressed on a checkpoint of the tree. */
  onDelete?(name: string): void;
  /** Escape pressed in the tree with a selection. */
  onClearSelection?(): void;
  /** Move keyboard focus to a checkpoint (a new token re-applies it). */
  focusRequest?: { name: string; token: number };
  /** How much changed since the baseline per disk, at NOW (model/figures.ts). */
  figures?: Record<string, ChangedFigure>;
  /** Live dirty maps of the baseline per disk (the disk map row under each band). */
  dirtyMaps?: Record<string, DiskMapState>;
  /** This VM's backup schedules: their next runs are drawn right of NOW. */
  schedules?: readonly ScheduleInfo[];
  /** The size the timeline's box is expected to have (its place, measured before it mounted). */
  boxHint?: BoxSize;
}

/**
 * The container's width; undefined until measured (before the first paint), so the SVG is drawn
 * once at its real width instead of once at a guess and again. With a `hint` (the box's expected
 * width) the first render draws at it, and ResizeObserver's first report, after the frame's layout,
 * corrects it if needed: no layout is forced before the SVG exists.
 */
function useWidth(ref: React.RefObject<HTMLElement | null>, fallback: number, hint?: number): number | undefined {
  const [width, setWidth] = useState<number | undefined>(hint);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = () => setWidth(el.clientWidth || fallback);
    const ro = typeof ResizeObserver === 'undefined' ? undefined : new ResizeObserver(measure);
    if (width === undefined || !ro) measure(); // (width: the first render's, the hint)
    ro?.observe(el);
    return () => ro?.disconnect();
  }, [ref, fallback]); // not the width: the hint counts only once
  return width;
}

export function Timeline(props: TimelineProps) {
  const { checkpoints, current, disks, live, samples, issues, backups, now, selected, maxTracks } = props;
  const containerRef = useRef<HTMLDivElement>(null);
  const svgRef = useRef<SVGSVGElement>(null);
  const measured = useWidth(containerRef, 960, props.boxHint?.width);
  const width = measured ?? 960;
  const plotW = Math.max(100, width - GUTTER - RIGHT_PAD);
  // The parent's handlers, through stable functions: the layers are memoized, and a handler that
  // is a new arrow on every parent render would re-render all of them for nothing.
  const handlers = useRef(props);
  handlers.current = props;
  const onSelect = useCallback((name: string) => handlers.current.onSelect(name), []);
  const onOpen = useCallback((name: string) => handlers.current.onOpen(name), []);
  const onDelete = useCallback((name: string) => handlers.current.onDelete?.(name), []);
  const onClearSelection = useCallback(() => handlers.current.onClearSelection?.(), []);
  const [openGroups, setOpenGroups] = useState<ReadonlySet<string>>(() => new Set());
  const toggleGroup = useCallback((disk: string) => {
    setOpenGroups((s) => {
      const next = new Set(s);
      if (!next.delete(disk)) next.add(disk);
      return next;
    });
  }, []);

  // The structure does not depend on the clock: spans and series that run to "now" end at
  // +Infinity and are clamped when drawn, so the 2-second clock tick only re-maps x.
  // In two steps: the backup list, the samples and health arrive on their own, and lay out neither
  // the tree nor the lanes again.
  const structure = useMemo(
    () => buildStructure({ checkpoints, current, disks, live, now: Infinity, baseline: selected, maxTracks, openGroups }),
    [checkpoints, current, disks, live, selected, maxTracks, openGroups],
  );
  const model = useMemo(
    () => withBands(structure, { checkpoints, current, disks, live, samples, issues, backups, now: Infinity, baseline: selected, maxTracks, openGroups }),
    [structure, samples, issues, backups], // the rest of the input is structure's, which changes with it
  );

  const [compress, setCompress] = useState(true);
  const warp = useMemo(() => (compress ? compressIdle(model.times, now) : IDENTITY_WARP), [compress, model.times, now]);
  const [viewState, setViewState] = useState<ViewState>({ mode: 'fit' });
  const ctx: ViewContext = { warp, times: model.times, now, plotW };
  const view = effectiveView(viewState, ctx);
  // Handlers that run outside React's render (wheel, rAF) read the latest view through refs.
  const latest = useRef({ view, ctx });
  latest.current = { view, ctx };
  // While the user zooms or pans, frames draw no labels (their layout is most of a frame's cost,
  // and they cannot be read while moving), and styles.css hides the plot's other words; they come
  // back SETTLE_MS after the last move.
  const [draft, setDraft] = useState(false);
  const settle = useRef<ReturnType<typeof setTimeout>>(undefined);
  useEffect(() => () => clearTimeout(settle.current), []);
  // A wheel or drag gesture in progress: where it has moved the view to. Until it settles, the plot
  // shows it by one transform (gesture.ts) and React renders nothing per frame.
  const gesture = useRef<ViewState | null>(null);
  const plotRef = useRef<SVGGElement>(null);
  const rangeRef = useRef<HTMLSpanElement>(null);
  const showGesture = useCallback(() => {
    const g = plotRef.current;
    if (!g) return;
    const s = gesture.current;
    if (!s) {
      g.removeAttribute('transform');
      g.removeAttribute('data-live-span-ms');
      return;
    }
    const { view: drawn, ctx: c } = latest.current;
    const target = effectiveView(s, c);
    g.setAttribute('transform', transformAttr(gestureTransform(drawn, target, c.plotW)));
    g.setAttribute('data-live-span-ms', String(Math.round(target.t1 - target.t0)));
    if (rangeRef.current) rangeRef.current.textContent = rangeText(target, c.warp);
  }, []);
  // After every render: the transform is relative to what that render drew (or gone).
  useLayoutEffect(showGesture);
  /** Ends a gesture in progress: the view it reached, or undefined. */
  const takeGesture = () => {
    const s = gesture.current;
    gesture.current = null;
    return s ?? undefined;
  };
  const setView = (state: ViewState) => {
    takeGesture();
    setViewState(state);
  };
  const startSettle = (then?: () => void) => {
    setDraft(true);
    clearTimeout(settle.current);
    settle.current = setTimeout(() => {
      then?.();
      setDraft(false);
    }, SETTLE_MS);
  };
  // Buttons and keys: the view moves at once (from where a gesture may have left it).
  const move = useCallback((change: (v: TimeView, w: number) => TimeView) => {
    const { view: v, ctx: c } = latest.current;
    const s = takeGesture();
    setViewState(afterUserMove(change(s ? effectiveView(s, c) : v, c.plotW), c));
    startSettle();
  }, []); // refs and state setters only
  // Wheel and drag: one transform per frame; the real render once the view settles.
  const moveLive = useCallback((change: (v: TimeView, w: number) => TimeView) => {
    const { view: v, ctx: c } = latest.current;
    const s = gesture.current;
    const next = afterUserMove(change(s ? effectiveView(s, c) : v, c.plotW), c);
    gesture.current = next;
    showGesture();
    // A long gesture is drawn again on the way (labels still off), so stretching stays under 2×
    // and what was not drawn (the edges a zoom out or a pan uncovers) under a quarter of the plot.
    const m = gestureTransform(v, effectiveView(next, c), c.plotW);
    const uncovered = Math.max(0, m.tx) + Math.max(0, c.plotW - m.k * c.plotW - m.tx);
    if (m.k > MAX_STRETCH || m.k < 1 / MAX_STRETCH || uncovered > c.plotW / 4) setViewState(next);
    startSettle(() => {
      const reached = takeGesture();
      if (reached) setViewState(reached);
    });
  }, [showGesture]); // refs and state setters only

  const zoom = (factor: number, at = plotW * 0.75) => move((v, w) => zoomAt(v, w, at, factor));

  // Wheel zooms around the pointer; React's onWheel is passive, so attach natively. Wheel events
  // come faster than frames: accumulate them and apply once per animation frame.
  useEffect(() => {
    const svg = svgRef.current;
    if (!svg) return;
    let pending: { factor: number; x: number; dx: number } | undefined;
    let raf = 0;
    const apply = () => {
      raf = 0;
      const p = pending;
      pending = undefined;
      if (!p) return;
      moveLive((v, w) => {
        const zoomed = p.factor !== 1 ? zoomAt(v, w, p.x, p.factor) : v;
        return p.dx !== 0 ? panBy(zoomed, w, p.dx) : zoomed;
      });
    };
    const onWheel = (e: WheelEvent) => {
      const rect = svg.getBoundingClientRect();
      const px = e.clientX - rect.left - GUTTER;
      if (px < 0) return; // over the gutter: let the page scroll
      e.preventDefault();
      pending ??= { factor: 1, x: px, dx: 0 };
      pending.x = px;
      if (e.shiftKey) pending.dx -= e.deltaY;
      else pending.factor *= Math.pow(1.0015, -e.deltaY);
      if (!raf) raf = requestAnimationFrame(apply);
    };
    svg.addEventListener('wheel', onWheel, { passive: false });
    return () => {
      svg.removeEventListener('wheel', onWheel);
      if (raf) cancelAnimationFrame(raf);
    };
  }, [moveLive, measured !== undefined]); // the <svg> exists once the width is measured

  const drag = useRef<{ x: number; moved: boolean } | null>(null);
  const onPointerDown = (e: ReactPointerEvent<SVGSVGElement>) => {
    if (e.button !== 0) return;
    drag.current = { x: e.clientX, moved: false };
  };
  const onPointerMove = (e: ReactPointerEvent<SVGSVGElement>) => {
    const d = drag.current;
    if (!d) return;
    const dx = e.clientX - d.x;
    if (!d.moved && Math.abs(dx) < 3) return;
    if (!d.moved) svgRef.current?.setPointerCapture?.(e.pointerId);
    d.moved = true;
    d.x = e.clientX;
    moveLive((v, w) => panBy(v, w, dx));
  };
  const endDrag = () => {
    drag.current = null;
  };

  const span = view.t1 - view.t0;
  const x = useCallback(
    (t: number) => ((warp.toAxis(Math.min(t, now)) - view.t0) / span) * plotW,
    [warp, now, view.t0, span, plotW],
  );
  // Axis words never overprint: a break's "≈ 2 h" first (centred on it), then the tick times.
  const shownBreaks = warp.breaks
    .map((b) => ({ b, x0: ((b.a0 - view.t0) / span) * plotW, x1: ((b.a1 - view.t0) / span) * plotW }))
    .filter(({ x0, x1 }) => x1 > 0 && x0 < plotW && x1 - x0 >= 3);
  const tickPx = ticks(view, plotW, 90, warp).map((tk) => ({ ...tk, x: ((warp.toAxis(tk.t) - view.t0) / span) * plotW }));
  const axisWords = placeLabels([
    // Only pauses of a minute or more are worth words; shorter ones are shaded only.
    ...shownBreaks.filter(({ b }) => b.gap >= 60_000).map(({ b, x0, x1 }) => {
      const text = `≈ ${formatDuration(b.gap)}`;
      const w = textWidth(text, 10);
      return { key: `b${b.t0}`, x: (x0 + x1) / 2 - w / 2, priority: 1, options: [{ text, width: w }] };
    }),
    ...tickPx.map((tk) => ({ key: `t${tk.t}`, x: tk.x + 3, options: [{ text: tk.label, width: textWidth(tk.label, 10) }] })),
  ], [], 8);
  const breaks = shownBreaks.map((s) => {
    const w = axisWords.get(`b${s.b.t0}`);
    return { ...s, label: w ? { text: w.text, x: (s.x0 + s.x1) / 2 - w.width / 2 } : undefined };
  });
  const axisTicks = tickPx.map((tk) => ({ ...tk, label: axisWords.get(`t${tk.t}`)?.text }));
  const treeTop = AXIS_H;
  const bandsTop = AXIS_H + model.treeHeight;
  const height = bandsTop + model.bandsHeight + 8;
  const bandRows = useMemo(() => model.bands.map((b) => ({ top: bandsTop + b.top, height: b.height })), [model.bands, bandsTop]);
  const nearBands = useRowsNearView(containerRef, bandRows, props.boxHint?.height);
  const nowX = x(now);
  // Searches every bitmap of every disk: once per change of the data, not on every zoom frame.
  const changed = useMemo(() => changedSinceCurrent(checkpoints, current, live), [checkpoints, current, live]);
  const selectedNode = selected !== undefined ? model.tree.byName.get(selected) : undefined;
  const mode = viewState.mode;

  return (
    <section className="timeline" aria-label="Timeline" id="timeline" tabIndex={-1}>
      <div className="timeline-toolbar" role="toolbar" aria-label="Timeline view">
        <span className="timeline-range" aria-live="off" ref={rangeRef}>{rangeText(view, warp)}</span>
        <span className="spacer" />
        <button type="button" onClick={() => zoom(1.6)} aria-label="Zoom in" title="Zoom in (wheel up)">+</button>
        <button type="button" onClick={() => zoom(1 / 1.6)} aria-label="Zoom out" title="Zoom out (wheel down)">−</button>
        <button type="button" onClick={() => move((v, w) => panBy(v, w, w * 0.3))} aria-label="Pan earlier">◀</button>
        <button type="button" onClick={() => move((v, w) => panBy(v, w, -w * 0.3))} aria-label="Pan later">▶</button>
        <button type="button" onClick={() => setView(jumpToNow(view, plotW))} aria-pressed={mode === 'follow'} title="Keep NOW in view as time passes">Follow now</button>
        <button type="button" onClick={() => setView({ mode: 'fit' })} aria-pressed={mode === 'fit'}>Fit all</button>
        <button type="button" onClick={() => setCompress((c) => !c)} aria-pressed={compress} title="Draw long idle stretches shorter, so bursts of checkpoints stay readable">
          Compress idle time
        </button>
      </div>
      <div className="timeline-scroll" ref={containerRef}>
        {measured !== undefined && <svg
          ref={svgRef}
          className="timeline-svg"
          width={width}
          height={height}
          onPointerDown={onPointerDown}
          onPointerMove={onPointerMove}
          onPointerUp={endDrag}
          onPointerCancel={endDrag}
          data-span-ms={Math.round(span)}
          data-view-mode={mode}
          data-draft={draft || undefined}
        >
          <defs>
            <pattern id="tm-hatch-disabled" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)">
              <rect width="6" height="6" className="hatch-bg-disabled" />
              <line x1="0" y1="0" x2="0" y2="6" className="hatch-line-disabled" />
            </pattern>
            <pattern id="tm-hatch-danger" patternUnits="userSpaceOnUse" width="6" height="6">
              <rect width="6" height="6" className="hatch-bg-danger" />
              <path d="M0,0 L6,6 M6,0 L0,6" className="hatch-line-danger" />
            </pattern>
            <clipPath id="tm-plot-clip">
              <rect x={0} y={-AXIS_H} width={plotW + RIGHT_PAD} height={height + AXIS_H} />
            </clipPath>
          </defs>

          {/* Gutter: what each row is. */}
          <rect className="gutter-bg" x={0} y={0} width={GUTTER - 8} height={height} />
          <text className="gutter-title" x={12} y={treeTop + 18}>Checkpoints</text>
          <text className="gutter-sub" x={12} y={treeTop + 33}>
            {model.layout ? `layout: ${model.layout}` : 'no checkpoints yet'}
          </text>
          <text className="gutter-sub" x={12} y={treeTop + 47}>{`${checkpoints.length} checkpoint${checkpoints.length === 1 ? '' : 's'}`}</text>

          <g transform={`translate(${GUTTER},0)`}>
            <g clipPath="url(#tm-plot-clip)">
              <g className="timeline-plot" ref={plotRef}>
                <g className="axis" aria-hidden="true">
                  {breaks.map(({ b, x0, x1, label }) => (
                    <g key={b.t0} className="idle-break">
                      <title>{`${formatDuration(b.gap)} with no checkpoint or backup, drawn shorter (${formatAbsolute(b.t0)} – ${formatAbsolute(b.t1)})`}</title>
                      <rect x={x0} y={AXIS_H - 4} width={x1 - x0} height={height} />
                      {label && <text className="tick idle-label" transform={at(label.x, AXIS_H - 9)}>{label.text}</text>}
                    </g>
                  ))}
                  {/* Every grid line in one path: one element, not one per tick. */}
                  {axisTicks.length > 0 && <path className="grid" d={axisTicks.map((tk) => `M${tk.x},${AXIS_H - 4}V${height}`).join('')} />}
                  {axisTicks.map((tk) => (tk.label ? <text key={tk.t} className="tick" transform={at(tk.x + 3, AXIS_H - 9)}>{tk.label}</text> : null))}
                </g>
                <line className="now-line" x1={nowX} x2={nowX} y1={AXIS_H - 4} y2={height} aria-hidden="true" />
                {props.schedules && props.schedules.length > 0 && (
                  <ScheduleMarks schedules={props.schedules} now={now} plotW={plotW} toX={(t) => ((warp.toAxis(t) - view.t0) / span) * plotW} top={AXIS_H - 4} height={height} />
                )}
                <g transform={`translate(0,${treeTop})`}>
                  <TreeLayer
                    model={model}
                    vmLabel={props.vmLabel}
                    checkpoints={checkpoints}
                    current={current}
                    selected={selected}
                    now={now}
                    x={x}
                    plotW={plotW}
                    changed={changed}
                    onSelect={onSelect}
                    onOpen={onOpen}
                    onDelete={props.onDelete && onDelete}
                    onClearSelection={props.onClearSelection && onClearSelection}
                    focusRequest={props.focusRequest}
                    draft={draft}
                  />
                </g>
                {selectedNode && (
                  <line className="selected-rule" x1={x(selectedNode.time)} x2={x(selectedNode.time)} y1={treeTop} y2={height} aria-hidden="true" />
                )}
                <g transform={`translate(0,${bandsTop})`}>
                  <DiskBands model={model} x={x} plotW={plotW} nowX={nowX} selected={selected} figures={props.figures} dirtyMaps={props.dirtyMaps} onToggleGroup={toggleGroup} draft={draft} near={nearBands} />
                </g>
              </g>
            </g>
          </g>

          {/* Band gutters are drawn last so they sit above the plot's grid lines. */}
          <BandGutters bands={model.bands} top={bandsTop} width={width} dirtyMaps={props.dirtyMaps} now={now} near={nearBands} />
        </svg>}
      </div>
    </section>
  );
}

/** The toolbar's words for the window shown. */
function rangeText(view: TimeView, warp: TimeWarp): string {
  return `${formatAbsolute(warp.toTime(view.t0))} — ${formatAbsolute(warp.toTime(view.t1))}`;
}
