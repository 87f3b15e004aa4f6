// Watches a group of QEMU block jobs started with auto-finalize and auto-dismiss off, so that the
// caller decides: finalize all (every job reached `pending`) or cancel all (any job failed).
// Transient paused/running blips (G15) mean nothing here; only pending/aborting/concluded count.

import type { QmpClient, QmpEvent } from '../../qmp/client';

export interface QmpJob {
  id: string;
  type: string;
  status: string;
  'current-progress': number;
  'total-progress': number;
  error?: string;
}

export interface JobState {
  id: string;
  status: string;
  /** Reached `pending`: finished copying, waiting for finalize. */
  ready: boolean;
  /** Concluded without finishing (failed or cancelled), with QEMU's reason. */
  failed?: string;
  done: number;
  total: number;
}

export class JobGroup {
  private readonly states = new Map<string, JobState>();
  private wake: (() => void) | undefined;
  private closed: Error | undefined;
  /** The jobs that had failed when the group started cancelling (the cause, not the cancelled bystanders). */
  firstFailed: string[] = [];
  private readonly offEvent: () => void;
  private readonly offClose: () => void;

  /** Subscribe before starting the jobs, so that no status change is missed. */
  constructor(
    private readonly client: QmpClient,
    readonly ids: string[],
  ) {
    for (const id of ids) this.states.set(id, { id, status: 'created', ready: false, done: 0, total: 0 });
    this.offEvent = client.onEvent((e) => this.onEvent(e));
    this.offClose = client.onClose((reason) => {
      this.closed = reason;
      this.wake?.();
    });
  }

  private onEvent(e: QmpEvent): void {
    if (e.event !== 'JOB_STATUS_CHANGE') return;
    const st = this.states.get(String(e.data.id));
    if (!st) return;
    st.status = String(e.data.status);
    if (st.status === 'pending') st.ready = true;
    this.wake?.();
  }

  get jobs(): JobState[] {
    return [...this.states.values()];
  }

  /** Refreshes status, progress and errors from query-jobs. */
  async poll(): Promise<JobState[]> {
    const jobs = await this.client.execute<QmpJob[]>('query-jobs');
    for (const st of this.states.values()) {
      const j = jobs.find((x) => x.id === st.id);
      if (!j) {
        if (st.status !== 'null' && !st.failed && st.status !== 'concluded') st.failed = 'the job disappeared from QEMU';
        st.status = st.status === 'null' ? 'null' : 'concluded';
        continue;
      }
      st.status = j.status;
      st.done = j['current-progress'];
      st.total = j['total-progress'];
      if (j.status === 'pending') st.ready = true;
      if (j.status === 'concluded' && j.error) st.failed = j.error;
      if (j.status === 'concluded' && !st.ready && !j.error) st.failed = 'the job ended without finishing';
    }
    return this.jobs;
  }

  private settledNow(): boolean {
    return this.jobs.every((s) => s.status === 'pending' || s.status === 'concluded' || s.status === 'null');
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
    this.wake = undefined;
  }

  /**
   * Waits until every job is pending (success) or concluded (failure), calling `onProgress` on
   * the way. When any job fails, or `signal` aborts, the others are cancelled and waited for.
   */
  async waitSettled(options: { onProgress?: (jobs: JobState[]) => void; signal?: AbortSignal; intervalMs?: number } = {}): Promise<void> {
    let cancelling = false;
    for (;;) {
      if (this.closed) throw new Error(`QEMU went away during the backup (${this.closed.message})`);
      await this.poll();
      options.onProgress?.(this.jobs);
      const failedNow = this.jobs.filter((s) => s.failed || s.status === 'aborting');
      if (!cancelling && (failedNow.length > 0 || options.signal?.aborted)) {
        cancelling = true;
        this.firstFailed = failedNow.map((s) => s.id);
        await this.cancelAll();
        continue;
      }
      if (this.settledNow()) return;
      await this.sleep(options.intervalMs ?? 200);
    }
  }

  /** job-cancel every job that has not concluded (a pending job is cancelled too: pending → aborting → concluded). */
  async cancelAll(): Promise<void> {
    for (const st of this.jobs) {
      if (st.status === 'concluded' || st.status === 'null') continue;
      await this.client.execute('job-cancel', { id: st.id }).catch(() => undefined);
    }
  }

  /** Finalizes every job (all pending) and waits until they have concluded; returns the ones that failed at finalize. */
  async finalizeAll(timeoutMs = 60_000): Promise<JobState[]> {
    for (const st of this.jobs) await this.client.execute('job-finalize', { id: st.id });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.closed) throw new Error(`QEMU went away while finishing the backup (${this.closed.message})`);
      await this.poll();
      if (this.jobs.every((s) => s.status === 'concluded' || s.status === 'null')) break;
      if (Date.now() > deadline) throw new Error(`backup jobs did not conclude within ${timeoutMs} ms after finalize`);
      await this.sleep(50);
    }
    return this.jobs.filter((s) => s.failed);
  }

  /** Waits (bounded) until every job has concluded, e.g. after cancelAll. */
  async waitConcluded(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      await this.poll();
      if (this.jobs.every((s) => s.status === 'concluded' || s.status === 'null')) return;
      await this.sleep(50);
    }
  }

  /** Removes concluded jobs from QEMU (best effort). */
  async dismissAll(): Promise<void> {
    if (this.closed) return;
    for (const st of this.jobs) {
      if (st.status === 'null') continue;
      await this.client.execute('job-dismiss', { id: st.id }).catch(() => undefined);
      st.status = 'null';
    }
  }

  dispose(): void {
    this.offEvent();
    this.offClose();
  }
}
