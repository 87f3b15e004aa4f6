// backup-status, backup-cancel and backup-end of a libvirt domain's backup, from any process: the
// journal in the repository (engine/backup/control.ts), plus libvirt's live job figures.

import { jobInfo } from '../../../libvirt/backups';
import type { BackupStatusInfo } from '../../../../shared/contract';
import { readBackupStatus, requestCancel, requestExportEnd } from '../../backup/control';
import type { BackupRepository } from '../../backup/repository';
import { recoverStale } from '../../backup/session';
import { OperationLog, silentReporter } from '../../operation';
import type { LibvirtDomainHandle } from './handle';
import { jobProgress } from './job';
import { abortOurJob, libvirtStateOf } from './recovery';
import { libvirtBackupSource } from './source';

export async function libvirtBackupStatus(h: LibvirtDomainHandle, repo: BackupRepository): Promise<BackupStatusInfo> {
  const st = readBackupStatus(repo, h.identity.key);
  if (!st.journal) return { running: false, stale: false, progress: [], log: [] };
  const j = st.journal;
  let progress = j.progress;
  if (st.running && j.executed && !h.conn.lost) {
    // libvirt's own figures, live (all disks together).
    const info = await jobInfo(h.conn, h.uuid).catch(() => undefined);
    if (info && info.type !== 'none' && info.diskTotal !== undefined && j.mode === 'push') progress = jobProgress(j.disks.map((d) => d.disk), info);
  }
  const out: BackupStatusInfo = { running: st.running, stale: st.stale, backupId: j.backupId, phase: j.phase, pid: j.pid, startedAt: j.startedAt, kind: j.kind, progress, log: j.log };
  if (j.since !== undefined) out.since = j.since;
  if (j.checkpoint !== undefined) out.checkpoint = j.checkpoint;
  return out;
}

/**
 * Stops the domain's running backup: the running process is told (the marker) and a push's job is
 * ended with domjobabort so it stops at once; a backup whose process died is cleaned up here.
 */
export async function libvirtBackupCancel(h: LibvirtDomainHandle, repo: BackupRepository, options: { timeoutMs?: number } = {}): Promise<{ backupId: string; how: 'cancelled' | 'cleaned-up' }> {
  const { journal: j, running } = readBackupStatus(repo, h.identity.key);
  if (!j) throw new Error(`no backup of domain ${h.name} is running in ${repo.root}`);
  const source = libvirtBackupSource(h);
  if (!running) {
    await source.withLock(() => recoverStale(source, repo, j, new OperationLog(silentReporter())), `clean up backup ${j.backupId}`);
    return { backupId: j.backupId, how: 'cleaned-up' };
  }
  // A pull stops at the marker alone (ending its job would read as the export failing).
  const paths = libvirtStateOf(j.strategy)?.jobPaths ?? [];
  const nudge = j.mode === 'pull' ? undefined : async () => void (await abortOurJob(h, paths));
  return requestCancel(repo, h.identity.key, j, { ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}), ...(nudge ? { nudge } : {}) });
}

export function libvirtExportEnd(h: LibvirtDomainHandle, repo: BackupRepository, outcome: 'success' | 'failure'): Promise<{ backupId: string }> {
  return requestExportEnd(repo, h.identity.key, outcome);
}
