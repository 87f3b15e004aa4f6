// The backup-in-progress lock of a VM in a repository. The lock file is also the backup's journal:
// what it created in the hypervisor and on disk, so that `backup-status` and `backup-cancel` in
// another process can see it, and so that a backup whose process died can be rolled back later.
// The session writes the generic part; what a strategy created in the hypervisor (QMP jobs, nodes,
// exports…) is its own `strategy.state`, read back only by that driver's recovery.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createFileExclusive, writeFileAtomic } from '../../os/atomic-file';
import { isProcessAlive, ownStartTime } from '../../os/process-liveness';
import type { BackupKind } from './manifest';
import type { BackupRepository } from './repository';

export type BackupPhase = 'preparing' | 'running' | 'finalizing' | 'recording' | 'rolling-back';

export type LockPurpose = 'backup' | 'retention';

/** True when the lock is held (or was left) by a prune or merge rather than a backup. */
export function isRetentionLock(journal: Pick<BackupJournal, 'purpose' | 'backupId'>): boolean {
  return journal.purpose === 'retention' || journal.backupId.startsWith('retention-');
}

export interface JournalDisk {
  disk: string;
  kind: BackupKind;
  /** Absolute path of the partial layer file. */
  partialImage: string;
}

/** What one strategy put into the hypervisor, for its driver's recovery (opaque to the session). */
export interface StrategyJournal {
  /** e.g. "qmp-push", "qmp-pull". */
  name: string;
  state?: unknown;
}

export interface BackupJournal {
  pid: number;
  startTicks?: number | string;
  host: string;
  backupId: string;
  /** What holds the lock: a backup (the default, also for locks written before this field) or a
   *  prune/merge (engine/retention, whose own journal says what is left to do). */
  purpose?: LockPurpose;
  /** The VM's durable identity key (engine/identity.ts): the repository's directory name, not the contract's VM id. */
  vmId: string;
  endpoint: string;
  startedAt: number;
  updatedAt: number;
  phase: BackupPhase;
  kind: BackupKind;
  since?: string;
  checkpoint?: string;
  /** push or pull; an export-only pull waits for backup-end. */
  mode?: 'push' | 'pull';
  exportOnly?: boolean;
  /** The checkpoint prepared for the backup's one operation (rolled back if the backup fails); its
   *  shape is the driver's (`checkpoint` is the checkpoint itself). */
  prepared?: { checkpoint: { name: string } };
  /** True once the one operation ran: the hypervisor then holds the jobs, bitmaps and the prepared checkpoint. */
  executed: boolean;
  disks: JournalDisk[];
  progress: { disk: string; done: number; total: number }[];
  log: string[];
  strategy?: StrategyJournal;
}

export class BackupBusyError extends Error {
  constructor(readonly journal: BackupJournal) {
    super(isRetentionLock(journal)
      ? `a prune or merge of VM ${JSON.stringify(journal.vmId)}'s backups is running (process ${journal.pid} on ${journal.host}, since ` +
        `${new Date(journal.startedAt).toISOString()}); back up when it has finished`
      : `a backup of VM ${JSON.stringify(journal.vmId)} is already running: backup ${journal.backupId}, ` +
        `started ${new Date(journal.startedAt).toISOString()} by process ${journal.pid} on ${journal.host} (phase ${journal.phase}); ` +
        `see backup-status, or stop it with backup-cancel`,
    );
    this.name = 'BackupBusyError';
  }
}

export function lockPath(repo: BackupRepository, vmId: string): string {
  return path.join(repo.vmDir(vmId), 'backup.lock');
}

/** The journal of the backup holding the lock, and whether its process is alive; undefined when none. */
export function readLock(repo: BackupRepository, vmId: string): { journal: BackupJournal; alive: boolean } | undefined {
  const file = lockPath(repo, vmId);
  let journal: BackupJournal;
  try {
    journal = JSON.parse(fs.readFileSync(file, 'utf8')) as BackupJournal;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // A lock whose content cannot be read was cut short by a crash while being written: it is stale.
    return { journal: { pid: 0, host: os.hostname(), backupId: '?', vmId, endpoint: '', startedAt: 0, updatedAt: 0, phase: 'preparing', kind: 'full', executed: false, disks: [], progress: [], log: [] }, alive: false };
  }
  const sameHost = journal.host === os.hostname();
  const alive = !sameHost || isProcessAlive(journal.pid, journal.startTicks);
  return { journal, alive };
}

export class BackupLock {
  private constructor(
    private readonly file: string,
    private journalValue: BackupJournal,
  ) {}

  /** Takes the lock, or throws BackupBusyError (a live backup) or StaleBackupError (a dead one to recover first). */
  static acquire(repo: BackupRepository, init: Omit<BackupJournal, 'pid' | 'startTicks' | 'host' | 'updatedAt'>): BackupLock {
    const file = lockPath(repo, init.vmId);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const journal: BackupJournal = { ...init, pid: process.pid, startTicks: ownStartTime(), host: os.hostname(), updatedAt: Date.now() };
    try {
      createFileExclusive(file, JSON.stringify(journal, null, 2));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const held = readLock(repo, init.vmId);
      if (held?.alive) throw new BackupBusyError(held.journal);
      throw new StaleBackupError(held?.journal);
    }
    return new BackupLock(file, journal);
  }

  get journal(): BackupJournal {
    return this.journalValue;
  }

  update(patch: Partial<BackupJournal>): void {
    this.journalValue = { ...this.journalValue, ...patch, updatedAt: Date.now() };
    writeFileAtomic(this.file, JSON.stringify(this.journalValue, null, 2));
  }

  release(): void {
    fs.rmSync(this.file, { force: true });
  }
}

export class StaleBackupError extends Error {
  constructor(readonly journal: BackupJournal | undefined) {
    super(`an earlier backup${journal ? ` (${journal.backupId}, process ${journal.pid})` : ''} did not finish and must be cleaned up first`);
    this.name = 'StaleBackupError';
  }
}

/** Removes a stale lock (after its backup was rolled back). */
export function removeLock(repo: BackupRepository, vmId: string): void {
  fs.rmSync(lockPath(repo, vmId), { force: true });
}
