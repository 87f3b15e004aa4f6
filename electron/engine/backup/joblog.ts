// A backup's or restore's job log and its JobInfo (the contract's shape for progress and logs).

import type { JobInfo } from '../../../shared/contract';

export class JobLog {
  readonly lines: string[] = [];
  readonly info: JobInfo;

  constructor(
    init: Pick<JobInfo, 'id' | 'kind' | 'vmId' | 'title'>,
    private readonly onUpdate?: (job: JobInfo) => void,
  ) {
    this.info = { ...init, state: 'running', startedAt: Date.now(), progress: [], log: this.lines };
  }

  add(message: string): void {
    const t = new Date();
    this.lines.push(`${t.toISOString().slice(11, 23)} ${message}`);
    this.emit();
  }

  progress(progress: JobInfo['progress']): void {
    this.info.progress = progress;
    this.emit();
  }

  end(state: 'succeeded' | 'failed' | 'cancelled', error?: string): void {
    this.info.state = state;
    this.info.endedAt = Date.now();
    if (error) this.info.error = error;
    this.emit();
  }

  private emit(): void {
    if (!this.onUpdate) return;
    try {
      this.onUpdate({ ...this.info, progress: this.info.progress.map((p) => ({ ...p })), log: [...this.lines] });
    } catch {
      // a faulty listener must not break the job
    }
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}
