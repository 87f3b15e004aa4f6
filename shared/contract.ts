// The one contract between the renderer (or any other caller: the CLI, the web host) and the
// engine: invoke channels with their argument tuples and results, pushed events, and runtime
// validators. Electron's preload bridge, the WebSocket host and the CLI all go through dispatch().
//
// Sections are owned by the issue that adds them; add channels to your section only.

import type {
  ChangesSince, Checkpoint, CreateCheckpointOptions, DeleteMode, DeleteResult, HealthReport, ListFilter, VmInfo,
  BitmapInfo,
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
  // issue 3: backups and restore (added by that issue)
  // issue 5: pull mode and the dirty map (added by that issue)
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

export const EVENT_NAMES: readonly EventName[] = ['vm:list', 'vm:bitmaps', 'checkpoints:changed', 'job:update'];
