// Long-running work the host runs in the background (write simulation, backups, pulls, restores):
// one JobInfo per job, progress and log lines, cancel through an AbortSignal, and every change
// pushed to a listener (the service turns it into 'job:update'). The work gets the job as its
// OperationReporter (engine/operation.ts) and reports into it directly; start() hands back the
// work's result together with the final job, so nobody has to poll for how a job ended.

import { randomBytes } from 'node:crypto';
import type { JobInfo } from '../../shared/contract';
import type { OperationReporter } from '../engine/operation';

/** What a job's work reports into: the job itself. */
export type JobContext = OperationReporter;

/** A started job. */
export interface JobRun<T> {
  /** The job as it started. */
  readonly job: JobInfo;
  /** The work's result and the final job; rejects with the work's error (the final job is then in `ended`). */
  readonly result: Promise<{ job: JobInfo; result: T }>;
  /** The final job, however it ended (never rejects). */
  readonly ended: Promise<JobInfo>;
}

export interface JobSpec {
  kind: JobInfo['kind'];
  vmId: string;
  title: string;
  progress: { disk: string; total: number }[];
}

const MAX_LOG_LINES = 500;
const MAX_FINISHED_JOBS = 100;
/** Progress is pushed at most this often; state changes are pushed at once. */
const PROGRESS_EVERY_MS = 100;

interface Running {
  job: JobInfo;
  abort: AbortController;
  done: Promise<void>;
  lastPush: number;
  pending?: NodeJS.Timeout;
}

export class JobRunner {
  private readonly jobs = new Map<string, Running>();

  constructor(private readonly onUpdate: (job: JobInfo) => void) {}

  /**
   * Starts `work` in the background. `summary` turns its result into the job's last log line
   * ("succeeded: …"); by default a string result is used as it is.
   */
  start<T>(spec: JobSpec, work: (ctx: JobContext) => Promise<T>, summary: (result: T) => string | undefined = (r) => (typeof r === 'string' ? r : undefined)): JobRun<T> {
    const job: JobInfo = {
      id: `job-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`,
      kind: spec.kind,
      vmId: spec.vmId,
      state: 'running',
      title: spec.title,
      startedAt: Date.now(),
      progress: spec.progress.map((p) => ({ disk: p.disk, done: 0, total: p.total })),
      log: [],
    };
    const abort = new AbortController();
    const entry: Running = { job, abort, done: Promise.resolve(), lastPush: 0 };
    const ctx: JobContext = {
      signal: abort.signal,
      progress: (disk, done, total) => {
        if (job.state !== 'running') return;
        let p = job.progress.find((x) => x.disk === disk);
        if (!p) job.progress.push((p = { disk, done: 0, total: total ?? 0 }));
        p.done = done;
        if (total !== undefined) p.total = total;
        this.pushSoon(entry);
      },
      log: (line) => {
        if (job.state !== 'running') return;
        this.addLog(job, line);
        this.pushSoon(entry);
      },
    };
    this.jobs.set(job.id, entry);
    this.prune();
    this.addLog(job, `started: ${job.title}`);
    const result = (async () => {
      let outcome: { ok: true; value: T } | { ok: false; error: unknown };
      try {
        const value = await work(ctx);
        if (abort.signal.aborted) throw new Error('cancelled');
        job.state = 'succeeded';
        const said = summary(value);
        this.addLog(job, said ? `succeeded: ${said}` : 'succeeded');
        outcome = { ok: true, value };
      } catch (e) {
        if (abort.signal.aborted) {
          job.state = 'cancelled';
          this.addLog(job, 'cancelled');
        } else {
          job.state = 'failed';
          job.error = e instanceof Error ? e.message : String(e);
          this.addLog(job, `failed: ${job.error}`);
        }
        outcome = { ok: false, error: e };
      }
      job.endedAt = Date.now();
      this.push(entry);
      const final = snapshot(job);
      if (!outcome.ok) throw outcome.error;
      return { job: final, result: outcome.value };
    })();
    const ended = result.then(() => snapshot(job), () => snapshot(job));
    entry.done = ended.then(() => undefined);
    result.catch(() => undefined); // whoever wants the error awaits `result`; nobody has to
    this.push(entry);
    return { job: snapshot(job), result, ended };
  }

  /** Runs `work` as a job and resolves when it has ended: with its result and the final job, or rejects with its error. */
  run<T>(spec: JobSpec, work: (ctx: JobContext) => Promise<T>, summary?: (result: T) => string | undefined): Promise<{ job: JobInfo; result: T }> {
    return this.start(spec, work, summary).result;
  }

  list(vmId?: string): JobInfo[] {
    return [...this.jobs.values()].map((r) => r.job).filter((j) => vmId === undefined || j.vmId === vmId).sort((a, b) => a.startedAt - b.startedAt).map(snapshot);
  }

  get(jobId: string): JobInfo {
    const r = this.jobs.get(jobId);
    if (!r) throw new Error(`no job with id ${JSON.stringify(jobId)}`);
    return snapshot(r.job);
  }

  /** Cancels a running job and waits until it has stopped; a finished job is returned as it is. */
  async cancel(jobId: string): Promise<JobInfo> {
    const r = this.jobs.get(jobId);
    if (!r) throw new Error(`no job with id ${JSON.stringify(jobId)}`);
    r.abort.abort();
    await r.done;
    return snapshot(r.job);
  }

  /** Cancels every running job of a VM (or all) and waits for them. */
  async cancelAll(vmId?: string): Promise<void> {
    const running = [...this.jobs.values()].filter((r) => r.job.state === 'running' && (vmId === undefined || r.job.vmId === vmId));
    for (const r of running) r.abort.abort();
    await Promise.all(running.map((r) => r.done));
  }

  private addLog(job: JobInfo, line: string): void {
    job.log.push(`${new Date().toISOString()} ${line}`);
    if (job.log.length > MAX_LOG_LINES) job.log.splice(0, job.log.length - MAX_LOG_LINES);
  }

  private push(entry: Running): void {
    if (entry.pending) clearTimeout(entry.pending);
    entry.pending = undefined;
    entry.lastPush = Date.now();
    this.onUpdate(snapshot(entry.job));
  }

  private pushSoon(entry: Running): void {
    if (entry.pending) return;
    const wait = entry.lastPush + PROGRESS_EVERY_MS - Date.now();
    if (wait <= 0) return this.push(entry);
    entry.pending = setTimeout(() => {
      entry.pending = undefined;
      if (entry.job.state === 'running') this.push(entry);
    }, wait);
  }

  /** Forgets the oldest finished jobs beyond MAX_FINISHED_JOBS. */
  private prune(): void {
    const finished = [...this.jobs.values()].filter((r) => r.job.state !== 'running').sort((a, b) => a.job.startedAt - b.job.startedAt);
    for (const r of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED_JOBS))) this.jobs.delete(r.job.id);
  }
}

function snapshot(job: JobInfo): JobInfo {
  return { ...job, progress: job.progress.map((p) => ({ ...p })), log: [...job.log] };
}
