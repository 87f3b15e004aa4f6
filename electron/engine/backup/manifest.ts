// The backup manifest: one JSON file per backup, written last and atomically, so a manifest never
// points at a partial image. docs/backup-manifest.schema.json documents the same shape; the
// runtime check here rejects anything else with an error naming the field.

import type { BackupDiskRecord, BackupKind, BackupRecord } from '../../../shared/contract';
import type { BitmapLayout } from '../../../shared/domain';
import { v, ValidationError, type Validator } from '../../../shared/validate';

export const MANIFEST_FORMAT = 'tidemark-backup';
export const MANIFEST_VERSION = 1;

// The manifest's shape is part of the contract (the renderer shows backups): BackupRecord.
export type { BackupKind };
export type BackupManifestDisk = BackupDiskRecord;
export type BackupManifest = BackupRecord;

/** Marks a checkpoint created by a restore as the same point in time as a backup (a new branch). */
export interface BranchPoint {
  format: 'tidemark-branch-point';
  version: 1;
  /** The fresh checkpoint whose bitmaps started at the restore. */
  checkpoint: string;
  /** The checkpoint the restored backup marks; the new one is its child. */
  parent?: string;
  backup: string;
  disks: string[];
  createdAt: number;
}

/** Backup ids are "YYYYMMDD-HHMMSS-mmm-xxxx" (UTC time + 4 random hex digits): sortable and safe as file names. */
export const BACKUP_ID_RE = /^\d{8}-\d{6}-\d{3}-[0-9a-f]{4}$/;

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

const pattern = (re: RegExp, what: string): Validator<string> => (x, path) => {
  const s = v.string({ max: 4096 })(x, path);
  if (!re.test(s)) throw new ValidationError(`${path}: expected ${what}, got ${JSON.stringify(s).slice(0, 80)}`);
  return s;
};
const size = v.number({ min: 0, integer: true });
const text = v.string({ min: 1, max: 4096 });
const kind = v.literal<BackupKind>('full', 'incremental', 'differential');

const diskValidator = v.object({
  name: v.string({ min: 1, max: 256 }),
  kind,
  since: v.optional(text),
  base: v.optional(pattern(BACKUP_ID_RE, 'a backup id')),
  fallbackReason: v.optional(v.string({ max: 4096 })),
  image: pattern(/^disks\/[^/]+\/[^/]+\.qcow2$/, 'disks/<disk>/<id>.qcow2'),
  backingFile: v.optional(pattern(/^[^/]+\.qcow2$/, '<id>.qcow2')),
  virtualSize: size,
  bytesCopied: size,
  fileSize: size,
  sha256: pattern(/^[0-9a-f]{64}$/, '64 lower-case hex digits'),
  sourceImage: v.string({ max: 4096 }),
  sourceFormat: v.string({ min: 1, max: 64 }),
  sourceCompat: v.optional(v.string({ max: 16 })),
  sourceClusterSize: v.optional(size),
  checkpointBitmap: v.boolean(),
});

const manifestValidator = v.object({
  format: v.literal(MANIFEST_FORMAT),
  version: (x, path) => {
    if (x !== MANIFEST_VERSION) throw new ValidationError(`${path}: manifest version ${JSON.stringify(x)} is not supported (this Tidemark reads version ${MANIFEST_VERSION})`);
    return MANIFEST_VERSION as typeof MANIFEST_VERSION;
  },
  id: pattern(BACKUP_ID_RE, 'a backup id'),
  vm: v.object({ id: v.string({ min: 1, max: 512 }), name: v.optional(v.string({ max: 512 })), uuid: v.optional(v.string({ max: 64 })) }),
  kind,
  since: v.optional(text),
  checkpoint: v.optional(text),
  layout: v.optional(v.literal<BitmapLayout>('independent', 'chained')),
  startedAt: size,
  completedAt: size,
  qemuVersion: v.string({ max: 64 }),
  tool: v.string({ max: 200 }),
  disks: v.array(diskValidator, { max: 256 }),
});

/** Parses and checks a manifest; the error names the file and the offending field. */
export function parseManifest(text: string, source: string): BackupManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`manifest ${source} is not valid JSON: ${(e as Error).message}`);
  }
  let m: BackupManifest;
  try {
    m = manifestValidator(raw, 'manifest') as BackupManifest;
  } catch (e) {
    throw new Error(`manifest ${source} is invalid: ${(e as Error).message}`);
  }
  if (m.disks.length === 0) throw new Error(`manifest ${source} is invalid: it lists no disks`);
  const names = new Set<string>();
  for (const d of m.disks) {
    if (names.has(d.name)) throw new Error(`manifest ${source} is invalid: disk ${JSON.stringify(d.name)} is listed twice`);
    names.add(d.name);
    if (d.kind !== 'full' && (!d.since || !d.base || !d.backingFile)) {
      throw new Error(`manifest ${source} is invalid: ${d.kind} disk ${JSON.stringify(d.name)} needs since, base and backingFile`);
    }
    if (d.kind === 'full' && (d.base || d.backingFile)) throw new Error(`manifest ${source} is invalid: full disk ${JSON.stringify(d.name)} has a base`);
    if (d.base && d.backingFile !== `${d.base}.qcow2`) throw new Error(`manifest ${source} is invalid: disk ${JSON.stringify(d.name)} backingFile does not match its base`);
  }
  return m;
}

export function serializeManifest(m: BackupManifest): string {
  return JSON.stringify(m, null, 2) + '\n';
}

const branchValidator = v.object({
  format: v.literal('tidemark-branch-point'),
  version: (x, path) => {
    if (x !== 1) throw new ValidationError(`${path}: branch point version ${JSON.stringify(x)} is not supported`);
    return 1 as const;
  },
  checkpoint: text,
  parent: v.optional(text),
  backup: pattern(BACKUP_ID_RE, 'a backup id'),
  disks: v.array(v.string({ min: 1, max: 256 }), { max: 256 }),
  createdAt: size,
});

export function parseBranchPoint(text: string, source: string): BranchPoint {
  try {
    return branchValidator(JSON.parse(text), 'branch point') as BranchPoint;
  } catch (e) {
    throw new Error(`branch point ${source} is invalid: ${(e as Error).message}`);
  }
}
