// The figure at NOW per disk — how much changed since the baseline — from what the store knows:
// the live counts, the dirty maps being watched and the checkpoint:changes answers (model/figures.ts
// decides whether that is exact or a range).

import type { DiskInfo } from '../../../shared/domain';
import { baselineBitmaps } from '../model/bitmaps';
import { changedFigure, type ChangedFigure, type MeasuredUnion } from '../model/figures';
import type { DiskMapState, VmView } from './types';

export function changedFigures(
  view: VmView, baseline: string | undefined, disks: readonly DiskInfo[], maps: Record<string, DiskMapState> | undefined,
): Record<string, ChangedFigure> | undefined {
  if (baseline === undefined || !view.checkpoints.some((c) => c.name === baseline)) return undefined;
  const layout = view.checkpoints[0]?.layout;
  const out: Record<string, ChangedFigure> = {};
  for (const d of disks) {
    const bitmaps = baselineBitmaps(view.checkpoints, layout, baseline, view.current, d.name);
    const measured: MeasuredUnion[] = [];
    const answer = view.changes[baseline]?.disks.find((x) => x.disk === d.name);
    const meta = view.changesMeta[baseline];
    const fp = meta?.fingerprints[d.name];
    if (answer?.usable && meta && fp !== undefined) measured.push({ bytes: answer.bytes, fingerprint: fp, at: meta.at, source: 'measured' });
    const m = maps?.[d.name];
    if (m?.map && m.fingerprint !== undefined && m.map.since === baseline) {
      measured.push({ bytes: m.map.dirtyBytes, fingerprint: m.fingerprint, at: m.map.at, source: 'dirty map' });
    }
    out[d.name] = changedFigure({ bitmaps, live: view.live?.[d.name], measured });
  }
  return out;
}
