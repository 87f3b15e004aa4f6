// Manifests: the runtime check, ids, and agreement with the published JSON Schema.

import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { newBackupId, parseBranchPoint, parseManifest, serializeManifest, validateBackupId, type BackupManifest } from './manifest';

const SCHEMA = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', '..', 'docs', 'backup-manifest.schema.json'), 'utf8')) as object;

function sampleManifest(over: Partial<BackupManifest> = {}): BackupManifest {
  return {
    format: 'tidemark-backup',
    version: 1,
    id: '20261123-030215-123-a1b2',
    vm: { id: '6f1c-uuid', name: 'demo', uuid: '6f1c-uuid' },
    kind: 'incremental',
    since: 'c1',
    checkpoint: '20261123-030215-123-a1b2',
    layout: 'chained',
    startedAt: 1795402935123,
    completedAt: 1795402936000,
    qemuVersion: '7.2.22',
    tool: 'tidemark 0.1.0',
    disks: [
      {
        name: 'vda', kind: 'incremental', since: 'c1', base: '20261123-020000-000-0000', image: 'disks/vda/20261123-030215-123-a1b2.qcow2',
        backingFile: '20261123-020000-000-0000.qcow2', virtualSize: 1 << 30, bytesCopied: 65536, fileSize: 458752, sha256: 'a'.repeat(64),
        sourceImage: '/var/lib/vm/vda.qcow2', sourceFormat: 'qcow2', sourceCompat: '1.1', sourceClusterSize: 65536, checkpointBitmap: true,
      },
      {
        name: 'vdc', kind: 'full', fallbackReason: 'the disk cannot hold bitmaps', image: 'disks/vdc/20261123-030215-123-a1b2.qcow2',
        virtualSize: 1 << 26, bytesCopied: 0, fileSize: 196608, sha256: 'b'.repeat(64), sourceImage: '/var/lib/vm/vdc.qcow2', sourceFormat: 'qcow2', checkpointBitmap: false,
      },
    ],
    ...over,
  };
}

const ajv = new Ajv({ allErrors: true });
const schemaValid = ajv.compile(SCHEMA);

function mutate(f: (m: Record<string, unknown> & { disks: Record<string, unknown>[] }) => void): string {
  const m = JSON.parse(serializeManifest(sampleManifest())) as Record<string, unknown> & { disks: Record<string, unknown>[] };
  f(m);
  return JSON.stringify(m);
}

describe('manifest', () => {
  it('round-trips and matches the JSON Schema', () => {
    const m = sampleManifest();
    expect(parseManifest(serializeManifest(m), 'x.json')).toEqual(m);
    expect(schemaValid(JSON.parse(serializeManifest(m))), JSON.stringify(schemaValid.errors)).toBe(true);
  });

  it.each([
    ['not JSON', () => '{', /manifest x.json is not valid JSON/],
    ['another format', () => mutate((m) => (m.format = 'other')), /manifest\.format: expected one of "tidemark-backup"/],
    ['a newer version', () => mutate((m) => (m.version = 3)), /manifest version 3 is not supported \(this Tidemark reads versions 1 and 2\)/],
    ['a bad checksum', () => mutate((m) => (m.disks[0]!.sha256 = 'xyz')), /manifest\.disks\[0\]\.sha256: expected 64 lower-case hex digits/],
    ['an image outside disks/', () => mutate((m) => (m.disks[0]!.image = '../../etc/passwd')), /manifest\.disks\[0\]\.image: expected disks\/<disk>\/<id>\.qcow2/],
    ['a backing file with a path', () => mutate((m) => (m.disks[0]!.backingFile = '/abs/x.qcow2')), /backingFile: expected <id>\.qcow2/],
    ['an incremental without base', () => mutate((m) => { delete m.disks[0]!.base; delete m.disks[0]!.backingFile; }), /incremental disk "vda" needs since, base and backingFile/],
    ['a full with a base', () => mutate((m) => (m.disks[1]!.base = '20261123-020000-000-0000')), /full disk "vdc" has a base/],
    ['an unknown field', () => mutate((m) => (m.extra = 1)), /unexpected field "extra"/],
    ['a negative size', () => mutate((m) => (m.disks[0]!.fileSize = -1)), /fileSize: must be at least 0/],
    ['no disks', () => mutate((m) => (m.disks = [])), /lists no disks/],
    ['a disk twice', () => mutate((m) => (m.disks[1] = { ...m.disks[0]! })), /disk "vda" is listed twice/],
    ['a layer with two checksums', () => mutate((m) => (m.disks[0]!.blake3 = 'c'.repeat(64))), /incremental disk "vda" needs exactly one checksum \(blake3 or sha256\)/],
    ['a layer with no checksum', () => mutate((m) => delete m.disks[1]!.sha256), /full disk "vdc" needs exactly one checksum/],
    ['a bad BLAKE3', () => mutate((m) => { m.version = 2; delete m.disks[0]!.sha256; m.disks[0]!.blake3 = 'C'.repeat(64); }), /manifest\.disks\[0\]\.blake3: expected 64 lower-case hex digits/],
    ['BLAKE3 in a version 1 manifest', () => mutate((m) => { delete m.disks[0]!.sha256; m.disks[0]!.blake3 = 'c'.repeat(64); }), /a version 1 manifest records SHA-256 checksums only/],
  ])('rejects %s with an error naming the field, as the schema does', (_what, make, message) => {
    const text = make();
    expect(() => parseManifest(text, 'x.json')).toThrow(message);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return; // not JSON at all: nothing for the schema to judge
    }
    // "a disk twice" is beyond JSON Schema (uniqueness by name); everything else the schema rejects too.
    if (!/listed twice/.test(String(message))) expect(schemaValid(raw)).toBe(false);
  });

  it('version 2 holds BLAKE3 and SHA-256 layers side by side, and matches the JSON Schema', () => {
    const base = sampleManifest();
    const m = sampleManifest({ version: 2, disks: [{ ...base.disks[0]!, sha256: undefined, blake3: 'c'.repeat(64) }, base.disks[1]!] });
    delete m.disks[0]!.sha256;
    expect(parseManifest(serializeManifest(m), 'x.json')).toEqual(m);
    expect(schemaValid(JSON.parse(serializeManifest(m))), JSON.stringify(schemaValid.errors)).toBe(true);
  });

  it('backup ids sort by time and are checked', () => {
    const a = newBackupId(new Date(Date.UTC(2026, 10, 23, 3, 2, 15, 7)), () => 0.5);
    expect(a).toBe('20261123-030215-007-8000');
    expect(newBackupId(new Date(Date.UTC(2026, 10, 23, 3, 2, 15, 8))) > a).toBe(true);
    expect(validateBackupId(a)).toBe(a);
    expect(() => validateBackupId('../x')).toThrow('backup id "../x" is not a Tidemark backup id (YYYYMMDD-HHMMSS-mmm-xxxx, as backup-list shows)');
  });

  it('branch points are checked', () => {
    const bp = { format: 'tidemark-branch-point', version: 1, checkpoint: 'r1', parent: 'c1', backup: '20261123-030215-123-a1b2', disks: ['vda'], createdAt: 1 };
    expect(parseBranchPoint(JSON.stringify(bp), 'b.json')).toEqual(bp);
    expect(() => parseBranchPoint(JSON.stringify({ ...bp, backup: 'nope' }), 'b.json')).toThrow(/branch point b\.json is invalid: .*backup: expected a backup id/);
  });
});
