// The bench's zod/mini (v4, functional API) candidate: the same schemas as valibot.ts.
import * as z from 'zod/mini';
import type { Candidate } from './payloads';
import { describeZodIssue } from './zod-issues';

const isPlain = (x: unknown) => typeof x === 'object' && x !== null && !Array.isArray(x) && [Object.prototype, null].includes(Object.getPrototypeOf(x));
const record = <S extends z.core.$ZodLooseShape>(shape: S) => z.pipe(z.custom<object>(isPlain, 'expected a plain object'), z.strictObject(shape));
const optionalArg = <S extends z.ZodMiniType>(s: S) => z.pipe(z.nullish(s), z.transform((x) => x ?? undefined));
const text = (o: { min?: number; max?: number } = {}) => z.string().check(z.minLength(o.min ?? 0), z.maxLength(o.max ?? 4096));
const num = (o: { min?: number; max?: number; integer?: boolean } = {}) =>
  (o.integer ? z.int() : z.number()).check(...(o.min !== undefined ? [z.gte(o.min)] : []), ...(o.max !== undefined ? [z.lte(o.max)] : []));
const size = () => num({ min: 0, integer: true });
const list = <S extends z.ZodMiniType>(s: S, o: { min?: number; max: number }) => z.array(s).check(z.minLength(o.min ?? 0), z.maxLength(o.max));
const matching = (re: RegExp, what: string) => z.string().check(z.maxLength(4096), z.regex(re, `expected ${what}`));

const vmId = text({ min: 1, max: 512 });
const repoPath = text({ min: 1 });
const diskName = text({ min: 1, max: 256 });
const backupId = matching(/^\d{8}-\d{6}-\d{3}-[0-9a-f]{4}$/, 'a backup id');
const kind = z.enum(['full', 'incremental', 'differential']);
const layout = z.enum(['independent', 'chained']);
const pullCommon = {
  repo: optionalArg(repoPath), full: optionalArg(z.boolean()), since: optionalArg(text({ min: 1 })), checkpoint: optionalArg(text({ min: 1 })),
  noCheckpoint: optionalArg(z.boolean()), disks: optionalArg(list(diskName, { max: 256 })), fleeceDir: optionalArg(text({ min: 1 })),
  fleeceMaxMiB: optionalArg(num({ min: 1, max: 1024 ** 3 })),
};
const channels: Record<string, z.ZodMiniType> = {
  'vm:info': z.tuple([vmId]),
  'checkpoint:create': z.tuple([vmId, record({
    name: optionalArg(text()), description: optionalArg(text({ max: 65536 })),
    disks: optionalArg(list(record({ name: diskName, checkpoint: z.enum(['bitmap', 'no']) }), { max: 256 })), layout: optionalArg(layout),
  })]),
  'backup:begin': z.tuple([vmId, record({
    repo: optionalArg(repoPath), full: optionalArg(z.boolean()), since: optionalArg(text({ min: 1 })), checkpoint: optionalArg(text({ min: 1 })),
    noCheckpoint: optionalArg(z.boolean()), disks: optionalArg(list(diskName, { max: 256 })), speedMiBps: optionalArg(num({ min: 0.001, max: 1_000_000 })),
  })]),
  'restore:run': z.tuple([record({
    repo: optionalArg(repoPath), backup: text({ min: 1, max: 64 }),
    to: optionalArg(record({ disk: diskName, path: text({ min: 1 }), format: optionalArg(z.enum(['qcow2', 'raw'])) })),
    inPlace: optionalArg(list(record({ disk: diskName, image: text({ min: 1 }) }), { max: 256 })), noSafetyCopy: optionalArg(z.boolean()),
  })]),
  'pull:export': z.tuple([vmId, record({ ...pullCommon, tcp: optionalArg(record({ host: text({ min: 1, max: 255 }), port: num({ min: 1, max: 65535, integer: true }), tlsDir: text({ min: 1 }) })) })]),
  'dirtymap:get': z.tuple([vmId, diskName, text({ min: 1 }), optionalArg(num({ min: 1, max: 4096, integer: true }))]),
};

const disk = z.pipe(z.custom<object>(isPlain, 'expected a plain object'), z.strictObject({
  name: diskName, kind, since: z.optional(text({ min: 1 })), base: z.optional(backupId), fallbackReason: z.optional(text()),
  image: matching(/^disks\/[^/]+\/[^/]+\.qcow2$/, 'disks/<disk>/<id>.qcow2'), backingFile: z.optional(matching(/^[^/]+\.qcow2$/, '<id>.qcow2')),
  virtualSize: size(), bytesCopied: size(), fileSize: size(), sha256: matching(/^[0-9a-f]{64}$/, '64 lower-case hex digits'),
  sourceImage: text(), sourceFormat: text({ min: 1, max: 64 }), sourceCompat: z.optional(text({ max: 16 })), sourceClusterSize: z.optional(size()),
  checkpointBitmap: z.boolean(),
}).check(
  z.refine((d) => d.kind === 'full' || Boolean(d.since && d.base && d.backingFile), 'disk needs since, base and backingFile'),
  z.refine((d) => d.kind !== 'full' || (!d.base && !d.backingFile), 'a full disk has no base'),
));
const manifest = record({
  format: z.enum(['tidemark-backup']), version: z.literal(1), id: backupId,
  vm: record({ id: vmId, name: z.optional(text({ max: 512 })), uuid: z.optional(text({ max: 64 })) }),
  kind, since: z.optional(text({ min: 1 })), checkpoint: z.optional(text({ min: 1 })), layout: z.optional(layout),
  startedAt: size(), completedAt: size(), qemuVersion: text({ max: 64 }), tool: text({ max: 200 }),
  disks: list(disk, { min: 1, max: 256 }).check(z.refine((ds) => new Set(ds.map((d) => d.name)).size === ds.length, 'a disk is listed twice')),
});
const checkpoint = record({
  name: text({ min: 1 }), description: z.optional(text({ max: 1024 * 1024 })), parent: z.optional(text()),
  creationTime: size(), createdAtMs: size(),
  disks: list(record({
    name: text({ min: 1 }), checkpoint: z.enum(['bitmap', 'no']), bitmap: z.optional(text()), size: z.optional(num({ min: 0 })), incomplete: z.optional(text({ max: 8192 })),
  }), { max: 4096 }),
  layout, domainXml: z.optional(text({ max: 16 * 1024 * 1024 })),
});

function candidateWith(jitless: boolean): Candidate {
  const parse = (schema: z.ZodMiniType, value: unknown, root: string): unknown => {
    const r = z.safeParse(schema, value, { reportInput: true, jitless } as z.core.ParseContext<z.core.$ZodIssue>);
    if (r.success) return r.data;
    throw new Error(describeZodIssue(r.error.issues[0]!, root));
  };
  return {
    name: jitless ? 'zod/mini (jitless)' : 'zod/mini',
    parseArgs: (channel, a) => parse(channels[channel]!, a, channel),
    parseManifest: (raw) => parse(manifest, raw, 'manifest'),
    parseCheckpoint: (raw) => parse(checkpoint, raw, 'c1.json'),
  };
}

export const candidate = candidateWith(false);
export const candidateJitless = candidateWith(true);
