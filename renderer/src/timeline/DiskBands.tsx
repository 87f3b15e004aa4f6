// One band per disk under the tree, on the same time axis (ux-principles §5.2):
//  - a backup row (BandBackups);
//  - when many bitmaps record at once, a note with what that costs;
//  - the bitmap lanes, the oldest folded into a group that opens (BandLanes);
//  - the dirty bytes of the baseline as an area over time, with the figure at NOW (BandArea);
//  - under them, the disk map: where the disk changed since the baseline (HeatmapRow, own x axis).

import { memo, type ReactElement } from 'react';
import { formatBytes, shortName } from '../format';
import type { ChangedFigure } from '../model/figures';
import type { DiskMapState } from '../store/types';
import { BandArea } from './BandArea';
import { BandBackups } from './BandBackups';
import { BandLanes, GroupRow } from './BandLanes';
import type { XScale } from './geometry';
import { HeatmapRow } from './HeatmapRow';
import { BACKUP_ROW_H, BAND_PAD, NOTE_H, type BandModel, type TimelineModel } from './model';
import { farFromView } from './visible-rows';

export { spanWords } from './BandLanes';
export { niceMax } from './BandArea';

interface Props {
  model: TimelineModel;
  x: XScale;
  plotW: number;
  nowX: number;
  selected?: string;
  /** The figure at NOW per disk (how much changed since the baseline). */
  figures?: Record<string, ChangedFigure>;
  /** Live dirty maps of the baseline per disk. */
  dirtyMaps?: Record<string, DiskMapState>;
  onToggleGroup(disk: string): void;
  /** While the user zooms or pans: fewer words (they come back when the view settles). */
  draft?: boolean;
  /** The bands near the visible part of the scroll box (visible-rows.ts); undefined: all of them. */
  near?: ReadonlySet<number>;
}

/** "⚠ 40 bitmaps record every write to vda · 80 KiB of bitmap memory" with the measured cost in its tooltip. */
function RecordingNote({ band }: { band: BandModel }) {
  const n = band.note!;
  const disk = band.disk.name;
  return (
    <text className="band-note band-warn" x={8} y={BAND_PAD + BACKUP_ROW_H + NOTE_H - 4} data-recording={n.recording}>
      <title>
        {`${n.recording} bitmaps on ${disk} record at the same time: QEMU marks every guest write in each of them.\n` +
          `Each holds one bit per ${formatBytes(band.disk.granularity)} granule: ${formatBytes(n.bytes)} of QEMU memory together, stored in the image at shutdown.\n` +
          'Measured here (QEMU 7.2, 4 KiB writes on tmpfs): no measurable cost up to 20 recording bitmaps, +17 % write time and +30 % CPU with 100.\n' +
          'The chained layout records into one bitmap; deleting checkpoints no backup needs also helps.'}
      </title>
      {`⚠ ${n.recording} bitmaps record every write to ${disk} · each write is marked ${n.recording}× · ${formatBytes(n.bytes)} of bitmap memory`}
    </text>
  );
}

function Band({ band, x, plotW, nowX, selected, baseline, figure, dirtyMap, onToggleGroup, draft, offscreen }: {
  band: BandModel; x: XScale; plotW: number; nowX: number; selected?: string; baseline?: string; figure?: ChangedFigure; dirtyMap?: DiskMapState; onToggleGroup(disk: string): void; draft?: boolean;
  /** Far from the visible part of the scroll box: no lanes, backup marks or area, and of the disk map
   *  only its element with its accessible name (nobody sees the rest); the notes and the group's
   *  button (a keyboard stop) stay. */
  offscreen?: boolean;
}) {
  const disk = band.disk.name;
  const out: ReactElement[] = [<rect key="bg" className="band-bg" x={-20} y={0} width={plotW + 40} height={band.height} />];
  if (!band.disk.bitmapCapable) {
    out.push(
      <text key="incapable" className="band-note incapable" x={8} y={band.tracksTop + 11}>
        {`⊘ ${disk} cannot hold persistent bitmaps${band.disk.bitmapIncapableReason ? `: ${band.disk.bitmapIncapableReason}` : ''} — backups of ${disk} are always full`}
      </text>,
    );
  } else if (band.lane.spans.length === 0 && band.lane.missing.length === 0) {
    out.push(<text key="empty" className="band-note" x={8} y={band.tracksTop + 11}>{`no checkpoint bitmaps on ${disk} yet`}</text>);
  }
  if (band.note) out.push(<RecordingNote key="note" band={band} />);
  if (!offscreen) out.push(<BandLanes key="lanes" band={band} x={x} plotW={plotW} selected={selected} draft={draft} />);
  // Always drawn, in the same place among the band's children: it is a keyboard stop, and focusing
  // it scrolls its band into view, which must not remount it (focus would be lost).
  if (band.lane.folded) out.push(<GroupRow key="group" band={band} x={x} plotW={plotW} onToggle={() => onToggleGroup(disk)} />);
  if (!offscreen) out.push(<BandBackups key="backups" band={band} x={x} plotW={plotW} draft={draft} />);
  if (band.series.points.length > 1) {
    if (!offscreen) out.push(<BandArea key="area" band={band} x={x} plotW={plotW} nowX={nowX} baseline={baseline} figure={figure} />);
  } else if (band.disk.bitmapCapable && baseline === undefined && band.lane.spans.length > 0) {
    out.push(<text key="area-none" className="band-note" x={8} y={band.areaTop + 14}>select a checkpoint to see what changed since it</text>);
  }
  if (band.heatmap && baseline !== undefined) {
    out.push(
      <g key="heatmap" transform={`translate(0,${band.heatmapTop})`}>
        <HeatmapRow disk={band.disk} since={baseline} sinceShort={shortName(baseline, 40)} kind={band.heatmap} state={dirtyMap} plotW={plotW} offscreen={offscreen} />
      </g>,
    );
  }
  return <>{out}</>;
}

/** Memoized: a parent render that changes none of its props (a figure of another layer) skips the bands. */
export const DiskBands = memo(function DiskBands(props: Props) {
  return (
    <g className="disk-bands">
      {props.model.bands.map((band, i) => (
        <g key={band.disk.name} className="band" transform={`translate(0,${band.top})`} data-disk={band.disk.name}>
          <Band
            band={band} x={props.x} plotW={props.plotW} nowX={props.nowX} selected={props.selected} baseline={props.model.baseline}
            figure={props.figures?.[band.disk.name]} dirtyMap={props.dirtyMaps?.[band.disk.name]} onToggleGroup={props.onToggleGroup} draft={props.draft}
            offscreen={farFromView(props.near, i)}
          />
        </g>
      ))}
    </g>
  );
});
