// The host service: every contract channel (shared/contract.ts) implemented over the engines.
// It owns the VM registry (the demo VM plus endpoints the user added, persisted in
// STATE/endpoints.json), one QMP connection and one CheckpointEngine per connected VM, the jobs,
// and the pushed events. Electron's IPC, the web host and the CLI all call these same handlers
// through dispatch().
//
// To add a channel group (backups, pull mode): write a `xxxHandlers(ctx)` function like the ones
// below and spread it into `handlers` in createService. The backup and pull groups are loaded on
// their first call (most CLI commands never need them).
//
// One id per VM: callers know a VM by the service's id ("demo", "ep-…"); the engines, manifests and
// backup jobs know it by the engine's id (its UUID, else its name). Results and events that leave
// the service carry the service's id; manifests on disk keep the engine's.
//
// A VM whose QEMU is not running can still be read from its recorded metadata (on-demand mode,
// i.e. the CLI): checkpoint:list/get/current/dumpxml without sizes. Its engine id comes from
// STATE/lab/lab.json (the demo VM) or from the id seen at its last connection (endpoints.json).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackupRecord, EventMap, EventName, Handlers, InvokeChannel, JobInfo, LabInfo, VmSummary } from '../../shared/contract';
import type { BitmapInfo, VmInfo } from '../../shared/domain';
import type { BackupJobs, BackupServiceDeps } from '../engine/backup/handlers';
import { CheckpointEngine } from '../engine/checkpoints/engine';
import { RecordedCheckpoints, type CheckpointReader } from '../engine/checkpoints/query';
import { MetadataStore } from '../engine/checkpoints/store';
import { writeFileAtomic } from '../os/atomic-file';
import { connectLab, isQemuAlive, labStatus, startLab, stopLab } from '../engine/lab/labvm';
import { simulateWrites } from '../engine/lab/writer';
import { QmpClient, QmpReconnector } from '../qmp/client';
import { QmpConnectionError } from '../qmp/errors';
import { formatEndpoint, parseEndpoint } from '../qmp/endpoint';
import { JobRunner } from './jobs';

export interface ServiceOptions {
  stateDir: string;
  /** The demo VM's directory; default STATE/lab. */
  labDir?: string;
  /** 'eager' (the app, the web host): connect every VM now and keep reconnecting.
   *  'on-demand' (the CLI): connect a VM when a call needs it, and do not reconnect. */
  connectMode?: 'eager' | 'on-demand';
  /** Which lab socket the demo VM uses. The app holds the primary; tools take the secondary. */
  demoSocket?: 'primary' | 'secondary';
  /** Endpoints listed for this service only (not written to endpoints.json), e.g. `--connect`. */
  transientEndpoints?: string[];
  /** How often live bitmaps are polled while someone listens to 'vm:bitmaps' (default 500 ms). */
  bitmapPollMs?: number;
  /** Answer checkpoint reads of a VM whose QEMU is not running from its recorded metadata
   *  (default: in on-demand mode). */
  offlineReads?: boolean;
}

/** Typed events; `on` returns its own unsubscribe function. */
export interface ServiceEvents {
  on<E extends EventName>(event: E, listener: (payload: EventMap[E]) => void): () => void;
  off<E extends EventName>(event: E, listener: (payload: EventMap[E]) => void): void;
  emit<E extends EventName>(event: E, payload: EventMap[E]): void;
  listenerCount(event: EventName): number;
}

export interface Service {
  handlers: Handlers;
  events: ServiceEvents;
  close(): Promise<void>;
}

export const DEMO_VM_ID = 'demo';

type BackupChannel = keyof ReturnType<typeof import('../engine/backup/handlers').backupHandlers>;
type PullChannel = keyof ReturnType<typeof import('../engine/pull/handlers').pullHandlers>;
// Every channel of each lazily loaded group (the Record type makes the compiler check the lists).
const BACKUP_CHANNELS: Record<BackupChannel, true> = {
  'backup:begin': true, 'backup:list': true, 'backup:info': true, 'backup:verify': true, 'backup:delete': true,
  'backup:status': true, 'backup:cancel': true, 'restore:run': true,
};
const PULL_CHANNELS: Record<PullChannel, true> = { 'dirtymap:get': true, 'pull:begin': true, 'pull:export': true, 'pull:end': true, 'pull:wait': true };

/**
 * Loads one of this directory's sibling modules on first use. `require` works wherever this file
 * runs as CommonJS (compiled, tsx, the Electron bundle, the in-process host of the Playwright tests,
 * whose TypeScript loader cannot import() a .ts file); import() where there is no such require
 * (vitest runs the sources as ESM). The specifier is a variable so that bundlers leave the
 * fallback alone rather than warn about a module imported both ways.
 */
async function loadLater<T>(required: () => T, specifier: string): Promise<T> {
  try {
    return required();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' && !(e instanceof ReferenceError)) throw e;
    return (await import(specifier)) as T;
  }
}

/** Handlers for `channels` whose implementation is loaded (once) on the first call of any of them. */
function lazyHandlers<C extends InvokeChannel>(channels: Record<C, true>, load: () => Promise<Pick<Handlers, C>>): Pick<Handlers, C> {
  let loading: Promise<Pick<Handlers, C>> | undefined;
  const out = {} as Record<C, (...args: unknown[]) => Promise<unknown>>;
  for (const channel of Object.keys(channels) as C[]) {
    out[channel] = async (...args) => {
      loading ??= load().catch((e: unknown) => {
        loading = undefined; // let the next call try again
        throw e;
      });
      const handler = (await loading)[channel] as (...a: unknown[]) => Promise<unknown>;
      return handler(...args);
    };
  }
  return out as unknown as Pick<Handlers, C>;
}

// ---------------------------------------------------------------- events

class Emitter implements ServiceEvents {
  private readonly listeners = new Map<EventName, Set<(payload: never) => void>>();
  constructor(private readonly onListenersChanged: () => void = () => undefined) {}

  on<E extends EventName>(event: E, listener: (payload: EventMap[E]) => void): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as (payload: never) => void);
    this.onListenersChanged();
    return () => this.off(event, listener);
  }

  off<E extends EventName>(event: E, listener: (payload: EventMap[E]) => void): void {
    this.listeners.get(event)?.delete(listener as (payload: never) => void);
    this.onListenersChanged();
  }

  emit<E extends EventName>(event: E, payload: EventMap[E]): void {
    for (const l of [...(this.listeners.get(event) ?? [])]) {
      try {
        (l as (p: EventMap[E]) => void)(payload);
      } catch {
        // one faulty listener must not stop the others
      }
    }
  }

  listenerCount(event: EventName): number {
    return this.listeners.get(event)?.size ?? 0;
  }
}

// ---------------------------------------------------------------- VM registry

interface VmEntry {
  id: string;
  label: string;
  endpoint: string;
  kind: 'demo' | 'endpoint';
  transient: boolean;
  connection: VmSummary['connection'];
  detail?: string;
  client?: QmpClient;
  engine?: CheckpointEngine;
  reconnector?: QmpReconnector;
  /** A connect in progress (on-demand mode), shared by concurrent callers. */
  connecting?: Promise<CheckpointEngine>;
  /** Disk name → format node, from the last discovery (for the bitmap poll). */
  nodes?: Map<string, string>;
  lastBitmaps?: string;
  /** Eager mode: watchers on the VM's metadata directory (another process may change it). */
  watchers?: fs.FSWatcher[];
  /** Set when the metadata changed on disk since the engine last read it. */
  metadataStale?: boolean;
  /** Fingerprint of the metadata files as last read or announced (see metadataFingerprint). */
  knownMeta?: string;
  /** The engine's id of this VM as seen at its last connection (endpoints; kept in endpoints.json). */
  knownVmId?: string;
  metaDir?: { dir: string; checkpoints: string };
  watchTimer?: NodeJS.Timeout;
}

interface StoredEndpoint {
  id: string;
  endpoint: string;
  label: string;
  /** The engine's id of the VM found there at the last connection. */
  vmId?: string;
}

/** A stable id for an endpoint: the same endpoint always gets the same id, across restarts. */
export function endpointId(endpoint: string): string {
  return `ep-${createHash('sha256').update(formatEndpoint(parseEndpoint(endpoint))).digest('hex').slice(0, 12)}`;
}

function readEndpoints(file: string): StoredEndpoint[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message}); fix or remove it`);
  }
  if (!Array.isArray(data)) throw new Error(`${file} must hold a JSON array of endpoints; fix or remove it`);
  return data.map((x: unknown, i) => {
    const r = x as Partial<StoredEndpoint> | null;
    if (!r || typeof r.endpoint !== 'string' || typeof r.label !== 'string') throw new Error(`${file}: entry ${i} needs "endpoint" and "label" strings; fix or remove it`);
    if (r.vmId !== undefined && (typeof r.vmId !== 'string' || r.vmId === '')) throw new Error(`${file}: entry ${i} has a "vmId" that is not a non-empty string; fix or remove it`);
    const endpoint = formatEndpoint(parseEndpoint(r.endpoint));
    return { id: endpointId(endpoint), endpoint, label: r.label, ...(r.vmId !== undefined ? { vmId: r.vmId } : {}) };
  });
}

function toBitmapInfo(b: { name?: string; recording: boolean; persistent: boolean; busy: boolean; inconsistent?: boolean; count: number; granularity: number }): BitmapInfo {
  const out: BitmapInfo = { recording: b.recording, persistent: b.persistent, busy: b.busy, inconsistent: Boolean(b.inconsistent), count: b.count, granularity: b.granularity };
  if (b.name !== undefined) out.name = b.name;
  return out;
}

// ---------------------------------------------------------------- the service

export function createService(options: ServiceOptions): Service {
  const stateDir = path.resolve(options.stateDir);
  const labDir = path.resolve(options.labDir ?? path.join(stateDir, 'lab'));
  const eager = (options.connectMode ?? 'eager') === 'eager';
  const demoSocket = options.demoSocket ?? 'primary';
  const pollMs = options.bitmapPollMs ?? 500;
  const offlineReads = options.offlineReads ?? !eager;
  const endpointsFile = path.join(stateDir, 'endpoints.json');
  let closed = false;

  const events = new Emitter(() => updatePolling());
  const jobs = new JobRunner((job) => events.emit('job:update', job));
  const vms = new Map<string, VmEntry>();

  // -- registry

  const demoEndpoint = () => {
    const st = labStatus(labDir);
    return demoSocket === 'primary' ? st.qmp : st.qmpSecondary;
  };
  const notRunning = 'the demo VM is not running (start it with: tidemark lab start)';
  vms.set(DEMO_VM_ID, {
    id: DEMO_VM_ID, label: `Demo VM (${labStatus(labDir).name})`, endpoint: demoEndpoint(), kind: 'demo', transient: false,
    connection: 'disconnected', detail: notRunning,
  });
  for (const { vmId: knownVmId, ...e } of readEndpoints(endpointsFile)) {
    vms.set(e.id, { ...e, ...(knownVmId !== undefined ? { knownVmId } : {}), kind: 'endpoint', transient: false, connection: 'disconnected' });
  }
  for (const raw of options.transientEndpoints ?? []) {
    const endpoint = formatEndpoint(parseEndpoint(raw));
    const id = endpointId(endpoint);
    if (!vms.has(id)) vms.set(id, { id, label: endpoint, endpoint, kind: 'endpoint', transient: true, connection: 'disconnected' });
  }

  const summary = (e: VmEntry): VmSummary => {
    const s: VmSummary = { id: e.id, label: e.label, endpoint: e.endpoint, kind: e.kind, connection: e.connection };
    if (e.detail !== undefined && e.connection !== 'connected') s.detail = e.detail;
    return s;
  };
  const pushVmList = () => events.emit('vm:list', [...vms.values()].map(summary));
  const saveEndpoints = () => {
    const list = [...vms.values()]
      .filter((e) => e.kind === 'endpoint' && !e.transient)
      .map((e) => ({ endpoint: e.endpoint, label: e.label, ...(e.knownVmId !== undefined ? { vmId: e.knownVmId } : {}) }));
    fs.mkdirSync(stateDir, { recursive: true });
    writeFileAtomic(endpointsFile, JSON.stringify(list, null, 2) + '\n');
  };

  function entry(vmId: string): VmEntry {
    const e = vms.get(vmId);
    if (!e) throw new Error(`no VM with id ${JSON.stringify(vmId)} (see vm:list)`);
    return e;
  }

  // -- one id per VM

  /** The engine's id of a registered VM: live, else as last seen (endpoints) or recorded in lab.json (demo). */
  function engineIdOf(e: VmEntry): string | undefined {
    if (e.engine) return e.engine.vmId;
    if (e.knownVmId !== undefined) return e.knownVmId;
    if (e.kind === 'demo') return labStatus(labDir).uuid || undefined;
    return undefined;
  }

  /** The service's id for a VM the engines call `vmId` (unchanged for a VM the service does not know). */
  function serviceIdOf(vmId: string): string {
    if (vms.has(vmId)) return vmId;
    for (const e of vms.values()) if (engineIdOf(e) === vmId) return e.id;
    return vmId;
  }

  /** A manifest as callers see it: the VM named by the service's id (name and UUID kept). */
  function withServiceId(m: BackupRecord): BackupRecord {
    const id = serviceIdOf(m.vm.id);
    return id === m.vm.id ? m : { ...m, vm: { ...m.vm, id } };
  }

  function remember(e: VmEntry, vmId: string): void {
    if (e.knownVmId === vmId) return;
    e.knownVmId = vmId;
    if (e.kind === 'endpoint' && !e.transient) {
      try {
        saveEndpoints();
      } catch {
        // only the offline view of this VM needs it; the next connection tries again
      }
    }
  }

  function setState(e: VmEntry, connection: VmSummary['connection'], detail?: string): void {
    if (e.connection === connection && e.detail === detail) return;
    e.connection = connection;
    e.detail = detail;
    if (!closed) pushVmList();
  }

  // -- connections

  /** A new QMP client for `e`: opens its engine, or records why it cannot. */
  async function attach(e: VmEntry, client: QmpClient): Promise<CheckpointEngine> {
    await e.engine?.close();
    e.engine = undefined;
    e.client = client;
    const engine = await CheckpointEngine.open(client, { endpoint: e.endpoint, stateDir });
    e.engine = engine;
    remember(e, engine.vmId);
    e.lastBitmaps = undefined;
    e.nodes = undefined; // filled by the first bitmap poll
    watchMetadata(e, engine);
    client.onClose((reason) => {
      if (e.client !== client) return;
      e.client = undefined;
      unwatchMetadata(e);
      void engine.close();
      if (e.engine === engine) e.engine = undefined;
      setState(e, 'disconnected', e.kind === 'demo' && !labStatus(labDir).running ? notRunning : reason.message);
    });
    setState(e, 'connected');
    return engine;
  }

  function startReconnector(e: VmEntry): void {
    if (e.reconnector || closed) return;
    if (e.kind === 'demo') e.endpoint = demoEndpoint();
    const r = new QmpReconnector(e.endpoint, async (client) => {
      try {
        await attach(e, client);
      } catch (err) {
        // The VM answers but its metadata cannot be used: keep the connection (no retry storm)
        // and say why; the next call retries opening the engine.
        setState(e, 'disconnected', (err as Error).message);
      }
    }, { connectTimeoutMs: 3_000 });
    e.reconnector = r;
    r.onState((state, detail) => {
      if (state === 'disconnected') {
        if (e.kind === 'demo' && !labStatus(labDir).running) {
          // Nothing to reconnect to until lab:start.
          void stopReconnector(e);
          setState(e, 'disconnected', notRunning);
        } else {
          setState(e, 'connecting', detail);
        }
      }
    });
    setState(e, 'connecting');
    r.start();
  }

  async function stopReconnector(e: VmEntry): Promise<void> {
    const r = e.reconnector;
    e.reconnector = undefined;
    await r?.stop();
  }

  /**
   * Eager mode: the CLI (or another app) may change this VM's checkpoints while we hold its
   * engine. Watch the metadata directory, re-read before the next query, and tell listeners.
   */
  function watchMetadata(e: VmEntry, engine: CheckpointEngine): void {
    unwatchMetadata(e);
    if (!eager) return;
    const store = new MetadataStore(stateDir, engine.vmId);
    e.metaDir = { dir: store.dir, checkpoints: store.checkpointsDir };
    e.knownMeta = metadataFingerprint(e);
    const onChange = (_event: string, file: string | Buffer | null) => {
      const name = String(file ?? '');
      if (name === 'lock' || name.startsWith('.tmp-')) return;
      if (e.watchTimer) clearTimeout(e.watchTimer);
      e.watchTimer = setTimeout(() => {
        e.watchTimer = undefined;
        const now = metadataFingerprint(e);
        if (closed || now === e.knownMeta) return; // e.g. our own change, already announced
        e.knownMeta = now;
        e.metadataStale = true;
        events.emit('checkpoints:changed', { vmId: e.id });
      }, 150);
    };
    try {
      fs.mkdirSync(store.checkpointsDir, { recursive: true });
      e.watchers = [fs.watch(store.dir, onChange), fs.watch(store.checkpointsDir, onChange)];
      for (const w of e.watchers) w.on('error', () => unwatchMetadata(e));
    } catch {
      unwatchMetadata(e); // without a watcher, changes by others show after the next refresh
    }
  }

  /** Names, inodes, sizes and mtimes of vm.json and the checkpoint files: changes on every atomic write. */
  function metadataFingerprint(e: VmEntry): string | undefined {
    if (!e.metaDir) return undefined;
    const stat = (f: string) => {
      try {
        const st = fs.statSync(f, { bigint: true });
        return `${st.ino}:${st.size}:${st.mtimeNs}`;
      } catch {
        return '-';
      }
    };
    let files: string[] = [];
    try {
      files = fs.readdirSync(e.metaDir.checkpoints).filter((f) => f.endsWith('.json')).sort();
    } catch {
      // no checkpoints directory: no checkpoints
    }
    return [stat(path.join(e.metaDir.dir, 'vm.json')), ...files.map((f) => `${f}=${stat(path.join(e.metaDir!.checkpoints, f))}`)].join('|');
  }

  function unwatchMetadata(e: VmEntry): void {
    for (const w of e.watchers ?? []) w.close();
    e.watchers = undefined;
    if (e.watchTimer) clearTimeout(e.watchTimer);
    e.watchTimer = undefined;
  }

  /** The engine, with its metadata re-read first if another process changed it. */
  async function freshEngineOf(vmId: string): Promise<CheckpointEngine> {
    const engine = await engineOf(vmId);
    const e = entry(vmId);
    if (e.metadataStale) {
      e.metadataStale = false;
      e.knownMeta = metadataFingerprint(e);
      rememberNodes(e, await engine.vm());
    }
    return engine;
  }

  async function disconnect(e: VmEntry, detail?: string): Promise<void> {
    unwatchMetadata(e);
    await stopReconnector(e);
    const client = e.client;
    e.client = undefined;
    await e.engine?.close();
    e.engine = undefined;
    await client?.close();
    setState(e, 'disconnected', detail);
  }

  async function connectOnce(e: VmEntry): Promise<CheckpointEngine> {
    setState(e, 'connecting');
    let client: QmpClient;
    try {
      client = e.kind === 'demo' ? await connectLab(labDir, demoSocket) : await QmpClient.connect(e.endpoint, { connectTimeoutMs: 5_000 });
    } catch (err) {
      setState(e, 'disconnected', (err as Error).message);
      throw err;
    }
    if (e.kind === 'demo') e.endpoint = formatEndpoint(client.endpoint);
    try {
      return await attach(e, client);
    } catch (err) {
      await client.close();
      setState(e, 'disconnected', (err as Error).message);
      throw err;
    }
  }

  /** The engine of a connected VM (connecting first in on-demand mode), or a clear error. */
  async function engineOf(vmId: string): Promise<CheckpointEngine> {
    if (closed) throw new Error('the service is closed');
    const e = entry(vmId);
    if (e.engine) return e.engine;
    if (e.client?.isOpen) {
      // connected, but the engine could not be opened last time: try again
      try {
        return await attach(e, e.client);
      } catch (err) {
        setState(e, 'disconnected', (err as Error).message);
        throw err;
      }
    }
    if (!eager) {
      e.connecting ??= connectOnce(e).finally(() => (e.connecting = undefined));
      return e.connecting;
    }
    if (e.kind === 'demo' && !labStatus(labDir).running) throw new Error(notRunning);
    throw new Error(`VM ${e.label} is not connected${e.detail ? `: ${e.detail}` : ''}`);
  }

  // -- reading a VM that is not running

  /** True when `err` (from connecting) means nothing runs there, rather than a VM we cannot reach. */
  function nothingRuns(e: VmEntry, err: unknown): boolean {
    if (e.kind === 'demo') return !labStatus(labDir).running;
    const code = ((err as { cause?: { code?: unknown } } | undefined)?.cause)?.code;
    return err instanceof QmpConnectionError && (code === 'ENOENT' || code === 'ECONNREFUSED');
  }

  /** What checkpoint reads go to: the live engine, or the recorded metadata of a VM that is not running. */
  async function readerOf(vmId: string): Promise<CheckpointReader> {
    try {
      return await freshEngineOf(vmId);
    } catch (err) {
      const e = vms.get(vmId);
      const id = e && offlineReads && nothingRuns(e, err) ? engineIdOf(e) : undefined;
      if (!e || id === undefined) throw err; // never connected: no recorded identity to read
      return new RecordedCheckpoints(stateDir, id, e.kind === 'demo' ? labStatus(labDir).name : e.label);
    }
  }

  // -- live bitmaps

  function rememberNodes(e: VmEntry, vm: VmInfo): void {
    e.nodes = new Map(vm.disks.map((d) => [d.name, d.nodeName]));
  }

  let pollTimer: NodeJS.Timeout | undefined;
  let polling = false;
  function updatePolling(): void {
    const want = !closed && events.listenerCount('vm:bitmaps') > 0;
    if (want && !pollTimer) {
      pollTimer = setInterval(() => void pollAll(), pollMs);
      void pollAll();
    } else if (!want && pollTimer) {
      clearInterval(pollTimer);
      pollTimer = undefined;
    }
  }

  async function pollAll(): Promise<void> {
    if (polling) return;
    polling = true;
    try {
      await Promise.all([...vms.values()].map((e) => pollBitmaps(e)));
    } finally {
      polling = false;
    }
  }

  /** Reads every disk's bitmaps with one query-named-block-nodes; emits when anything changed. */
  async function pollBitmaps(e: VmEntry): Promise<void> {
    const client = e.client;
    if (!client?.isOpen || !e.engine || events.listenerCount('vm:bitmaps') === 0) return;
    if (!e.nodes) {
      try {
        rememberNodes(e, await e.engine.vm());
      } catch {
        return;
      }
    }
    let nodes: { 'node-name': string; 'dirty-bitmaps'?: Parameters<typeof toBitmapInfo>[0][] }[];
    try {
      nodes = await client.execute('query-named-block-nodes', { flat: true });
    } catch {
      return; // the connection's own close handler reports the problem
    }
    const byNode = new Map(nodes.map((n) => [n['node-name'], n]));
    const disks = [...(e.nodes ?? [])].map(([disk, node]) => ({ disk, bitmaps: (byNode.get(node)?.['dirty-bitmaps'] ?? []).map(toBitmapInfo) }));
    const key = JSON.stringify(disks);
    if (key === e.lastBitmaps) return;
    e.lastBitmaps = key;
    events.emit('vm:bitmaps', { vmId: e.id, at: Date.now(), disks });
  }

  /** After a change we made: tell listeners now rather than at the next poll. */
  async function changed(vmId: string): Promise<void> {
    const e = vms.get(vmId);
    // The metadata as it is now is announced here; the watcher stays quiet about it.
    if (e) e.knownMeta = metadataFingerprint(e);
    // Disk → node mapping only matters to the bitmap poll (nobody listens in the CLI).
    if (e?.engine && events.listenerCount('vm:bitmaps') > 0) {
      e.metadataStale = false;
      try {
        rememberNodes(e, await e.engine.vm());
      } catch {
        // keep the old mapping; the poll reports what it can
      }
    }
    events.emit('checkpoints:changed', { vmId });
    if (e) await pollBitmaps(e);
  }

  // ---------------------------------------------------------------- handler groups

  function labInfo(): LabInfo {
    const st = labStatus(labDir);
    const info: LabInfo = {
      running: st.running,
      qmp: st.qmp,
      qmpSecondary: st.qmpSecondary,
      disks: st.disks.map((d) => ({ name: d.name, image: d.image, sizeBytes: d.sizeBytes, legacy: d.legacy })),
    };
    if (st.running) info.vmId = DEMO_VM_ID;
    return info;
  }

  const vmHandlers: Pick<Handlers, 'vm:list' | 'vm:add' | 'vm:remove' | 'vm:info' | 'vm:health'> = {
    async 'vm:list'() {
      return [...vms.values()].map(summary);
    },
    async 'vm:add'(endpointText, label) {
      const endpoint = formatEndpoint(parseEndpoint(endpointText));
      const id = endpointId(endpoint);
      const existing = vms.get(id);
      if (existing) {
        if (existing.transient) {
          existing.transient = false;
          if (label?.trim()) existing.label = label.trim();
          saveEndpoints();
          pushVmList();
        }
        return summary(existing);
      }
      const e: VmEntry = { id, label: label?.trim() || endpoint, endpoint, kind: 'endpoint', transient: false, connection: 'disconnected' };
      vms.set(id, e);
      try {
        saveEndpoints();
      } catch (err) {
        vms.delete(id);
        throw err;
      }
      pushVmList();
      if (eager) startReconnector(e);
      return summary(e);
    },
    async 'vm:remove'(vmId) {
      const e = entry(vmId);
      if (e.kind === 'demo') throw new Error('the demo VM cannot be removed from the list (stop it with lab:stop)');
      await jobs.cancelAll(vmId);
      await disconnect(e);
      vms.delete(vmId);
      if (!e.transient) {
        try {
          saveEndpoints();
        } catch (err) {
          vms.set(vmId, e);
          throw err;
        }
      }
      pushVmList();
    },
    async 'vm:info'(vmId) {
      const engine = await engineOf(vmId);
      const vm = await engine.vm();
      rememberNodes(entry(vmId), vm);
      return vm;
    },
    async 'vm:health'(vmId) {
      return { ...(await (await engineOf(vmId)).health()), vmId };
    },
  };

  const checkpointHandlers: Pick<Handlers,
    'checkpoint:list' | 'checkpoint:get' | 'checkpoint:current' | 'checkpoint:create' | 'checkpoint:delete' |
    'checkpoint:changes' | 'checkpoint:dumpxml' | 'checkpoint:create-xml'> = {
    async 'checkpoint:list'(vmId, filter) {
      return (await readerOf(vmId)).list(filter);
    },
    async 'checkpoint:get'(vmId, name) {
      return (await readerOf(vmId)).get(name);
    },
    async 'checkpoint:current'(vmId) {
      return (await readerOf(vmId)).current() ?? null;
    },
    async 'checkpoint:create'(vmId, opts) {
      const cp = await (await engineOf(vmId)).create(opts);
      await changed(vmId);
      return cp;
    },
    async 'checkpoint:delete'(vmId, name, mode) {
      const result = await (await engineOf(vmId)).delete(name, mode);
      await changed(vmId);
      return result;
    },
    async 'checkpoint:changes'(vmId, name) {
      return (await engineOf(vmId)).changesSince(name);
    },
    async 'checkpoint:dumpxml'(vmId, name, opts) {
      return (await readerOf(vmId)).dumpXml(name, opts ?? {});
    },
    async 'checkpoint:create-xml'(vmId, xml, opts) {
      const cp = await (await engineOf(vmId)).createFromXml(xml, opts ?? {});
      await changed(vmId);
      return cp;
    },
  };

  const labHandlers: Pick<Handlers, 'lab:status' | 'lab:start' | 'lab:stop' | 'lab:write'> = {
    async 'lab:status'() {
      return labInfo();
    },
    async 'lab:start'() {
      await startLab({ dir: labDir });
      const demo = entry(DEMO_VM_ID);
      demo.label = `Demo VM (${labStatus(labDir).name})`;
      demo.endpoint = demoEndpoint();
      setState(demo, 'disconnected');
      if (eager) {
        // restart at once rather than wait for the reconnector's backoff
        await stopReconnector(demo);
        startReconnector(demo);
      }
      return labInfo();
    },
    async 'lab:stop'() {
      const demo = entry(DEMO_VM_ID);
      await jobs.cancelAll(DEMO_VM_ID);
      const st = labStatus(labDir);
      const client = demo.client;
      await stopReconnector(demo);
      if (client?.isOpen && st.pid) {
        // Quit through our own connection (the sockets may both be taken), then wait for the exit.
        await client.execute('quit').catch(() => undefined);
        const deadline = Date.now() + 10_000;
        while (isQemuAlive(st.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      }
      await disconnect(demo, notRunning);
      await stopLab(labDir);
      return labInfo();
    },
    async 'lab:write'(vmId, opts) {
      const e = entry(vmId);
      if (e.kind !== 'demo') throw new Error(`write simulation only runs on the demo VM: it writes over disk data, which would corrupt ${e.label}`);
      const engine = await engineOf(vmId);
      const client = e.client!;
      const vm = await engine.vm();
      const disk = vm.disks.find((d) => d.name === opts.disk);
      if (!disk) throw new Error(`the demo VM has no disk ${JSON.stringify(opts.disk)} (it has ${vm.disks.map((d) => d.name).join(', ')})`);
      const total = opts.mib * 1024 * 1024;
      const logFile = labStatus(labDir).log;
      const rate = opts.rateMibPerS ? ` at ${opts.rateMibPerS} MiB/s` : '';
      return jobs.start(
        { kind: 'write-sim', vmId, title: `Write ${opts.mib} MiB (${opts.pattern}) to ${disk.name}${rate}`, progress: [{ disk: disk.name, total }] },
        async (ctx) => {
          const writes = await simulateWrites(client, disk, {
            pattern: opts.pattern, mib: opts.mib, rateMibPerS: opts.rateMibPerS, seed: Date.now() % 2 ** 31, signal: ctx.signal, logFile,
            onProgress: (done) => ctx.progress(disk.name, done),
          });
          void pollBitmaps(e);
          return `${writes.length} writes, ${total} bytes`;
        },
      );
    },
  };

  const jobHandlers: Pick<Handlers, 'job:list' | 'job:cancel'> = {
    async 'job:list'(vmId) {
      return jobs.list(vmId);
    },
    async 'job:cancel'(jobId) {
      return jobs.cancel(jobId);
    },
  };

  // issue 3 (backups and restore) and issue 5 (the dirty map and pull mode): their modules load on
  // first use. Their jobs and results are turned to the service's VM ids here.
  const backupJobs: BackupJobs = {
    start: (spec, run) => jobs.start({ ...spec, vmId: serviceIdOf(spec.vmId) }, run),
    list: (vmId) => jobs.list(vmId === undefined ? undefined : serviceIdOf(vmId)),
    cancel: (jobId) => jobs.cancel(jobId),
  };
  const backupDeps: BackupServiceDeps = {
    stateDir,
    engineOf,
    clientOf: (vmId) => {
      const c = entry(vmId).client;
      if (!c?.isOpen) throw new Error(`VM ${entry(vmId).label} is not connected`);
      return c;
    },
    jobs: backupJobs,
    changed,
  };
  const backupChannels = lazyHandlers(BACKUP_CHANNELS, async (): Promise<Pick<Handlers, BackupChannel>> => {
    const mod = await loadLater<typeof import('../engine/backup/handlers')>(() => require('../engine/backup/handlers'), '../engine/backup/handlers');
    const h = mod.backupHandlers(backupDeps);
    return {
      ...h,
      async 'backup:begin'(vmId, opts) {
        const r = await h['backup:begin'](vmId, opts);
        return { ...r, backup: withServiceId(r.backup) };
      },
      async 'backup:list'(repo, vm) {
        const e = vm === undefined ? undefined : vms.get(vm);
        const r = await h['backup:list'](repo, (e && engineIdOf(e)) ?? vm);
        return { ...r, backups: r.backups.map(withServiceId) };
      },
      async 'backup:info'(id, repo) {
        const r = await h['backup:info'](id, repo);
        return { ...r, backup: withServiceId(r.backup) };
      },
    };
  });
  const pullChannels = lazyHandlers(PULL_CHANNELS, async (): Promise<Pick<Handlers, PullChannel>> => {
    const mod = await loadLater<typeof import('../engine/pull/handlers')>(() => require('../engine/pull/handlers'), '../engine/pull/handlers');
    const h = mod.pullHandlers(backupDeps);
    return {
      ...h,
      async 'dirtymap:get'(vmId, disk, since, buckets) {
        return { ...(await h['dirtymap:get'](vmId, disk, since, buckets)), vmId };
      },
      async 'pull:begin'(vmId, opts) {
        const r = await h['pull:begin'](vmId, opts);
        return { ...r, backup: withServiceId(r.backup) };
      },
    };
  });

  const handlers: Handlers = { ...vmHandlers, ...checkpointHandlers, ...labHandlers, ...jobHandlers, ...backupChannels, ...pullChannels };

  // -- start

  // In eager mode the demo VM is watched: another process (the CLI) may start it at any time.
  let demoWatch: NodeJS.Timeout | undefined;
  if (eager) {
    for (const e of vms.values()) {
      if (e.kind === 'demo' && !labStatus(labDir).running) continue;
      startReconnector(e);
    }
    demoWatch = setInterval(() => {
      const demo = vms.get(DEMO_VM_ID)!;
      if (!demo.reconnector && !demo.client?.isOpen && labStatus(labDir).running) startReconnector(demo);
    }, 2_000);
    demoWatch.unref();
  }

  return {
    handlers,
    events,
    async close() {
      if (closed) return;
      await jobs.cancelAll();
      closed = true;
      if (demoWatch) clearInterval(demoWatch);
      updatePolling();
      await Promise.all([...vms.values()].map((e) => disconnect(e).catch(() => undefined)));
    },
  };
}

export type { JobInfo };
