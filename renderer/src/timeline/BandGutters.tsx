// The left gutter of each disk band: the disk's name, size, format, granularity and health, and
// beside its disk map what one cell is and how fresh the map is. Memoized: none of it moves when
// the view zooms or pans, so a zoom frame skips it.

import { memo } from 'react';
import { formatAbsolute, formatBytes, formatRelative, shortName } from '../format';
import type { DiskMapState } from '../store/types';
import { cellBytes, cellLegend, HEATMAP_CELLS } from './heatmap';
import { GUTTER } from './geometry';
import type { BandModel } from './model';
import { farFromView } from './visible-rows';

/** Beside a disk map: what one cell is, and how fresh the map is. */
function HeatmapGutter({ top, virtualSize, state, now }: { top: number; virtualSize: number; state?: DiskMapState; now: number }) {
  const map = state?.map;
  const bytes = map?.bucketBytes ?? cellBytes(virtualSize, HEATMAP_CELLS);
  return (
    <g className="hm-gutter" transform={`translate(0,${top})`}>
      <text className="gutter-sub hm-gutter-title" x={12} y={13}>disk map (offset →)</text>
      <text className="gutter-sub" x={12} y={27}>{cellLegend(bytes)}</text>
      <text className="gutter-sub hm-fresh" x={12} y={41}>
        {map && <title>{`read ${formatRelative(map.at, Math.max(now, map.at))} (${formatAbsolute(map.at)}) in ${map.elapsedMs.toFixed(0)} ms`}</title>}
        {map
          ? state?.offline ? `○ as of ${formatAbsolute(map.at).slice(11)}` : state?.error ? '⚠ not current' : state?.behind ? '⟳ updating…' : '✓ up to date'
          : state?.loading ? 'reading…' : ''}
      </text>
    </g>
  );
}

interface Props {
  bands: readonly BandModel[];
  /** y of the bands block. */
  top: number;
  /** Width of the whole timeline (the separator line crosses it). */
  width: number;
  dirtyMaps?: Record<string, DiskMapState>;
  now: number;
  /** The bands near the visible part of the scroll box (undefined: all); the others' words are not drawn. */
  near?: ReadonlySet<number>;
}

export const BandGutters = memo(function BandGutters({ bands, top, width, dirtyMaps, now, near }: Props) {
  // The separators in two paths (above each band, dashed above each disk map): two elements, not two per band.
  const seps = bands.map((b) => `M0,${b.top}H${width}`).join('');
  const mapSeps = bands.map((b) => (b.heatmap ? `M12,${b.top + b.heatmapTop + 0.5}H${GUTTER - 20}` : '')).join('');
  return (
    <g transform={`translate(0,${top})`}>
      {seps && <path className="band-sep" d={seps} />}
      {mapSeps && <path className="band-sep hm-gutter-sep" d={mapSeps} />}
      {bands.map((b, i) => (farFromView(near, i) ? null :
        <g key={b.disk.name} className="band-gutter" transform={`translate(0,${b.top})`}>
          <text className="gutter-title" x={12} y={18}>{shortName(b.disk.name, 18)}</text>
          <text className="gutter-sub" x={12} y={33}>{`${formatBytes(b.disk.virtualSize)} · ${b.disk.format}`}</text>
          <text className="gutter-sub" x={12} y={47}>{`granularity ${formatBytes(b.disk.granularity)}`}</text>
          <text className={`gutter-health ${b.disk.bitmapCapable ? (b.issues.some((i) => i.severity !== 'info') ? 'warn' : 'ok') : 'incapable'}`} x={12} y={61}>
            {!b.disk.bitmapCapable ? '⊘ no persistent bitmaps' : b.issues.length === 0 ? '✓ healthy' : `⚠ ${b.issues.length} issue${b.issues.length === 1 ? '' : 's'}`}
          </text>
          {b.heatmap && <HeatmapGutter top={b.heatmapTop} virtualSize={b.disk.virtualSize} state={dirtyMaps?.[b.disk.name]} now={now} />}
        </g>
      ))}
    </g>
  );
});
