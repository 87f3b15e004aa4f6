// One band per disk under the tree, on the same time axis (ux-principles §5.2):
//  - a backup row: ■ full, ◧ incremental, ◇ differential, bracketed back to the base checkpoint;
//    failed backups stay as ✕;
//  - bitmap spans on stacked sub-tracks (newest on top), each state drawn with a pattern, a glyph
//    and words: recording / not recording / busy / inconsistent; missing bitmaps as ∅ markers;
//  - the dirty bytes of the baseline as an area over time (live samples), with "X of Y" at NOW;
//  - under them, the disk map: where the disk changed since the baseline (HeatmapRow, own x axis).

import type { ReactElement } from 'react';
import { formatAbsolute, formatBytes, formatPart } from '../format';
import {
  AREA_H, BACKUP_ROW_H, BAND_PAD, GLYPH, STATE_WORDS, TRACK_H, type BandModel, type TimelineModel,
} from './model';
import type { BackupMark } from '../model/backup-marks';
import type { DiskMapState } from '../store/types';
import { HeatmapRow } from './HeatmapRow';
import type { BitmapSpan } from './spans';
import { timeToX, type TimeView } from './timescale';

const CHAR_W = 5.9; // approximate width of a 10 px span label character
/** Narrower spans are drawn as part of a cluster. */
const MIN_SPAN_PX = 4;

interface Props {
  model: TimelineModel;
  view: TimeView;
  plotW: number;
  now: number;
  selected?: string;
  exact?: Record<string, number>;
  /** Live dirty maps of the baseline per disk. */
  dirtyMaps?: Record<string, DiskMapState>;
}

const MiB = 1024 * 1024;

/** A round IEC upper bound for the area's y scale (1, 2, 4, 8 … × unit), at least 1 MiB. */
export function niceMax(bytes: number): number {
  let m = MiB;
  while (m < bytes) m *= 2;
  return m;
}

export function spanWords(s: BitmapSpan, disk: string): string {
  switch (s.state) {
    case 'recording':
      return `${STATE_WORDS.recording}${s.count !== undefined ? ` · ${formatBytes(s.count)}` : ''}`;
    case 'disabled':
      return `${STATE_WORDS.disabled}${s.endKnown ? '' : ' (since unknown)'}${s.count !== undefined ? ` · ${formatBytes(s.count)} in its interval` : ''}`;
    case 'busy':
      return `${STATE_WORDS.busy}${s.recording ? ', recording' : ''}`;
    case 'inconsistent':
      return `unusable — next backup of ${disk} will be full`;
    case 'unknown':
      return STATE_WORDS.unknown;
  }
}

function truncate(text: string, px: number): string | undefined {
  const n = Math.floor(px / CHAR_W);
  if (n < 4) return undefined;
  return text.length <= n ? text : `${text.slice(0, n - 1)}…`;
}

function backupGlyph(b: BackupMark, disk: string): string {
  if (b.state === 'failed') return GLYPH.failed;
  const kind = b.disks.find((d) => d.disk === disk)?.kind ?? b.kind;
  return GLYPH[kind];
}

function Band({ band, view, plotW, now, selected, exact, baseline, dirtyMaps }: { band: BandModel; baseline?: string } & Omit<Props, 'model'>) {
  // Open-ended spans and series end at +Infinity in the model: they run to now.
  const x = (t: number) => timeToX(view, plotW, Math.min(t, now));
  const clampX = (px: number) => Math.max(-20, Math.min(plotW + 20, px));
  const disk = band.disk.name;
  const backupY = BAND_PAD;
  const tracksY = BAND_PAD + BACKUP_ROW_H;
  const areaY = tracksY + band.trackRows * TRACK_H;
  const trackTop = (k: number) => tracksY + (band.trackRows - 1 - k) * TRACK_H;
  const out: ReactElement[] = [];

  out.push(<rect key="bg" className="band-bg" x={-20} y={0} width={plotW + 40} height={band.height} />);

  if (!band.disk.bitmapCapable) {
    out.push(
      <text key="incapable" className="band-note incapable" x={8} y={tracksY + 11}>
        {`${GLYPH.incapable} ${disk} cannot hold persistent bitmaps${band.disk.bitmapIncapableReason ? `: ${band.disk.bitmapIncapableReason}` : ''} — backups of ${disk} are always full`}
      </text>,
    );
  } else if (band.lane.spans.length === 0 && band.lane.missing.length === 0) {
    out.push(<text key="empty" className="band-note" x={8} y={tracksY + 11}>{`no checkpoint bitmaps on ${disk} yet`}</text>);
  }

  // Bitmap spans. Zoomed out, spans narrower than a few pixels are drawn as one cluster per track
  // (level of detail): thousands of 1-px rects cost frames and say nothing a cluster does not.
  const baselineSet = new Set(band.seriesBitmaps);
  const byTrack = new Map<number, BitmapSpan[]>();
  for (const s of band.lane.spans) {
    if (s.track >= band.lane.tracks) continue; // drawn as the overflow bar
    const x1 = x(s.start);
    const x2 = x(s.end);
    if (x2 < -10 || x1 > plotW + 10) continue;
    const list = byTrack.get(s.track) ?? [];
    list.push(s);
    byTrack.set(s.track, list);
  }
  for (const [track, spans] of byTrack) {
    spans.sort((a, b) => a.start - b.start);
    let cluster: { x1: number; x2: number; n: number; states: Set<string> } | undefined;
    const y = trackTop(track) + 1;
    const h = TRACK_H - 3;
    const flush = () => {
      if (!cluster) return;
      const c = cluster;
      cluster = undefined;
      const state = c.states.size === 1 ? [...c.states][0]! : 'mixed';
      out.push(
        <g key={`c-${track}-${c.x1.toFixed(1)}`} className={`span span-cluster span-${state}`} data-cluster={c.n}>
          <title>{`${c.n} bitmaps on ${disk} (${[...c.states].map((st) => STATE_WORDS[st as keyof typeof STATE_WORDS] ?? st).join(', ')}) — zoom in to see each`}</title>
          <rect x={c.x1} y={y} width={Math.max(2, c.x2 - c.x1)} height={h} rx={1.5} />
        </g>,
      );
    };
    for (const s of spans) {
      const x1 = clampX(x(s.start));
      const x2 = clampX(x(s.end));
      const keep = s.checkpoint === selected || x2 - x1 >= MIN_SPAN_PX;
      if (!keep) {
        if (cluster && x1 - cluster.x2 <= 1) {
          cluster.x2 = Math.max(cluster.x2, x2);
          cluster.n++;
          cluster.states.add(s.state);
        } else {
          flush();
          cluster = { x1, x2, n: 1, states: new Set([s.state]) };
        }
        continue;
      }
      flush();
      const w = Math.max(2, x2 - x1);
      const words = spanWords(s, disk);
      const glyph = GLYPH[s.state];
      const text = truncate(`${glyph} ${s.checkpoint} · ${words}`, w - 6);
      const cls = ['span', `span-${s.state}`, s.checkpoint === selected ? 'span-selected' : '', baselineSet.has(s.bitmap) ? 'span-baseline' : '']
        .filter(Boolean).join(' ');
      out.push(
        <g key={`s-${s.checkpoint}`} className={cls} data-checkpoint={s.checkpoint} data-state={s.state}>
          <title>{`${disk} · bitmap ${s.bitmap}\n${glyph} ${words}\nfrom ${formatAbsolute(s.start)}${s.state === 'disabled' && s.endKnown ? ` to ${formatAbsolute(s.end)}` : ' to now'}`}</title>
          <rect x={x1} y={y} width={w} height={h} rx={1.5} />
          {s.state === 'recording' && <path className="rec-arrow" d={`M${x2 + 2},${y + 1.5}L${x2 + 6},${y + h / 2}L${x2 + 2},${y + h - 1.5}`} />}
          {s.state === 'disabled' && s.endKnown && <rect className="end-cap" x={x2 - 2} y={y - 1} width={3} height={h + 2} />}
          {text && <text className="span-label" x={x1 + 4} y={y + h - 3}>{text}</text>}
        </g>,
      );
    }
    flush();
  }
  const ov = band.lane.overflow;
  if (ov) {
    const x1 = clampX(x(ov.start));
    const x2 = clampX(x(ov.end));
    const y = trackTop(band.trackRows - 1) + 1;
    out.push(
      <g key="overflow" className="span span-overflow">
        <title>{`${ov.count} more bitmaps on ${disk} (not enough room to draw each)`}</title>
        <rect x={x1} y={y} width={Math.max(2, x2 - x1)} height={TRACK_H - 3} rx={1.5} />
        <text className="span-label" x={Math.max(x1, 0) + 4} y={y + TRACK_H - 6}>{`+${ov.count} more bitmaps`}</text>
      </g>,
    );
  }
  for (const m of band.lane.missing) {
    const mx = x(m.time);
    if (mx < -10 || mx > plotW + 10) continue;
    const my = tracksY + 7;
    out.push(
      <g key={`m-${m.checkpoint}`} className="missing-mark" data-checkpoint={m.checkpoint}>
        <title>{`${disk}: bitmap ${m.bitmap} of checkpoint ${m.checkpoint} is missing — changes since ${m.checkpoint} cannot be computed for ${disk}`}</title>
        <circle cx={mx} cy={my} r={6} />
        <text className="missing-glyph" x={mx} y={my + 4} textAnchor="middle">{GLYPH.missing}</text>
        <text className="missing-label" x={mx + 9} y={my + 4}>{`${m.checkpoint}: bitmap missing on ${disk}`}</text>
      </g>,
    );
  }

  // Backups.
  for (const b of band.backups) {
    const bx = x(b.time);
    if (bx < -10 && (b.baseTime === undefined || x(b.baseTime) < -10)) continue;
    if (bx > plotW + 10 && (b.baseTime === undefined || x(b.baseTime) > plotW + 10)) continue;
    const perDisk = b.disks.find((d) => d.disk === disk);
    const kind = perDisk?.kind ?? b.kind;
    const glyph = backupGlyph(b, disk);
    const my = backupY + BACKUP_ROW_H / 2;
    const baseX = b.baseTime !== undefined && kind !== 'full' ? x(b.baseTime) : undefined;
    const bytes = perDisk?.bytes !== undefined ? formatBytes(perDisk.bytes) : undefined;
    const words = b.state === 'failed' ? `failed${b.error ? `: ${b.error}` : ''}` : b.state === 'running' ? 'running' : kind;
    out.push(
      <g key={`b-${b.id}`} className={`backup-mark backup-${b.state} backup-${kind}`} data-backup={b.id}>
        <title>{`${glyph} ${kind} backup ${b.id} of ${disk} · ${words}${b.pull ? ' · pull mode (read over NBD)' : ''}\n${formatAbsolute(b.time)}${b.base ? `\nbase: ${b.base}` : ''}${bytes ? `\n${bytes} copied` : ''}${perDisk?.reason ? `\n${perDisk.reason}` : ''}`}</title>
        {baseX !== undefined && (
          <path className="backup-bracket" d={`M${baseX},${my - 4}V${my + 3}H${bx}V${my - 4}`} />
        )}
        <text className="backup-glyph" x={bx} y={my + 5} textAnchor="middle">{glyph}</text>
        <text className="backup-label" x={bx + 8} y={my + 4}>{`${kind}${b.state === 'failed' ? ' ✕ failed' : ''}${bytes ? ` · ${bytes}` : ''}`}</text>
      </g>,
    );
  }

  // Dirty area of the baseline.
  if (band.series.length > 1) {
    const max = niceMax(Math.max(...band.series.map((p) => p.bytes)));
    const yOf = (bytes: number) => areaY + AREA_H - 4 - (bytes / max) * (AREA_H - 12);
    let d = '';
    let lastX = -Infinity;
    const pts = band.series;
    for (let i = 0; i < pts.length; i++) {
      const px = clampX(x(pts[i]!.t));
      if (i > 0 && i < pts.length - 1 && px - lastX < 0.75) continue; // thin out sub-pixel samples
      d += `${d === '' ? 'M' : 'L'}${px.toFixed(1)},${yOf(pts[i]!.bytes).toFixed(1)}`;
      lastX = px;
    }
    const firstX = clampX(x(pts[0]!.t));
    const area = `${d}L${lastX.toFixed(1)},${yOf(0)}L${firstX.toFixed(1)},${yOf(0)}Z`;
    const live = pts[pts.length - 1]!.bytes;
    const exactBytes = exact?.[disk];
    const shown = exactBytes ?? live;
    const upper = exactBytes === undefined && band.seriesBitmaps.length > 1;
    out.push(
      <g key="area" className="dirty-area" aria-hidden="true">
        <line className="area-base" x1={-20} x2={plotW + 20} y1={yOf(0)} y2={yOf(0)} />
        <path className="area-fill" d={area} />
        <path className="area-line" d={d} />
        <text className="area-scale" x={4} y={areaY + 9}>{`changed since ${baseline ?? '—'} · scale ${formatBytes(max)}`}</text>
      </g>,
    );
    out.push(
      // Kept inside the area's row: the disk map below has an opaque background.
      <text key="area-end" className="area-end" x={x(now) + 10} y={Math.min(yOf(live) + 4, areaY + AREA_H - 3)}>
        {`${upper ? '≤ ' : ''}${formatPart(shown, band.disk.virtualSize)}`}
      </text>,
    );
  } else if (band.disk.bitmapCapable && baseline === undefined && band.lane.spans.length > 0) {
    out.push(<text key="area-none" className="band-note" x={8} y={areaY + 14}>select a checkpoint to see what changed since it</text>);
  }

  if (band.heatmap && baseline !== undefined) {
    out.push(
      <g key="heatmap" transform={`translate(0,${band.heatmapTop})`}>
        <HeatmapRow disk={band.disk} since={baseline} kind={band.heatmap} state={dirtyMaps?.[disk]} plotW={plotW} />
      </g>,
    );
  }
  return <>{out}</>;
}

export function DiskBands(props: Props) {
  return (
    <g className="disk-bands">
      {props.model.bands.map((band) => (
        <g
          key={band.disk.name}
          className="band"
          transform={`translate(0,${band.top})`}
          data-disk={band.disk.name}
        >
          <Band band={band} view={props.view} plotW={props.plotW} now={props.now} selected={props.selected} exact={props.exact} baseline={props.model.baseline} dirtyMaps={props.dirtyMaps} />
        </g>
      ))}
    </g>
  );
}
