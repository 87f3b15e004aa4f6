// How a long operation (backup, pull, restore, write simulation) reports what it does and learns
// that it should stop: one interface from the engine up to the renderer. The host's job runner
// hands each job an OperationReporter; the engine calls log() and progress() on it and watches
// `signal`. The host turns the calls into JobInfo updates ('job:update'); nothing is copied back
// from a second job model.

import type { JobInfo } from '../../shared/contract';

export interface OperationReporter {
  /** Aborts when the operation should stop (job:cancel, Ctrl-C, the host closing). */
  readonly signal: AbortSignal;
  /** One line for the job log, without a timestamp (whoever keeps the line adds its own). */
  log(line: string): void;
  /** Bytes done of one disk, and bytes to do when that is known or changed. */
  progress(disk: string, done: number, total?: number): void;
}

export type Progress = JobInfo['progress'];

/** A reporter that goes nowhere: for callers that only want the result. */
export function silentReporter(signal: AbortSignal = new AbortController().signal): OperationReporter {
  return { signal, log: () => undefined, progress: () => undefined };
}

/**
 * A reporter that keeps what it was told: the lines (as given) and the progress per disk, and
 * calls `onChange` after each call. For tests and benchmarks that watch an operation run.
 */
export class RecordingReporter implements OperationReporter {
  /** Every line so far. */
  readonly lines: string[] = [];
  readonly progressNow: Progress = [];
  readonly signal: AbortSignal;

  constructor(private readonly options: { signal?: AbortSignal; onChange?: (seen: { log: string[]; progress: Progress }) => void } = {}) {
    this.signal = options.signal ?? new AbortController().signal;
  }

  log(line: string): void {
    this.lines.push(line);
    this.changed();
  }

  progress(disk: string, done: number, total?: number): void {
    let p = this.progressNow.find((x) => x.disk === disk);
    if (!p) this.progressNow.push((p = { disk, done: 0, total: total ?? 0 }));
    p.done = done;
    if (total !== undefined) p.total = total;
    this.changed();
  }

  private changed(): void {
    this.options.onChange?.({ log: [...this.lines], progress: this.progressNow.map((p) => ({ ...p })) });
  }
}

/**
 * The engine's own record of an operation: every line with a time of day (for the log file an
 * operation writes next to its result, and for the backup journal), forwarded without it to the
 * operation's reporter.
 */
export class OperationLog {
  readonly lines: string[] = [];
  readonly startedAt = Date.now();
  private progressNow: Progress = [];

  constructor(readonly reporter: OperationReporter) {}

  add(message: string): void {
    this.lines.push(`${new Date().toISOString().slice(11, 23)} ${message}`);
    try {
      this.reporter.log(message);
    } catch {
      // a faulty listener must not break the operation
    }
  }

  /** Progress of every disk at once (kept for the journal). */
  progress(progress: Progress): void {
    this.progressNow = progress.map((p) => ({ ...p }));
    for (const p of progress) {
      try {
        this.reporter.progress(p.disk, p.done, p.total);
      } catch {
        // as above
      }
    }
  }

  get progressState(): Progress {
    return this.progressNow.map((p) => ({ ...p }));
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}
