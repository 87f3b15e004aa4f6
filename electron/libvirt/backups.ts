// Backup jobs through libvirt's API (virsh backup-begin, backup-dumpxml, domjobinfo, domjobabort).
// libvirt allows one job per domain; progress comes from polling job info (about 2 ms a call on an
// open connection), which also works over SSH where no event stream is kept.

import type { LibvirtConnection } from './connection';
import { buildBackupXml, parseBackupXml, type BackupDescription, type BackupSpec } from './backup-xml';
import { buildCheckpointXml, parseLibvirtCheckpointXml, type CheckpointSpec } from './checkpoint-xml';
import { domainArg } from './domains';
import { parseJobInfo, type JobInfo } from './job-info';

export interface BeginBackupOptions {
  /** A checkpoint created atomically with the start of the backup (libvirt keeps it even when the job fails). */
  checkpoint?: CheckpointSpec | string;
  /** Push targets exist already (created by the caller, e.g. with the right backing file). */
  reuseExternal?: boolean;
}

/** Starts a push or pull backup; returns once the job runs (pull: once the NBD export is ready). */
export async function beginBackup(conn: LibvirtConnection, domain: string, backup: BackupSpec | string, options: BeginBackupOptions = {}): Promise<void> {
  const backupXml = typeof backup === 'string' ? backup : buildBackupXml(backup);
  parseBackupXml(backupXml); // refuses hostile or malformed XML before libvirt sees it
  const xmlFiles: Record<string, string> = { backupxml: backupXml };
  if (options.checkpoint !== undefined) {
    const cpXml = typeof options.checkpoint === 'string' ? options.checkpoint : buildCheckpointXml(options.checkpoint);
    parseLibvirtCheckpointXml(cpXml);
    xmlFiles.checkpointxml = cpXml;
  }
  await conn.command(['backup-begin', domainArg(domain), ...(options.reuseExternal ? ['--reuse-external'] : [])], { xmlFiles });
}

/** The running backup's XML as libvirt completed it (export names, bitmaps, node indexes). */
export async function backupXml(conn: LibvirtConnection, domain: string): Promise<string> {
  return conn.command(['backup-dumpxml', domainArg(domain)]);
}

export async function describeBackup(conn: LibvirtConnection, domain: string): Promise<BackupDescription> {
  return parseBackupXml(await backupXml(conn, domain));
}

/** The active job (type 'none' when there is none). */
export async function jobInfo(conn: LibvirtConnection, domain: string): Promise<JobInfo> {
  return parseJobInfo(await conn.command(['domjobinfo', domainArg(domain), '--rawstats']));
}

/** The last finished job's record. Reading it removes it unless `keep` (libvirt's --keep-completed). */
export async function completedJobInfo(conn: LibvirtConnection, domain: string, options: { keep?: boolean } = {}): Promise<JobInfo> {
  return parseJobInfo(await conn.command(['domjobinfo', domainArg(domain), '--completed', '--rawstats', ...(options.keep ? ['--keep-completed'] : [])]));
}

/** Ends the active job (a pull backup ends this way; libvirt then removes the scratch files and socket). */
export async function abortJob(conn: LibvirtConnection, domain: string): Promise<void> {
  await conn.command(['domjobabort', domainArg(domain)]);
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Called with each poll of the running job. */
  onProgress?: (info: JobInfo) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls until the active job is gone, then returns its completed record (consumed). Right after a
 * job ends the completed record can still read 'none' for a moment, so that is polled briefly too.
 */
export async function waitForJobEnd(conn: LibvirtConnection, domain: string, options: WaitOptions = {}): Promise<JobInfo> {
  const deadline = Date.now() + (options.timeoutMs ?? 600_000);
  const interval = options.intervalMs ?? 100;
  for (;;) {
    const info = await jobInfo(conn, domain);
    if (info.type === 'none') break;
    options.onProgress?.(info);
    if (Date.now() > deadline) throw new Error(`libvirt job on domain ${domain} still runs after ${options.timeoutMs ?? 600_000} ms`);
    await sleep(interval);
  }
  const settleBy = Date.now() + 5_000;
  for (;;) {
    const done = await completedJobInfo(conn, domain);
    if (done.type !== 'none' || Date.now() > settleBy) return done;
    await sleep(50);
  }
}
