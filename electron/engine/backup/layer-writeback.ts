// The layers of one backup written back to disk while the hypervisor's job still writes them
// (os/early-writeback.ts), one per disk, for a push strategy: started when the job starts, stopped
// when it has ended, and handed to the record step per disk (BackupStrategy.earlyWriteback).

import { startEarlyWriteback, type EarlyWriteback } from '../../os/early-writeback';

export class LayerWritebacks {
  private running = new Map<string, EarlyWriteback>();
  private readonly ended = new Map<string, Promise<Error | undefined>>();

  /** Starts one per disk: disk name → the file its job writes. */
  start(files: Iterable<readonly [disk: string, file: string]>): void {
    for (const [disk, file] of files) this.running.set(disk, startEarlyWriteback(file));
  }

  /** Stops all of them (call when the jobs have ended, also on failure). */
  stop(): void {
    for (const [disk, w] of this.running) this.ended.set(disk, w.stop());
    this.running = new Map();
  }

  /** The end of `disk`'s writeback, rejecting with its first sync error; undefined if it never ran. */
  of(disk: string): Promise<void> | undefined {
    return this.ended.get(disk)?.then((e) => {
      if (e) throw e;
    });
  }

  /** Stops them and waits until no sync is left running (before a rollback deletes the files); errors are ignored. */
  async settle(): Promise<void> {
    this.stop();
    await Promise.all(this.ended.values());
  }
}
