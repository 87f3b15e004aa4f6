// The renderer's state: a zustand store made by a factory over an AppApi, so tests inject a fake.
// It is fed by pushed events (vm:list, vm:bitmaps, checkpoints:changed, job:update); the page never
// polls. Invokes happen on start, on user actions, and in reaction to events (e.g. reload a VM's
// checkpoints after checkpoints:changed; read a dirty map when vm:bitmaps says its bitmaps changed,
// see dirtymaps.ts).

import { createStore as createZustandStore } from 'zustand/vanilla';
import type { AppApi, EventMap, JobInfo } from '../../../shared/contract';
import type { BitmapInfo, VmInfo } from '../../../shared/domain';
import { baselineBitmaps, chainFingerprint } from '../model/bitmaps';
import { firstCounts, recordCounts, type DiskHistory } from '../model/samples';
import { isSameVm } from '../model/vm-ids';
import { askBackupList, createBackupSlice, withBackupList } from './backups';
import { createDirtyMapSlice } from './dirtymaps';
import { createInventorySlice } from './inventory';
import { emptyVmView, type AppState, type AppStore, type Timers, type VmView } from './types';

/**
 * Records a disk's bitmap counts in its history (created on first use; mutated in place, so the
 * caller makes a new `samples` object when this returns true, for React to see the change).
 */
function recordDisk(samples: Record<string, DiskHistory>, disk: string, at: number, bitmaps: readonly BitmapInfo[]): boolean {
  const history = samples[disk];
  // The first intake (a VM's load: up to 8,000 counts) needs no comparison with earlier counts.
  if (!history || history.size === 0) return firstCounts((samples[disk] ??= new Map()), at, bitmaps);
  const counts = new Map<string, number>();
  // a count the driver cannot tell (libvirt, shut-off domain) is not history: never recorded as 0
  for (const b of bitmaps) if (b.name !== undefined && b.count !== undefined) counts.set(b.name, b.count);
  return recordCounts(history, at, counts);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A fingerprint of the bitmap flags that matter for health (not the counts, which change constantly). */
function flagsKey(live: Record<string, BitmapInfo[]> | undefined): string {
  if (!live) return '';
  return Object.keys(live).sort().map((d) => `${d}:${live[d]!.map((b) => `${b.name}/${+b.recording}${+b.busy}${+b.inconsistent}`).sort().join(',')}`).join(';');
}

const TERMINAL: ReadonlySet<JobInfo['state']> = new Set(['succeeded', 'failed', 'cancelled']);

function jobFraction(job: JobInfo): number {
  const total = job.progress.reduce((s, p) => s + p.total, 0);
  const done = job.progress.reduce((s, p) => s + p.done, 0);
  return total > 0 ? done / total : 0;
}

export interface StoreOptions {
  /** Timers for the dirty-map refresher (tests use fake ones). */
  timers?: Timers;
}

export function createStore(api: AppApi, options: StoreOptions = {}): AppStore {
  const unsubscribe: (() => void)[] = [];
  const loadSeq = new Map<string, number>();

  const store = createZustandStore<AppState>()((set, get) => {
    const patchVm = (vmId: string, patch: Partial<VmView> | ((v: VmView) => Partial<VmView>)) => {
      set((s) => {
        const prev = s.byVm[vmId] ?? emptyVmView();
        const next = { ...prev, ...(typeof patch === 'function' ? patch(prev) : patch) };
        return { byVm: { ...s.byVm, [vmId]: next } };
      });
    };

    const isConnected = (vmId: string) => get().vms.find((v) => v.id === vmId)?.connection === 'connected';

    const refreshHealth = async (vmId: string) => {
      try {
        const health = await api.invoke('vm:health', vmId);
        patchVm(vmId, { health });
      } catch {
        // Health is advisory here; the next event retries. Loading errors are shown by loadVm.
      }
    };

    const onVmList = (vms: EventMap['vm:list']) => {
      const before = new Map(get().vms.map((v) => [v.id, v.connection]));
      set({ vms, vmsLoaded: true });
      get().syncDirtyMaps();
      let selected = get().selectedVmId;
      if (selected !== undefined && !vms.some((v) => v.id === selected)) selected = undefined;
      if (selected === undefined) {
        const pick = vms.find((v) => v.connection === 'connected') ?? vms[0];
        if (pick) void get().selectVm(pick.id);
        else set({ selectedVmId: undefined });
        return;
      }
      // A VM that (re)connected: its state may have changed while we could not see it.
      for (const v of vms) {
        if (v.connection === 'connected' && before.get(v.id) !== 'connected' && v.id === selected) void get().loadVm(v.id);
      }
    };

    const onBitmaps = (ev: EventMap['vm:bitmaps']) => {
      const prevFlags = flagsKey(get().byVm[ev.vmId]?.live);
      patchVm(ev.vmId, (v) => {
        const live: Record<string, BitmapInfo[]> = {};
        const samples = { ...v.samples };
        let changed = false;
        for (const d of ev.disks) {
          live[d.disk] = d.bitmaps;
          if (recordDisk(samples, d.disk, ev.at, d.bitmaps)) changed = true;
        }
        return { live, liveAt: ev.at, samples: changed ? samples : v.samples };
      });
      get().syncDirtyMaps(ev.vmId);
      // A running backup or restore adds and drops bitmaps on purpose (its checkpoint is recorded
      // only at the end): health is re-checked when it ends (checkpoints:changed), not meanwhile.
      const info = get().byVm[ev.vmId]?.info;
      const busy = Object.values(get().jobs).some((j) => j.state === 'running' && (j.kind === 'backup' || j.kind === 'restore' || j.kind === 'pull') && isSameVm(j.vmId, ev.vmId, info));
      if (flagsKey(get().byVm[ev.vmId]?.live) !== prevFlags && info && !busy) void refreshHealth(ev.vmId);
    };

    const onJob = (job: EventMap['job:update']) => {
      const prev = get().jobs[job.id];
      set((s) => ({ jobs: { ...s.jobs, [job.id]: job } }));
      if (TERMINAL.has(job.state) && (!prev || !TERMINAL.has(prev.state))) {
        const how = job.state === 'succeeded' ? 'finished' : job.state === 'failed' ? `failed: ${job.error ?? 'unknown error'}` : 'was cancelled';
        get().announce(`${job.title} ${how}`);
        get().onJobEnded(job);
      } else if (job.state === 'running') {
        // Announce progress in quarters, not on every byte.
        const q = Math.floor(jobFraction(job) * 4);
        if (!prev || q > Math.floor(jobFraction(prev) * 4)) if (q > 0 && q < 4) get().announce(`${job.title}: ${q * 25}%`);
      }
    };

    return {
      ...createBackupSlice(api, set, get),
      ...createDirtyMapSlice(api, set, get, options.timers),
      ...createInventorySlice(api, set, get),
      transport: api.transport,
      vms: [],
      vmsLoaded: false,
      byVm: {},
      jobs: {},
      announcement: '',

      async start() {
        unsubscribe.push(
          api.on('vm:list', onVmList),
          api.on('vm:bitmaps', onBitmaps),
          api.on('checkpoints:changed', ({ vmId }) => {
            if (get().byVm[vmId]) void get().loadVm(vmId);
          }),
          api.on('job:update', onJob),
          // Electron's menu "Open backup repository…" picked a directory.
          api.on('shell:open-repository', ({ path }) => get().setRepository(path)),
        );
        try {
          const [vms, lab, jobs] = await Promise.all([
            api.invoke('vm:list'),
            api.invoke('lab:status').catch(() => undefined),
            api.invoke('job:list').catch(() => [] as JobInfo[]),
          ]);
          set({ lab, jobs: Object.fromEntries(jobs.map((j) => [j.id, j])), error: undefined });
          onVmList(vms);
        } catch (e) {
          set({ error: message(e), vmsLoaded: true });
        }
      },

      stop() {
        for (const u of unsubscribe.splice(0)) u();
        get().disposeDirtyMaps();
      },

      async selectVm(vmId) {
        set({ selectedVmId: vmId, selected: undefined });
        if (vmId !== undefined) await get().loadVm(vmId);
      },

      async loadSchedules() {
        // Advisory: a host that cannot list schedules (no cron folder, …) draws no markers.
        const listing = await api.invoke('schedule:list').catch(() => undefined);
        set({ schedules: listing?.schedules ?? [] });
      },

      async loadVm(vmId) {
        const seq = (loadSeq.get(vmId) ?? 0) + 1;
        loadSeq.set(vmId, seq);
        if (!isConnected(vmId)) {
          patchVm(vmId, { loading: false });
          return;
        }
        patchVm(vmId, { loading: true });
        // The backup list does not depend on the VM's data: asked with it, and applied in the same
        // render when it has answered first (else when it does).
        const listed = askBackupList(api, get().repository).then((listing) => ({ listing }), (error: unknown) => ({ error }));
        let listAnswer: Awaited<typeof listed> | undefined;
        void listed.then((a) => (listAnswer = a));
        const applyList = (a: Awaited<typeof listed>, info: VmInfo) => {
          if (loadSeq.get(vmId) !== seq) return; // a newer load lists them again
          if ('listing' in a) set((s) => withBackupList(s, vmId, a.listing, info));
          else set({ backupsError: message(a.error) });
        };
        try {
          const [info, checkpoints, current, health] = await Promise.all([
            api.invoke('vm:info', vmId),
            api.invoke('checkpoint:list', vmId),
            api.invoke('checkpoint:current', vmId),
            api.invoke('vm:health', vmId).catch(() => undefined),
          ]);
          if (loadSeq.get(vmId) !== seq) return; // a newer load is under way
          if (listAnswer) applyList(listAnswer, info);
          patchVm(vmId, (v) => {
            // Live bitmaps come from vm:info on every load until a vm:bitmaps event has arrived (an idle
            // VM, and a libvirt domain, never send one: a load after a checkpoint must show its bitmap),
            // and the count history is seeded with what vm:info says now.
            const live = v.liveAt !== undefined && v.live ? v.live : Object.fromEntries(info.disks.map((d) => [d.name, d.bitmaps]));
            const samples = { ...v.samples };
            const at = v.liveAt ?? Date.now();
            for (const d of info.disks) if (!samples[d.name]?.size) recordDisk(samples, d.name, at, live[d.name] ?? d.bitmaps);
            // Exact changes may be stale after a mutation; keep only checkpoints that still exist.
            const names = new Set(checkpoints.map((c) => c.name));
            const changes = Object.fromEntries(Object.entries(v.changes).filter(([k]) => names.has(k)));
            const changesMeta = Object.fromEntries(Object.entries(v.changesMeta).filter(([k]) => names.has(k)));
            return { info, checkpoints, current: current?.name, health, live, samples, changes, changesMeta, loading: false, error: undefined };
          });
          get().syncDirtyMaps(vmId);
          const sel = get().selected;
          if (get().selectedVmId === vmId && sel !== undefined && !checkpoints.some((c) => c.name === sel)) set({ selected: undefined });
          if (!listAnswer) void listed.then((a) => applyList(a, info));
          void get().loadSchedules();
        } catch (e) {
          if (loadSeq.get(vmId) !== seq) return;
          patchVm(vmId, { loading: false, error: message(e) });
        }
      },

      select(name) {
        set({ selected: name });
      },

      async addVm(endpoint, label) {
        // Never send `undefined` in an argument list: JSON turns it into null, which validators refuse.
        const vm = label === undefined ? await api.invoke('vm:add', endpoint) : await api.invoke('vm:add', endpoint, label);
        set((s) => ({ vms: s.vms.some((v) => v.id === vm.id) ? s.vms : [...s.vms, vm] }));
        // A libvirt connection's own row is no VM: its domains arrive with the next vm:list.
        if (!(vm.kind === 'libvirt' && vm.id === vm.connectionId)) await get().selectVm(vm.id);
        return vm;
      },

      async removeVm(vmId) {
        await api.invoke('vm:remove', vmId);
        set((s) => {
          const byVm = { ...s.byVm };
          delete byVm[vmId];
          const vms = s.vms.filter((v) => v.id !== vmId && v.connectionId !== vmId); // a libvirt connection takes its domains along
          return { vms, byVm, selectedVmId: s.selectedVmId === vmId ? undefined : s.selectedVmId };
        });
        if (get().selectedVmId === undefined && get().vms[0]) await get().selectVm(get().vms[0]!.id);
      },

      async startLab() {
        const lab = await api.invoke('lab:start');
        set({ lab });
        return lab;
      },

      async stopLab() {
        const lab = await api.invoke('lab:stop');
        set({ lab });
        return lab;
      },

      async createCheckpoint(options) {
        const vmId = get().selectedVmId;
        if (vmId === undefined) throw new Error('no VM is selected');
        const cp = await api.invoke('checkpoint:create', vmId, options);
        get().announce(`Checkpoint ${cp.name} created`);
        await get().loadVm(vmId);
        set({ selected: cp.name });
        return cp;
      },

      async deleteCheckpoint(name, mode) {
        const vmId = get().selectedVmId;
        if (vmId === undefined) throw new Error('no VM is selected');
        const result = await api.invoke('checkpoint:delete', vmId, name, mode);
        const what = result.deleted.length === 0 ? `Nothing deleted` : `Deleted ${result.deleted.join(', ')}`;
        get().announce(what);
        await get().loadVm(vmId);
        return result;
      },

      async fetchChanges(name) {
        const vmId = get().selectedVmId;
        if (vmId === undefined) throw new Error('no VM is selected');
        // What the answer is exact for: the chain's counts now (bitmaps only gain bits meanwhile).
        const before = get().byVm[vmId];
        const layout = before?.checkpoints[0]?.layout;
        const fingerprints = Object.fromEntries((before?.info?.disks ?? []).map((d) => [
          d.name, chainFingerprint(baselineBitmaps(before?.checkpoints ?? [], layout, name, before?.current, d.name), before?.live?.[d.name]),
        ]));
        const at = Date.now();
        const changes = await api.invoke('checkpoint:changes', vmId, name);
        patchVm(vmId, (v) => ({ changes: { ...v.changes, [name]: changes }, changesMeta: { ...v.changesMeta, [name]: { at, fingerprints } } }));
        return changes;
      },

      async startWrites(options) {
        const vmId = get().selectedVmId;
        if (vmId === undefined) throw new Error('no VM is selected');
        const job = await api.invoke('lab:write', vmId, options);
        set((s) => ({ jobs: { ...s.jobs, [job.id]: s.jobs[job.id] ?? job } }));
        return job;
      },

      async cancelJob(jobId) {
        const job = await api.invoke('job:cancel', jobId);
        set((s) => ({ jobs: { ...s.jobs, [job.id]: job } }));
      },

      announce(text) {
        set({ announcement: text });
      },
    };
  });
  return store;
}
