// Back up: kind (incremental / differential / full), the base checkpoint each would measure from,
// the bytes to copy per disk BEFORE it runs (from the bitmaps: checkpoint:changes), disks whose
// base is unusable shown as falling back to full with the reason (P11), the repository, and a
// checkpoint marking the backup. While it runs: per-disk progress in bytes to copy, Cancel, the
// log; "Run in background" leaves it in the Jobs pane (P10).

import { useEffect, useMemo, useState } from 'react';
import type { BackupRecord, JobInfo, VmSummary } from '../../../shared/contract';
import type { BitmapInfo, ChangesSince, Checkpoint, VmInfo } from '../../../shared/domain';
import { JobCard } from '../components/JobsPanel';
import { formatAbsolute, formatBytes } from '../format';
import { useApp } from '../store/context';
import { emptyVmView, isSameVm } from '../store/store';
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

type Kind = 'incremental' | 'differential' | 'full';

/** The checkpoint an incremental continues from: the newest backup's checkpoint that still exists. */
export function incrementalBase(backups: readonly BackupRecord[], checkpoints: readonly Checkpoint[]): { checkpoint: string; backup: BackupRecord } | undefined {
  const names = new Set(checkpoints.map((c) => c.name));
  const sorted = [...backups].sort((a, b) => b.startedAt - a.startedAt);
  const b = sorted.find((r) => r.checkpoint !== undefined && names.has(r.checkpoint));
  return b ? { checkpoint: b.checkpoint!, backup: b } : undefined;
}

export interface DiskEstimate {
  disk: string;
  bytes: number;
  /** Why this disk is copied in full although a base was chosen. */
  fallback?: string;
}

/** Bytes each disk would copy: the dirty bytes since the base, or the whole disk when full or unusable. */
export function estimateBytes(info: VmInfo, kind: Kind, changes: ChangesSince | undefined, chosen: readonly string[]): DiskEstimate[] | undefined {
  return chosen.map((name) => {
    const d = info.disks.find((x) => x.name === name)!;
    if (kind === 'full') return { disk: name, bytes: d.virtualSize };
    if (!d.bitmapCapable) return { disk: name, bytes: d.virtualSize, fallback: `${name} cannot hold bitmaps${d.bitmapIncapableReason ? ` (${d.bitmapIncapableReason})` : ''}` };
    const c = changes?.disks.find((x) => x.disk === name);
    if (!changes) return { disk: name, bytes: Number.NaN };
    if (!c) return { disk: name, bytes: d.virtualSize, fallback: `${changes.checkpoint} has no bitmap on ${name}` };
    if (!c.usable) return { disk: name, bytes: d.virtualSize, fallback: c.reason ?? `the bitmap of ${changes.checkpoint} on ${name} is unusable` };
    return { disk: name, bytes: c.bytes };
  });
}

export function BackupDialog(props: BackupDialogProps) {
  const { info, checkpoints } = props;
  const backups = useApp((s) => s.backups[props.vm.id]) ?? [];
  const repository = useApp((s) => s.repository);
  const repositoryResolved = useApp((s) => s.repositoryResolved);
  const setRepository = useApp((s) => s.setRepository);
  const startBackup = useApp((s) => s.startBackup);
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
  const [disks, setDisks] = useState<Record<string, boolean>>(() => Object.fromEntries(info.disks.map((d) => [d.name, true])));
  const [phase, setPhase] = useState<'form' | 'running' | 'done' | 'failed'>('form');
  const [startedAt, setStartedAt] = useState(0);
  const [error, setError] = useState<string>();
  const [result, setResult] = useState<BackupRecord>();
  const [estimateError, setEstimateError] = useState<string>();

  const base = kind === 'incremental' ? inc?.checkpoint : kind === 'differential' ? diffBase : undefined;
  const chosen = info.disks.filter((d) => disks[d.name]).map((d) => d.name);

  // Measure "changes since base" before running (creates and drops a temporary bitmap on the engine side).
  useEffect(() => {
    if (base === undefined || base === '') return;
    setEstimateError(undefined);
    fetchChanges(base).catch((e: unknown) => setEstimateError(e instanceof Error ? e.message : String(e)));
  }, [base, fetchChanges]);

  const estimates = estimateBytes(info, kind, base !== undefined ? changesByName[base] : undefined, chosen) ?? [];
  const total = estimates.reduce((s, e) => s + (Number.isFinite(e.bytes) ? e.bytes : 0), 0);
  const measuring = estimates.some((e) => Number.isNaN(e.bytes));
  const speedN = Number(speed);
  const problem = chosen.length === 0 ? 'Choose at least one disk.'
    : kind === 'incremental' && !inc ? 'No earlier backup with a checkpoint to continue from: take a full backup first.'
    : kind === 'differential' && !diffBase ? 'Choose the checkpoint to measure from.'
    : speed !== '' && !(speedN > 0) ? 'Speed limit must be a positive number of MiB/s.'
    : makeCheckpoint && cpName !== '' && checkpoints.some((c) => c.name === cpName) ? `A checkpoint named "${cpName}" already exists.` : undefined;

  // The job this dialog started: the newest backup job of this VM that began after we clicked.
  const job: JobInfo | undefined = phase === 'form' ? undefined : Object.values(jobs)
    .filter((j) => j.kind === 'backup' && isSameVm(j.vmId, props.vm.id, info) && j.startedAt >= startedAt - 5000)
    .sort((a, b) => b.startedAt - a.startedAt)[0];

  const start = async () => {
    if (problem) return;
    setPhase('running');
    setError(undefined);
    setStartedAt(Date.now());
    if (repo.trim() !== (repository ?? '')) setRepository(repo.trim() === '' ? undefined : repo.trim());
    try {
      const r = await startBackup({
        ...(repo.trim() !== '' ? { repo: repo.trim() } : {}),
        ...(kind === 'full' ? { full: true } : { since: base }),
        ...(makeCheckpoint ? (cpName.trim() !== '' ? { checkpoint: cpName.trim() } : {}) : { noCheckpoint: true }),
        ...(chosen.length < info.disks.length ? { disks: chosen } : {}),
        ...(speed !== '' ? { speedMiBps: speedN } : {}),
      });
      setResult(r.backup);
      setPhase('done');
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setPhase('failed');
    }
  };

  const running = phase === 'running';
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
            <span className="foot-note">{measuring ? 'Measuring…' : `${estimates.some((e) => e.fallback) || kind === 'full' ? 'At most' : 'About'} ${formatBytes(total)} to copy`}</span>
            <button type="button" onClick={props.onClose}>Cancel</button>
            <button type="button" className="primary" onClick={start} disabled={!!problem}>Start backup</button>
          </>
        ) : running ? (
          <>
            <span className="foot-note">The backup keeps running if you close this; its progress stays in Jobs.</span>
            {job && job.state === 'running' && <button type="button" onClick={() => void cancelJob(job.id)}>Cancel backup</button>}
            <button type="button" onClick={props.onClose}>Run in background</button>
          </>
        ) : (
          <button type="button" className="primary" onClick={props.onClose} data-autofocus>Close</button>
        )
      }
    >
      {phase === 'form' ? (
        <>
          <fieldset>
            <legend>Kind</legend>
            <label className="check">
              <input type="radio" name="kind" checked={kind === 'incremental'} disabled={!inc} onChange={() => setKind('incremental')} data-autofocus={inc ? true : undefined} />
              <span>
                <strong>◧ Incremental</strong> — changes since {inc ? <><span className="mono">{inc.checkpoint}</span>, the checkpoint of the last backup ({formatAbsolute(inc.backup.startedAt)}); extends its chain</> : 'the last backup'}
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
                    <td className="num narrow">{!e ? '—' : Number.isNaN(e.bytes) ? 'measuring…' : e.fallback || kind === 'full' ? `≤ ${formatBytes(e.bytes)}` : formatBytes(e.bytes)}</td>
                    <td>{!e ? 'skipped' : e.fallback ? <span className="state-busy">■ full: {e.fallback}</span> : kind === 'full' ? 'whole disk (unallocated areas are not copied)' : `changed since ${base}`}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {estimateError && <div className="alert" role="alert">Could not measure the changes since {base}: {estimateError}</div>}

          <div className="field spaced">
            <label className="field-label" htmlFor="bk-repo">Repository</label>
            <input id="bk-repo" type="text" value={repo} onChange={(e) => setRepo(e.target.value)} placeholder={repositoryResolved ?? 'default: backups/ in the state directory'} spellCheck={false} />
            <div className="field-hint">A directory of plain qcow2 chains; every backup point opens with stock qemu-img.</div>
          </div>
          <label className="check">
            <input type="checkbox" checked={makeCheckpoint} onChange={(e) => setMakeCheckpoint(e.target.checked)} />
            <span>Create a checkpoint marking this backup (the next incremental starts from it)</span>
          </label>
          {makeCheckpoint && (
            <div className="field">
              <label className="field-label" htmlFor="bk-cp">Checkpoint name</label>
              <input id="bk-cp" type="text" value={cpName} onChange={(e) => setCpName(e.target.value)} placeholder="default: the backup id" spellCheck={false} />
            </div>
          )}
          <div className="field">
            <label className="field-label" htmlFor="bk-speed">Speed limit per disk (MiB/s)</label>
            <input id="bk-speed" type="number" min={1} value={speed} onChange={(e) => setSpeed(e.target.value)} placeholder="no limit" />
          </div>
          {problem && <div className="field-hint error-text">{problem}</div>}
        </>
      ) : (
        <>
          <p>{kind === 'full' ? '■ Full backup' : `${kind === 'incremental' ? '◧ Incremental' : '◇ Differential'} backup since ${base}`} of {chosen.join(', ')}.</p>
          {job ? <JobCard job={job} /> : running && <p className="muted">Starting…</p>}
          {phase === 'done' && result && (
            <div className="info-box" role="status">
              ✓ Backup <span className="mono">{result.id}</span> finished: {result.disks.map((d) => `${d.name} ${d.kind} ${formatBytes(d.bytesCopied)}${d.fallbackReason ? ` (full: ${d.fallbackReason})` : ''}`).join(' · ')}
              {result.checkpoint && <> — checkpoint <span className="mono">{result.checkpoint}</span> marks it.</>}
            </div>
          )}
          {phase === 'failed' && <div className="alert" role="alert">✕ The backup failed: {error}. Nothing was kept: its images and its checkpoint were rolled back; earlier backups are untouched.</div>}
        </>
      )}
    </Modal>
  );
}
