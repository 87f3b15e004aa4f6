// A disk's dirty-bytes area: how much changed since the baseline checkpoint, over time (from the
// live counts the page saw), and at NOW the figure — exact, or a range that says what it is
// (model/figures.ts). Before the page first saw the counts the curve is dashed: not observed.

import type { ReactElement } from 'react';
import { formatBytes, formatPart, shortName } from '../format';
import type { ChangedFigure } from '../model/figures';
import { AREA_H, type BandModel } from './model';
import { textWidth } from './labels';
import { at, type XScale } from './geometry';

const MiB = 1024 * 1024;

/** A round IEC upper bound for the area's y scale (1, 2, 4, 8 … × unit), at least 1 MiB. */
export function niceMax(bytes: number): number {
  let m = MiB;
  while (m < bytes) m *= 2;
  return m;
}

/** The words at NOW for a figure of a disk of `size` bytes. */
export function figureText(f: ChangedFigure, size: number): string {
  switch (f.kind) {
    case 'exact':
      return formatPart(f.bytes, size);
    case 'range':
      return `${formatBytes(f.low)} – ${formatBytes(f.high)} of ${formatBytes(size)} (measuring…)`;
    case 'unknown':
      return 'not known';
  }
}

interface Props {
  band: BandModel;
  x: XScale;
  plotW: number;
  nowX: number;
  baseline?: string;
  figure?: ChangedFigure;
}

export function BandArea({ band, x, plotW, nowX, baseline, figure }: Props) {
  const areaY = band.areaTop;
  const pts = band.series.points;
  const out: ReactElement[] = [];
  if (pts.length > 1) {
    const clampX = (px: number) => Math.max(-20, Math.min(plotW + 20, px));
    const max = niceMax(Math.max(...pts.map((p) => p.bytes), figure?.kind === 'exact' ? figure.bytes : 0));
    const yOf = (bytes: number) => areaY + AREA_H - 4 - (bytes / max) * (AREA_H - 12);
    let d = '';
    let lastX = -Infinity;
    for (let i = 0; i < pts.length; i++) {
      const px = clampX(x(pts[i]!.t));
      if (i > 0 && i < pts.length - 1 && px - lastX < 0.75) continue; // thin out sub-pixel samples
      d += `${d === '' ? 'M' : 'L'}${px.toFixed(1)},${yOf(pts[i]!.bytes).toFixed(1)}`;
      lastX = px;
    }
    const firstX = clampX(x(pts[0]!.t));
    const area = `${d}L${lastX.toFixed(1)},${yOf(0)}L${firstX.toFixed(1)},${yOf(0)}Z`;
    const observed = band.series.observedFrom;
    // Before the first observed count: the curve's shape is not known, only where it starts and ends.
    const unobservedX = observed !== undefined && observed > pts[0]!.t ? clampX(x(observed)) : undefined;
    out.push(
      <g key="area" className="dirty-area" aria-hidden="true">
        <line className="area-base" x1={-20} x2={plotW + 20} y1={yOf(0)} y2={yOf(0)} />
        {unobservedX !== undefined && unobservedX > firstX + 20 && (
          <rect className="area-unobserved" x={firstX} y={areaY + 6} width={unobservedX - firstX} height={AREA_H - 10}>
            <title>Not observed: this page was not open, so only the level at its first reading is known</title>
          </rect>
        )}
        <path className="area-fill" d={area} />
        <path className="area-line" d={d} />
        <text className="area-scale" x={4} y={areaY + 9}>{`changed since ${shortName(baseline ?? '—', 32)} · scale ${formatBytes(max)}${band.seriesBitmaps.length > 1 ? ' · curve: sum of the chain’s bitmaps' : ''}`}</text>
      </g>,
    );
    if (figure) {
      const text = figureText(figure, band.disk.virtualSize);
      const w = textWidth(text, 11);
      const right = nowX + 10 + w <= plotW;
      const y = figure.kind === 'exact' ? Math.min(yOf(figure.bytes) + 4, areaY + AREA_H - 3) : areaY + AREA_H - 3;
      out.push(
        // Kept inside the area's row: the disk map below has an opaque background.
        <g key="area-end" className="area-end-g">
          <title>{figure.basis}</title>
          <text className={`area-end figure-${figure.kind}`} transform={at(right ? nowX + 10 : nowX - 10, y)} textAnchor={right ? 'start' : 'end'} data-kind={figure.kind}>{text}</text>
        </g>,
      );
    }
  }
  return <>{out}</>;
}
