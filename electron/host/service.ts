// The host service: every contract channel (shared/contract.ts), put together from its parts —
// the VM registry (registry.ts: the demo VM, endpoints the user added, transient ones), the
// connections it holds (each VM reconnecting by itself in eager mode), the bitmap poller
// (poller.ts), the metadata watcher (metadata-watch.ts), the jobs (jobs.ts), the pushed events,
// and the handlers per area (handlers/). Electron's IPC, the web host and the CLI all call these
// same handlers through dispatch(). Handlers reach VMs only through the VM-driver seam
// (engine/driver.ts); the VM id they get is the one every layer below uses.
//
// The backup and pull handlers are loaded on their first call (most CLI commands never need them).

import * as path from 'node:path';
import type { EventMap, Handlers, InvokeChannel } from '../../shared/contract';
import { TypedEmitter } from '../engine/emitter';
import { DEMO_VM_ID, DemoConnection } from '../engine/lab/demo';
import { loadLater } from '../engine/lazy';
import { checkpointHandlers } from './handlers/checkpoint';
import type { HostContext, ServiceEvents } from './handlers/context';
import { jobHandlers } from './handlers/job';
import { labHandlers } from './handlers/lab';
import { vmHandlers } from './handlers/vm';
import { JobRunner } from './jobs';
import { MetadataWatcher } from './metadata-watch';
import { BitmapPoller } from './poller';
import { endpointId, libvirtConnectionId, looksLikeLibvirtUri, readEndpoints, VmRegistry } from './registry';

export { DEMO_VM_ID, endpointId, libvirtConnectionId, looksLikeLibvirtUri };
export type { ServiceEvents };
export type { JobInfo } from '../../shared/contract';

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

export interface Service {
  handlers: Handlers;
  events: ServiceEvents;
  close(): Promise<void>;
}

type BackupChannel = keyof ReturnType<typeof import('./handlers/backup').backupHandlers>;
type PullChannel = keyof ReturnType<typeof import('./handlers/pull').pullHandlers>;
// Every channel of each lazily loaded group (the Record type makes the compiler check the lists).
const BACKUP_CHANNELS: Record<BackupChannel, true> = {
  'backup:begin': true, 'backup:list': true, 'backup:info': true, 'backup:verify': true, 'backup:delete': true,
  'backup:status': true, 'backup:cancel': true, 'restore:run': true,
};
const PULL_CHANNELS: Record<PullChannel, true> = { 'dirtymap:get': true, 'pull:begin': true, 'pull:export': true, 'pull:end': true, 'pull:wait': true };
// Specifiers of the lazily loaded handler modules (variables: see loadLater).
const BACKUP_HANDLERS = './handlers/backup';
const PULL_HANDLERS = './handlers/pull';

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

export function createService(options: ServiceOptions): Service {
  const stateDir = path.resolve(options.stateDir);
  const labDir = path.resolve(options.labDir ?? path.join(stateDir, 'lab'));
  const eager = (options.connectMode ?? 'eager') === 'eager';
  const mode = eager ? 'eager' : 'on-demand';
  const offlineReads = options.offlineReads ?? !eager;
  let closed = false;

  const events = new TypedEmitter<EventMap>(() => poller.update());
  const jobs = new JobRunner((job) => events.emit('job:update', job));
  const pushVmList = () => {
    if (!closed) events.emit('vm:list', registry.summaries());
  };
  // A list change also wires VMs that appeared (a libvirt connection's domains, found by its poll).
  const registry = new VmRegistry({ file: path.join(stateDir, 'endpoints.json'), stateDir, mode, offlineReads, onListChanged: () => {
    wire();
    pushVmList();
  } });
  const poller = new BitmapPoller({
    vms: () => registry.vms(),
    intervalMs: options.bitmapPollMs ?? 500,
    listening: () => !closed && events.listenerCount('vm:bitmaps') > 0,
    emit: (vmId, disks) => events.emit('vm:bitmaps', { vmId, at: Date.now(), disks }),
  });
  const watcher = new MetadataWatcher(stateDir, (vmId) => events.emit('checkpoints:changed', { vmId }));

  // The registry: the demo VM first, then the endpoints of endpoints.json, then transient ones.
  const demo = new DemoConnection({ stateDir, labDir, socket: options.demoSocket ?? 'primary', mode, offlineReads });
  registry.addConnection(demo);
  for (const e of readEndpoints(path.join(stateDir, 'endpoints.json'))) {
    if (looksLikeLibvirtUri(e.endpoint)) registry.addLibvirt(e.endpoint, { label: e.label, persist: true });
    else registry.addEndpoint(e.endpoint, { label: e.label, persist: true, ...(e.vmId !== undefined ? { rememberedKey: e.vmId } : {}) });
  }
  for (const raw of options.transientEndpoints ?? []) {
    if (looksLikeLibvirtUri(raw)) registry.addLibvirt(raw, { persist: false });
    else registry.addEndpoint(raw, { persist: false });
  }

  // What the host does when a VM's connection or checkpoints change.
  const wired = new Set<string>();
  const wire = () => {
    for (const vm of registry.vms()) {
      if (wired.has(vm.id)) continue;
      wired.add(vm.id);
      vm.on('state', ({ connection }) => {
        if (connection === 'connected') {
          poller.forget(vm.id);
          if (eager) watcher.watch(vm);
          void poller.poll(vm);
        } else watcher.unwatch(vm.id);
      });
      vm.on('bitmaps', ({ disks }) => poller.offer(vm.id, disks));
      vm.on('job', () => void poller.poll(vm));
      vm.on('checkpoints', () => {
        vm.invalidate();
        events.emit('checkpoints:changed', { vmId: vm.id });
      });
    }
  };
  wire();

  const ctx: HostContext = {
    stateDir, eager, registry, demo, jobs, events,
    pushVmList: () => {
      wire();
      pushVmList();
    },
    async changed(vmId) {
      // The metadata as it is now is announced here; the watcher stays quiet about it.
      watcher.announced(vmId);
      events.emit('checkpoints:changed', { vmId });
      const vm = registry.find(vmId);
      if (vm) await poller.poll(vm);
    },
    pollNow(vmId) {
      const vm = registry.find(vmId);
      if (vm) void poller.poll(vm);
    },
  };

  const handlers: Handlers = {
    ...vmHandlers(ctx),
    ...checkpointHandlers(ctx),
    ...labHandlers(ctx, labDir),
    ...jobHandlers(ctx),
    ...lazyHandlers(BACKUP_CHANNELS, async () => (await loadLater<typeof import('./handlers/backup')>(() => require('./handlers/backup'), () => import(BACKUP_HANDLERS))).backupHandlers(ctx)),
    ...lazyHandlers(PULL_CHANNELS, async () => (await loadLater<typeof import('./handlers/pull')>(() => require('./handlers/pull'), () => import(PULL_HANDLERS))).pullHandlers(ctx)),
  };

  if (eager) for (const c of registry.connections()) c.start();

  return {
    handlers,
    events,
    async close() {
      if (closed) return;
      await jobs.cancelAll();
      closed = true;
      poller.stop();
      watcher.close();
      await Promise.all(registry.connections().map((c) => c.close().catch(() => undefined)));
    },
  };
}
