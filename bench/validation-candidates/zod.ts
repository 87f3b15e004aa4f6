// The bench's zod (v4, classic API) candidate: the same schemas as valibot.ts.
import * as z from 'zod';
import type { Candidate } from './payloads';
import { describeZodIssue } from './zod-issues';

const isPlain = (x: unknown) => typeof x === 'object' && x !== null && !Array.isArray(x) && [Object.prototype, null].includes(Object.getPrototypeOf(x));
const record = <S extends z.core.$ZodLooseShape>(shape: S) => z.custom<object>(isPlain, 'expected a plain object').pipe(z.strictObject(shape));
const optionalArg = <S extends z.ZodType>(s: S) => s.nullish().transform((x) => x ?? undefined);
const text = (o: { min?: number; max?: number } = {}) => z.string().min(o.min ?? 0).max(o.max ?? 4096);
const size = () => z.number().int().min(0);

const vmId = text({ min: 1, max: 512 });
const repoPath = text({ min: 1 });
const diskName = text({ min: 1, max: 256 });
const backupId = z.string().max(4096).regex(/^\d{8}-\d{6}-\d{3}-[0-9a-f]{4}$/, 'expected a backup id');
const kind = z.enum(['full', 'incremental', 'differential']);
const layout = z.enum(['independent', 'chained']);
const pullCommon = {
  repo: optionalArg(repoPath), full: optionalArg(z.boolean()), since: optionalArg(text({ min: 1 })), checkpoint: optionalArg(text({ min: 1 })),
  noCheckpoint: optionalArg(z.boolean()), disks: optionalArg(z.array(diskName).max(256)), fleeceDir: optionalArg(text({ min: 1 })),
  fleeceMaxMiB: optionalArg(z.number().min(1).max(1024 ** 3)),
};
const channels: Record<string, z.ZodType> = {
  'vm:info': z.tuple([vmId]),
  'checkpoint:create': z.tuple([vmId, record({
    name: optionalArg(text()), description: optionalArg(text({ max: 65536 })),
    disks: optionalArg(z.array(record({ name: diskName, checkpoint: z.enum(['bitmap', 'no']) })).max(256)), layout: optionalArg(layout),
  })]),
  'backup:begin': z.tuple([vmId, record({
    repo: optionalArg(repoPath), full: optionalArg(z.boolean()), since: optionalArg(text({ min: 1 })), checkpoint: optionalArg(text({ min: 1 })),
    noCheckpoint: optionalArg(z.boolean()), disks: optionalArg(z.array(diskName).max(256)), speedMiBps: optionalArg(z.number().min(0.001).max(1_000_000)),
  })]),
  'restore:run': z.tuple([record({
    repo: optionalArg(repoPath), backup: text({ min: 1, max: 64 }),
    to: optionalArg(record({ disk: diskName, path: text({ min: 1 }), format: optionalArg(z.enum(['qcow2', 'raw'])) })),
    inPlace: optionalArg(z.array(record({ disk: diskName, image: text({ min: 1 }) })).max(256)), noSafetyCopy: optionalArg(z.boolean()),
  })]),
  'pull:export': z.tuple([vmId, record({ ...pullCommon, tcp: optionalArg(record({ host: text({ min: 1, max: 255 }), port: z.number().int().min(1).max(65535), tlsDir: text({ min: 1 }) })) })]),
  'dirtymap:get': z.tuple([vmId, diskName, text({ min: 1 }), optionalArg(z.number().int().min(1).max(4096))]),
};

const disk = record({
  name: diskName, kind, since: text({ min: 1 }).optional(), base: backupId.optional(), fallbackReason: text().optional(),
  image: z.string().regex(/^disks\/[^/]+\/[^/]+\.qcow2$/, 'expected disks/<disk>/<id>.qcow2'), backingFile: z.string().regex(/^[^/]+\.qcow2$/, 'expected <id>.qcow2').optional(),
  virtualSize: size(), bytesCopied: size(), fileSize: size(), sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex digits'),
  sourceImage: text(), sourceFormat: text({ min: 1, max: 64 }), sourceCompat: text({ max: 16 }).optional(), sourceClusterSize: size().optional(),
  checkpointBitmap: z.boolean(),
})
  .refine((d) => d.kind === 'full' || Boolean(d.since && d.base && d.backingFile), 'disk needs since, base and backingFile')
  .refine((d) => d.kind !== 'full' || (!d.base && !d.backingFile), 'a full disk has no base');
const manifest = record({
  format: z.enum(['tidemark-backup']), version: z.literal(1), id: backupId,
  vm: record({ id: vmId, name: text({ max: 512 }).optional(), uuid: text({ max: 64 }).optional() }),
  kind, since: text({ min: 1 }).optional(), checkpoint: text({ min: 1 }).optional(), layout: layout.optional(),
  startedAt: size(), completedAt: size(), qemuVersion: text({ max: 64 }), tool: text({ max: 200 }),
  disks: z.array(disk).min(1).max(256).refine((ds) => new Set(ds.map((d) => d.name)).size === ds.length, 'a disk is listed twice'),
});
const checkpoint = record({
  name: text({ min: 1 }), description: text({ max: 1024 * 1024 }).optional(), parent: text().optional(),
  creationTime: size(), createdAtMs: size(),
  disks: z.array(record({
    name: text({ min: 1 }), checkpoint: z.enum(['bitmap', 'no']), bitmap: text().optional(), size: z.number().min(0).optional(), incomplete: text({ max: 8192 }).optional(),
  })).max(4096),
  layout, domainXml: text({ max: 16 * 1024 * 1024 }).optional(),
});

// jitless: what the renderer would need (its CSP forbids eval, and zod's JIT compiles object parsers with new Function).
function candidateWith(jitless: boolean): Candidate {
  const parse = (schema: z.ZodType, value: unknown, root: string): unknown => {
    const r = schema.safeParse(value, { reportInput: true, jitless } as z.core.ParseContext<z.core.$ZodIssue>);
    if (r.success) return r.data;
    throw new Error(describeZodIssue(r.error.issues[0]!, root));
  };
  return {
    name: jitless ? 'zod (jitless)' : 'zod',
    parseArgs: (channel, a) => parse(channels[channel]!, a, channel),
    parseManifest: (raw) => parse(manifest, raw, 'manifest'),
    parseCheckpoint: (raw) => parse(checkpoint, raw, 'c1.json'),
  };
}

export const candidate = candidateWith(false);
export const candidateJitless = candidateWith(true);
