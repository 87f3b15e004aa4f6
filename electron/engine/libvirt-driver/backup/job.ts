// Watching libvirt's backup job: progress from domjobinfo (summed over all disks, as libvirt
// reports it), the end and its outcome from the completed-job record. libvirt 9.0 gives no
// per-disk figures for a backup job; progress is reported for the disks together.

import { completedJobInfo, jobInfo } from '../../../libvirt/backups';
import { LibvirtConnectionError } from '../../../libvirt/errors';
import type { JobInfo } from '../../../libvirt/job-info';
import type { StrategyRun } from '../../backup/strategy';
import type { LibvirtDomainHandle } from './handle';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The progress entry of a whole libvirt job (its disks together). */
export function jobProgress(disks: string[], info: JobInfo): { disk: string; done: number; total: number }[] {
  return [{ disk: disks.join('+'), done: info.diskProcessed ?? 0, total: info.diskTotal ?? 0 }];
}

/**
 * Waits until a push job ends; resolves with its completed record when it succeeded, throws
 * naming libvirt's error otherwise. Stops early when the run is aborted.
 */
export async function waitForPush(h: LibvirtDomainHandle, run: StrategyRun<never> | StrategyRun, disks: string[], intervalMs = 50): Promise<JobInfo | undefined> {
  for (;;) {
    if (run.signal.aborted || run.cancelRequested()) return undefined;
    const info = await jobInfo(h.conn, h.uuid);
    if (info.type === 'none') break;
    if (info.diskTotal !== undefined) run.log.progress(jobProgress(disks, info));
    await sleep(intervalMs);
  }
  const settleBy = Date.now() + 5_000;
  for (;;) {
    const done = await completedJobInfo(h.conn, h.uuid);
    if (done.type === 'completed' && done.success !== false && done.errorMessage === undefined) {
      run.log.progress(jobProgress(disks, done));
      return done;
    }
    if (done.type === 'failed' || done.type === 'cancelled' || (done.type === 'completed' && (done.success === false || done.errorMessage !== undefined))) {
      throw new Error(`libvirt's backup job of ${h.name} ${done.type === 'cancelled' ? 'was cancelled' : 'failed'}: ${done.errorMessage ?? 'no reason given'}`);
    }
    if (Date.now() > settleBy) throw new Error(`libvirt's backup job of ${h.name} ended without a record of its outcome (was libvirtd restarted?); the layers cannot be trusted`);
    await sleep(50);
  }
}

/**
 * Polls a pull's job while Tidemark copies: trips when the job is gone (the point in time is
 * lost) or the connection drops (the job can no longer be watched). Returns the stop function.
 */
export function watchPullJob(h: LibvirtDomainHandle, trip: (why: string) => void, intervalMs = 500): () => void {
  let stopped = false;
  const offLost = h.conn.onLost((e) => {
    if (!stopped) trip(`the libvirt connection was lost during the pull (${e.message.replace(/; call reconnect\(\) to continue$/, '')})`);
  });
  void (async () => {
    while (!stopped) {
      await sleep(intervalMs);
      if (stopped) break;
      let info: JobInfo | undefined;
      try {
        info = await jobInfo(h.conn, h.uuid);
      } catch (e) {
        if (stopped || e instanceof LibvirtConnectionError) continue; // a loss is reported by onLost
        trip(`libvirt cannot report the pull job of ${h.name} any more (${(e as Error).message}): the point in time is lost`);
        break;
      }
      if (stopped) break;
      if (info.type === 'none') {
        trip(`libvirt's pull job of ${h.name} ended on its own: the point in time is lost`);
        break;
      }
    }
  })();
  return () => {
    stopped = true;
    offLost();
  };
}
