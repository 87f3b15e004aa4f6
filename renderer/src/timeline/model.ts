// Everything the timeline draws, computed from store data without any pixels: the tree layout,
// the per-disk lanes, the dirty-bytes series of the baseline, and the vertical geometry of each
// band. The component then only maps times to x.

import type { BitmapInfo, BitmapLayout, Checkpoint, DiskInfo, HealthIssue } from '../../../shared/domain';
import { layoutTree, type TreeLayout } from './lanes';
import type { BackupMark } from '../model/backup-marks';
import { baselineBitmaps, bitmapOfDisk } from '../model/bitmaps';
import { dirtySeries, type DirtySeries, type DiskHistory } from '../model/samples';
import { diskLanes, type DiskLane } from './spans';

export const GLYPH = {
  recording: '●',
  disabled: '‖',
  busy: '⟳',
  inconsistent: '⚠',
  missing: '∅',
  unknown: '?',
  full: '■',
  incremental: '◧',
  differential: '◇',
  failed: '✕',
  ok: '✓',
  incapable: '⊘',
} as const;

export const STATE_WORDS = {
  recording: 'recording',
  disabled: 'not recording',
  busy: 'busy (in use by a job)',
  inconsistent: 'inconsistent',
  unknown: 'state unknown',
} as const;

export const ROW_H = 26;
/** With many lanes (many branches) rows get denser so the disk bands stay in view. */
export const DENSE_ROW_H = 19;
export function rowHeight(laneCount: number): number {
  return laneCount > 12 ? DENSE_ROW_H : ROW_H;
}
export const TREE_PAD = 16;
export const BACKUP_ROW_H = 18;
export const TRACK_H = 15;
export const AREA_H = 40;
export const BAND_PAD = 7;
/** The note row shown when many bitmaps record on one disk. */
export const NOTE_H = 15;
/** From this many recording bitmaps on one disk, the band says what they cost. */
export const MANY_RECORDING = 16;
/** The disk map under a band's lanes: title line, strip of cells, offset labels. */
export const HEATMAP_H = 54;

export interface BandModel {
  disk: DiskInfo;
  lane: DiskLane;
  issues: HealthIssue[];
  /** y of the band's top, relative to the bands block. */
  top: number;
  height: number;
  /** Rows of the lanes: tracks, plus one for the folded group. */
  trackRows: number;
  /** y of the first lane row inside the band (below the backup row and the note). */
  tracksTop: number;
  /** y of the dirty-bytes area inside the band. */
  areaTop: number;
  /** Set when many bitmaps record at once on this disk: what that costs. */
  note?: RecordingNote;
  series: DirtySeries;
  /** The bitmaps summed for the series; more than one means the sum is an upper bound. */
  seriesBitmaps: string[];
  backups: BackupMark[];
  /** The disk map row under the lanes: 'map' when the baseline has a bitmap on this disk, 'no-bitmap'
   *  when it has none (nothing to map), absent without a baseline or on a disk that cannot hold bitmaps. */
  heatmap?: 'map' | 'no-bitmap';
  /** y of the disk map row inside the band. */
  heatmapTop: number;
}

/** Many bitmaps recording on one disk: each guest write is marked in every one of them. */
export interface RecordingNote {
  recording: number;
  /** QEMU memory (and image space) for their bits: one bit per granule each. */
  bytes: number;
}

export interface TimelineModel {
  tree: TreeLayout;
  /** Height of one lane of the tree. */
  rowH: number;
  treeHeight: number;
  bands: BandModel[];
  bandsHeight: number;
  baseline?: string;
  layout?: BitmapLayout;
  /** All times worth fitting into view. */
  times: number[];
}

export interface ModelInput {
  checkpoints: readonly Checkpoint[];
  current?: string;
  disks: readonly DiskInfo[];
  live?: Record<string, BitmapInfo[]>;
  samples: Record<string, DiskHistory>;
  issues: readonly HealthIssue[];
  baseline?: string;
  backups: readonly BackupMark[];
  /** +Infinity for a clock-independent model: what runs to now then ends at +Infinity. */
  now: number;
  maxTracks?: number;
  /** Disks whose folded group of older bitmaps the user opened. */
  openGroups?: ReadonlySet<string>;
}

/** What buildModel takes from the data that changes least often: the tree and the lanes. */
export type StructureInput = Omit<ModelInput, 'samples' | 'issues' | 'backups'>;

/**
 * The tree layout and each disk's lanes: the costly part of the model (at 1,000 checkpoints × 8 disks,
 * tens of ms on the first render). Kept apart from the bands' samples, issues and backup marks, which
 * arrive separately (the backup list after the checkpoints) and change on their own.
 */
export interface ModelStructure {
  tree: TreeLayout;
  rowH: number;
  treeHeight: number;
  layout?: BitmapLayout;
  lanes: DiskLane[];
  baseCp?: Checkpoint;
  /** Per disk (in the order of `disks`): the bitmaps summed for the baseline's series. */
  seriesBitmaps: string[][];
}

export function buildStructure(input: StructureInput): ModelStructure {
  const tree = layoutTree(input.checkpoints.map((c) => ({ name: c.name, parent: c.parent, time: c.createdAtMs })), input.current);
  const rowH = rowHeight(tree.laneCount);
  const treeHeight = TREE_PAD * 2 + Math.max(1, tree.laneCount) * rowH;
  const layout = input.checkpoints[0]?.layout;
  const live = input.live ? new Map(Object.entries(input.live)) : undefined;
  const baseline = input.baseline ?? input.current;
  const lanes = diskLanes({
    checkpoints: input.checkpoints, layout, disks: input.disks.map((d) => d.name), live, now: input.now, maxTracks: input.maxTracks,
    keep: [input.current, baseline], open: input.openGroups,
  });
  const baseCp = baseline !== undefined ? input.checkpoints.find((c) => c.name === baseline) : undefined;
  const seriesBitmaps = input.disks.map((disk) => (baseCp ? baselineBitmaps(input.checkpoints, layout, baseCp.name, input.current, disk.name) : []));
  return { tree, rowH, treeHeight, layout, lanes, seriesBitmaps, ...(baseCp ? { baseCp } : {}) };
}

/** The model from its structure (buildStructure of the same input) and the bands' other data. */
export function withBands(structure: ModelStructure, input: ModelInput): TimelineModel {
  const { tree, rowH, treeHeight, layout, lanes, baseCp } = structure;
  let top = 0;
  const bands: BandModel[] = input.disks.map((disk, i) => {
    const lane = lanes[i]!;
    const trackRows = Math.max(1, lane.tracks + (lane.folded ? 1 : 0));
    const seriesBitmaps = structure.seriesBitmaps[i]!;
    const hasBitmap = baseCp?.disks.some((d) => d.name === disk.name && d.checkpoint === 'bitmap') ?? false;
    const heatmap = baseCp && disk.bitmapCapable ? (hasBitmap ? 'map' as const : 'no-bitmap' as const) : undefined;
    const note = lane.recording >= MANY_RECORDING
      ? { recording: lane.recording, bytes: lane.recording * Math.ceil(Math.ceil(disk.virtualSize / Math.max(1, disk.granularity)) / 8) }
      : undefined;
    const tracksTop = BAND_PAD + BACKUP_ROW_H + (note ? NOTE_H : 0);
    const areaTop = tracksTop + trackRows * TRACK_H;
    const heatmapTop = areaTop + AREA_H;
    const height = heatmapTop + (heatmap ? HEATMAP_H : 0) + BAND_PAD;
    const series = baseCp ? dirtySeries(input.samples[disk.name], seriesBitmaps, baseCp.createdAtMs, input.now) : { points: [] };
    const band: BandModel = {
      disk, lane, top, height, trackRows, tracksTop, areaTop, series, seriesBitmaps, heatmap, heatmapTop,
      ...(note ? { note } : {}),
      issues: input.issues.filter((x) => x.disk === disk.name),
      backups: input.backups.filter((b) => b.disks.some((d) => d.disk === disk.name)),
    };
    top += height;
    return band;
  });
  const times = [
    ...input.checkpoints.map((c) => c.createdAtMs),
    ...input.backups.map((b) => b.time),
  ];
  return { tree, rowH, treeHeight, bands, bandsHeight: top, baseline: baseCp?.name, layout, times };
}

export function buildModel(input: ModelInput): TimelineModel {
  return withBands(buildStructure(input), input);
}

/** Live dirty bytes of the current checkpoint's bitmaps summed over disks ("changed since" on NOW). */
export function changedSinceCurrent(checkpoints: readonly Checkpoint[], current: string | undefined, live: Record<string, BitmapInfo[]> | undefined): number | undefined {
  if (current === undefined || !live) return undefined;
  const cp = checkpoints.find((c) => c.name === current);
  if (!cp) return undefined;
  let sum = 0;
  let any = false;
  for (const d of cp.disks) {
    const bitmap = bitmapOfDisk(cp, d);
    if (bitmap === undefined) continue;
    const b = live[d.name]?.find((x) => x.name === bitmap);
    if (b) {
      if (b.count === undefined) return undefined; // one unknown count makes the sum unknown
      sum += b.count;
      any = true;
    }
  }
  return any ? sum : undefined;
}
