// Where the disks changed since a checkpoint, in words (the text alternative of the timeline's disk
// maps, P15): per disk the dirty bytes, the cells of the map by kind, and the dirty ranges by
// offset. The maps are the store's live ones (read while they change); nothing is fetched here.

import type { Checkpoint, DiskInfo } from '../../../shared/domain';
import { formatAbsolute, formatPart } from '../format';
import { useApp } from '../store/context';
import { CELL_GLYPH, countCells, dirtyRanges } from '../timeline/heatmap';

/** Dirty ranges listed per disk; the rest are counted. */
export const RANGES_SHOWN = 6;

export function DirtyMapSection({ checkpoint, disks }: { checkpoint: Checkpoint; disks: readonly DiskInfo[] }) {
  const maps = useApp((s) => s.dirtyMaps);
  const vmId = useApp((s) => s.selectedVmId);
  const targets = disks.filter((d) => d.bitmapCapable && checkpoint.disks.some((x) => x.name === d.name && x.checkpoint === 'bitmap'));
  if (targets.length === 0) return null;
  const watched = maps.target?.vmId === vmId && maps.target?.since === checkpoint.name;
  return (
    <section className="dirty-maps" aria-label={`Where the disks changed since ${checkpoint.name}`}>
      <h3>Where it changed since {checkpoint.name}</h3>
      <table className="grid" aria-label={`Dirty regions since ${checkpoint.name}`}>
        <thead>
          <tr><th>Disk</th><th className="num">Dirty</th><th>Cells ({CELL_GLYPH.full} full · {CELL_GLYPH.partial} partly · {CELL_GLYPH.clean} clean)</th><th>Dirty ranges (offsets)</th></tr>
        </thead>
        <tbody>
          {targets.map((d) => {
            const st = watched ? maps.disks[d.name] : undefined;
            const m = st?.map;
            if (!m) {
              return (
                <tr key={d.name}>
                  <td className="mono">{d.name}</td>
                  <td colSpan={3} className={st?.error ? 'error-text' : 'muted'}>{st?.unavailable ?? (st?.error ? `cannot read the dirty map: ${st.error}` : 'reading the dirty map…')}</td>
                </tr>
              );
            }
            const c = countCells(m.buckets);
            const { ranges, more } = dirtyRanges(m.extents, RANGES_SHOWN);
            return (
              <tr key={d.name} data-disk={d.name}>
                <td className="mono">{d.name}</td>
                <td className="num nowrap" title={`granularity ${m.granularity} B · read at ${formatAbsolute(m.at)} in ${m.elapsedMs.toFixed(0)} ms`}>{formatPart(m.dirtyBytes, m.virtualSize)}</td>
                <td className="nowrap">{CELL_GLYPH.full} {c.full} · {CELL_GLYPH.partial} {c.partial} · {CELL_GLYPH.clean} {c.clean}</td>
                <td>{ranges.length === 0 ? <span className="muted">none — nothing written since {checkpoint.name}</span> : <span className="mono ranges">
                      {ranges.map((r, i) => <span key={r} className="nowrap">{r}{i < ranges.length - 1 ? ', ' : ''}</span>)}
                      {more > 0 && <span className="nowrap muted"> … and {more} more</span>}
                    </span>}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {watched && Object.values(maps.disks).some((s) => s.error && s.map) && (
        <p className="error-text">The last refresh failed; the figures above are from the previous read.</p>
      )}
    </section>
  );
}
