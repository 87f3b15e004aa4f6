// One lock hold at a time per engine. Calls on one engine queue in this process (so they never
// interleave), then take the VM's lock file (lock.ts, against other processes). Re-entrant within
// one async call chain: an operation that calls another (create → prepare) does not wait for itself.

import { AsyncLocalStorage } from 'node:async_hooks';

export interface HoldSteps {
  /** Takes the cross-process lock for `command`; resolves with its release. */
  acquire(command: string): Promise<() => void>;
  /** Runs after the held work, while the lock is still held (whatever the work's outcome). */
  beforeRelease(): Promise<void>;
}

export class LockHolds {
  private readonly inHold = new AsyncLocalStorage<boolean>();
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly steps: HoldSteps) {}

  /** Runs `fn` holding the lock; at once when already inside a hold of this engine. */
  async run<T>(command: string, fn: () => Promise<T>): Promise<T> {
    if (this.inHold.getStore()) return fn();
    const prev = this.queue;
    let done!: () => void;
    this.queue = new Promise<void>((r) => (done = r));
    await prev;
    try {
      const release = await this.steps.acquire(command);
      try {
        return await this.inHold.run(true, fn);
      } finally {
        await this.steps.beforeRelease();
        release();
      }
    } finally {
      done();
    }
  }

  /** True inside a hold of this engine (in the async call chain that runs it). */
  get inside(): boolean {
    return this.inHold.getStore() === true;
  }

  /** Resolves when every hold started or queued so far has ended. */
  idle(): Promise<void> {
    return this.queue;
  }
}
