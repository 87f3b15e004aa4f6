// Details of the selected checkpoint, and the text alternative of the timeline (P15): per disk the
// bitmap, its state in words, its dirty bytes and what changed since it (exact, or a range that
// says so: model/figures.ts). With nothing selected it lists every checkpoint (CheckpointList.tsx);
// "All checkpoints" (or Escape) goes back to the list, scrolled to the checkpoint selected last.

import { useEffect, useMemo, useRef, useState, type ReactElement } from 'react';
import { displayName, formatAbsolute, formatBytes, formatPart, formatRelative, shortName } from '../format';
import type { ChangedFigure } from '../model/figures';
import { figureText } from '../timeline/BandArea';
import type { BackupMark } from '../model/backup-marks';
import { GLYPH } from '../timeline/model';
import { diskLanes } from '../timeline/spans';
import { spanWords } from '../timeline/DiskBands';
import { useApp } from '../store/context';
import { CheckpointList } from './CheckpointList';
import { DirtyMapSection } from './DirtyMap';
import { emptyVmView } from '../store/types';

export interface DetailsPanelProps {
  now: number;
  /** Changes whenever details are "opened" (Enter in the tree): focus moves here and exact sizes are fetched. */
  openToken: number;
  backups: readonly BackupMark[];
  /** What changed since the baseline (the selected checkpoint) per disk. */
  figures?: Record<string, ChangedFigure>;
}

export function DetailsPanel({ now, openToken, backups, figures }: DetailsPanelProps) {
  const vmId = useApp((s) => s.selectedVmId);
  const view = useApp((s) => (s.selectedVmId !== undefined ? s.byVm[s.selectedVmId] : undefined)) ?? emptyVmView();
  const selected = useApp((s) => s.selected);
  const select = useApp((s) => s.select);
  const fetchChanges = useApp((s) => s.fetchChanges);
  const ref = useRef<HTMLElement>(null);
  const [measuring, setMeasuring] = useState(false);
  const [measureError, setMeasureError] = useState<string>();
  // The checkpoint selected last: the list brings its row into view when it comes back.
  const [lastSelected, setLastSelected] = useState<string>();
  useEffect(() => {
    if (selected !== undefined) setLastSelected(selected);
  }, [selected]);
  const cp = view.checkpoints.find((c) => c.name === selected);
  // States and counts per disk; independent of the clock (the page re-renders on every tick).
  const lanes = useMemo(
    () => (cp ? diskLanes({ checkpoints: view.checkpoints, layout: cp.layout, disks: (view.info?.disks ?? []).map((d) => d.name), live: view.live ? new Map(Object.entries(view.live)) : undefined, now: Infinity, maxTracks: 1e6 }) : []),
    [cp, view.checkpoints, view.info, view.live],
  );

  const measure = async (name: string) => {
    setMeasuring(true);
    setMeasureError(undefined);
    try {
      await fetchChanges(name);
    } catch (e) {
      setMeasureError(e instanceof Error ? e.message : String(e));
    } finally {
      setMeasuring(false);
    }
  };

  // Only when details are opened (Enter), not on every selection change.
  const latest = useRef({ selected, measure });
  latest.current = { selected, measure };
  useEffect(() => {
    if (openToken === 0) return;
    ref.current?.focus();
    const { selected: name, measure: run } = latest.current;
    if (name !== undefined) void run(name);
  }, [openToken]);

  if (vmId === undefined) return <section className="pane" aria-label="Checkpoint details" id="details" ref={ref} tabIndex={-1}><p className="muted">Select a VM.</p></section>;

  if (!cp) {
    return (
      <section className="pane pane-list" aria-label="Checkpoint details" id="details" ref={ref} tabIndex={-1}>
        <h2>Checkpoints</h2>
        <CheckpointList checkpoints={view.checkpoints} current={view.current} now={now} onSelect={select} reveal={lastSelected} />
      </section>
    );
  }

  const disks = view.info?.disks ?? [];

  const exact = view.changes[cp.name];
  const children = view.checkpoints.filter((c) => c.parent === cp.name).map((c) => c.name);
  const relatedBackups = backups.filter((b) => b.base === cp.name);

  return (
    <section className="pane" aria-label="Checkpoint details" id="details" ref={ref} tabIndex={-1}>
      <div className="pane-head">
        <h2 title={displayName(cp.name)}>Checkpoint {shortName(cp.name, 48)}</h2>
        <button type="button" className="small" onClick={() => select(undefined)} title="Back to the list of every checkpoint (Escape)">All checkpoints</button>
      </div>
      <dl className="kv">
        <dt>Name</dt><dd className="mono wrap-anywhere">{displayName(cp.name)}</dd>
        <dt>Created</dt><dd>{formatAbsolute(cp.createdAtMs)} ({formatRelative(cp.createdAtMs, now)})</dd>
        <dt>Parent</dt><dd title={cp.parent !== undefined ? displayName(cp.parent) : undefined}>{cp.parent !== undefined ? shortName(cp.parent, 48) : '— (root)'}</dd>
        <dt>Children</dt><dd>{children.length ? children.map((c) => shortName(c, 32)).join(', ') : '—'}</dd>
        <dt>Layout</dt><dd>{cp.layout}</dd>
        {cp.description && (<><dt>Description</dt><dd>{cp.description}</dd></>)}
        {cp.name === view.current && (<><dt>Current</dt><dd>yes — NOW hangs off this checkpoint</dd></>)}
      </dl>
      <table className="grid" aria-label={`Bitmaps of ${cp.name}`}>
        <thead>
          <tr><th>Disk</th><th>Bitmap</th><th>State</th><th className="num">In this bitmap</th><th className="num">Changed since it</th></tr>
        </thead>
        <tbody>
          {disks.map((d) => {
            const entry = cp.disks.find((x) => x.name === d.name);
            const lane = lanes.find((l) => l.disk === d.name);
            const span = lane?.spans.find((s) => s.checkpoint === cp.name);
            const missing = lane?.missing.some((m) => m.checkpoint === cp.name);
            const ex = exact?.disks.find((x) => x.disk === d.name);
            const fig = figures?.[d.name];
            let state: ReactElement;
            if (!entry || entry.checkpoint !== 'bitmap') state = <span className="muted">— not checkpointed</span>;
            else if (missing) state = <span className="state-missing">{GLYPH.missing} missing — changes since it unknown for {d.name}</span>;
            else if (span) state = <span className={`state-${span.state}`}>{GLYPH[span.state]} {spanWords(span, d.name)}</span>;
            else state = <span className="muted">?</span>;
            return (
              <tr key={d.name}>
                <td className="mono">{d.name}</td>
                <td className="mono" title={entry?.checkpoint === 'bitmap' ? displayName(entry.bitmap ?? cp.name) : undefined}>{entry?.checkpoint === 'bitmap' ? shortName(entry.bitmap ?? cp.name, 24) : '—'}</td>
                <td className="nowrap">{state}</td>
                <td className="num">{span?.count !== undefined ? formatBytes(span.count) : '—'}</td>
                <td className="num" title={fig?.basis}>
                  {!entry || entry.checkpoint !== 'bitmap' ? '—'
                    : ex && !ex.usable ? <span className="state-inconsistent">unusable{ex.reason ? `: ${ex.reason}` : ''}</span>
                    : fig ? figureText(fig, d.virtualSize)
                    : ex ? formatPart(ex.bytes, ex.virtualSize) : '—'}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <div className="actions-row">
        <button type="button" className="small" onClick={() => void measure(cp.name)} disabled={measuring}>
          {measuring ? 'Measuring…' : exact ? 'Measure again' : 'Measure changes exactly'}
        </button>
        {measureError && <span className="error-text"> {measureError}</span>}
      </div>
      <DirtyMapSection checkpoint={cp} disks={disks} />
      {relatedBackups.length > 0 && (
        <p className="muted">{relatedBackups.length} backup{relatedBackups.length === 1 ? '' : 's'} use {shortName(cp.name, 32)} as their base.</p>
      )}
    </section>
  );
}
