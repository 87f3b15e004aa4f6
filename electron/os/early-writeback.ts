// Writes a file back to disk while another program is still writing it, so that the one sync that
// makes it durable later (backup/record.ts) finds little left to do. A push layer is written by QEMU
// with flushes off into the page cache: 1 GiB copied in ~0.3 s then took ~0.7 s more to reach the
// disk in the record step (bench/README.md, "Writeback during the copy"). Node has no
// sync_file_range, so this is fdatasync in a loop, in the thread pool: each call writes what is
// dirty so far while the copy goes on, with a pause between calls so an idle file costs little.
//
// A sync error is kept and handed back by stop(), never swallowed: Linux reports a writeback error
// once to the files open at the time, so a sync opened later (the record step's) may not see an
// error this loop saw first.

import * as fs from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

export interface EarlyWriteback {
  /**
   * Stops after the sync in flight. Resolves (never rejects) with the first sync error, or undefined
   * when every sync succeeded. Calling it again returns the same promise.
   */
  stop(): Promise<Error | undefined>;
}

/**
 * The pause between two syncs of the same file. Short, so the writeback keeps pace with the copy: at
 * 100 ms a 64 MiB incremental (copied in ~20–150 ms) got at most one sync before the record step's,
 * which then wrote most of it; at 15 ms the full push of 1 GiB took 0.82× the time (bench/README.md,
 * "Phase 8"), and a pull's final sync 1–9 ms instead of 15–35.
 */
const PAUSE_MS = 15;

/**
 * Early syncs running at once, across every file. Each holds one of the thread pool's 4 threads for
 * as long as the disk takes; a backup of many disks must still leave threads for the rest of the
 * host's file work (journal, records, the hash's reads), which would otherwise queue behind them.
 */
export const MAX_EARLY_SYNCS = 2;
let syncing = 0;
const waitingForSync: (() => void)[] = [];

/** A place among the MAX_EARLY_SYNCS: its release, which hands it to the next waiter if there is one. */
function takenPlace(): () => void {
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const next = waitingForSync.shift();
    if (next) next(); // the place passes straight on: the count stays right
    else syncing--;
  };
}

/** Waits for one of the MAX_EARLY_SYNCS places; undefined when `signal` aborts first (the waiter leaves the queue). */
function syncPlace(signal: AbortSignal): Promise<(() => void) | undefined> {
  if (syncing < MAX_EARLY_SYNCS) {
    syncing++;
    return Promise.resolve(takenPlace());
  }
  return new Promise((resolve) => {
    const grant = () => {
      signal.removeEventListener('abort', leave);
      resolve(takenPlace());
    };
    const leave = () => {
      const i = waitingForSync.indexOf(grant);
      if (i >= 0) waitingForSync.splice(i, 1);
      resolve(undefined);
    };
    waitingForSync.push(grant);
    signal.addEventListener('abort', leave, { once: true });
  });
}

export function startEarlyWriteback(file: string, pauseMs = PAUSE_MS): EarlyWriteback {
  const stopping = new AbortController();
  const loop = (async (): Promise<Error | undefined> => {
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(file, 'r');
    } catch {
      return undefined; // nothing was synced here: the later sync does it all
    }
    try {
      while (!stopping.signal.aborted) {
        const release = await syncPlace(stopping.signal);
        if (!release) break; // stopped while it waited: the record step's own sync does the rest
        try {
          await fh.datasync();
        } finally {
          release();
        }
        await delay(pauseMs, undefined, { signal: stopping.signal }).catch(() => undefined);
      }
      return undefined;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      return new Error(`writing ${file} to disk failed: ${err.code ?? err.message}`, { cause: e });
    } finally {
      await fh.close().catch(() => undefined);
    }
  })();
  let stopped: Promise<Error | undefined> | undefined;
  return {
    stop: () => {
      if (!stopped) {
        stopping.abort();
        stopped = loop;
      }
      return stopped;
    },
  };
}
