// A running backup is steered from any process through its repository, never through the process
// that runs it: backup-cancel and backup-end drop a marker file next to the backup's lock, the
// running session notices it and ends (rolling back, or recording an export-only pull), and the
// asking side waits until the lock is released. So `tidemark backup-end` needs no connection to
// the VM (the waiting process may hold the VM's only free QMP socket).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../os/atomic-file';
import { readLock, type BackupJournal } from './lock';
import type { BackupRepository } from './repository';

export function cancelMarker(repo: BackupRepository, vmKey: string): string {
  return path.join(repo.vmDir(vmKey), 'backup.cancel');
}

export function endMarker(repo: BackupRepository, vmKey: string): string {
  return path.join(repo.vmDir(vmKey), 'pull.end');
}

export interface BackupStatus {
  running: boolean;
  /** The lock is held by a process that is gone: the next backup (or backup-cancel) cleans up. */
  stale: boolean;
  journal?: BackupJournal;
}

export function readBackupStatus(repo: BackupRepository, vmKey: string): BackupStatus {
  const held = readLock(repo, vmKey);
  if (!held) return { running: false, stale: false };
  return { running: held.alive, stale: !held.alive, journal: held.journal };
}

async function untilReleased(repo: BackupRepository, vmKey: string, backupId: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const now = readLock(repo, vmKey);
    if (!now || now.journal.backupId !== backupId) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/**
 * Asks the live backup of a VM to stop and waits until it has rolled back. `nudge` runs after the
 * marker is down (a driver may also stop the hypervisor's jobs, so the backup notices sooner).
 */
export async function requestCancel(repo: BackupRepository, vmKey: string, journal: BackupJournal, options: { timeoutMs?: number; nudge?: () => Promise<void> } = {}): Promise<{ backupId: string; how: 'cancelled' }> {
  writeFileAtomic(cancelMarker(repo, vmKey), journal.backupId);
  await options.nudge?.().catch(() => undefined);
  const timeoutMs = options.timeoutMs ?? 60_000;
  if (await untilReleased(repo, vmKey, journal.backupId, timeoutMs)) return { backupId: journal.backupId, how: 'cancelled' };
  throw new Error(`backup ${journal.backupId} was asked to cancel but is still running after ${Math.round(timeoutMs / 1000)} s (process ${journal.pid})`);
}

/**
 * backup-end for an export-only pull: tells the running pull whether the outside copy succeeded
 * (its checkpoint is then recorded) or failed (everything is rolled back), and waits for it.
 */
export async function requestExportEnd(repo: BackupRepository, vmKey: string, outcome: 'success' | 'failure', options: { timeoutMs?: number } = {}): Promise<{ backupId: string }> {
  const held = readLock(repo, vmKey);
  if (!held) throw new Error(`no pull backup of VM ${JSON.stringify(vmKey)} is running in ${repo.root}`);
  const j = held.journal;
  if (!j.exportOnly) throw new Error(`the backup running for VM ${JSON.stringify(vmKey)} (${j.backupId}) is not an export-only pull; stop it with backup-cancel`);
  if (!held.alive) throw new Error(`the process of pull ${j.backupId} is gone; clean up with backup-cancel`);
  writeFileAtomic(endMarker(repo, vmKey), outcome);
  const timeoutMs = options.timeoutMs ?? 60_000;
  if (await untilReleased(repo, vmKey, j.backupId, timeoutMs)) return { backupId: j.backupId };
  throw new Error(`pull ${j.backupId} was told to end (${outcome}) but is still running after ${Math.round(timeoutMs / 1000)} s`);
}

/** Export-only pulls running in `repo`, found from their journals (no hypervisor needed). */
export function runningExports(repo: BackupRepository): { vmKey: string; backupId: string; endpoint: string }[] {
  const vmsDir = path.join(repo.root, 'vms');
  const found: { vmKey: string; backupId: string; endpoint: string }[] = [];
  for (const entry of fs.existsSync(vmsDir) ? fs.readdirSync(vmsDir) : []) {
    let vmKey: string;
    try {
      vmKey = (JSON.parse(fs.readFileSync(path.join(vmsDir, entry, 'backup.lock'), 'utf8')) as { vmId: string }).vmId;
    } catch {
      continue;
    }
    const held = readLock(repo, vmKey);
    if (held?.alive && held.journal.exportOnly) found.push({ vmKey, backupId: held.journal.backupId, endpoint: held.journal.endpoint });
  }
  return found;
}

/** The running side of backup-end: polls for the marker until it appears or `signal` aborts. */
export async function waitForEnd(marker: string, signal: AbortSignal): Promise<'success' | 'failure'> {
  for (;;) {
    if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('cancelled');
    try {
      const text = fs.readFileSync(marker, 'utf8').trim();
      fs.rmSync(marker, { force: true });
      return text === 'success' ? 'success' : 'failure';
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
