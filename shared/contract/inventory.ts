// The contract, backup inventory (issue 12, items 5 and 6): what the backups view and the fleet
// overview read in one call each — a VM's backups with their verification history, failed
// attempts, unreadable manifests and the repository's usage; and every VM's last backup.
// The verification record is also the file format of REPO/vms/<vm-key>/verified/<id>.json.

import * as v from 'valibot';
import { args, list, num, optionalArg, record, text } from '../schema';
import type { BackupProblem } from './backups';
import { backupIdSchema, type BackupKind, type BackupRecord } from './manifest';
import { vmIdSchema } from './vm';

const repoPath = text({ min: 1, max: 4096 });
const bytes = () => num({ min: 0, integer: true });

/** What backup-verify checks of every layer of the chain up to the backup (electron/engine/backup/verify.ts). */
export const VERIFY_METHOD = 'every layer of the chain: file size, SHA-256 of all bytes, qcow2 header (size, backing file), qemu-img check';

/** The last verification of one backup, as backup-verify recorded it. */
export const verifyRecordSchema = record({
  backup: backupIdSchema,
  /** When the verification ended, ms since the epoch. */
  at: bytes(),
  durationMs: bytes(),
  ok: v.boolean(),
  /** What was checked (VERIFY_METHOD). */
  how: text({ max: 400 }),
  /** Layer files checked (the backup's own and those it builds on). */
  layers: bytes(),
  /** One line per problem found. */
  problems: list(text({ max: 4096 }), { max: 1000 }),
});
export type VerifyRecord = v.InferOutput<typeof verifyRecordSchema>;

/** A backup that was started and did not complete: its log is kept, no manifest was written. */
export interface FailedBackup {
  id: string;
  startedAt: number;
  /** When its log was written (the end of its roll-back). */
  endedAt: number;
  outcome: 'failed' | 'cancelled';
  /** The log's line that says why. */
  reason: string;
}

export interface RepositoryUsage {
  /** Sum of the repository's file sizes (what `du --apparent-size` says). */
  bytes: number;
  /** Bytes the files take on the file system (allocated blocks: qcow2 layers are sparse). */
  allocated: number;
  files: number;
  /** The file system holding the repository (statfs): its size, free bytes, bytes free for this user. */
  fsSize: number;
  fsFree: number;
  fsAvailable: number;
}

export interface BackupInventory {
  repo: string;
  /** False when the repository does not exist yet (nothing backed up to it). */
  exists: boolean;
  /** The VM's backups, oldest first. */
  backups: BackupRecord[];
  /** Manifests in the VM's folder that could not be read, with why. */
  problems: BackupProblem[];
  failed: FailedBackup[];
  /** The last verification of each backup, by backup id. */
  verified: Record<string, VerifyRecord>;
  usage?: RepositoryUsage;
  /** A backup of the VM runs now. */
  running: boolean;
}

/** One VM's backups in the fleet overview. */
export interface FleetBackupEntry {
  /** The VM's durable identity (the repository folder's VM). */
  identity: string;
  name?: string;
  /** The host's VM id, when the host lists the VM. */
  vmId?: string;
  backups: number;
  last?: { id: string; kind: BackupKind; startedAt: number; completedAt: number; verified?: VerifyRecord };
  /** The newest attempt: the last backup, or a later one that failed. */
  lastAttempt?: { id: string; at: number; outcome: 'succeeded' | 'failed' | 'cancelled'; reason?: string };
  running: boolean;
  /** Unreadable manifests in the VM's folder. */
  problems: number;
}

export interface FleetBackups {
  repo: string;
  exists: boolean;
  vms: FleetBackupEntry[];
}

export const inventoryArgs = {
  'backup:inventory': args(vmIdSchema, optionalArg(repoPath)),
  'backup:fleet': args(optionalArg(repoPath)),
};

export interface InventoryResults {
  'backup:inventory': BackupInventory;
  'backup:fleet': FleetBackups;
}

