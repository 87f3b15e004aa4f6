// The disk map under a disk's lanes (issue 5): where the disk changed since the baseline, as a strip
// of equal cells along the disk's address space (offset 0 at the left, the disk's end at the
// right — NOT the time axis above it, so the row has its own opaque background and offset labels).
// A cell's bar height and intensity grow with its dirty fraction: nothing for clean, a partial bar
// for partly dirty, a full bar for fully dirty; the counts are written out beside it (never colour
// alone), and the whole map is described in the row's accessible name.

import { memo, type ReactElement } from 'react';
import type { DiskInfo } from '../../../shared/domain';
import { formatBytes, formatPart } from '../format';
import type { DiskMapState } from '../store/types';
import { CELL_GLYPH, CELL_WORDS, cellKind, countCells, describeMap, offsetTicks } from './heatmap';
import { textWidth } from './labels';
import { HEATMAP_H } from './model';

const TITLE_Y = 12;
const STRIP_Y = 17;
const STRIP_H = 20;
const TICK_Y = STRIP_Y + STRIP_H + 12;

interface Props {
  disk: DiskInfo;
  since: string;
  /** The baseline's name as shown (shortened); `since` is the full name. */
  sinceShort?: string;
  kind: 'map' | 'no-bitmap';
  state?: DiskMapState;
  plotW: number;
  /** Far from the visible part of the scroll box: only the row's accessible name and data, nothing drawn. */
  offscreen?: boolean;
}

/**
 * A cell's bar: full height when fully dirty; otherwise growing with the square root of the dirty
 * share from a visible minimum, so one dirty granule in a 4 MiB cell (1/64) still shows, and a
 * half-dirty cell stays clearly shorter than a full one.
 */
export function barHeight(fraction: number, max: number): number {
  if (!(fraction > 0)) return 0;
  if (fraction >= 1) return max;
  const min = 4;
  return Math.min(max - 3, Math.round(min + Math.sqrt(fraction) * (max - min)));
}

function Cells({ buckets, plotW, bucketBytes }: { buckets: readonly number[]; plotW: number; bucketBytes: number }) {
  const w = plotW / Math.max(1, buckets.length);
  const gap = w >= 3 ? 0.6 : 0;
  const out: ReactElement[] = [];
  buckets.forEach((f, i) => {
    const kind = cellKind(f);
    if (kind === 'clean') return;
    const h = barHeight(f, STRIP_H);
    out.push(
      <rect key={i} className={`hm-cell hm-${kind}`} x={i * w} y={STRIP_H - h} width={Math.max(1, w - gap)} height={h} opacity={kind === 'full' ? 1 : 0.5 + 0.5 * f}>
        <title>{`${formatBytes(i * bucketBytes)} – ${formatBytes((i + 1) * bucketBytes)}: ${CELL_WORDS[kind]} (${(f * 100).toFixed(f < 0.01 ? 2 : 0)}%)`}</title>
      </rect>,
    );
  });
  return <>{out}</>;
}

/** The offset axis under the strip: its base line and tick marks in one path (one element, not one per tick). */
function OffsetTicks({ virtualSize, plotW }: { virtualSize: number; plotW: number }) {
  const ticks = offsetTicks(virtualSize).map((t) => ({ ...t, x: (t.offset / Math.max(1, virtualSize)) * plotW }));
  const marks = `M0,${STRIP_Y + STRIP_H + 0.5}H${plotW}` + ticks.map((t) => `M${t.x},${STRIP_Y + STRIP_H}v3`).join('');
  return (
    <g className="hm-tick" aria-hidden="true">
      <path d={marks} />
      {ticks.map((t, i) => {
        const anchor = i === 0 ? 'start' : i === ticks.length - 1 ? 'end' : 'middle';
        return <text key={t.offset} x={t.x} y={TICK_Y} textAnchor={anchor}>{i === 0 ? 'offset 0' : t.label}</text>;
      })}
    </g>
  );
}

function countsText(c: { full: number; partial: number; clean: number }): string {
  return `${CELL_GLYPH.full} ${c.full} fully dirty · ${CELL_GLYPH.partial} ${c.partial} partly dirty · ${CELL_GLYPH.clean} ${c.clean} clean`;
}

/** Below this plot width (or when the title needs the room) the cell counts are left out of the row (they stay in its accessible name). */
const COUNTS_MIN_W = 720;

export const HeatmapRow = memo(function HeatmapRow({ disk, since, sinceShort, kind, state, plotW, offscreen }: Props) {
  const shown = sinceShort ?? since;
  const map = state?.map;
  const name = disk.name;
  const counts = map ? countCells(map.buckets) : undefined;
  let status: string;
  if (kind === 'no-bitmap') status = `${shown} has no bitmap on ${name}: its changes are not tracked`;
  else if (state?.unavailable) status = state.unavailable;
  else if (state?.error) status = `⚠ ${map ? 'last refresh failed' : 'cannot read the dirty map'}: ${state.error}`;
  else if (!map) status = 'reading the dirty map…';
  else status = `${formatPart(map.dirtyBytes, map.virtualSize)} dirty`;
  const label = map ? describeMap({ ...map, disk: name, since }) : `where ${name} changed since ${since}: ${status}`;
  const row = {
    className: `heatmap heatmap-${kind}`,
    'data-disk': name,
    'data-since': since,
    'data-cells': map?.buckets.length,
    'data-dirty-cells': counts ? counts.partial + counts.full : undefined,
    'data-full-cells': counts?.full,
    'data-dirty-bytes': map?.dirtyBytes,
    'data-at': map?.at,
    role: 'img',
    'aria-label': label,
  };
  // Far from the view: the row's accessible name and figures, and nothing drawn that nobody sees.
  if (offscreen) return <g {...row} />;
  return (
    <g {...row}>
      {/* Opaque: the time axis's grid and NOW line above do not belong to this offset axis. */}
      <rect className="hm-bg" x={-20} y={0} width={plotW + 40} height={HEATMAP_H} />
      <line className="hm-sep" x1={-20} x2={plotW + 20} y1={0.5} y2={0.5} />
      <text className="hm-title" x={2} y={TITLE_Y}>
        {`where ${name} changed since ${shown}`}
        <tspan className={state?.error ? 'hm-error' : 'hm-sub'}>{` · ${status}`}</tspan>
      </text>
      {counts && plotW >= COUNTS_MIN_W && textWidth(`where ${name} changed since ${shown} · ${status}`) + textWidth(countsText(counts)) + 24 <= plotW && (
        <text className="hm-counts" x={plotW - 2} y={TITLE_Y} textAnchor="end">
          {countsText(counts)}
        </text>
      )}
      <g transform={`translate(0,${STRIP_Y})`}>
        <rect className="hm-strip" x={0} y={0} width={plotW} height={STRIP_H} />
        {map && <Cells buckets={map.buckets} plotW={plotW} bucketBytes={map.bucketBytes} />}
      </g>
      <OffsetTicks virtualSize={disk.virtualSize} plotW={plotW} />
    </g>
  );
});
