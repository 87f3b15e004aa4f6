// The contract, backups and restore (issue 3): the channels' argument schemas and their results.
// The backup record itself (the manifest) is in ./manifest.ts.

import * as v from 'valibot';
import { args, list, num, oneOf, optionalArg, record, text } from '../schema';
import type { JobInfo } from './lab';
import { quiesceOptionSchema } from '../domain';
import { type BackupKind, type BackupRecord } from './manifest';
import { vmIdSchema as vmId } from './vm';

/** A backup repository directory (default: STATE/backups). */
export const repoPathSchema = text({ min: 1, max: 4096 });
export const diskNameSchema = text({ min: 1, max: 256 });
const repoPath = repoPathSchema;
const diskName = diskNameSchema;
const backupId = text({ min: 1, max: 64 });
const filePath = text({ min: 1, max: 4096 });

export const backupBeginOptionsSchema = record({
  /** The repository directory (default: STATE/backups; created on first use). */
  repo: optionalArg(repoPath),
  /** Full backup of every disk. */
  full: optionalArg(v.boolean()),
  /** Changes since this checkpoint (default: since the newest checkpoint that has a backup, else full). */
  since: optionalArg(text({ min: 1 })),
  /** Name of the checkpoint created with the backup (default: the backup id). */
  checkpoint: optionalArg(text({ min: 1 })),
  /** Create no checkpoint. */
  noCheckpoint: optionalArg(v.boolean()),
  /** Disks to back up (default: all). */
  disks: optionalArg(list(diskName, { max: 256 })),
  /** Speed limit per disk, MiB/s. */
  speedMiBps: optionalArg(num({ min: 0.001, max: 1_000_000 })),
  /** Guest agent freeze around the backup's transaction. */
  quiesce: optionalArg(quiesceOptionSchema),
});
export type BackupBeginOptions = v.InferOutput<typeof backupBeginOptionsSchema>;

export const restoreRequestSchema = record({
  /** The repository (default: STATE/backups). */
  repo: optionalArg(repoPath),
  backup: backupId,
  /** One disk to a new image (never overwrites). Format: explicit, else .raw/.img → raw, else qcow2. */
  to: optionalArg(record({ disk: diskName, path: filePath, format: optionalArg(oneOf('qcow2', 'raw')) })),
  /** Disks over the images of a stopped VM. All of the backup's checkpointed disks → a new branch under its checkpoint. */
  inPlace: optionalArg(list(record({ disk: diskName, image: filePath }), { max: 256 })),
  /** In place: do not keep the old image as IMAGE.pre-restore-<time>. */
  noSafetyCopy: optionalArg(v.boolean()),
});
export type RestoreRequest = v.InferOutput<typeof restoreRequestSchema>;

export interface BackupBeginResult {
  job: JobInfo;
  backup: BackupRecord;
}

export interface BackupProblem {
  file: string;
  message: string;
}

export interface BackupListing {
  repo: string;
  /** Oldest first. */
  backups: BackupRecord[];
  /** Manifests that could not be read. */
  problems: BackupProblem[];
}

export interface BackupDetails {
  repo: string;
  backup: BackupRecord;
  /** Per disk, the backups whose layers make up this point, top first (this backup … its full). */
  chains: { disk: string; layers: string[] }[];
  /** Backups that build on this one (backup-delete refuses to break them unless told). */
  dependents: string[];
  /** The job log written with the backup. */
  log: string[];
}

export interface BackupLayerCheck {
  backup: string;
  disk: string;
  file: string;
  ok: boolean;
  problems: string[];
}

export interface BackupVerifyReport {
  ok: boolean;
  backups: { id: string; ok: boolean; disks: { disk: string; ok: boolean; layers: BackupLayerCheck[]; problems: string[] }[] }[];
  /** Unreadable manifests and layer files no manifest refers to. */
  problems: BackupProblem[];
}

export interface BackupStatusInfo {
  /** A backup runs (its process is alive). */
  running: boolean;
  /** A backup's process died before it finished: the next backup or backup-cancel cleans up. */
  stale: boolean;
  backupId?: string;
  phase?: string;
  pid?: number;
  startedAt?: number;
  kind?: BackupKind;
  since?: string;
  checkpoint?: string;
  /** Per disk: bytes copied of bytes to copy (live from QEMU when connected). */
  progress: { disk: string; done: number; total: number }[];
  log: string[];
}

export interface RestoreOutcome {
  job: JobInfo;
  backup: string;
  restored: { disk: string; path: string; format: 'qcow2' | 'raw'; virtualSize: number; safetyCopy?: string }[];
  /** Set when an in-place restore of every checkpointed disk opened a new branch. */
  branch?: { checkpoint: string; parent: string };
  /** Disks whose next backup will be full, with why. */
  needsFull: Record<string, string>;
}

export const backupArgs = {
  'backup:begin': args(vmId, backupBeginOptionsSchema),
  'backup:list': args(optionalArg(repoPath), optionalArg(text({ min: 1, max: 512 }))),
  'backup:info': args(backupId, optionalArg(repoPath)),
  'backup:verify': args(optionalArg(repoPath), optionalArg(list(backupId, { max: 10_000 }))),
  'backup:delete': args(backupId, optionalArg(record({ repo: optionalArg(repoPath), withDependents: optionalArg(v.boolean()) }))),
  'backup:status': args(vmId, optionalArg(repoPath)),
  'backup:cancel': args(vmId, optionalArg(repoPath)),
  'restore:run': args(restoreRequestSchema),
};

export interface BackupResults {
  'backup:begin': BackupBeginResult;
  'backup:list': BackupListing;
  'backup:info': BackupDetails;
  'backup:verify': BackupVerifyReport;
  'backup:delete': { deleted: string[] };
  'backup:status': BackupStatusInfo;
  'backup:cancel': { backupId: string; how: 'cancelled' | 'cleaned-up' };
  'restore:run': RestoreOutcome;
}
