// The job a command starts, among every job:update of its service: a resident host (host-server.ts)
// runs other callers' commands on the same service at the same time, so "the job of this kind" is not
// enough. The command's job is the first of its kind that started once the command began; then only
// that job's updates count (its progress shown, its id cancelled on Ctrl-C).

import type { JobInfo } from '../../shared/contract';
import type { CliContext } from './context';

export interface OwnJob {
  /** The command's job as last updated, once it started. */
  current(): JobInfo | undefined;
  /** Stops listening. */
  off(): void;
}

export function followOwnJob(ctx: CliContext, kind: JobInfo['kind'], onUpdate: (job: JobInfo) => void): OwnJob {
  const since = Date.now();
  let id: string | undefined;
  let last: JobInfo | undefined;
  const off = ctx.service.events.on('job:update', (j) => {
    if (j.kind !== kind) return;
    if (id === undefined) {
      if (j.startedAt < since) return; // another command's, started before this one
      id = j.id;
    } else if (j.id !== id) return;
    last = j;
    onUpdate(j);
  });
  return { current: () => last, off };
}
