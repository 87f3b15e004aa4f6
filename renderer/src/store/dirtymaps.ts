// Live dirty maps (issue 5): where each checkpointed disk changed since the baseline checkpoint,
// read with dirtymap:get and kept fresh while the guest writes.
//
// A dirty map costs the engine a temporary bitmap, an NBD export and its teardown, so it is read
// only when it can have changed: when the dirty counts of the bitmaps that make up "changes since
// the baseline" change (vm:bitmaps, pushed every ~0.5 s), and then at most once per interval per
// disk, never with two requests for one disk in flight, only while the page is visible and the VM
// connected. An idle VM costs nothing; a busy one about one read per disk per second.

import type { StoreApi } from 'zustand/vanilla';
import type { AppApi, DirtyMap } from '../../../shared/contract';
import { baselineBitmaps, chainFingerprint } from '../model/bitmaps';
import type { AppState, DirtyMapSlice, DirtyMapTarget, DiskMapState, Timers } from './types';

export interface RefresherOptions {
  fetch(vmId: string, disk: string, since: string, cells: number): Promise<DirtyMap>;
  /** Called whenever a disk's state changes (for the current target only). */
  publish(target: DirtyMapTarget, disk: string, state: DiskMapState): void;
  /** Least time between the starts of two reads of one disk. */
  minIntervalMs?: number;
  /** Least time between the end of a read and the start of the next one of that disk. */
  gapMs?: number;
  /** First retry after a failed read; doubles per failure up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  timers?: Timers;
}

interface Slot {
  /** The latest known fingerprint of what the map depends on. */
  wanted: string;
  /** Fingerprint the current map was read at; undefined until a read succeeded. */
  fetched?: string;
  lastStart: number;
  lastEnd: number;
  failures: number;
  retryAt: number;
  timer?: unknown;
  state: DiskMapState;
}

const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export function sameTarget(a: DirtyMapTarget | undefined, b: DirtyMapTarget | undefined): boolean {
  if (!a || !b) return a === b;
  return a.vmId === b.vmId && a.since === b.since && a.cells === b.cells && a.disks.length === b.disks.length && a.disks.every((d, i) => d === b.disks[i]);
}

export class DirtyMapRefresher {
  private target?: DirtyMapTarget;
  private slots = new Map<string, Slot>();
  private active = false;
  /** Reads in flight by VM and disk, across targets: a new target waits for the old read of a disk. */
  private readonly inFlight = new Set<string>();
  private readonly timers: Timers;
  private readonly minInterval: number;
  private readonly gap: number;
  private readonly retry: number;
  private readonly maxRetry: number;

  constructor(private readonly o: RefresherOptions) {
    this.timers = o.timers ?? realTimers;
    this.minInterval = o.minIntervalMs ?? 1000;
    this.gap = o.gapMs ?? 250;
    this.retry = o.retryMs ?? 5000;
    this.maxRetry = o.maxRetryMs ?? 60_000;
  }

  get current(): DirtyMapTarget | undefined {
    return this.target;
  }

  /**
   * Watch these disks of this VM since this checkpoint (undefined: stop). `fingerprints` are what
   * each disk's map depends on right now. Watching the same target again changes nothing.
   */
  watch(target: DirtyMapTarget | undefined, fingerprints: Record<string, string> = {}): void {
    if (sameTarget(target, this.target)) return;
    for (const s of this.slots.values()) this.clearTimer(s);
    this.slots = new Map();
    this.target = target;
    if (!target) return;
    for (const disk of target.disks) {
      const slot: Slot = { wanted: fingerprints[disk] ?? '', lastStart: -Infinity, lastEnd: -Infinity, failures: 0, retryAt: 0, state: { loading: false } };
      this.slots.set(disk, slot);
    }
    for (const disk of target.disks) this.pump(disk);
  }

  /** Reads happen only while active (page visible and VM connected). */
  setActive(active: boolean): void {
    if (active === this.active) return;
    this.active = active;
    if (!active) {
      for (const s of this.slots.values()) this.clearTimer(s);
      return;
    }
    for (const disk of this.slots.keys()) this.pump(disk);
  }

  /** What a disk's map depends on changed (or not: an equal fingerprint schedules nothing). */
  changed(vmId: string, disk: string, fingerprint: string): void {
    if (this.target?.vmId !== vmId) return;
    const s = this.slots.get(disk);
    if (!s || s.wanted === fingerprint) return;
    s.wanted = fingerprint;
    if (s.state.map && !s.state.behind && this.target) this.set(this.target, disk, s, { ...s.state, behind: true });
    this.pump(disk);
  }

  dispose(): void {
    this.watch(undefined);
    this.active = false;
  }

  private clearTimer(s: Slot): void {
    if (s.timer !== undefined) this.timers.clearTimeout(s.timer);
    s.timer = undefined;
  }

  private pump(disk: string): void {
    const target = this.target;
    const s = this.slots.get(disk);
    if (!target || !s || !this.active) return;
    const key = `${target.vmId}\0${disk}`;
    if (this.inFlight.has(key)) return; // re-pumped when it ends
    const needed = s.fetched === undefined || s.fetched !== s.wanted;
    if (!needed) return;
    const now = this.timers.now();
    const due = Math.max(s.lastStart + this.minInterval, s.lastEnd + this.gap, s.retryAt);
    if (now < due) {
      if (s.timer === undefined) {
        s.timer = this.timers.setTimeout(() => {
          s.timer = undefined;
          this.pump(disk);
        }, due - now);
      }
      return;
    }
    this.clearTimer(s);
    const fingerprint = s.wanted;
    s.lastStart = now;
    this.inFlight.add(key);
    this.set(target, disk, s, { ...s.state, loading: true });
    this.o.fetch(target.vmId, disk, target.since, target.cells).then(
      (map) => this.settle(target, disk, s, key, () => {
        s.fetched = fingerprint;
        s.failures = 0;
        s.retryAt = 0;
        return { map, loading: false, behind: s.wanted !== fingerprint, fingerprint };
      }),
      (e: unknown) => this.settle(target, disk, s, key, () => {
        s.fetched = undefined;
        s.failures++;
        s.retryAt = this.timers.now() + Math.min(this.maxRetry, this.retry * 2 ** (s.failures - 1));
        return { ...s.state, error: e instanceof Error ? e.message : String(e), loading: false };
      }),
    );
  }

  private settle(target: DirtyMapTarget, disk: string, s: Slot, key: string, next: () => DiskMapState): void {
    this.inFlight.delete(key);
    s.lastEnd = this.timers.now();
    // A read for a target no longer watched says nothing about the current one: drop it.
    if (this.target === target && this.slots.get(disk) === s) this.set(target, disk, s, next());
    for (const d of this.slots.keys()) if (`${this.target?.vmId}\0${d}` === key) this.pump(d);
  }

  private set(target: DirtyMapTarget, disk: string, s: Slot, state: DiskMapState): void {
    s.state = state;
    this.o.publish(target, disk, state);
  }
}

// What a map depends on: chainFingerprint (model/bitmaps.ts); re-exported under its old name.
export { chainFingerprint as mapFingerprint } from '../model/bitmaps';

// ---------------------------------------------------------------- the store's slice

export function createDirtyMapSlice(
  api: AppApi, set: StoreApi<AppState>['setState'], get: StoreApi<AppState>['getState'], timers?: Timers,
): DirtyMapSlice {
  const refresher = new DirtyMapRefresher({
    fetch: (vmId, disk, since, cells) => api.invoke('dirtymap:get', vmId, disk, since, cells),
    publish: (target, disk, state) => {
      set((s) => (sameTarget(s.dirtyMaps.target, target) ? { dirtyMaps: { target, disks: { ...s.dirtyMaps.disks, [disk]: state } } } : {}));
    },
    timers,
  });

  const fingerprints = (target: DirtyMapTarget): Record<string, string> => {
    const v = get().byVm[target.vmId];
    if (!v) return {};
    const layout = v.checkpoints[0]?.layout;
    return Object.fromEntries(target.disks.map((d) => [d, chainFingerprint(baselineBitmaps(v.checkpoints, layout, target.since, v.current, d), v.live?.[d])]));
  };
  const syncActive = () => {
    const t = refresher.current;
    const connected = t !== undefined && get().vms.find((v) => v.id === t.vmId)?.connection === 'connected';
    refresher.setActive(get().pageVisible && connected);
  };

  return {
    dirtyMaps: { disks: {} },
    pageVisible: true,

    watchDirtyMaps(target) {
      // The store's own target, not the refresher's: a libvirt domain's target has no refresher, and
      // watching it again must change nothing either (the page watches on every store update).
      if (sameTarget(target, get().dirtyMaps.target)) return;
      if (target && get().vms.find((v) => v.id === target.vmId)?.kind === 'libvirt') {
        // libvirt offers no dirty map outside a pull export: nothing to read, and said so per disk.
        refresher.watch(undefined, {});
        const why = 'no disk map for libvirt domains (libvirt shows changed blocks only through a pull backup\'s export)';
        set({ dirtyMaps: { target, disks: Object.fromEntries(target.disks.map((d) => [d, { loading: false, unavailable: why }])) } });
        return;
      }
      // Maps of another baseline or VM would be wrong here: start empty.
      set({ dirtyMaps: { target, disks: {} } });
      refresher.watch(target, target ? fingerprints(target) : {});
      syncActive();
    },

    setPageVisible(visible) {
      set({ pageVisible: visible });
      syncActive();
    },

    syncDirtyMaps(vmId) {
      const t = refresher.current;
      // A baseline that was just deleted: the page moves to another one; never ask for this one again.
      const baseGone = t !== undefined && (vmId === undefined || vmId === t.vmId) && !(get().byVm[t.vmId]?.checkpoints.some((c) => c.name === t.since) ?? false);
      if (baseGone) refresher.watch(undefined); // and its pending reads with it
      else if (t && (vmId === undefined || vmId === t.vmId)) {
        // A bitmap of the chain that vanished (a checkpoint being deleted) cannot be mapped: wait for
        // the checkpoint list to catch up (a new baseline) rather than ask for a map that must fail.
        for (const [disk, fp] of Object.entries(fingerprints(t))) if (!fp.includes('=missing')) refresher.changed(t.vmId, disk, fp);
      }
      syncActive();
    },

    disposeDirtyMaps() {
      refresher.dispose();
    },
  };
}
