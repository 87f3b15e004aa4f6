// Long jobs (write simulator, backups, restores): non-modal, per-disk determinate progress in bytes
// to do (not disk size), Cancel while running, the job log, and the outcome kept (P10).

import { useState } from 'react';
import type { JobInfo } from '../../../shared/contract';
import { formatAbsolute, formatBytes, percent } from '../format';
import { useApp } from '../store/context';
import { sessionFromJob } from '../store/backups';
import { isSameVm } from '../model/vm-ids';
import { PullExportCard } from './PullExportCard';

const STATE_GLYPH: Record<JobInfo['state'], string> = { running: '⟳', succeeded: '✓', failed: '✕', cancelled: '⊘' };

/** One job; `onCancel` omitted when the surrounding dialog has its own Cancel button. */
export function JobCard({ job, onCancel }: { job: JobInfo; onCancel?(id: string): Promise<void> }) {
  const [cancelError, setCancelError] = useState<string>();
  const [cancelling, setCancelling] = useState(false);
  const cancel = async () => {
    if (!onCancel) return;
    setCancelling(true);
    try {
      await onCancel(job.id);
    } catch (e) {
      setCancelError(e instanceof Error ? e.message : String(e));
    } finally {
      setCancelling(false);
    }
  };
  const duration = ((job.endedAt ?? Date.now()) - job.startedAt) / 1000;
  return (
    <article className={`job ${job.state}`} aria-label={job.title} data-job={job.id}>
      <div className="job-head">
        <span className="job-title">{job.title}</span>
        <span className={`job-state ${job.state}`}>{STATE_GLYPH[job.state]} {job.state}</span>
        {job.state === 'running' && onCancel && (
          <button type="button" className="small" onClick={cancel} disabled={cancelling} aria-label={`Cancel ${job.title}`}>
            {cancelling ? 'Cancelling…' : 'Cancel'}
          </button>
        )}
      </div>
      <div className="muted">{formatAbsolute(job.startedAt)} · {duration.toFixed(1)} s</div>
      {job.progress.map((p) => (
        <div key={p.disk} className="progress-row">
          <span className="mono">{p.disk}</span>
          <progress max={100} value={percent(p.done, p.total)} aria-label={`${job.title}: ${p.disk}`} />
          <span className="mono">{formatBytes(p.done)} / {formatBytes(p.total)} ({percent(p.done, p.total).toFixed(0)}%)</span>
        </div>
      ))}
      {job.error && <div className="alert" role="alert">{job.error}</div>}
      {cancelError && <div className="alert" role="alert">Could not cancel: {cancelError}</div>}
      {job.log.length > 0 && (
        <details>
          <summary>Log ({job.log.length} line{job.log.length === 1 ? '' : 's'})</summary>
          <pre className="job-log">{job.log.join('\n')}</pre>
        </details>
      )}
    </article>
  );
}

export function JobsPanel() {
  const jobs = useApp((s) => s.jobs);
  const vmId = useApp((s) => s.selectedVmId);
  const info = useApp((s) => (s.selectedVmId !== undefined ? s.byVm[s.selectedVmId]?.info : undefined));
  const cancelJob = useApp((s) => s.cancelJob);
  const sessions = useApp((s) => s.pullSessions);
  const repository = useApp((s) => s.repository);
  const list = Object.values(jobs)
    .filter((j) => vmId === undefined || isSameVm(j.vmId, vmId, info))
    .sort((a, b) => (a.state === 'running' ? 0 : 1) - (b.state === 'running' ? 0 : 1) || b.startedAt - a.startedAt);
  return (
    <section className="pane" aria-label="Jobs">
      <h2>Jobs</h2>
      {list.length === 0 && <p className="muted">No jobs yet. Backups, restores and simulated writes show their progress here.</p>}
      {list.map((j) => {
        // An open export-only pull: its URIs and the buttons that end it stay reachable here.
        const session = j.state === 'running' ? sessions[j.id] ?? sessionFromJob(j, repository) : undefined;
        return (
          <div key={j.id}>
            <JobCard job={j} onCancel={cancelJob} />
            {session && !session.ended && <PullExportCard session={session} />}
          </div>
        );
      })}
    </section>
  );
}
