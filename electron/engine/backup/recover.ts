// Crash recovery of a backup: rolls back what a backup whose process died (or that lost its
// hypervisor connection) left, from its validated journal (lock.ts), then removes its lock.

import type { OperationLog } from '../operation';
import { isRetentionLock, removeLock, UNKNOWN_BACKUP, type BackupJournal } from './lock';
import { BACKUP_ID_RE } from './manifest';
import type { BackupRepository } from './repository';
import type { BackupSource, PendingCheckpoint } from './strategy';

/**
 * Rolls back a backup whose process died (or that lost its hypervisor connection), from its
 * validated journal; then removes its lock. Files are deleted only when they are the paths derived
 * from the journal's own backup id and disk names, inside the repository, and only while no
 * manifest file of that backup exists (readable or not).
 */
export async function recoverStale<P extends PendingCheckpoint>(source: BackupSource<P>, repo: BackupRepository, journal: BackupJournal | undefined, log: OperationLog): Promise<void> {
  const key = source.identity.key;
  if (journal && isRetentionLock(journal)) {
    // Not a backup's: the prune's own journal says what is left, and only retention may finish it.
    throw new Error(`the backup lock of VM ${JSON.stringify(key)} was left by an interrupted prune or merge (process ${journal.pid}), not by a backup; ` +
      'the next backup-begin, backup-prune or backup-merge finishes it first');
  }
  repo.assertWritable('clean up an unfinished backup');
  if (journal && journal.backupId !== UNKNOWN_BACKUP && BACKUP_ID_RE.test(journal.backupId) && journal.vmId === key) {
    const id = journal.backupId;
    const done = repo.list(key).some((m) => m.id === id);
    const hasManifestFile = repo.hasManifestFile(key, id);
    const known = await source.checkpointNames();
    const prepared = journal.prepared as P | undefined;
    const name = prepared?.checkpoint.name;
    if (done) {
      // The manifest was written: the backup is complete; only its checkpoint may be unrecorded.
      if (prepared && !known.has(name!)) {
        await source.commitCheckpoint(prepared).then(
          () => log.add(`checkpoint ${name} of completed backup ${id} recorded`),
          (e: Error) => log.add(`checkpoint ${name} could not be recorded: ${e.message}`),
        );
      }
    } else {
      await source.recover(journal.strategy, journal, log);
      if (prepared && journal.executed && !known.has(name!)) {
        await source.rollbackCheckpoint(prepared).then(
          () => log.add(`checkpoint ${name} of unfinished backup ${id} rolled back`),
          (e: Error) => log.add(`checkpoint ${name} of unfinished backup ${id} not rolled back: ${e.message}`),
        );
      }
      if (hasManifestFile) {
        log.add(`unfinished backup ${id}: its manifest exists but cannot be read, so its files are kept (see backup-verify)`);
      } else {
        for (const d of journal.disks) {
          const final = repo.imagePath(key, d.disk, id);
          if (d.partialImage !== `${final}.partial`) {
            log.add(`unfinished backup ${id}: the journal names ${JSON.stringify(d.partialImage)} for disk ${JSON.stringify(d.disk)}, not ${final}.partial; left alone`);
            continue;
          }
          repo.removeFile(`${final}.partial`);
          repo.removeFile(final);
        }
        log.add(`unfinished backup ${id}: partial images deleted`);
      }
    }
  }
  removeLock(repo, key);
}
