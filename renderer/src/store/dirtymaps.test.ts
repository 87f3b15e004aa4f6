import { describe, expect, it } from 'vitest';
import type { DirtyMap, VmSummary } from '../../../shared/contract';
import type { BitmapInfo } from '../../../shared/domain';
import { checkpoint, disk, FakeApi, MiB, vmInfo } from '../test/fake-api';
import { DirtyMapRefresher, mapFingerprint } from './dirtymaps';
import type { DirtyMapTarget, DiskMapState, Timers } from './types';
import { createStore } from './store';

/** A clock and timers driven by the test. */
class FakeTimers implements Timers {
  t = 0;
  private queue: { at: number; fn: () => void; id: number }[] = [];
  private next = 1;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.next++;
    this.queue.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (h: unknown) => {
    this.queue = this.queue.filter((q) => q.id !== h);
  };
  pending(): number {
    return this.queue.length;
  }
  /** Advances time, running due timers in order (and letting promise callbacks run in between). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flush();
      this.queue.sort((a, b) => a.at - b.at);
      const q = this.queue[0];
      if (!q || q.at > end) break;
      this.queue.shift();
      this.t = q.at;
      q.fn();
    }
    this.t = end;
    await flush();
  }
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

const map = (disk: string, since: string, dirtyBytes = 0): DirtyMap => ({
  vmId: 'vm-1', disk, since, granularity: 65536, virtualSize: 1024 * MiB, extents: [], dirtyBytes, buckets: [0, 0, 0, 0], bucketBytes: 256 * MiB, at: 0, elapsedMs: 5,
});

/** A refresher whose reads the test answers one by one. */
function setup(opts: { minIntervalMs?: number } = {}) {
  const timers = new FakeTimers();
  const calls: { vmId: string; disk: string; since: string; at: number; done: boolean; resolve(m: DirtyMap): void; reject(e: Error): void }[] = [];
  const published: { target: DirtyMapTarget; disk: string; state: DiskMapState }[] = [];
  const inFlight = new Map<string, number>();
  let maxInFlight = 0;
  const r = new DirtyMapRefresher({
    timers,
    minIntervalMs: opts.minIntervalMs ?? 1000,
    gapMs: 250,
    retryMs: 5000,
    fetch: (vmId, disk, since) => new Promise<DirtyMap>((resolve, reject) => {
      const key = `${vmId}/${disk}`;
      inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
      maxInFlight = Math.max(maxInFlight, inFlight.get(key)!);
      const call = {
        vmId, disk, since, at: timers.t, done: false,
        resolve: (m: DirtyMap) => { end(); resolve(m); },
        reject: (e: Error) => { end(); reject(e); },
      };
      const end = () => {
        call.done = true;
        inFlight.set(key, inFlight.get(key)! - 1);
      };
      calls.push(call);
    }),
    publish: (target, disk, state) => published.push({ target, disk, state }),
  });
  const last = (disk: string) => [...published].reverse().find((p) => p.disk === disk)?.state;
  return { r, timers, calls, published, last, maxInFlight: () => maxInFlight };
}

const target = (since = 'c1', disks = ['vda', 'vdb']): DirtyMapTarget => ({ vmId: 'vm-1', since, disks, cells: 4 });

describe('DirtyMapRefresher', () => {
  it('reads each disk once on watch, then only when what the map depends on changes', async () => {
    const { r, timers, calls, last } = setup();
    r.setActive(true);
    r.watch(target(), { vda: 'c1=0', vdb: 'c1=0' });
    expect(calls.map((c) => [c.disk, c.since])).toEqual([['vda', 'c1'], ['vdb', 'c1']]);
    expect(last('vda')).toEqual({ loading: true });
    calls[0]!.resolve(map('vda', 'c1'));
    calls[1]!.resolve(map('vdb', 'c1'));
    await flush();
    expect(last('vda')).toEqual({ map: map('vda', 'c1'), loading: false, behind: false, fingerprint: 'c1=0' });
    // The same fingerprint again and again (vm:bitmaps every 0.5 s on an idle VM): no reads.
    for (let i = 0; i < 20; i++) {
      r.changed('vm-1', 'vda', 'c1=0');
      await timers.advance(500);
    }
    expect(calls).toHaveLength(2);
    // A change: read again, and the shown map is marked as behind until then.
    r.changed('vm-1', 'vda', 'c1=65536');
    expect(last('vda')?.behind).toBe(true);
    expect(calls.map((c) => c.disk)).toEqual(['vda', 'vdb', 'vda']);
    // Another VM's change is not ours.
    r.changed('vm-2', 'vdb', 'x');
    expect(calls).toHaveLength(3);
  });

  it('never has two reads of one disk in flight, and reads at most once per interval however often it changes', async () => {
    const { r, timers, calls, maxInFlight } = setup();
    r.setActive(true);
    r.watch(target('c1', ['vda']), { vda: 'c1=0' });
    // The guest writes constantly: a new count every 100 ms for 10 s; each read takes 300 ms.
    for (let i = 1; i <= 100; i++) {
      r.changed('vm-1', 'vda', `c1=${i}`);
      for (const c of calls) if (!c.done && timers.t - c.at >= 300) c.resolve(map('vda', 'c1', i));
      await timers.advance(100);
    }
    expect(maxInFlight()).toBe(1);
    // 10 s of changes at a 1 s interval: about 10 reads, never one per change.
    expect(calls.length).toBeGreaterThanOrEqual(8);
    expect(calls.length).toBeLessThanOrEqual(11);
  });

  it('coalesces changes that arrive during a read into one read after it', async () => {
    const { r, timers, calls } = setup();
    r.setActive(true);
    r.watch(target('c1', ['vda']), { vda: 'a' });
    r.changed('vm-1', 'vda', 'b');
    r.changed('vm-1', 'vda', 'c');
    await timers.advance(3000);
    expect(calls).toHaveLength(1); // still in flight: nothing else starts
    calls[0]!.resolve(map('vda', 'c1'));
    await timers.advance(0);
    expect(calls).toHaveLength(1);
    await timers.advance(250);
    expect(calls).toHaveLength(2); // the interval has passed: right after a short gap
    calls[1]!.resolve(map('vda', 'c1'));
    await timers.advance(5000);
    expect(calls).toHaveLength(2);
  });

  it('reads nothing while inactive (page hidden or VM disconnected), and catches up when active again', async () => {
    const { r, timers, calls } = setup();
    r.watch(target('c1', ['vda']), { vda: 'a' });
    await timers.advance(5000);
    expect(calls).toHaveLength(0);
    r.setActive(true);
    expect(calls).toHaveLength(1);
    calls[0]!.resolve(map('vda', 'c1'));
    await timers.advance(2000);
    r.setActive(false);
    r.changed('vm-1', 'vda', 'b');
    await timers.advance(10_000);
    expect(calls).toHaveLength(1);
    expect(timers.pending()).toBe(0);
    r.setActive(true);
    expect(calls).toHaveLength(2);
  });

  it('drops a read for a baseline no longer watched, and does not overlap it with the new one', async () => {
    const { r, timers, calls, published, maxInFlight } = setup();
    r.setActive(true);
    r.watch(target('c1', ['vda']), { vda: 'a' });
    r.watch(target('c2', ['vda']), { vda: 'a' });
    expect(calls).toHaveLength(1); // c2's read of vda waits for c1's
    calls[0]!.resolve(map('vda', 'c1', 7));
    await timers.advance(1000);
    expect(calls.map((c) => c.since)).toEqual(['c1', 'c2']);
    expect(published.some((p) => p.target.since === 'c2' && p.state.map?.since === 'c1')).toBe(false);
    expect(published.filter((p) => p.target.since === 'c1' && p.state.map)).toHaveLength(0);
    expect(maxInFlight()).toBe(1);
    // Watching the same target again changes nothing.
    r.watch(target('c2', ['vda']), { vda: 'zzz' });
    expect(calls).toHaveLength(2);
  });

  it('stops for good when unwatched (the baseline is gone)', async () => {
    const { r, timers, calls } = setup();
    r.setActive(true);
    r.watch(target('c1', ['vda']), { vda: 'a' });
    calls[0]!.resolve(map('vda', 'c1'));
    await flush();
    r.changed('vm-1', 'vda', 'b'); // due in 1 s
    r.watch(undefined);
    await timers.advance(10_000);
    r.changed('vm-1', 'vda', 'c');
    expect(calls).toHaveLength(1);
    expect(timers.pending()).toBe(0);
  });

  it('shows a failed read and retries with a growing delay; a success clears the error', async () => {
    const { r, timers, calls, last } = setup();
    r.setActive(true);
    r.watch(target('c1', ['vda']), { vda: 'a' });
    calls[0]!.reject(new Error('bitmap c1 on vda is inconsistent'));
    await flush();
    expect(last('vda')).toEqual({ loading: false, error: 'bitmap c1 on vda is inconsistent' });
    await timers.advance(4900);
    expect(calls).toHaveLength(1);
    await timers.advance(200);
    expect(calls).toHaveLength(2);
    calls[1]!.reject(new Error('still'));
    await timers.advance(9000);
    expect(calls).toHaveLength(2); // second retry after 10 s
    await timers.advance(1200);
    expect(calls).toHaveLength(3);
    calls[2]!.resolve(map('vda', 'c1'));
    await flush();
    expect(last('vda')?.error).toBeUndefined();
    expect(last('vda')?.map).toBeDefined();
  });
});

describe('mapFingerprint', () => {
  const b = (name: string | undefined, count: number) => ({ name, count });
  it('depends only on the named bitmaps (not on temporary ones, such as the dirty map\'s own)', () => {
    const fp = mapFingerprint(['c1', 'c2'], [b('c1', 1), b('c2', 2), b('tidemark-tmp-map-1', 9)]);
    expect(fp).toBe('c1=1,c2=2');
    expect(mapFingerprint(['c1', 'c2'], [b('c1', 1), b('c2', 2), b(undefined, 5)])).toBe(fp);
    expect(mapFingerprint(['c1'], [])).toBe('c1=missing');
  });
});

// ---------------------------------------------------------------- wired into the store

describe('the store reads dirty maps in reaction to vm:bitmaps', () => {
  const demo: VmSummary = { id: 'vm-1', label: 'Demo', endpoint: 'unix:/q', kind: 'demo', connection: 'connected' };
  const bm = (name: string, count: number): BitmapInfo => ({ name, recording: true, persistent: true, busy: false, inconsistent: false, count, granularity: 65536 });

  async function withStore(vm: VmSummary = demo) {
    const timers = new FakeTimers();
    const api = new FakeApi()
      .handle('vm:list', () => [vm])
      .handle('lab:status', () => ({ running: true, qmp: '', qmpSecondary: '', disks: [] }))
      .handle('job:list', () => [])
      .handle('vm:info', (id) => vmInfo(id, [disk('vda', { bitmaps: [bm('c1', 0)] }), disk('vdc', { bitmapCapable: false })]))
      .handle('checkpoint:list', () => [checkpoint('c1', undefined, 1000, ['vda'])])
      .handle('checkpoint:current', () => checkpoint('c1', undefined, 1000, ['vda']))
      .handle('vm:health', (id) => ({ vmId: id, checkedAt: 1, issues: [] }))
      .handle('backup:list', () => ({ repo: '/r', backups: [], problems: [] }))
      .handle('dirtymap:get', (_vm, d, since, cells) => ({ ...map(d, since, 0), buckets: new Array<number>(cells!).fill(0) }));
    const store = createStore(api, { timers });
    await store.getState().start();
    await timers.advance(0);
    const emit = (count: number, extra: BitmapInfo[] = []) => api.emit('vm:bitmaps', { vmId: 'vm-1', at: timers.t, disks: [{ disk: 'vda', bitmaps: [bm('c1', count), ...extra] }] });
    return { api, store, timers, emit, reads: () => api.callsTo('dirtymap:get') };
  }

  it('watches the baseline, reads on count changes (throttled), and not on temporary bitmaps or while hidden', async () => {
    const { store, timers, emit, reads } = await withStore();
    store.getState().watchDirtyMaps({ vmId: 'vm-1', since: 'c1', disks: ['vda'], cells: 8 });
    await timers.advance(0);
    expect(reads()).toEqual([['vm-1', 'vda', 'c1', 8]]);
    expect(store.getState().dirtyMaps.disks.vda?.map?.buckets).toHaveLength(8);
    emit(0);
    emit(0, [bm('tidemark-tmp-map-abc', 0)]); // the map's own temporary bitmap appears: no new read
    await timers.advance(3000);
    expect(reads()).toHaveLength(1);
    emit(65536);
    await timers.advance(0);
    expect(reads()).toHaveLength(2);
    emit(131072);
    await timers.advance(500);
    expect(reads()).toHaveLength(2); // throttled
    await timers.advance(600);
    expect(reads()).toHaveLength(3);
    // Hidden page: nothing; shown again: it catches up.
    store.getState().setPageVisible(false);
    emit(196608);
    await timers.advance(5000);
    expect(reads()).toHaveLength(3);
    store.getState().setPageVisible(true);
    await timers.advance(0);
    expect(reads()).toHaveLength(4);
  });

  it('stops reading when the VM disconnects or the bitmap vanishes, and when unwatched', async () => {
    const { api, store, timers, emit, reads } = await withStore();
    store.getState().watchDirtyMaps({ vmId: 'vm-1', since: 'c1', disks: ['vda'], cells: 8 });
    await timers.advance(1000);
    api.emit('vm:list', [{ ...demo, connection: 'disconnected' }]);
    emit(65536);
    await timers.advance(5000);
    expect(reads()).toHaveLength(1);
    api.emit('vm:list', [demo]);
    await timers.advance(0);
    expect(reads()).toHaveLength(2);
    // The baseline's bitmap is gone (being deleted): no read that must fail.
    api.emit('vm:bitmaps', { vmId: 'vm-1', at: timers.t, disks: [{ disk: 'vda', bitmaps: [] }] });
    await timers.advance(5000);
    expect(reads()).toHaveLength(2);
    store.getState().watchDirtyMaps(undefined);
    emit(999);
    await timers.advance(5000);
    expect(reads()).toHaveLength(2);
    expect(store.getState().dirtyMaps).toEqual({ target: undefined, disks: {} });
  });

  it("watching a libvirt domain's maps says why there are none, and watching them again changes nothing", async () => {
    const { store, timers, reads } = await withStore({ ...demo, kind: 'libvirt' });
    const target = { vmId: 'vm-1', since: 'c1', disks: ['vda'], cells: 8 };
    store.getState().watchDirtyMaps(target);
    const first = store.getState().dirtyMaps;
    expect(first.disks.vda?.unavailable).toMatch(/^no disk map for libvirt domains/);
    let updates = 0;
    const off = store.subscribe(() => updates++);
    store.getState().watchDirtyMaps({ ...target, disks: ['vda'] });
    off();
    expect(updates).toBe(0);
    expect(store.getState().dirtyMaps).toBe(first);
    await timers.advance(5000);
    expect(reads()).toEqual([]);
  });
});
