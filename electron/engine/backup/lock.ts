// The backup-in-progress lock of a VM in a repository. The lock file is also the backup's journal:
// what it created in the hypervisor and on disk, so that `backup-status` and `backup-cancel` in
// another process can see it, and so that a backup whose process died can be rolled back later.
// The session writes the generic part; what a strategy created in the hypervisor (QMP jobs, nodes,
// exports…) is its own `strategy.state`, read back only by that driver's recovery.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v from 'valibot';
import { BACKUP_ID_RE, backupKindSchema } from '../../../shared/contract';
import { check, list, matching, oneOf, record, size, text } from '../../../shared/schema';
import { createFileExclusive, mkdirPrivate, writeFileAtomic } from '../../os/atomic-file';
import { isProcessAlive, ownStartTime } from '../../os/process-liveness';
import type { BackupRepository } from './repository';

const phaseSchema = oneOf('preparing', 'running', 'finalizing', 'recording', 'rolling-back');
export type BackupPhase = v.InferOutput<typeof phaseSchema>;

const purposeSchema = oneOf('backup', 'retention');
export type LockPurpose = v.InferOutput<typeof purposeSchema>;

/** True when the lock is held (or was left) by a prune or merge rather than a backup. */
export function isRetentionLock(journal: Pick<BackupJournal, 'purpose' | 'backupId'>): boolean {
  return journal.purpose === 'retention' || journal.backupId.startsWith('retention-');
}

const journalDiskSchema = record({
  disk: text({ min: 1, max: 256 }),
  kind: backupKindSchema,
  /** Absolute path of the partial layer file; recovery deletes it only if it is the path derived from disk and backup id. */
  partialImage: text({ min: 1 }),
});
export type JournalDisk = v.InferOutput<typeof journalDiskSchema>;

/** What one strategy put into the hypervisor, for its driver's recovery (opaque here: the driver validates it). */
const strategyJournalSchema = record({
  /** e.g. "qmp-push", "qmp-pull". */
  name: text({ min: 1, max: 64 }),
  state: v.optional(v.unknown()),
});
export type StrategyJournal = v.InferOutput<typeof strategyJournalSchema>;

/**
 * The journal, validated before anything acts on it: recovery deletes files and changes the
 * hypervisor from it, and the lock file lives in a repository other users may share.
 */
const backupJournalSchema = record({
  pid: size(),
  startTicks: v.optional(v.union([size(), text({ max: 64 })])),
  host: text({ max: 256 }),
  /** A backup id, or "retention-<UTC time>" for a prune or merge holding the lock (retention/retention.ts). */
  backupId: matching(new RegExp(`${BACKUP_ID_RE.source}|^retention-[0-9A-Za-z-]{1,40}$`), 'a backup id', 64),
  /** What holds the lock: a backup (the default, also for locks written before this field) or a
   *  prune/merge (engine/retention, whose own journal says what is left to do). */
  purpose: v.optional(purposeSchema),
  /** The VM's durable identity key (engine/identity.ts): the repository's directory name, not the contract's VM id. */
  vmId: text({ min: 1, max: 512 }),
  endpoint: text(),
  startedAt: size(),
  updatedAt: size(),
  phase: phaseSchema,
  kind: backupKindSchema,
  since: v.optional(text({ max: 4096 })),
  checkpoint: v.optional(text({ max: 4096 })),
  /** push or pull; an export-only pull waits for backup-end. */
  mode: v.optional(oneOf('push', 'pull')),
  exportOnly: v.optional(v.boolean()),
  /** The checkpoint prepared for the backup's one operation (rolled back if the backup fails); its
   *  shape is the driver's (`checkpoint` is the checkpoint itself). */
  prepared: v.optional(v.looseObject({ checkpoint: v.looseObject({ name: text({ min: 1, max: 4096 }) }) })),
  /** True once the one operation ran: the hypervisor then holds the jobs, bitmaps and the prepared checkpoint. */
  executed: v.boolean(),
  /**
   * Set when the backup ended without cleaning the hypervisor up (its QMP connection dropped): the
   * lock stays, and counts as stale although its process lives, so the next command or
   * backup-cancel cleans QEMU and the files up.
   */
  abandoned: v.optional(text({ max: 4096 })),
  disks: list(journalDiskSchema, { max: 256 }),
  progress: list(record({ disk: text({ max: 256 }), done: size(), total: size() }), { max: 256 }),
  log: list(text({ max: 100_000 }), { max: 10_000 }),
  strategy: v.optional(strategyJournalSchema),
});
export type BackupJournal = Omit<v.InferOutput<typeof backupJournalSchema>, 'prepared'> & { prepared?: { checkpoint: { name: string } } };

/** Parses a lock file's text; throws naming the first thing wrong. */
export function parseJournal(textValue: string, source: string): BackupJournal {
  let raw: unknown;
  try {
    raw = JSON.parse(textValue);
  } catch (e) {
    throw new Error(`backup journal ${source} is not valid JSON: ${(e as Error).message}`);
  }
  try {
    return check(backupJournalSchema, raw, 'journal');
  } catch (e) {
    throw new Error(`backup journal ${source} is invalid: ${(e as Error).message}`);
  }
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

/**
 * The journal of the backup holding the lock, and whether its process is alive; undefined when
 * none. A journal that fails validation is returned as `invalid` (its reason) with no journal: it
 * is stale, and recovery acts on nothing it says (only the lock is removed; `*.partial` files are
 * swept by the next backup).
 */
export function readLock(repo: BackupRepository, vmId: string): { journal: BackupJournal; alive: boolean; invalid?: string } | undefined {
  const file = lockPath(repo, vmId);
  let journal: BackupJournal;
  const invalid = (why: string) => ({ journal: placeholderJournal(vmId, why), alive: false, invalid: why });
  try {
    journal = parseJournal(fs.readFileSync(file, 'utf8'), file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return invalid((e as Error).message);
  }
  if (journal.vmId !== vmId) return invalid(`backup journal ${file} is of VM ${JSON.stringify(journal.vmId)}, not ${JSON.stringify(vmId)}`);
  const sameHost = journal.host === os.hostname();
  const alive = journal.abandoned === undefined && (!sameHost || isProcessAlive(journal.pid, journal.startTicks));
  return { journal, alive };
}

/** Stands for a journal that failed validation: it names no backup, no disk and nothing in the hypervisor, so recovery touches nothing. */
export const UNKNOWN_BACKUP = '?';
function placeholderJournal(vmId: string, why: string): BackupJournal {
  return { pid: 0, host: os.hostname(), backupId: UNKNOWN_BACKUP, vmId, endpoint: '', startedAt: 0, updatedAt: 0, phase: 'preparing', kind: 'full', executed: false, disks: [], progress: [], log: [why] };
}

export class BackupLock {
  private staged = false;

  private constructor(
    private readonly file: string,
    private journalValue: BackupJournal,
  ) {}

  /** Takes the lock, or throws BackupBusyError (a live backup) or StaleBackupError (a dead one to recover first). */
  static acquire(repo: BackupRepository, init: Omit<BackupJournal, 'pid' | 'startTicks' | 'host' | 'updatedAt'>): BackupLock {
    repo.assertWritable('start a backup');
    const file = lockPath(repo, init.vmId);
    mkdirPrivate(path.dirname(file));
    const journal: BackupJournal = { ...init, pid: process.pid, startTicks: ownStartTime(), host: os.hostname(), updatedAt: Date.now() };
    try {
      createFileExclusive(file, JSON.stringify(journal, null, 2));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const held = readLock(repo, init.vmId);
      if (held?.alive) throw new BackupBusyError(held.journal);
      throw new StaleBackupError(held?.journal, held?.invalid);
    }
    return new BackupLock(file, journal);
  }

  get journal(): BackupJournal {
    return this.journalValue;
  }

  /** Applies `patch` and writes the journal (durably: file and folder synced). */
  update(patch: Partial<BackupJournal>): void {
    this.journalValue = { ...this.journalValue, ...patch, updatedAt: Date.now() };
    writeFileAtomic(this.file, JSON.stringify(this.journalValue, null, 2));
    this.staged = false;
  }

  /** Applies `patch` in memory only: it reaches the file with the next update (or flush). */
  stage(patch: Partial<BackupJournal>): void {
    this.journalValue = { ...this.journalValue, ...patch };
    this.staged = true;
  }

  /** True when staged changes wait for the next update. */
  get hasStaged(): boolean {
    return this.staged;
  }

  release(): void {
    if (this.journalValue.abandoned !== undefined) return;
    fs.rmSync(this.file, { force: true });
  }

  /** Leaves the lock in place as stale (the hypervisor could not be cleaned up): the next command or backup-cancel recovers from it. */
  abandon(reason: string): void {
    try {
      this.update({ abandoned: reason });
    } catch {
      // the journal could not be marked (a full disk): it stays as written, and is stale once this process ends
    }
  }
}

export class StaleBackupError extends Error {
  constructor(readonly journal: BackupJournal | undefined, readonly invalid?: string) {
    super(`an earlier backup${journal && !invalid ? ` (${journal.backupId}, process ${journal.pid})` : ''} did not finish and must be cleaned up first${invalid ? ` (${invalid})` : ''}`);
    this.name = 'StaleBackupError';
  }
}

/** Removes a stale lock (after its backup was rolled back). */
export function removeLock(repo: BackupRepository, vmId: string): void {
  fs.rmSync(lockPath(repo, vmId), { force: true });
}
