// Where a disk changed since a checkpoint (issue 5's dirty map, dirtymap:get): a strip of equal
// regions of the disk, each shaded by the fraction of its granules that are dirty (one hue, never
// colour alone: the figures are in words beside it). Refreshed on request, and — while a write
// simulator job on this VM reports progress — at most once a second, driven by job:update events.

import { useCallback, useEffect, useRef, useState } from 'react';
import type { DirtyMap as DirtyMapData } from '../../../shared/contract';
import type { Checkpoint, DiskInfo } from '../../../shared/domain';
import { formatBytes } from '../format';
import { useApp } from '../store/context';
import { isSameVm } from '../store/store';

export const BUCKETS = 128;
const STRIP_W = 512;
const STRIP_H = 18;

export function DirtyStrip({ map }: { map: DirtyMapData }) {
  const n = map.buckets.length;
  const w = STRIP_W / Math.max(1, n);
  const granules = Math.round(map.dirtyBytes / map.granularity);
  const summary = `${map.disk}: ${formatBytes(map.dirtyBytes)} changed since ${map.since} (${granules} granules of ${formatBytes(map.granularity)}); ${n} regions of ${formatBytes(map.bucketBytes)}`;
  return (
    <figure className="dirty-map" data-disk={map.disk}>
      <svg width={STRIP_W} height={STRIP_H} role="img" aria-label={summary} viewBox={`0 0 ${STRIP_W} ${STRIP_H}`}>
        <rect className="dm-bg" x={0} y={0} width={STRIP_W} height={STRIP_H} />
        {map.buckets.map((f, i) => (f > 0 ? <rect key={i} className="dm-cell" x={i * w} y={0} width={Math.max(w, 1)} height={STRIP_H} opacity={0.25 + 0.75 * Math.min(1, f)} /> : null))}
      </svg>
      <figcaption className="muted">
        <span className="mono">{map.disk}</span> {formatBytes(map.dirtyBytes)} in {granules} granule{granules === 1 ? '' : 's'} · offset 0 → {formatBytes(map.virtualSize)} · read in {map.elapsedMs.toFixed(0)} ms
      </figcaption>
    </figure>
  );
}

export function DirtyMapSection({ checkpoint, disks }: { checkpoint: Checkpoint; disks: readonly DiskInfo[] }) {
  const readDirtyMap = useApp((s) => s.readDirtyMap);
  const vmId = useApp((s) => s.selectedVmId);
  const info = useApp((s) => (s.selectedVmId !== undefined ? s.byVm[s.selectedVmId]?.info : undefined));
  const jobs = useApp((s) => s.jobs);
  const [maps, setMaps] = useState<DirtyMapData[]>();
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const lastFetch = useRef(0);
  const targetsKey = disks.filter((d) => checkpoint.disks.some((x) => x.name === d.name && x.checkpoint === 'bitmap')).map((d) => d.name).join(',');

  const fetchMaps = useCallback(async () => {
    if (vmId === undefined) return;
    setBusy(true);
    lastFetch.current = Date.now();
    try {
      const out: DirtyMapData[] = [];
      for (const disk of targetsKey.split(',')) out.push(await readDirtyMap(disk, checkpoint.name, BUCKETS));
      setMaps(out);
      setError(undefined);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  }, [readDirtyMap, vmId, checkpoint.name, targetsKey]);

  // A different checkpoint: the old maps say nothing about it.
  useEffect(() => {
    setMaps(undefined);
    setError(undefined);
  }, [checkpoint.name, vmId]);

  // Live while the demo writer runs: refresh on its progress events, at most once a second.
  const writing = Object.values(jobs).filter((j) => j.kind === 'write-sim' && vmId !== undefined && isSameVm(j.vmId, vmId, info));
  const progressKey = writing.map((j) => `${j.id}:${j.state}:${j.progress.map((p) => p.done).join('/')}`).join(',');
  useEffect(() => {
    if (!maps || busy || progressKey === '') return;
    const wait = Math.max(0, 1000 - (Date.now() - lastFetch.current));
    const t = setTimeout(() => void fetchMaps(), wait);
    return () => clearTimeout(t);
  }, [progressKey]); // only progress events re-run this; maps/busy are read from that render

  if (targetsKey === '') return null;
  return (
    <section className="dirty-maps" aria-label={`Where the disks changed since ${checkpoint.name}`}>
      <h3>Where it changed</h3>
      <button type="button" className="small" onClick={() => void fetchMaps()} disabled={busy}>
        {busy ? 'Reading the dirty map…' : maps ? 'Refresh the dirty map' : 'Map the changed blocks'}
      </button>
      {error && <div className="alert" role="alert">Could not read the dirty map: {error}</div>}
      {maps?.map((m) => <DirtyStrip key={m.disk} map={m} />)}
    </section>
  );
}
