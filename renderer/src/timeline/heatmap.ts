// PURE: how a dirty map is drawn as a heatmap — a strip of equal cells along the disk's address
// space, each cell one region of the disk. Its dirty fraction decides its kind (clean / partly
// dirty / fully dirty), drawn by bar height AND intensity, and counted in words beside it.

import { formatBytes } from '../format';

/** Cells per disk: 1 GiB → 4 MiB per cell; about 4 px per cell on a typical plot. */
export const HEATMAP_CELLS = 256;

export type CellKind = 'clean' | 'partial' | 'full';

export const CELL_GLYPH: Record<CellKind, string> = { clean: '▁', partial: '▄', full: '█' };
export const CELL_WORDS: Record<CellKind, string> = { clean: 'clean', partial: 'partly dirty', full: 'fully dirty' };

export function cellKind(fraction: number): CellKind {
  if (!(fraction > 0)) return 'clean';
  return fraction >= 1 ? 'full' : 'partial';
}

export interface CellCounts {
  clean: number;
  partial: number;
  full: number;
}

export function countCells(buckets: readonly number[]): CellCounts {
  const c: CellCounts = { clean: 0, partial: 0, full: 0 };
  for (const f of buckets) c[cellKind(f)]++;
  return c;
}

/** Bytes per cell, as the engine splits the disk (the last cell may be shorter). */
export function cellBytes(virtualSize: number, cells: number): number {
  return cells > 0 ? Math.ceil(virtualSize / cells) : 0;
}

/** "1 cell = 4.0 MiB" (exact sizes only: "1 cell ≈ 74.5 MiB" when the size is not a round figure). */
export function cellLegend(bytes: number): string {
  const text = formatBytes(bytes);
  const exact = /^\d+ B$/.test(text) || (() => {
    const m = /^([\d.]+) (\w+)$/.exec(text);
    if (!m) return false;
    const unit = 1024 ** ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'].indexOf(m[2]!);
    return Number(m[1]) * unit === bytes;
  })();
  return `1 cell ${exact ? '=' : '≈'} ${text}`;
}

/** Offsets to label under the strip: 0, ¼, ½, ¾ and the end of the disk. */
export function offsetTicks(virtualSize: number, parts = 4): { offset: number; label: string }[] {
  const out: { offset: number; label: string }[] = [];
  for (let i = 0; i <= parts; i++) {
    const offset = Math.round((virtualSize * i) / parts);
    out.push({ offset, label: i === 0 ? '0' : formatBytes(offset) });
  }
  return out;
}

/** The map in words: the text alternative of the strip (P15). */
export function describeMap(m: { disk: string; since: string; dirtyBytes: number; virtualSize: number; buckets: readonly number[]; bucketBytes: number }): string {
  const c = countCells(m.buckets);
  const pct = m.virtualSize > 0 ? (m.dirtyBytes / m.virtualSize) * 100 : 0;
  return `${m.disk} since ${m.since}: ${formatBytes(m.dirtyBytes)} dirty (${pct > 0 && pct < 0.1 ? '<0.1' : pct.toFixed(1)}%); `
    + `${m.buckets.length} cells of ${formatBytes(m.bucketBytes)}: ${c.full} ${CELL_WORDS.full}, ${c.partial} ${CELL_WORDS.partial}, ${c.clean} ${CELL_WORDS.clean}`;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A disk offset precise enough to tell range ends apart: "384 MiB", "384.06 MiB", "12.50 GiB". */
export function formatOffset(offset: number): string {
  if (offset === 0) return '0';
  const [unit, name] = offset >= 10 * GiB ? [GiB, 'GiB'] : offset >= MiB ? [MiB, 'MiB'] : [1024, 'KiB'];
  const v = offset / unit;
  return `${Number.isInteger(v) ? v : v.toFixed(2)} ${name}`;
}

/** "3.69–3.75 MiB", "0–8 MiB", "960 KiB–1.06 MiB": one unit when both ends share it. */
export function formatRange(start: number, end: number): string {
  const a = formatOffset(start);
  const b = formatOffset(end);
  const unit = / (\w+)$/.exec(b)?.[1];
  return unit !== undefined && (a === '0' || a.endsWith(` ${unit}`)) ? `${a.replace(/ \w+$/, '')}–${b}` : `${a}–${b}`;
}

/** Dirty runs of the map as offset ranges, for the details table. */
export function dirtyRanges(extents: readonly { offset: number; length: number; dirty: boolean }[], limit: number): { ranges: string[]; more: number } {
  const dirty = extents.filter((e) => e.dirty);
  return {
    ranges: dirty.slice(0, limit).map((e) => formatRange(e.offset, e.offset + e.length)),
    more: Math.max(0, dirty.length - limit),
  };
}
