// The bench's valibot candidate: the subset of the contract in payloads.ts, with shared/schema.ts's glue.
import * as v from 'valibot';
import { args, check, list, matching, num, oneOf, optionalArg, record, size, text } from '../../shared/schema';
import type { Candidate } from './payloads';

const vmId = text({ min: 1, max: 512 });
const repoPath = text({ min: 1, max: 4096 });
const diskName = text({ min: 1, max: 256 });
const backupId = matching(/^\d{8}-\d{6}-\d{3}-[0-9a-f]{4}$/, 'a backup id');
const kind = oneOf('full', 'incremental', 'differential');
const layout = oneOf('independent', 'chained');
const pullCommon = {
  repo: optionalArg(repoPath), full: optionalArg(v.boolean()), since: optionalArg(text({ min: 1 })), checkpoint: optionalArg(text({ min: 1 })),
  noCheckpoint: optionalArg(v.boolean()), disks: optionalArg(list(diskName, { max: 256 })), fleeceDir: optionalArg(text({ min: 1 })),
  fleeceMaxMiB: optionalArg(num({ min: 1, max: 1024 ** 3 })),
};
const channels: Record<string, v.GenericSchema> = {
  'vm:info': args(vmId),
  'checkpoint:create': args(vmId, record({
    name: optionalArg(text()), description: optionalArg(text({ max: 65536 })),
    disks: optionalArg(list(record({ name: diskName, checkpoint: oneOf('bitmap', 'no') }), { max: 256 })), layout: optionalArg(layout),
  })),
  'backup:begin': args(vmId, record({
    repo: optionalArg(repoPath), full: optionalArg(v.boolean()), since: optionalArg(text({ min: 1 })), checkpoint: optionalArg(text({ min: 1 })),
    noCheckpoint: optionalArg(v.boolean()), disks: optionalArg(list(diskName, { max: 256 })), speedMiBps: optionalArg(num({ min: 0.001, max: 1_000_000 })),
  })),
  'restore:run': args(record({
    repo: optionalArg(repoPath), backup: text({ min: 1, max: 64 }),
    to: optionalArg(record({ disk: diskName, path: text({ min: 1 }), format: optionalArg(oneOf('qcow2', 'raw')) })),
    inPlace: optionalArg(list(record({ disk: diskName, image: text({ min: 1 }) }), { max: 256 })), noSafetyCopy: optionalArg(v.boolean()),
  })),
  'pull:export': args(vmId, record({ ...pullCommon, tcp: optionalArg(record({ host: text({ min: 1, max: 255 }), port: num({ min: 1, max: 65535, integer: true }), tlsDir: text({ min: 1 }) })) })),
  'dirtymap:get': args(vmId, diskName, text({ min: 1 }), optionalArg(num({ min: 1, max: 4096, integer: true }))),
};

const disk = v.pipe(
  record({
    name: diskName, kind, since: v.optional(text({ min: 1 })), base: v.optional(backupId), fallbackReason: v.optional(text()),
    image: matching(/^disks\/[^/]+\/[^/]+\.qcow2$/, 'disks/<disk>/<id>.qcow2'), backingFile: v.optional(matching(/^[^/]+\.qcow2$/, '<id>.qcow2')),
    virtualSize: size(), bytesCopied: size(), fileSize: size(), sha256: matching(/^[0-9a-f]{64}$/, '64 lower-case hex digits'),
    sourceImage: text(), sourceFormat: text({ min: 1, max: 64 }), sourceCompat: v.optional(text({ max: 16 })), sourceClusterSize: v.optional(size()),
    checkpointBitmap: v.boolean(),
  }),
  v.check((d) => d.kind === 'full' || Boolean(d.since && d.base && d.backingFile), (i) => `${(i.input as { kind: string }).kind} disk needs since, base and backingFile`),
  v.check((d) => d.kind !== 'full' || (!d.base && !d.backingFile), 'a full disk has no base'),
);
const manifest = record({
  format: oneOf('tidemark-backup'), version: v.literal(1), id: backupId,
  vm: record({ id: vmId, name: v.optional(text({ max: 512 })), uuid: v.optional(text({ max: 64 })) }),
  kind, since: v.optional(text({ min: 1 })), checkpoint: v.optional(text({ min: 1 })), layout: v.optional(layout),
  startedAt: size(), completedAt: size(), qemuVersion: text({ max: 64 }), tool: text({ max: 200 }),
  disks: v.pipe(list(disk, { min: 1, max: 256 }), v.check((ds) => new Set(ds.map((d) => d.name)).size === ds.length, 'a disk is listed twice')),
});
const checkpoint = record({
  name: text({ min: 1 }), description: v.optional(text({ max: 1024 * 1024 })), parent: v.optional(text()),
  creationTime: size(), createdAtMs: size(),
  disks: list(record({
    name: text({ min: 1 }), checkpoint: oneOf('bitmap', 'no'), bitmap: v.optional(text()), size: v.optional(num({ min: 0 })), incomplete: v.optional(text({ max: 8192 })),
  }), { max: 4096 }),
  layout, domainXml: v.optional(text({ max: 16 * 1024 * 1024 })),
});

export const candidate: Candidate = {
  name: 'valibot',
  parseArgs: (channel, a) => check(channels[channel]!, a, channel),
  parseManifest: (raw) => check(manifest, raw, 'manifest'),
  parseCheckpoint: (raw) => check(checkpoint, raw, 'c1.json'),
};
