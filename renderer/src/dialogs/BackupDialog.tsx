// Back up: kind (incremental / differential / full), the base checkpoint each would measure from,
// the bytes to copy per disk BEFORE it runs (from the bitmaps: checkpoint:changes), disks whose
// base is unusable shown as falling back to full with the reason (P11), the repository, and a
// checkpoint marking the backup. While it runs: per-disk progress in bytes to copy, Cancel, the
// log; "Run in background" leaves it in the Jobs pane (P10).
// Mode (issue 5): push (QEMU's backup job writes the layer) or pull (QEMU exports a frozen point in
// time over NBD and Tidemark copies only the dirty extents), and pull "export only": the exports
// stay open for an outside tool, with their URIs and commands, until the admin reports the outcome.

import { useEffect, useMemo, useRef, useState } from 'react';
import { checkpointNameProblem } from '../../../shared/names';
import type { BackupRecord, JobInfo, VmSummary } from '../../../shared/contract';
import type { BitmapInfo, Checkpoint, VmInfo } from '../../../shared/domain';
import { JobCard } from '../components/JobsPanel';
import { PullEndButtons, PullExportCard } from '../components/PullExportCard';
import { estimateBytes, estimateSummary, incrementalBase, type Kind } from './backup-plan';
import type { PullSession } from '../store/types';
import { displayName, formatAbsolute, formatBytes, shortName } from '../format';
import { useApp } from '../store/context';
import { isSameVm } from '../model/vm-ids';
import { emptyVmView } from '../store/types';
import { Modal } from './Modal';

export interface BackupDialogProps {
  vm: VmSummary;
  info: VmInfo;
  checkpoints: readonly Checkpoint[];
  current?: string;
  selected?: string;
  live?: Record<string, BitmapInfo[]>;
  onClose(): void;
}

type Mode = 'push' | 'pull';

/**
 * The dialog's one-line summary of what ran: from the backup's own record once it has one (the
 * base it really used, per disk when they differ), else from what was asked at the click.
 */
export function summaryLine(
  ran: { kind: Kind; base?: string; mode: Mode; exportOnly: boolean; disks: readonly string[] } | undefined, result: BackupRecord | undefined,
): string {
  if (!ran) return '';
  const how = ran.mode === 'pull' ? (ran.exportOnly ? ', pull mode, export only' : ', pull mode') : '';
  const glyph = { full: '■ Full', incremental: '◧ Incremental', differential: '◇ Differential' } as const;
  if (result) {
    const kinds = [...new Set(result.disks.map((d) => `${d.kind}:${d.since ?? result.since ?? ''}`))];
    const parts = result.disks.map((d) => `${d.name} ${d.kind}${d.kind !== 'full' && (d.since ?? result.since) ? ` since ${shortName((d.since ?? result.since)!, 40)}` : ''}`);
    if (kinds.length === 1) {
      const d = result.disks[0]!;
      const since = d.since ?? result.since;
      return `${glyph[d.kind]} backup${d.kind !== 'full' && since ? ` since ${shortName(since, 40)}` : ''} of ${result.disks.map((x) => x.name).join(', ')}${how}.`;
    }
    return `Backup of ${parts.join(' · ')}${how}.`;
  }
  return `${glyph[ran.kind]} backup${ran.kind !== 'full' && ran.base ? ` since ${shortName(ran.base, 40)}` : ''} of ${ran.disks.join(', ')}${how}.`;
}

export function BackupDialog(props: BackupDialogProps) {
  const { info, checkpoints } = props;
  const backups = useApp((s) => s.backups[props.vm.id]) ?? [];
  const repository = useApp((s) => s.repository);
  const repositoryResolved = useApp((s) => s.repositoryResolved);
  const setRepository = useApp((s) => s.setRepository);
  const startBackup = useApp((s) => s.startBackup);
  const startPull = useApp((s) => s.startPull);
  const startPullExport = useApp((s) => s.startPullExport);
  const fetchChanges = useApp((s) => s.fetchChanges);
  const cancelJob = useApp((s) => s.cancelJob);
  const changesByName = (useApp((s) => s.byVm[props.vm.id]) ?? emptyVmView()).changes;
  const jobs = useApp((s) => s.jobs);

  const inc = useMemo(() => incrementalBase(backups, checkpoints), [backups, checkpoints]);
  const lastFull = [...backups].reverse().find((b) => b.kind === 'full' && b.checkpoint && checkpoints.some((c) => c.name === b.checkpoint));
  const [kind, setKind] = useState<Kind>(inc ? 'incremental' : 'full');
  const [diffBase, setDiffBase] = useState<string>(lastFull?.checkpoint ?? props.selected ?? checkpoints[0]?.name ?? '');
  const [repo, setRepo] = useState(repository ?? '');
  const [makeCheckpoint, setMakeCheckpoint] = useState(true);
  const [cpName, setCpName] = useState('');
  const [speed, setSpeed] = useState('');
  const [mode, setMode] = useState<Mode>('push');
  const [exportOnly, setExportOnly] = useState(false);
  const [fleeceMax, setFleeceMax] = useState('');
  const [session, setSession] = useState<PullSession>();
  const [fleecePeak, setFleecePeak] = useState<number>();
  const [pullId, setPullId] = useState<string>();
  const [disks, setDisks] = useState<Record<string, boolean>>(() => Object.fromEntries(info.disks.map((d) => [d.name, true])));
  const [phase, setPhase] = useState<'form' | 'running' | 'exported' | 'done' | 'failed'>('form');
  const [error, setError] = useState<string>();
  // What was started, frozen at the click: after a backup the repository's listing changes (its own
  // checkpoint becomes the newest base), and the summary must name the base that was used.
  const [ran, setRan] = useState<{ kind: Kind; base?: string; mode: Mode; exportOnly: boolean; disks: string[] }>();
  // Jobs that existed before the click: the dialog shows only the job it started, never an older one.
  const knownJobs = useRef<ReadonlySet<string>>(new Set());
  const [result, setResult] = useState<BackupRecord>();
  const [resultJob, setResultJob] = useState<string>();
  const [estimateError, setEstimateError] = useState<string>();

  const base = kind === 'incremental' ? inc?.checkpoint : kind === 'differential' ? diffBase : undefined;
  const chosen = info.disks.filter((d) => disks[d.name]).map((d) => d.name);

  // Measure "changes since base" before running (creates and drops a temporary bitmap on the engine side).
  useEffect(() => {
    if (base === undefined || base === '') return;
    setEstimateError(undefined);
    fetchChanges(base).catch((e: unknown) => setEstimateError(e instanceof Error ? e.message : String(e)));
  }, [base, fetchChanges]);

  const estimates = estimateBytes(info, kind, base !== undefined ? changesByName[base] : undefined, chosen, backups) ?? [];
  const speedN = Number(speed);
  const fleeceN = Number(fleeceMax);
  // Everything the backup would refuse is refused here first, with the same words (shared/names.ts).
  const name = cpName.trim();
  const nameProblem = !makeCheckpoint || name === '' ? undefined
    : checkpointNameProblem(name) ?? (checkpoints.some((c) => c.name === name) ? `A checkpoint named "${shortName(name, 40)}" already exists.` : undefined);
  const repoProblem = repo.trim() !== '' && !repo.trim().startsWith('/') ? 'The repository must be an absolute path (starting with "/").' : undefined;
  const problem = chosen.length === 0 ? 'Choose at least one disk.'
    : kind === 'incremental' && !inc ? 'No earlier backup with a checkpoint to continue from: take a full backup first.'
    : kind === 'differential' && !diffBase ? 'Choose the checkpoint to measure from.'
    : mode === 'push' && speed !== '' && !(speedN > 0) ? 'Speed limit must be a positive number of MiB/s.'
    : mode === 'pull' && fleeceMax !== '' && !(fleeceN >= 1) ? 'Fleecing limit must be a number of MiB, at least 1.'
    : repoProblem ?? nameProblem;

  // The job this dialog started: the session's, the result's, else the first backup (or pull) job
  // of this VM that was not there before the click (a push backup's call returns only when it ended).
  const jobKind = ran?.mode === 'pull' ? 'pull' : 'backup';
  const job: JobInfo | undefined = phase === 'form' ? undefined
    : session ? jobs[session.jobId]
    : result ? jobs[resultJob ?? ''] ?? Object.values(jobs).find((j) => j.id === resultJob)
    : Object.values(jobs)
      .filter((j) => j.kind === jobKind && isSameVm(j.vmId, props.vm.id, info) && !knownJobs.current.has(j.id))
      .sort((a, b) => a.startedAt - b.startedAt)[0];

  const start = async () => {
    if (problem) return;
    knownJobs.current = new Set(Object.keys(jobs));
    setRan({ kind, base, mode, exportOnly, disks: chosen });
    setPhase('running');
    setError(undefined);
    if (repo.trim() !== (repository ?? '')) setRepository(repo.trim() === '' ? undefined : repo.trim());
    const common = {
      ...(repo.trim() !== '' ? { repo: repo.trim() } : {}),
      ...(kind === 'full' ? { full: true } : { since: base }),
      ...(makeCheckpoint ? (cpName.trim() !== '' ? { checkpoint: cpName.trim() } : {}) : { noCheckpoint: true }),
      ...(chosen.length < info.disks.length ? { disks: chosen } : {}),
    };
    const pullOnly = fleeceMax !== '' ? { fleeceMaxMiB: fleeceN } : {};
    try {
      if (mode === 'push') {
        const r = await startBackup({ ...common, ...(speed !== '' ? { speedMiBps: speedN } : {}) });
        setResultJob(r.job.id);
        setResult(r.backup);
        setPhase('done');
      } else if (!exportOnly) {
        const r = await startPull({ ...common, ...pullOnly });
        setResultJob(r.job.id);
        setResult(r.backup);
        setFleecePeak(r.fleecePeakBytes);
        setPhase('done');
      } else {
        setSession(await startPullExport({ ...common, ...pullOnly }));
        setPhase('exported');
      }
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setPhase('failed');
    }
  };

  const running = phase === 'running';
  const exportOpen = phase === 'exported' && (job === undefined || job.state === 'running');
  const what = (ran?.mode ?? mode) === 'push' ? 'backup' : 'pull';
  return (
    <Modal
      title={`Back up ${props.vm.label}`}
      subtitle={phase === 'form' ? 'Checkpoint bitmaps are never consumed: a temporary bitmap is merged for the copy and dropped afterwards.' : undefined}
      onClose={props.onClose}
      busy={running}
      wide
      footer={
        phase === 'form' ? (
          <>
            <span className="foot-note">
              {mode === 'pull' && exportOnly ? `Your tool: ${estimateSummary(estimates, kind)}` : estimateSummary(estimates, kind)}
            </span>
            <button type="button" onClick={props.onClose}>Cancel</button>
            <button type="button" className="primary" onClick={start} disabled={!!problem}>
              {mode === 'push' ? 'Start backup' : exportOnly ? 'Open NBD exports' : 'Start pull backup'}
            </button>
          </>
        ) : running ? (
          <>
            <span className="foot-note">{ran?.exportOnly && ran.mode === 'pull' ? 'Fixing the point in time and opening the exports…' : `The ${what} keeps running if you close this; its progress stays in Jobs.`}</span>
            {job && job.state === 'running' && <button type="button" onClick={() => void cancelJob(job.id)}>Cancel {what}</button>}
            <button type="button" onClick={props.onClose}>Run in background</button>
          </>
        ) : exportOpen && session ? (
          <>
            <span className="foot-note">Closing keeps the exports open; end them later from Jobs.</span>
            <button type="button" onClick={props.onClose}>Close, keep exports open</button>
            <PullEndButtons session={session} onEnded={(_outcome, id) => setPullId(id)} />
          </>
        ) : (
          <button type="button" className="primary" onClick={props.onClose} data-autofocus>Close</button>
        )
      }
    >
      {phase === 'form' ? (
        <>
          <fieldset>
            <legend>Mode</legend>
            <label className="check">
              <input type="radio" name="mode" checked={mode === 'push'} onChange={() => setMode('push')} />
              <span><strong>Push</strong> — QEMU's backup job writes the new layer into the repository</span>
            </label>
            <label className="check">
              <input type="radio" name="mode" checked={mode === 'pull'} onChange={() => setMode('pull')} />
              <span>
                <strong>Pull</strong> — QEMU freezes the point in time and exports it read-only over NBD; Tidemark reads only the dirty
                extents into the repository (guest writes meanwhile go to fleecing images)
              </span>
            </label>
            {mode === 'pull' && (
              <label className="check indent">
                <input type="checkbox" checked={exportOnly} onChange={(e) => setExportOnly(e.target.checked)} />
                <span>
                  Export only (for external tools) — keep the NBD exports open and show their URIs for nbdcopy, nbdinfo or qemu-img;
                  you report when your copy succeeded or failed
                </span>
              </label>
            )}
          </fieldset>
          <fieldset>
            <legend>Kind</legend>
            <label className="check">
              <input type="radio" name="kind" checked={kind === 'incremental'} disabled={!inc} onChange={() => setKind('incremental')} data-autofocus={inc ? true : undefined} />
              <span>
                <strong>◧ Incremental</strong> — changes since {inc ? <><span className="mono" title={displayName(inc.checkpoint)}>{shortName(inc.checkpoint, 40)}</span>, the checkpoint of the last backup ({formatAbsolute(inc.backup.startedAt)}); extends its chain</> : 'the last backup'}
                {!inc && <div className="field-hint">Not available: no earlier backup whose checkpoint still exists.</div>}
              </span>
            </label>
            <label className="check">
              <input type="radio" name="kind" checked={kind === 'differential'} disabled={checkpoints.length === 0} onChange={() => setKind('differential')} />
              <span>
                <strong>◇ Differential</strong> — changes since an older checkpoint:{' '}
                <select aria-label="Base checkpoint" value={diffBase} onChange={(e) => { setDiffBase(e.target.value); setKind('differential'); }} disabled={checkpoints.length === 0}>
                  {[...checkpoints].reverse().map((c) => <option key={c.name} value={c.name}>{c.name}</option>)}
                </select>
              </span>
            </label>
            <label className="check">
              <input type="radio" name="kind" checked={kind === 'full'} onChange={() => setKind('full')} data-autofocus={inc ? undefined : true} />
              <span><strong>■ Full</strong> — every chosen disk in full; starts a new chain</span>
            </label>
          </fieldset>

          <table className="grid" aria-label="Bytes to copy per disk">
            <thead><tr><th className="narrow">Back up</th><th className="narrow">Disk</th><th className="num narrow">To copy</th><th>Why</th></tr></thead>
            <tbody>
              {info.disks.map((d) => {
                const e = estimates.find((x) => x.disk === d.name);
                return (
                  <tr key={d.name}>
                    <td className="narrow"><input type="checkbox" aria-label={`Back up ${d.name}`} checked={!!disks[d.name]} onChange={(ev) => setDisks((s) => ({ ...s, [d.name]: ev.target.checked }))} /></td>
                    <td className="mono narrow">{d.name} <span className="muted">({formatBytes(d.virtualSize)})</span></td>
                    <td className="num narrow" title={e && (e.fallback || kind === 'full') ? 'An upper bound: the disk’s size. Only allocated data is copied.' : undefined}>
                      {!e ? '—' : Number.isNaN(e.bytes) ? 'measuring…' : e.fallback || kind === 'full' ? `≤ ${formatBytes(e.bytes)}` : formatBytes(e.bytes)}
                    </td>
                    <td>
                      {!e ? 'skipped'
                        : e.fallback ? <span className="state-busy">■ full: {e.fallback} — up to the disk’s size</span>
                        : kind === 'full' ? 'whole disk: up to its size (only allocated data is copied)'
                        : `changed since ${shortName(base ?? '', 32)} (measured from the bitmaps)`}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {estimateError && <div className="alert" role="alert">Could not measure the changes since {shortName(base ?? '', 40)}: {estimateError}</div>}

          <div className="field spaced">
            <label className="field-label" htmlFor="bk-repo">Repository</label>
            <input id="bk-repo" type="text" value={repo} onChange={(e) => setRepo(e.target.value)} placeholder={repositoryResolved ?? 'default: backups/ in the state directory'} spellCheck={false} />
            <div className="field-hint">A directory of plain qcow2 chains; every backup point opens with stock qemu-img.</div>
          </div>
          <label className="check">
            <input type="checkbox" checked={makeCheckpoint} onChange={(e) => setMakeCheckpoint(e.target.checked)} />
            <span>
              Create a checkpoint marking this backup (the next incremental starts from it)
              {mode === 'pull' && exportOnly ? ' — kept only if you report that your copy succeeded' : ''}
            </span>
          </label>
          {makeCheckpoint && (
            <div className="field">
              <label className="field-label" htmlFor="bk-cp">Checkpoint name</label>
              <input id="bk-cp" type="text" value={cpName} onChange={(e) => setCpName(e.target.value)} placeholder="default: the backup id" spellCheck={false} aria-invalid={!!nameProblem} aria-describedby="bk-cp-hint" />
              <div id="bk-cp-hint" className={`field-hint${nameProblem ? ' error-text' : ''}`}>{nameProblem ?? 'Also the name of the dirty bitmap on each disk.'}</div>
            </div>
          )}
          {mode === 'push' ? (
            <div className="field">
              <label className="field-label" htmlFor="bk-speed">Speed limit per disk (MiB/s)</label>
              <input id="bk-speed" type="number" min={1} value={speed} onChange={(e) => setSpeed(e.target.value)} placeholder="no limit" />
            </div>
          ) : (
            <div className="field">
              <label className="field-label" htmlFor="bk-fleece">Fleecing space limit (MiB)</label>
              <input id="bk-fleece" type="number" min={1} value={fleeceMax} onChange={(e) => setFleeceMax(e.target.value)} placeholder="no limit" />
              <div className="field-hint">The pull gives up (and rolls back) if the guest writes more than this while it runs.</div>
            </div>
          )}
          {problem && problem !== nameProblem && <div className="field-hint error-text">{problem}</div>}
        </>
      ) : (
        <>
          <p>
            {summaryLine(ran, result)}
          </p>
          {/* Once ended the URIs lead nowhere: they are shown only while the exports are open. */}
          {session && exportOpen && <PullExportCard session={session} endButtons={false} />}
          {phase === 'exported' && job && job.state !== 'running' && (
            job.state === 'succeeded' ? (
              <div className="info-box" role="status">
                ✓ The outside copy was reported as succeeded; the exports are closed
                {makeCheckpoint ? <> and checkpoint <span className="mono">{shortName(cpName.trim() || pullId || 'named after the pull', 40)}</span> is recorded</> : ''}.
              </div>
            ) : (
              <div className="alert" role="alert">
                ✕ The pull ended {job.state === 'cancelled' ? 'cancelled' : 'as failed'}: the exports are closed and its checkpoint was rolled back.
              </div>
            )
          )}
          {job ? <JobCard job={job} /> : running && <p className="muted">Starting…</p>}
          {phase === 'done' && result && (
            <div className="info-box" role="status">
              ✓ {ran?.mode === 'pull' ? 'Pull backup' : 'Backup'} <span className="mono">{result.id}</span> finished: {result.disks.map((d) => `${d.name} ${d.kind} ${formatBytes(d.bytesCopied)}${d.fallbackReason ? ` (full: ${d.fallbackReason})` : ''}`).join(' · ')}
              {result.checkpoint && <> — checkpoint <span className="mono" title={displayName(result.checkpoint)}>{shortName(result.checkpoint, 40)}</span> marks it.</>}
              {fleecePeak !== undefined && <> Fleecing peaked at {formatBytes(fleecePeak)}.</>}
            </div>
          )}
          {phase === 'failed' && <div className="alert" role="alert">✕ The {what} failed: {error}. Nothing was kept: its images and its checkpoint were rolled back; earlier backups are untouched.</div>}
        </>
      )}
    </Modal>
  );
}
