// The backup manifest: one JSON file per backup, written last and atomically, so a manifest never
// points at a partial image. Its schema is part of the contract (shared/contract/manifest.ts:
// BackupRecord); docs/backup-manifest.schema.json is generated from it. Parsing rejects anything
// else with an error naming the file and the field.

import * as v from 'valibot';
import { BACKUP_ID_RE, backupIdSchema, backupRecordSchema, type BackupDiskRecord, type BackupKind, type BackupRecord } from '../../../shared/contract';
import { check, list, record, size, text } from '../../../shared/schema';

export { BACKUP_ID_RE, MANIFEST_FORMAT, MANIFEST_VERSION } from '../../../shared/contract';
export type { BackupKind };
export type BackupManifestDisk = BackupDiskRecord;
export type BackupManifest = BackupRecord;

/** Marks a checkpoint created by a restore as the same point in time as a backup (a new branch). */
const branchPointSchema = record({
  format: v.literal('tidemark-branch-point'),
  version: v.literal(1, (i) => `branch point version ${JSON.stringify(i.input)} is not supported`),
  /** The fresh checkpoint whose bitmaps started at the restore. */
  checkpoint: text({ min: 1 }),
  /** The checkpoint the restored backup marks; the new one is its child. */
  parent: v.optional(text({ min: 1 })),
  backup: backupIdSchema,
  disks: list(text({ min: 1, max: 256 }), { max: 256 }),
  createdAt: size(),
});
export type BranchPoint = v.InferOutput<typeof branchPointSchema>;

export function validateBackupId(id: unknown): string {
  if (typeof id !== 'string' || !BACKUP_ID_RE.test(id)) {
    throw new Error(`backup id ${JSON.stringify(id)} is not a Tidemark backup id (YYYYMMDD-HHMMSS-mmm-xxxx, as backup-list shows)`);
  }
  return id;
}

export function newBackupId(now: Date = new Date(), random: () => number = Math.random): string {
  const p = (n: number, w: number) => String(n).padStart(w, '0');
  const date = `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1, 2)}${p(now.getUTCDate(), 2)}`;
  const time = `${p(now.getUTCHours(), 2)}${p(now.getUTCMinutes(), 2)}${p(now.getUTCSeconds(), 2)}`;
  const rnd = Math.floor(random() * 0x10000).toString(16).padStart(4, '0');
  return `${date}-${time}-${p(now.getUTCMilliseconds(), 3)}-${rnd}`;
}

/** Parses and checks a manifest; the error names the file and the offending field. */
export function parseManifest(text: string, source: string): BackupManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`manifest ${source} is not valid JSON: ${(e as Error).message}`);
  }
  try {
    return check(backupRecordSchema, raw, 'manifest');
  } catch (e) {
    throw new Error(`manifest ${source} is invalid: ${(e as Error).message}`);
  }
}

export function serializeManifest(m: BackupManifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}

export function parseBranchPoint(text: string, source: string): BranchPoint {
  try {
    return check(branchPointSchema, JSON.parse(text), 'branch point');
  } catch (e) {
    throw new Error(`branch point ${source} is invalid: ${(e as Error).message}`);
  }
}
