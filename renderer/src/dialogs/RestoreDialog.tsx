// Restore (P5–P8): the backup point, per-disk scope, a new image or in place, what is discarded per
// disk in bytes, Cancel as the default focus, and — for in place — a copy of the current images
// kept first (ticked), typed confirmation of the VM's name and a button that says the verb and the
// object ("Overwrite vda"). A restore to a new image does not touch the VM at all: it makes no
// checkpoint. Every path is checked before anything runs; the dialog shows only its own jobs.

import { useEffect, useMemo, useRef, useState } from 'react';
import type { BackupRecord, JobInfo, RestoreOutcome, VmSummary } from '../../../shared/contract';
import type { BitmapInfo, Checkpoint, VmInfo } from '../../../shared/domain';
import { JobCard } from '../components/JobsPanel';
import { formatAbsolute, formatBytes, shortName } from '../format';
import { useApp } from '../store/context';
import { emptyVmView } from '../store/types';
import { Modal } from './Modal';

export interface RestoreDialogProps {
  vm: VmSummary;
  info: VmInfo;
  checkpoints: readonly Checkpoint[];
  current?: string;
  live?: Record<string, BitmapInfo[]>;
  /** The backup to start with (the backups view's row); default the newest. */
  initialBackup?: string;
  onClose(): void;
}

type Target = 'new' | 'in-place';

function dirname(p: string): string {
  const i = p.replace(/\/+$/, '').lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

/** A new image path beside the repository (its parent directory exists; the host never overwrites). */
export function defaultRestorePath(repo: string | undefined, disk: string, backupId: string): string {
  return `${repo ? dirname(repo) : '.'}/restored-${disk}-${backupId}.qcow2`;
}

export function backupLabel(b: BackupRecord): string {
  const kinds = [...new Set(b.disks.map((d) => d.kind))].join('/');
  return `${formatAbsolute(b.startedAt)} · ${kinds}${b.checkpoint ? ` · checkpoint ${shortName(b.checkpoint, 32)}` : ''} · ${b.id}`;
}

/**
 * What is wrong with the chosen targets, before anything runs: a new image needs an absolute path
 * of its own (not one of the VM's images, not shared by two disks, .qcow2/.raw/.img); in place
 * writes only over the VM's own images.
 */
export function targetProblem(target: 'new' | 'in-place', paths: readonly { disk: string; path: string }[], vmImages: readonly string[]): string | undefined {
  const seen = new Map<string, string>();
  for (const { disk, path } of paths) {
    const p = path.trim();
    if (p === '') return `Enter a path for ${disk}.`;
    if (!p.startsWith('/')) return `The path for ${disk} must be absolute (start with "/").`;
    if (target === 'new') {
      if (p.endsWith('/')) return `The path for ${disk} names a directory; give a file name.`;
      if (!/\.(qcow2|raw|img)$/.test(p)) return `The path for ${disk} must end in .qcow2, .raw or .img (the format follows it).`;
      if (vmImages.includes(p)) return `${p} is an image of the VM; a restore to a new image never overwrites it.`;
    } else if (!vmImages.includes(p)) {
      return `${p} is not an image of this VM; in place restores only over the VM’s own images.`;
    }
    const other = seen.get(p);
    if (other !== undefined) return `${other} and ${disk} would be restored to the same file.`;
    seen.set(p, disk);
  }
  return undefined;
}

export function RestoreDialog(props: RestoreDialogProps) {
  const { vm, info } = props;
  const backups = useApp((s) => s.backups[vm.id]) ?? [];
  const repositoryResolved = useApp((s) => s.repositoryResolved);
  const runRestore = useApp((s) => s.runRestore);
  const fetchChanges = useApp((s) => s.fetchChanges);
  const changesByName = (useApp((s) => s.byVm[vm.id]) ?? emptyVmView()).changes;
  const cancelJob = useApp((s) => s.cancelJob);
  const jobs = useApp((s) => s.jobs);

  const newestFirst = useMemo(() => [...backups].sort((a, b) => b.startedAt - a.startedAt), [backups]);
  const [backupId, setBackupId] = useState((newestFirst.some((b) => b.id === props.initialBackup) ? props.initialBackup : undefined) ?? newestFirst[0]?.id ?? '');
  const backup = newestFirst.find((b) => b.id === backupId);
  const connected = vm.connection === 'connected';
  const [target, setTarget] = useState<Target>('new');
  const [include, setInclude] = useState<Record<string, boolean>>({});
  const [paths, setPaths] = useState<Record<string, string>>({});
  const [safety, setSafety] = useState(true);
  const [typed, setTyped] = useState('');
  const [phase, setPhase] = useState<'form' | 'running' | 'done' | 'failed'>('form');
  // Jobs that existed before the click: the dialog shows only the jobs it started.
  const knownJobs = useRef<ReadonlySet<string>>(new Set());
  const [error, setError] = useState<string>();
  const [outcomes, setOutcomes] = useState<RestoreOutcome[]>([]);
  const vmName = info.name ?? vm.label;

  const disks = backup?.disks.map((d) => d.name) ?? [];
  const included = disks.filter((d) => include[d] ?? true);
  const pathOf = (disk: string) =>
    paths[`${target}:${disk}`] ?? (target === 'new' ? defaultRestorePath(repositoryResolved, disk, backupId) : info.disks.find((d) => d.name === disk)?.imageFile ?? '');

  // What an in-place restore discards: everything written since the backup's point in time,
  // measured with the bitmaps when its checkpoint still exists and the VM is running.
  const pointCheckpoint = backup?.checkpoint !== undefined && props.checkpoints.some((c) => c.name === backup.checkpoint) ? backup.checkpoint : undefined;
  useEffect(() => {
    if (pointCheckpoint !== undefined && connected) fetchChanges(pointCheckpoint).catch(() => undefined);
  }, [pointCheckpoint, connected, fetchChanges]);
  const changes = pointCheckpoint !== undefined ? changesByName[pointCheckpoint] : undefined;
  const discarded = (disk: string): string => {
    if (target === 'new') return 'nothing — the disk is not touched';
    const c = changes?.disks.find((x) => x.disk === disk);
    const since = backup ? formatAbsolute(backup.startedAt) : '';
    if (c?.usable) return `${formatBytes(c.bytes)} written since ${since} will be discarded (bitmap ${pointCheckpoint})`;
    return `everything written since ${since} will be discarded (not measurable now)`;
  };

  const inPlaceBlocked = connected ? `${vm.label} is running: QEMU holds its images open. Stop the VM first, or restore to a new image.` : undefined;
  const confirmOk = target === 'new' || typed === vmName;
  const vmImages = info.disks.map((d) => d.imageFile);
  const problem = !backup ? 'Choose a backup point.'
    : included.length === 0 ? 'Choose at least one disk.'
    : target === 'in-place' && inPlaceBlocked ? inPlaceBlocked
    : targetProblem(target, included.map((d) => ({ disk: d, path: pathOf(d) })), vmImages);

  const myJobs: JobInfo[] = phase === 'form' ? [] : Object.values(jobs)
    .filter((j) => j.kind === 'restore' && !knownJobs.current.has(j.id))
    .sort((a, b) => a.startedAt - b.startedAt);

  const run = async () => {
    if (problem || !confirmOk || !backup) return;
    knownJobs.current = new Set(Object.keys(jobs));
    setPhase('running');
    setError(undefined);
    try {
      const done: RestoreOutcome[] = [];
      if (target === 'new') {
        for (const disk of included) {
          done.push(await runRestore({ backup: backup.id, to: { disk, path: pathOf(disk).trim() } }));
          setOutcomes([...done]);
        }
      } else {
        done.push(await runRestore({ backup: backup.id, inPlace: included.map((disk) => ({ disk, image: pathOf(disk).trim() })), ...(safety ? {} : { noSafetyCopy: true }) }));
        setOutcomes(done);
      }
      setPhase('done');
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
      setPhase('failed');
    }
  };

  const pointText = backup ? `state at ${formatAbsolute(backup.startedAt)}${backup.checkpoint ? ` (${shortName(backup.checkpoint, 32)})` : ''}` : '';
  const title = target === 'in-place'
    ? `Overwrite ${included.join(', ') || 'disks'} of ${vmName} with ${pointText}`
    : `Restore ${included.join(', ') || 'disks'} of ${vmName} to ${included.length === 1 ? 'a new image' : 'new images'} — ${pointText}`;
  const verb = target === 'in-place' ? `Overwrite ${included.join(', ')}` : included.length === 1 ? `Restore ${included[0]} to a new image` : `Restore ${included.length} disks to new images`;

  if (backups.length === 0) {
    return (
      <Modal title={`Restore ${vmName}`} onClose={props.onClose} footer={<button type="button" onClick={props.onClose} data-autofocus>Close</button>}>
        <p>There are no backups of {vmName} in {repositoryResolved ?? 'the repository'} yet. Take one with “Back up” first.</p>
      </Modal>
    );
  }

  return (
    <Modal
      title={backup ? title : `Restore ${vmName}`}
      subtitle={phase === 'form' ? 'Restores are verified against the backup’s checksums.' : undefined}
      onClose={props.onClose}
      busy={phase === 'running'}
      wide
      footer={
        phase === 'form' ? (
          <>
            <button type="button" onClick={props.onClose} data-autofocus>Cancel</button>
            <button type="button" className={target === 'in-place' ? 'danger' : 'primary'} onClick={run} disabled={!!problem || !confirmOk}>{verb}</button>
          </>
        ) : phase === 'running' ? (
          <button type="button" onClick={props.onClose}>Run in background</button>
        ) : (
          <button type="button" className="primary" onClick={props.onClose} data-autofocus>Close</button>
        )
      }
    >
      {phase === 'form' ? (
        <>
          <div className="field">
            <label className="field-label" htmlFor="rs-point">Backup point</label>
            <select id="rs-point" value={backupId} onChange={(e) => setBackupId(e.target.value)}>
              {newestFirst.map((b) => <option key={b.id} value={b.id}>{backupLabel(b)}</option>)}
            </select>
          </div>
          <fieldset>
            <legend>Where to</legend>
            <label className="check">
              <input type="radio" name="target" checked={target === 'new'} onChange={() => setTarget('new')} />
              <span><strong>New image</strong> — write each disk to a new file; the VM and its disks are untouched</span>
            </label>
            <label className="check">
              <input type="radio" name="target" checked={target === 'in-place'} disabled={!!inPlaceBlocked} onChange={() => setTarget('in-place')} />
              <span>
                <strong>In place</strong> — overwrite the VM’s disk images
                {inPlaceBlocked && <div className="field-hint">⊘ {inPlaceBlocked}</div>}
              </span>
            </label>
          </fieldset>
          <table className="grid" aria-label="Disks to restore">
            <thead><tr><th className="narrow">Restore</th><th className="narrow">Disk</th><th>{target === 'new' ? 'New image' : 'Image to overwrite'}</th><th>Discarded</th></tr></thead>
            <tbody>
              {backup?.disks.map((d) => (
                <tr key={d.name} className={include[d.name] ?? true ? undefined : 'skipped'}>
                  <td className="narrow"><input type="checkbox" aria-label={`Restore ${d.name}`} checked={include[d.name] ?? true} onChange={(e) => setInclude((s) => ({ ...s, [d.name]: e.target.checked }))} /></td>
                  <td className="mono narrow">{d.name} <span className="muted">{formatBytes(d.virtualSize)} · {d.kind}</span></td>
                  <td>
                    <input type="text" aria-label={`Path for ${d.name}`} value={pathOf(d.name)} onChange={(e) => setPaths((s) => ({ ...s, [`${target}:${d.name}`]: e.target.value }))} spellCheck={false} className="path-input" />
                  </td>
                  <td className={target === 'in-place' ? 'goes' : 'muted'}>{include[d.name] ?? true ? discarded(d.name) : 'skipped'}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {target === 'in-place' && included.length > 0 && included.length < info.disks.filter((d) => d.bitmapCapable).length && (
            <div className="warn-box">Only some disks are restored: {included.join(', ')} will need a full backup next time.</div>
          )}
          {target === 'in-place' && (
            <div className="warn-box">Checkpoints after this backup point no longer describe the restored disks; restoring every checkpointed disk opens a new branch under {backup?.checkpoint !== undefined ? shortName(backup.checkpoint, 40) : 'its checkpoint'}.</div>
          )}
          {target === 'in-place' ? (
            <label className="check">
              <input type="checkbox" checked={safety} onChange={(e) => setSafety(e.target.checked)} />
              <span>Keep a copy of the current images first (IMAGE.pre-restore-…)</span>
            </label>
          ) : (
            <p className="muted">Nothing of {vmName} changes: no checkpoint is made and its disks are not touched.</p>
          )}
          {target === 'in-place' && (
            <div className="field">
              <label className="field-label" htmlFor="rs-confirm">Type <span className="mono">{vmName}</span> to confirm</label>
              <input id="rs-confirm" type="text" value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" spellCheck={false} />
            </div>
          )}
          {problem && <div className="field-hint error-text">{problem}</div>}
        </>
      ) : (
        <>
          {myJobs.map((j) => <JobCard key={j.id} job={j} onCancel={cancelJob} />)}
          {phase === 'running' && myJobs.length === 0 && <p className="muted">Starting…</p>}
          {outcomes.flatMap((o) => o.restored).map((r) => (
            <div key={r.path} className="info-box" role="status">✓ {r.disk} restored to <span className="mono">{r.path}</span> ({r.format}, {formatBytes(r.virtualSize)}){r.safetyCopy ? `; the previous image is kept as ${r.safetyCopy}` : ''}</div>
          ))}
          {outcomes.flatMap((o) => Object.entries(o.needsFull)).map(([disk, why]) => <div key={disk} className="warn-box">{disk}: next backup will be full — {why}</div>)}
          {outcomes.map((o) => o.branch && <div key={o.branch.checkpoint} className="info-box">New branch: checkpoint {o.branch.checkpoint} under {o.branch.parent}.</div>)}
          {/* The failed job's card already says why; the dialog's own words only when there is no card. */}
          {phase === 'failed' && !myJobs.some((j) => j.state === 'failed') && <div className="alert" role="alert">✕ The restore failed: {error}</div>}
          {phase === 'failed' && myJobs.some((j) => j.state === 'failed') && <p className="error-text">✕ The restore failed; nothing was changed.</p>}
        </>
      )}
    </Modal>
  );
}
