// What backups, restores and verification do about a prune or merge that was interrupted (kill -9,
// power loss): a backup finishes it first, under the same lock (a backup must never build on a
// layer the plan is rewriting); restore and verify say it is pending and how to finish it, since a
// chain inside an unfinished fold does not match its manifest yet (docs/retention.md).

import type { BackupRepository } from '../../engine/backup/repository';
import { readJournal } from '../../engine/retention/journal';
import { BackupBusyError, isRetentionLock, readLock } from '../../engine/backup/lock';
import { acquireRetentionLock, finishInterruptedRetention, RetentionBusyError } from '../../engine/retention/retention';

/**
 * Before a backup takes the lock: finishes an interrupted prune or merge of the VM, and clears the
 * lock of a prune that died after its last step (throws RetentionBusyError while one runs).
 */
export async function finishRetentionFirst(repo: BackupRepository, vmKey: string | undefined, log: (line: string) => void): Promise<void> {
  if (vmKey === undefined) return;
  const held = readLock(repo, vmKey);
  if (held?.alive && isRetentionLock(held.journal)) throw new RetentionBusyError(new BackupBusyError(held.journal).message);
  if (readJournal(repo, vmKey)) {
    log('an interrupted prune or merge of this VM\'s backups is pending: finishing it first');
    const r = await finishInterruptedRetention(repo, vmKey, { log });
    if (r) log(`finished the interrupted ${r.what} (${r.stepsRun} step(s) left of ${r.stepsTotal}); ${r.removed.length} point(s) removed`);
  } else if (held && isRetentionLock(held.journal)) {
    acquireRetentionLock(repo, vmKey, 'clear the lock of a finished prune').release(); // a dead prune's, with nothing left to do
    log('cleared the lock of a prune or merge that had finished all its steps');
  }
}

/** One line saying that a prune or merge of the VM is unfinished, or undefined. */
export function pendingRetention(repo: BackupRepository, vmKey: string): string | undefined {
  const j = readJournal(repo, vmKey);
  if (!j) return undefined;
  return `an interrupted ${j.what.trim()} of VM ${JSON.stringify(vmKey)}'s backups has ${j.steps.length - j.done} of ${j.steps.length} step(s) left ` +
    `(started ${new Date(j.startedAt).toISOString()}); finish it with: tidemark backup-prune --finish --repo ${repo.root} (the next backup-begin also finishes it)`;
}
