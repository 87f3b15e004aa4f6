// backup-status and backup-cancel of a QMP VM's backup, from any process: the journal in the
// repository, plus the live job states from QEMU when there is a connection.

import type { QmpClient } from '../../qmp/client';
import type { CheckpointEngineApi } from '../checkpoints/api';
import { readBackupStatus, requestCancel, type BackupStatus } from '../backup/control';
import type { BackupRepository } from '../backup/repository';
import { recoverStale } from '../backup/session';
import { OperationLog, silentReporter } from '../operation';
import type { QmpJob } from './jobs';
import { qmpStateOf } from './recovery';
import { qmpBackupSource } from './source';

export interface QmpBackupStatus extends BackupStatus {
  /** Live job states from QEMU, when a QMP client was given. */
  jobs?: { disk: string; jobId: string; status: string; done: number; total: number; error?: string }[];
}

export async function backupStatus(repo: BackupRepository, vmKey: string, client?: QmpClient): Promise<QmpBackupStatus> {
  const out: QmpBackupStatus = readBackupStatus(repo, vmKey);
  const state = qmpStateOf(out.journal?.strategy);
  if (client && out.journal?.executed && state) {
    const jobs = await client.execute<QmpJob[]>('query-jobs').catch(() => [] as QmpJob[]);
    out.jobs = state.disks.flatMap((d) => {
      const j = jobs.find((x) => x.id === d.jobId);
      return j ? [{ disk: d.disk, jobId: d.jobId, status: j.status, done: j['current-progress'], total: j['total-progress'], ...(j.error ? { error: j.error } : {}) }] : [];
    });
  }
  return out;
}

/**
 * Cancels the running backup of a VM. A live backup is asked to stop (its own process rolls back;
 * a push's jobs are cancelled here too, so it notices at once); a backup whose process died is
 * rolled back here.
 */
export async function cancelBackup(engine: CheckpointEngineApi, client: QmpClient, repo: BackupRepository, options: { timeoutMs?: number } = {}): Promise<{ backupId: string; how: 'cancelled' | 'cleaned-up' }> {
  const { journal: j, running } = readBackupStatus(repo, engine.vmId);
  if (!j) throw new Error(`no backup of VM ${JSON.stringify(engine.vmId)} is running in ${repo.root}`);
  if (!running) {
    const source = qmpBackupSource(engine, client);
    const log = new OperationLog(silentReporter());
    await engine.withLock(() => recoverStale(source, repo, j, log), `clean up backup ${j.backupId}`);
    return { backupId: j.backupId, how: 'cleaned-up' };
  }
  // A pull stops at the marker alone; cancelling its fleecing job would read as a failure.
  const nudge = j.mode === 'pull' ? undefined : async () => {
    for (const d of qmpStateOf(j.strategy)?.disks ?? []) await client.execute('job-cancel', { id: d.jobId }).catch(() => undefined);
  };
  return requestCancel(repo, engine.vmId, j, { timeoutMs: options.timeoutMs, ...(nudge ? { nudge } : {}) });
}
