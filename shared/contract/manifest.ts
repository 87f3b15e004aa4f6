// The backup manifest (issue 3): one JSON file per backup, REPO/vms/<vm-key>/manifests/<id>.json,
// and the backups the contract returns (BackupRecord). This schema is the only definition:
// electron/engine/backup/manifest.ts parses with it, and docs/backup-manifest.schema.json is
// generated from it (npx tsx scripts/gen-manifest-schema.ts; a test fails when the file is stale).
// `v.description` and `v.metadata` only feed that JSON Schema; they check nothing.

import * as v from 'valibot';
import { bitmapLayoutSchema } from '../domain';
import { matching, num, oneOf, record, text } from '../schema';

export const MANIFEST_FORMAT = 'tidemark-backup';
/** The version written. Version 1 manifests (SHA-256 only) are still read. */
export const MANIFEST_VERSION = 2;
export const MANIFEST_VERSIONS_READ = [1, 2] as const;

/** Backup ids are "YYYYMMDD-HHMMSS-mmm-xxxx" (UTC time + 4 random hex digits): sortable and safe as file names. */
export const BACKUP_ID_RE = /^[0-9]{8}-[0-9]{6}-[0-9]{3}-[0-9a-f]{4}$/;

export const backupIdSchema = matching(BACKUP_ID_RE, 'a backup id', 64);
export const backupKindSchema = oneOf('full', 'incremental', 'differential');
export type BackupKind = v.InferOutput<typeof backupKindSchema>;

const described = <S extends v.GenericSchema>(schema: S, description: string) => v.pipe(schema, v.description(description));
const bytes = (description: string) => described(num({ min: 0, integer: true }), description);
const checkpointName = text({ min: 1, max: 4096 });

/** One disk's layer in a backup: its entry in the manifest. */
export const backupDiskSchema = v.pipe(
  record({
    name: described(text({ min: 1, max: 256 }), "The disk's name in Tidemark (its guest device id)."),
    kind: described(backupKindSchema, 'full: the whole disk; incremental/differential: the changes since `since`, on top of backup `base`.'),
    since: v.optional(described(checkpointName, 'Checkpoint whose changes this layer holds (incremental and differential).')),
    base: v.optional(described(backupIdSchema, "The backup whose layer of this disk is this layer's backing file.")),
    fallbackReason: v.optional(described(text(), 'Why the disk was backed up in full although changes since a checkpoint were asked for (bitmap missing or inconsistent, new or resized disk, base backup gone, restored in place, …).')),
    image: described(matching(/^disks\/(?!\.\.?\/)[^/]+\/[^/]+\.qcow2$/, 'disks/<disk>/<id>.qcow2'), "The layer file, relative to the VM's directory in the repository: disks/<disk>/<id>.qcow2."),
    backingFile: v.optional(described(matching(/^[^/]+\.qcow2$/, '<id>.qcow2'), 'The backing file exactly as written in the layer\'s qcow2 header: "<base>.qcow2", relative to the layer\'s directory.')),
    virtualSize: bytes('Disk size as the guest sees it, in bytes.'),
    bytesCopied: bytes('Bytes the backup job had to copy: the dirty bytes for incremental and differential, the allocated bytes for a full backup of a disk without a backing file.'),
    fileSize: bytes('Size of the layer file in bytes.'),
    blake3: v.optional(described(matching(/^[0-9a-f]{64}$/, '64 lower-case hex digits'), 'BLAKE3 (256-bit) of every byte of the layer file (data and qcow2 metadata), taken after it was closed. backup-verify and every restore check it. Layers written by version 2 have it.')),
    sha256: v.optional(described(matching(/^[0-9a-f]{64}$/, '64 lower-case hex digits'), 'SHA-256 of every byte of the layer file, as blake3. Layers of version 1 manifests have it.')),
    sourceImage: described(text(), "The disk's image file at backup time (a hint for in-place restores)."),
    sourceFormat: text({ min: 1, max: 64 }),
    sourceCompat: v.optional(described(text({ max: 16 }), 'qcow2 compat level of the source ("1.1" or "0.10").')),
    sourceClusterSize: v.optional(num({ min: 0, integer: true })),
    checkpointBitmap: described(v.boolean(), "True when the backup's checkpoint has a bitmap on this disk, so later backups of it can be incremental from this point."),
  }),
  v.check((d) => (d.blake3 === undefined) !== (d.sha256 === undefined), (i) => `${diskLabel(i.input)} needs exactly one checksum (blake3 or sha256)`),
  v.check((d) => d.kind === 'full' || Boolean(d.since && d.base && d.backingFile), (i) => `${diskLabel(i.input)} needs since, base and backingFile`),
  v.check((d) => d.kind !== 'full' || (d.base === undefined && d.backingFile === undefined), (i) => `${diskLabel(i.input)} has a base`),
  v.check((d) => d.base === undefined || d.backingFile === `${d.base}.qcow2`, (i) => `${diskLabel(i.input)} backingFile does not match its base`),
  // The same rules for the JSON Schema (the backingFile/base match is beyond it).
  v.metadata({
    description: 'One disk\'s layer. Incremental and differential layers name since, base and backingFile (which is "<base>.qcow2"); full layers have neither base nor backingFile.',
    allOf: [{
      if: { properties: { kind: { enum: ['incremental', 'differential'] } } },
      then: { required: ['since', 'base', 'backingFile'] },
      else: { not: { anyOf: [{ required: ['base'] }, { required: ['backingFile'] }] } },
    }, { oneOf: [{ required: ['blake3'] }, { required: ['sha256'] }] }],
  }),
);
export type BackupDiskRecord = v.InferOutput<typeof backupDiskSchema>;

export type ChecksumAlgorithm = 'blake3' | 'sha256';

/** The checksum fields of a layer's entry: exactly one is set. */
export interface RecordedChecksum {
  sha256?: string;
  blake3?: string;
}

/** The algorithm and digest a layer's entry records. */
export function recordedChecksum(d: RecordedChecksum): { algorithm: ChecksumAlgorithm; digest: string } {
  if (d.blake3 !== undefined) return { algorithm: 'blake3', digest: d.blake3 };
  if (d.sha256 !== undefined) return { algorithm: 'sha256', digest: d.sha256 };
  throw new Error('the manifest entry records no checksum');
}

/** "blake3 0123456789abcdef" for logs and tables. */
export function shortChecksum(d: RecordedChecksum, hexDigits = 16): string {
  const c = recordedChecksum(d);
  return `${c.algorithm} ${c.digest.slice(0, hexDigits)}`;
}

function diskLabel(d: unknown): string {
  const { kind, name } = d as { kind: string; name: string };
  return `${kind} disk ${JSON.stringify(name)}`;
}

function duplicateName(disks: readonly { name: string }[]): string | undefined {
  const seen = new Set<string>();
  for (const { name } of disks) {
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}

/** A backup: its manifest, written last and atomically (temporary file, fsync, rename). */
export const backupRecordSchema = v.pipe(
  record({
    format: described(oneOf(MANIFEST_FORMAT), 'Marks the file as a Tidemark backup manifest.'),
    version: described(
      v.picklist(MANIFEST_VERSIONS_READ, (i) => `manifest version ${JSON.stringify(i.input)} is not supported (this Tidemark reads versions ${MANIFEST_VERSIONS_READ.join(' and ')})`),
      'Manifest format version; readers refuse versions they do not know. 2 added BLAKE3 layer checksums; 1 has SHA-256 only.',
    ),
    id: described(backupIdSchema, 'The backup id: UTC time of the start plus 4 random hex digits.'),
    vm: described(
      record({
        id: described(text({ min: 1, max: 512 }), "Tidemark's VM id: the UUID when QEMU has one, else the name, else the QMP endpoint."),
        name: v.optional(text({ max: 512 })),
        uuid: v.optional(text({ max: 64 })),
      }),
      "The VM's identity when the backup was taken.",
    ),
    kind: described(backupKindSchema, 'What was asked for (after resolving the default); disks[].kind says what each disk got.'),
    since: v.optional(described(checkpointName, 'Base checkpoint asked for (incremental and differential).')),
    checkpoint: v.optional(described(checkpointName, "The checkpoint created in the backup's own transaction: it marks the backup's point in time. Absent for --no-checkpoint.")),
    layout: v.optional(described(bitmapLayoutSchema, "The VM's bitmap layout at the time.")),
    startedAt: bytes('Milliseconds since the epoch.'),
    completedAt: bytes('Milliseconds since the epoch.'),
    qemuVersion: text({ max: 64 }),
    tool: described(text({ max: 200 }), 'The program that wrote the backup, e.g. "tidemark 0.1.0".'),
    disks: v.pipe(
      v.array(backupDiskSchema),
      v.description('One entry per disk backed up; disk names are unique.'),
      v.minLength(1, 'the backup lists no disks'),
      v.maxLength(256),
      v.check((disks) => duplicateName(disks) === undefined, (i) => `disk ${JSON.stringify(duplicateName(i.input as { name: string }[]))} is listed twice`),
    ),
  }),
  v.check((m) => m.version !== 1 || m.disks.every((d) => d.sha256 !== undefined), 'a version 1 manifest records SHA-256 checksums only (blake3 came with version 2)'),
  v.metadata({
    allOf: [{ if: { properties: { version: { const: 1 } } }, then: { properties: { disks: { items: { not: { required: ['blake3'] } } } } } }],
    $id: 'https://tidemark.invalid/schemas/backup-manifest-2.json',
    title: 'Tidemark backup manifest, versions 1 and 2',
    description: 'One file per backup: REPO/vms/<vm-key>/manifests/<id>.json. Written last and atomically (temporary file, fsync, rename), so a manifest never points at a partial image. The layers it names are plain qcow2 files that open with stock qemu-img and QEMU. Generated from shared/contract/manifest.ts: do not edit.',
  }),
);
export type BackupRecord = v.InferOutput<typeof backupRecordSchema>;
