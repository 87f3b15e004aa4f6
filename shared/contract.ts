// The one contract between the renderer (or any other caller: the CLI, the web host) and the
// engine: invoke channels with their argument tuples and results, pushed events, and runtime
// validators. Electron's preload bridge, the WebSocket host and the CLI all go through dispatch().
//
// Sections are owned by the issue that adds them; add channels to your section only.

import type {
  ChangesSince, Checkpoint, CreateCheckpointOptions, DeleteMode, DeleteResult, HealthReport, ListFilter, VmInfo,
  BitmapInfo,
  BitmapLayout,
} from './domain';
import { v, ValidationError, type Validator } from './validate';

// ---------------------------------------------------------------- shared shapes

/** A VM the host knows about (the demo VM or an endpoint the user added). */
export interface VmSummary {
  id: string;
  label: string;
  endpoint: string;
  kind: 'demo' | 'endpoint';
  connection: 'connected' | 'connecting' | 'disconnected';
  /** Why it is disconnected, when it is. */
  detail?: string;
}

export interface LabInfo {
  running: boolean;
  vmId?: string;
  qmp: string;
  qmpSecondary: string;
  disks: { name: string; image: string; sizeBytes: number; legacy: boolean }[];
}

export type WritePattern = 'random' | 'sequential' | 'hotspot';

export interface WriteSimOptions {
  disk: string;
  pattern: WritePattern;
  mib: number;
  rateMibPerS?: number;
}

export interface JobInfo {
  id: string;
  kind: 'write-sim' | 'backup' | 'restore' | 'pull';
  vmId: string;
  state: 'running' | 'succeeded' | 'failed' | 'cancelled';
  title: string;
  startedAt: number;
  endedAt?: number;
  error?: string;
  /** Per disk: bytes done of bytes to do. */
  progress: { disk: string; done: number; total: number }[];
  log: string[];
}

// ---------------------------------------------------------------- issue 5: the dirty map and pull mode

/** A run of granules that are all dirty or all clean since the baseline checkpoint. */
export interface DirtyExtent {
  offset: number;
  length: number;
  dirty: boolean;
}

/** Which granules of a disk changed since a checkpoint (read over NBD from a temporary bitmap). */
export interface DirtyMap {
  vmId: string;
  disk: string;
  /** The baseline checkpoint. */
  since: string;
  /** Bitmap granularity in bytes: the smallest unit that can be dirty. */
  granularity: number;
  virtualSize: number;
  /** Sorted, contiguous, covering [0, virtualSize). */
  extents: DirtyExtent[];
  dirtyBytes: number;
  /** Dirty fraction (0..1) of each of `buckets.length` equal regions of the disk. */
  buckets: number[];
  bucketBytes: number;
  /** When the map was taken (ms since the epoch) and how long it took. */
  at: number;
  elapsedMs: number;
}

/** A pull-mode backup into a repository (Tidemark copies the dirty extents over NBD). */
export interface PullBeginOptions {
  repo?: string;
  full?: boolean;
  since?: string;
  checkpoint?: string;
  noCheckpoint?: boolean;
  disks?: string[];
  /** Where the fleecing images go (default STATE/run/fleece). */
  fleeceDir?: string;
  /** Give up when the fleecing images together exceed this many MiB. */
  fleeceMaxMiB?: number;
}

export interface PullBeginResult {
  job: JobInfo;
  backup: BackupRecord;
  /** Largest size the fleecing images reached (guest writes during the pull). */
  fleecePeakBytes: number;
}

/** A pull whose exports an outside tool reads; it ends with pull:end. */
export interface PullExportOptions extends Omit<PullBeginOptions, 'repo'> {
  /** The repository whose lock the pull holds (default STATE/backups). */
  repo?: string;
  /** Serve on TCP instead of the unix socket; TLS is required (tls-creds-x509 directory). */
  tcp?: { host: string; port: number; tlsDir: string };
}

export interface PullExportInfo {
  disk: string;
  kind: BackupKind;
  since?: string;
  /** nbd+unix:///NAME?socket=PATH or nbds://HOST:PORT/NAME. */
  uri: string;
  exportName: string;
  /** qemu:dirty-bitmap:… to read the changes since `since` (nbdinfo --map=…). */
  dirtyContext?: string;
  size: number;
}

export interface PullExportResult {
  /** The host job that holds the exports open. */
  jobId: string;
  exports: PullExportInfo[];
}

// ---------------------------------------------------------------- issue 3: backups and restore

export type BackupKind = 'full' | 'incremental' | 'differential';

/** One disk's layer in a backup: its entry in the manifest (docs/backup-manifest.schema.json). */
export interface BackupDiskRecord {
  /** The disk's name in Tidemark (its guest device id). */
  name: string;
  /** What this layer holds: everything, or the changes since `since`. */
  kind: BackupKind;
  /** Checkpoint whose changes this layer holds (incremental and differential). */
  since?: string;
  /** Backup whose layer of this disk is this layer's backing file. */
  base?: string;
  /** Why the disk was backed up in full although changes since a checkpoint were asked for. */
  fallbackReason?: string;
  /** The layer, relative to the VM's directory in the repository: disks/<disk>/<id>.qcow2. */
  image: string;
  /** Backing file exactly as written in the layer's qcow2 header ("<base>.qcow2"). */
  backingFile?: string;
  virtualSize: number;
  /** Bytes the backup job had to copy (the dirty bytes for incremental and differential). */
  bytesCopied: number;
  /** Size of the layer file and SHA-256 of all its bytes (checked by verify and before restores). */
  fileSize: number;
  sha256: string;
  /** The disk's image at backup time, its format, and (qcow2) compat level and cluster size. */
  sourceImage: string;
  sourceFormat: string;
  sourceCompat?: string;
  sourceClusterSize?: number;
  /** True when the backup's checkpoint has a bitmap on this disk. */
  checkpointBitmap: boolean;
}

/** A backup: its manifest, written last and atomically (docs/backup-manifest.schema.json). */
export interface BackupRecord {
  format: 'tidemark-backup';
  version: 1;
  id: string;
  vm: { id: string; name?: string; uuid?: string };
  /** What was asked for; per disk, `disks[].kind` says what was done. */
  kind: BackupKind;
  since?: string;
  /** The checkpoint created with this backup: it marks the backup's point in time. */
  checkpoint?: string;
  layout?: BitmapLayout;
  /** Milliseconds since the epoch. */
  startedAt: number;
  completedAt: number;
  qemuVersion: string;
  tool: string;
  disks: BackupDiskRecord[];
}

export interface BackupBeginOptions {
  /** The repository directory (default: STATE/backups; created on first use). */
  repo?: string;
  /** Full backup of every disk. */
  full?: boolean;
  /** Changes since this checkpoint (default: since the newest checkpoint that has a backup, else full). */
  since?: string;
  /** Name of the checkpoint created with the backup (default: the backup id). */
  checkpoint?: string;
  /** Create no checkpoint. */
  noCheckpoint?: boolean;
  /** Disks to back up (default: all). */
  disks?: string[];
  /** Speed limit per disk, MiB/s. */
  speedMiBps?: number;
}

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

export interface RestoreRequest {
  /** The repository (default: STATE/backups). */
  repo?: string;
  backup: string;
  /** One disk to a new image (never overwrites). Format: explicit, else .raw/.img → raw, else qcow2. */
  to?: { disk: string; path: string; format?: 'qcow2' | 'raw' };
  /** Disks over the images of a stopped VM. All of the backup's checkpointed disks → a new branch under its checkpoint. */
  inPlace?: { disk: string; image: string }[];
  /** In place: do not keep the old image as IMAGE.pre-restore-<time>. */
  noSafetyCopy?: boolean;
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

// ---------------------------------------------------------------- channels

export interface InvokeMap {
  // issue 2: VMs and checkpoints
  'vm:list': { args: []; result: VmSummary[] };
  'vm:add': { args: [endpoint: string, label?: string]; result: VmSummary };
  'vm:remove': { args: [vmId: string]; result: void };
  'vm:info': { args: [vmId: string]; result: VmInfo };
  'vm:health': { args: [vmId: string]; result: HealthReport };
  'checkpoint:list': { args: [vmId: string, filter?: ListFilter]; result: Checkpoint[] };
  'checkpoint:get': { args: [vmId: string, name: string]; result: Checkpoint };
  'checkpoint:current': { args: [vmId: string]; result: Checkpoint | null };
  'checkpoint:create': { args: [vmId: string, options: CreateCheckpointOptions]; result: Checkpoint };
  'checkpoint:delete': { args: [vmId: string, name: string, mode: DeleteMode]; result: DeleteResult };
  'checkpoint:changes': { args: [vmId: string, name: string]; result: ChangesSince };
  'checkpoint:dumpxml': { args: [vmId: string, name: string, options?: { size?: boolean; noDomain?: boolean }]; result: string };
  'checkpoint:create-xml': { args: [vmId: string, xml: string, options?: { redefine?: boolean; validate?: boolean }]; result: Checkpoint };
  // issue 2: the demo VM
  'lab:status': { args: []; result: LabInfo };
  'lab:start': { args: []; result: LabInfo };
  'lab:stop': { args: []; result: LabInfo };
  'lab:write': { args: [vmId: string, options: WriteSimOptions]; result: JobInfo };
  'job:list': { args: [vmId?: string]; result: JobInfo[] };
  'job:cancel': { args: [jobId: string]; result: JobInfo };
  // issue 3: backups and restore
  'backup:begin': { args: [vmId: string, options: BackupBeginOptions]; result: BackupBeginResult };
  'backup:list': { args: [repo?: string, vm?: string]; result: BackupListing };
  'backup:info': { args: [backupId: string, repo?: string]; result: BackupDetails };
  'backup:verify': { args: [repo?: string, backupIds?: string[]]; result: BackupVerifyReport };
  'backup:delete': { args: [backupId: string, options?: { repo?: string; withDependents?: boolean }]; result: { deleted: string[] } };
  'backup:status': { args: [vmId: string, repo?: string]; result: BackupStatusInfo };
  'backup:cancel': { args: [vmId: string, repo?: string]; result: { backupId: string; how: 'cancelled' | 'cleaned-up' } };
  'restore:run': { args: [request: RestoreRequest]; result: RestoreOutcome };
  // issue 5: pull mode and the dirty map
  'dirtymap:get': { args: [vmId: string, disk: string, since: string, buckets?: number]; result: DirtyMap };
  'pull:begin': { args: [vmId: string, options: PullBeginOptions]; result: PullBeginResult };
  'pull:export': { args: [vmId: string, options: PullExportOptions]; result: PullExportResult };
  /** Ends an export-only pull (in any process): success records its checkpoint, failure rolls it back. */
  'pull:end': { args: [vmId: string, outcome: 'success' | 'failure', repo?: string]; result: { backupId: string } };
  /** Waits until this process's export-only pull of the VM has ended; its final job. */
  'pull:wait': { args: [vmId: string]; result: JobInfo };
}

export type InvokeChannel = keyof InvokeMap;
export type Args<C extends InvokeChannel> = InvokeMap[C]['args'];
export type Result<C extends InvokeChannel> = InvokeMap[C]['result'];

export interface EventMap {
  'vm:list': VmSummary[];
  /** Live bitmap state of a VM's disks (pushed on change while connected). */
  'vm:bitmaps': { vmId: string; at: number; disks: { disk: string; bitmaps: BitmapInfo[] }[] };
  'checkpoints:changed': { vmId: string };
  'job:update': JobInfo;
  // issue 4: the Electron shell (menu "Open backup repository…" → the directory the user chose)
  'shell:open-repository': { path: string };
}
export type EventName = keyof EventMap;

export type Handlers = { [C in InvokeChannel]: (...args: Args<C>) => Promise<Result<C>> };

/** What the renderer sees (window.api in Electron, a WebSocket client in a browser). */
export interface AppApi {
  invoke<C extends InvokeChannel>(channel: C, ...args: Args<C>): Promise<Result<C>>;
  on<E extends EventName>(event: E, listener: (payload: EventMap[E]) => void): () => void;
  readonly transport: 'electron' | 'websocket' | 'memory';
}

// ---------------------------------------------------------------- validators

const vmId = v.string({ min: 1, max: 512 });
// Names are checked properly by the engine (names.ts); here only shape and a sane bound.
const name = v.string({ min: 0, max: 4096 });
const createOptions = v.object({
  name: v.optional(name),
  description: v.optional(v.string({ max: 65536 })),
  disks: v.optional(v.array(v.object({ name: v.string({ min: 1, max: 256 }), checkpoint: v.literal('bitmap', 'no') }), { max: 256 })),
  layout: v.optional(v.literal('independent', 'chained')),
});
const listFilter = v.object({
  roots: v.optional(v.boolean()),
  leaves: v.optional(v.boolean()),
  noLeaves: v.optional(v.boolean()),
  from: v.optional(name),
  descendants: v.optional(v.boolean()),
  topological: v.optional(v.boolean()),
});
const writeSim = v.object({
  disk: v.string({ min: 1, max: 256 }),
  pattern: v.literal('random', 'sequential', 'hotspot'),
  mib: v.number({ min: 1, max: 1024 * 1024, integer: true }),
  rateMibPerS: v.optional(v.number({ min: 1, max: 100_000 })),
});

// issue 3: backups and restore
const repoPath = v.string({ min: 1, max: 4096 });
const backupId = v.string({ min: 1, max: 64 });
const diskName = v.string({ min: 1, max: 256 });
const backupBegin = v.object({
  repo: v.optional(repoPath),
  full: v.optional(v.boolean()),
  since: v.optional(v.string({ min: 1, max: 4096 })),
  checkpoint: v.optional(v.string({ min: 1, max: 4096 })),
  noCheckpoint: v.optional(v.boolean()),
  disks: v.optional(v.array(diskName, { max: 256 })),
  speedMiBps: v.optional(v.number({ min: 0.001, max: 1_000_000 })),
});
const restoreRequest = v.object({
  repo: v.optional(repoPath),
  backup: backupId,
  to: v.optional(v.object({ disk: diskName, path: v.string({ min: 1, max: 4096 }), format: v.optional(v.literal('qcow2', 'raw')) })),
  inPlace: v.optional(v.array(v.object({ disk: diskName, image: v.string({ min: 1, max: 4096 }) }), { max: 256 })),
  noSafetyCopy: v.optional(v.boolean()),
});

// issue 5
const pullCommon = {
  repo: v.optional(repoPath),
  full: v.optional(v.boolean()),
  since: v.optional(v.string({ min: 1, max: 4096 })),
  checkpoint: v.optional(v.string({ min: 1, max: 4096 })),
  noCheckpoint: v.optional(v.boolean()),
  disks: v.optional(v.array(diskName, { max: 256 })),
  fleeceDir: v.optional(v.string({ min: 1, max: 4096 })),
  fleeceMaxMiB: v.optional(v.number({ min: 1, max: 1024 * 1024 * 1024 })),
};
const pullBegin = v.object(pullCommon);
const pullExport = v.object({
  ...pullCommon,
  tcp: v.optional(v.object({ host: v.string({ min: 1, max: 255 }), port: v.number({ min: 1, max: 65535, integer: true }), tlsDir: v.string({ min: 1, max: 4096 }) })),
});

export const argValidators: { [C in InvokeChannel]: Validator<Args<C>> } = {
  'vm:list': v.tuple(),
  'vm:add': v.tuple(v.string({ min: 1, max: 1024 }), v.optional(v.string({ max: 200 }))),
  'vm:remove': v.tuple(vmId),
  'vm:info': v.tuple(vmId),
  'vm:health': v.tuple(vmId),
  'checkpoint:list': v.tuple(vmId, v.optional(listFilter)),
  'checkpoint:get': v.tuple(vmId, name),
  'checkpoint:current': v.tuple(vmId),
  'checkpoint:create': v.tuple(vmId, createOptions),
  'checkpoint:delete': v.tuple(vmId, name, v.literal('plain', 'children', 'children-only', 'metadata')),
  'checkpoint:changes': v.tuple(vmId, name),
  'checkpoint:dumpxml': v.tuple(vmId, name, v.optional(v.object({ size: v.optional(v.boolean()), noDomain: v.optional(v.boolean()) }))),
  'checkpoint:create-xml': v.tuple(vmId, v.string({ max: 1024 * 1024 }), v.optional(v.object({ redefine: v.optional(v.boolean()), validate: v.optional(v.boolean()) }))),
  'lab:status': v.tuple(),
  'lab:start': v.tuple(),
  'lab:stop': v.tuple(),
  'lab:write': v.tuple(vmId, writeSim),
  'job:list': v.tuple(v.optional(vmId)),
  'job:cancel': v.tuple(v.string({ min: 1, max: 200 })),
  // issue 3
  'backup:begin': v.tuple(vmId, backupBegin),
  'backup:list': v.tuple(v.optional(repoPath), v.optional(v.string({ min: 1, max: 512 }))),
  'backup:info': v.tuple(backupId, v.optional(repoPath)),
  'backup:verify': v.tuple(v.optional(repoPath), v.optional(v.array(backupId, { max: 10_000 }))),
  'backup:delete': v.tuple(backupId, v.optional(v.object({ repo: v.optional(repoPath), withDependents: v.optional(v.boolean()) }))),
  'backup:status': v.tuple(vmId, v.optional(repoPath)),
  'backup:cancel': v.tuple(vmId, v.optional(repoPath)),
  'restore:run': v.tuple(restoreRequest),
  // issue 5
  'dirtymap:get': v.tuple(vmId, diskName, v.string({ min: 1, max: 4096 }), v.optional(v.number({ min: 1, max: 4096, integer: true }))),
  'pull:begin': v.tuple(vmId, pullBegin),
  'pull:export': v.tuple(vmId, pullExport),
  'pull:end': v.tuple(vmId, v.literal('success', 'failure'), v.optional(repoPath)),
  'pull:wait': v.tuple(vmId),
};

export function isInvokeChannel(channel: unknown): channel is InvokeChannel {
  return typeof channel === 'string' && Object.prototype.hasOwnProperty.call(argValidators, channel);
}

/** Validates channel and arguments, then calls the handler. Used by every transport. */
export async function dispatch(handlers: Handlers, channel: unknown, args: unknown): Promise<unknown> {
  if (!isInvokeChannel(channel)) throw new ValidationError(`unknown channel ${JSON.stringify(String(channel)).slice(0, 80)}`);
  const validated = argValidators[channel](args, channel) as unknown[];
  const handler = handlers[channel] as (...a: unknown[]) => Promise<unknown>;
  return handler(...validated);
}

export const EVENT_NAMES: readonly EventName[] = ['vm:list', 'vm:bitmaps', 'checkpoints:changed', 'job:update', 'shell:open-repository'];
