import { describe, expect, it } from 'vitest';
import type { BackupRecord, JobInfo, VmSummary } from '../../../shared/contract';
import type { Checkpoint } from '../../../shared/domain';
import { checkpoint, disk, FakeApi, MiB, vmInfo } from '../test/fake-api';
import { HISTORY_POINTS } from '../model/samples';
import { createStore } from './store';

const demo: VmSummary = { id: 'vm-1', label: 'Demo VM', endpoint: 'unix:/tmp/q.sock', kind: 'demo', connection: 'connected' };
const other: VmSummary = { id: 'vm-2', label: 'Other', endpoint: 'tcp:10.0.0.2:4444', kind: 'endpoint', connection: 'disconnected', detail: 'ECONNREFUSED' };

const flush = () => new Promise((r) => setTimeout(r, 0));

function setup(initial: Checkpoint[] = []) {
  const api = new FakeApi();
  let checkpoints = initial;
  api
    .handle('vm:list', () => [demo, other])
    .handle('lab:status', () => ({ running: true, vmId: 'vm-1', qmp: 'unix:/q', qmpSecondary: 'unix:/q2', disks: [] }))
    .handle('job:list', () => [])
    .handle('vm:info', (id) => vmInfo(id, [disk('vda', { bitmaps: checkpoints.map((c) => ({ name: c.name, recording: true, persistent: true, busy: false, inconsistent: false, count: 0, granularity: 65536 })) }), disk('vdb', { virtualSize: 512 * MiB })]))
    .handle('checkpoint:list', () => checkpoints)
    .handle('checkpoint:current', () => checkpoints[checkpoints.length - 1] ?? null)
    .handle('vm:health', (id) => ({ vmId: id, checkedAt: 1, issues: [] }))
    .handle('checkpoint:create', (_id, opts) => {
      const cp = checkpoint(opts.name ?? 'auto', checkpoints[checkpoints.length - 1]?.name, 5000, ['vda']);
      checkpoints = [...checkpoints, cp];
      return cp;
    });
  const store = createStore(api);
  return { api, store, setCheckpoints: (c: Checkpoint[]) => (checkpoints = c) };
}

describe('createStore', () => {
  it('loads the VM list on start, selects the connected VM and loads its disks and checkpoints', async () => {
    const { api, store } = setup([checkpoint('c1', undefined, 1000, ['vda'])]);
    await store.getState().start();
    await flush();
    const s = store.getState();
    expect(s.vms.map((v) => v.id)).toEqual(['vm-1', 'vm-2']);
    expect(s.selectedVmId).toBe('vm-1');
    expect(s.byVm['vm-1']!.info!.disks.map((d) => d.name)).toEqual(['vda', 'vdb']);
    expect(s.byVm['vm-1']!.checkpoints.map((c) => c.name)).toEqual(['c1']);
    expect(s.byVm['vm-1']!.current).toBe('c1');
    expect(api.callsTo('vm:info')).toEqual([['vm-1']]);
    // It listens instead of polling.
    for (const e of ['vm:list', 'vm:bitmaps', 'checkpoints:changed', 'job:update'] as const) expect(api.listenerCount(e)).toBe(1);
  });

  it('asks for the backup list with the VM data, and has it in the store when the checkpoints arrive if it answered first', async () => {
    const { api, store } = setup([checkpoint('c1', undefined, 1000, ['vda'])]);
    const backup: BackupRecord = { format: 'tidemark-backup', version: 1, id: 'b1', vm: { id: 'vm-1' }, kind: 'full', checkpoint: 'c1', startedAt: 1, completedAt: 2, qemuVersion: '7.2.22', tool: 't', disks: [] };
    api.handle('backup:list', () => ({ repo: '/r', backups: [backup], problems: [] }));
    // What the store holds each time the checkpoints are there: never the checkpoints without the list.
    const seen = new Set<string>();
    store.subscribe((s) => {
      if (s.byVm['vm-1']?.checkpoints.length) seen.add(`backups ${s.backups['vm-1']?.length ?? 'not yet'}`);
    });
    await store.getState().start();
    await flush();
    const order = api.calls.map((c) => c.channel);
    expect(order.indexOf('backup:list')).toBeLessThan(order.indexOf('vm:info'));
    expect(api.callsTo('backup:list')).toHaveLength(1);
    expect([...seen]).toEqual(['backups 1']);
    expect(store.getState().repositoryResolved).toBe('/r');
  });

  it('applies a backup list that answers after the VM data when it does, and says when it fails', async () => {
    const { api, store } = setup([checkpoint('c1', undefined, 1000, ['vda'])]);
    let answer: (v: { repo: string; backups: []; problems: [] }) => void = () => {};
    api.handle('backup:list', () => new Promise((resolve) => (answer = resolve)));
    await store.getState().start();
    await flush();
    expect(store.getState().byVm['vm-1']!.checkpoints).toHaveLength(1);
    expect(store.getState().backups['vm-1']).toBeUndefined();
    answer({ repo: '/r', backups: [], problems: [] });
    await flush();
    expect(store.getState().backups['vm-1']).toEqual([]);
    api.handle('backup:list', () => Promise.reject(new Error('no repository')));
    await store.getState().loadVm('vm-1');
    await flush();
    expect(store.getState().backupsError).toBe('no repository');
  });

  it('does not try to load a disconnected VM, and loads it when it connects', async () => {
    const { api, store } = setup();
    await store.getState().start();
    await flush();
    await store.getState().selectVm('vm-2');
    expect(api.callsTo('vm:info')).toEqual([['vm-1']]);
    api.emit('vm:list', [demo, { ...other, connection: 'connected', detail: undefined }]);
    await flush();
    expect(api.callsTo('vm:info')).toEqual([['vm-1'], ['vm-2']]);
  });

  it('keeps a bounded history of live counts per bitmap from vm:bitmaps, seeded at load', async () => {
    const { api, store } = setup([checkpoint('c1', undefined, 1000, ['vda'])]);
    await store.getState().start();
    await flush();
    const T0 = Date.now() + 10_000; // vm:bitmaps times are wall-clock, after the seed taken at load
    const seeded = store.getState().byVm['vm-1']!.samples.vda!;
    expect(seeded.get('c1')?.n).toBe(1); // vm:info's count, so an idle VM still has a level
    const bitmap = (count: number) => ({ name: 'c1', recording: true, persistent: true, busy: false, inconsistent: false, count, granularity: 65536 });
    api.emit('vm:bitmaps', { vmId: 'vm-1', at: T0 + 2000, disks: [{ disk: 'vda', bitmaps: [bitmap(65536)] }] });
    api.emit('vm:bitmaps', { vmId: 'vm-1', at: T0 + 3000, disks: [{ disk: 'vda', bitmaps: [bitmap(131072)] }] });
    const v = store.getState().byVm['vm-1']!;
    const c1 = v.samples.vda!.get('c1')!;
    expect(c1.t.slice(1, c1.n)).toEqual([T0 + 2000, T0 + 3000]);
    expect(c1.c.slice(1, c1.n)).toEqual([65536, 131072]);
    expect(v.live!.vda![0]!.count).toBe(131072);
    expect(v.liveAt).toBe(T0 + 3000);
    // Unchanged counts make no point and leave the samples object as it was (no re-render).
    const other = { ...bitmap(7), name: 'old' };
    api.emit('vm:bitmaps', { vmId: 'vm-1', at: T0 + 3100, disks: [{ disk: 'vda', bitmaps: [bitmap(131072), other] }] });
    const before = store.getState().byVm['vm-1']!.samples;
    api.emit('vm:bitmaps', { vmId: 'vm-1', at: T0 + 3200, disks: [{ disk: 'vda', bitmaps: [bitmap(131072), other] }] });
    expect(store.getState().byVm['vm-1']!.samples).toBe(before);
    // However long the page stays open, a bitmap keeps at most HISTORY_POINTS points, the newest last.
    for (let i = 0; i < 10 * HISTORY_POINTS; i++) api.emit('vm:bitmaps', { vmId: 'vm-1', at: T0 + 4000 + i, disks: [{ disk: 'vda', bitmaps: [bitmap(200_000 + i), other] }] });
    const history = store.getState().byVm['vm-1']!.samples.vda!;
    expect(history.get('c1')!.n).toBeLessThanOrEqual(HISTORY_POINTS);
    expect(history.get('c1')!.t[history.get('c1')!.n - 1]).toBe(T0 + 4000 + 10 * HISTORY_POINTS - 1);
    expect(history.get('old')!.n).toBe(1);
    // A bitmap that vanished loses its history.
    api.emit('vm:bitmaps', { vmId: 'vm-1', at: T0 + 9e6, disks: [{ disk: 'vda', bitmaps: [bitmap(1)] }] });
    expect(store.getState().byVm['vm-1']!.samples.vda!.has('old')).toBe(false);
  });

  it('re-checks health when bitmap flags change, not when only counts change', async () => {
    const { api, store } = setup([checkpoint('c1', undefined, 1000, ['vda'])]);
    await store.getState().start();
    await flush();
    const b = { name: 'c1', recording: true, persistent: true, busy: false, inconsistent: false, count: 1, granularity: 65536 };
    api.emit('vm:bitmaps', { vmId: 'vm-1', at: 2000, disks: [{ disk: 'vda', bitmaps: [b] }] });
    await flush();
    const before = api.callsTo('vm:health').length;
    api.emit('vm:bitmaps', { vmId: 'vm-1', at: 2100, disks: [{ disk: 'vda', bitmaps: [{ ...b, count: 99 }] }] });
    api.emit('vm:bitmaps', { vmId: 'vm-1', at: 2150, disks: [{ disk: 'vda', bitmaps: [{ ...b, count: 999 }] }] });
    await flush();
    expect(api.callsTo('vm:health').length).toBe(before); // only counts changed
    api.emit('vm:bitmaps', { vmId: 'vm-1', at: 2200, disks: [{ disk: 'vda', bitmaps: [{ ...b, inconsistent: true, recording: false }] }] });
    await flush();
    expect(api.callsTo('vm:health').length).toBe(before + 1);
  });

  it('reloads checkpoints when the engine says they changed', async () => {
    const { api, store, setCheckpoints } = setup([checkpoint('c1', undefined, 1000, ['vda'])]);
    await store.getState().start();
    await flush();
    setCheckpoints([checkpoint('c1', undefined, 1000, ['vda']), checkpoint('c2', 'c1', 2000, ['vda'])]);
    api.emit('checkpoints:changed', { vmId: 'vm-1' });
    await flush();
    expect(store.getState().byVm['vm-1']!.checkpoints.map((c) => c.name)).toEqual(['c1', 'c2']);
    expect(store.getState().byVm['vm-1']!.current).toBe('c2');
  });

  it('creates a checkpoint on the selected VM, selects it and announces it', async () => {
    const { api, store } = setup();
    await store.getState().start();
    await flush();
    const cp = await store.getState().createCheckpoint({ name: 'nightly', disks: [{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'no' }] });
    expect(cp.name).toBe('nightly');
    expect(api.callsTo('checkpoint:create')).toEqual([['vm-1', { name: 'nightly', disks: [{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'no' }] }]]);
    expect(store.getState().selected).toBe('nightly');
    expect(store.getState().byVm['vm-1']!.checkpoints.map((c) => c.name)).toEqual(['nightly']);
    expect(store.getState().announcement).toBe('Checkpoint nightly created');
  });

  it('passes engine errors through to the caller and keeps state unchanged', async () => {
    const { api, store } = setup([checkpoint('c1', undefined, 1000, ['vda'])]);
    api.handle('checkpoint:delete', () => {
      throw new Error('checkpoint "c9" does not exist');
    });
    await store.getState().start();
    await flush();
    await expect(store.getState().deleteCheckpoint('c9', 'plain')).rejects.toThrow('checkpoint "c9" does not exist');
    expect(store.getState().byVm['vm-1']!.checkpoints.map((c) => c.name)).toEqual(['c1']);
  });

  it('shows why the page cannot start when the host is unreachable', async () => {
    const api = new FakeApi().handle('vm:list', () => {
      throw new Error('connection to the Tidemark host failed');
    });
    const store = createStore(api);
    await store.getState().start();
    expect(store.getState().error).toBe('connection to the Tidemark host failed');
    expect(store.getState().vmsLoaded).toBe(true);
  });

  it('ignores a stale load that finishes after a newer one', async () => {
    const { api, store, setCheckpoints } = setup([checkpoint('old', undefined, 1000, ['vda'])]);
    await store.getState().start();
    await flush();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    api.handle('checkpoint:list', async () => {
      await gate;
      return [checkpoint('stale', undefined, 1000, ['vda'])];
    });
    const slow = store.getState().loadVm('vm-1');
    api.handle('checkpoint:list', () => [checkpoint('fresh', undefined, 1000, ['vda'])]);
    setCheckpoints([checkpoint('fresh', undefined, 1000, ['vda'])]);
    await store.getState().loadVm('vm-1');
    release();
    await slow;
    expect(store.getState().byVm['vm-1']!.checkpoints.map((c) => c.name)).toEqual(['fresh']);
  });

  it('tracks jobs from job:update and announces progress in quarters and the outcome', async () => {
    const { api, store } = setup();
    await store.getState().start();
    await flush();
    const job = (done: number, state: JobInfo['state'] = 'running'): JobInfo => ({
      id: 'j1', kind: 'write-sim', vmId: 'vm-1', state, title: 'Write 8 MiB to vda', startedAt: 1, progress: [{ disk: 'vda', done, total: 100 }], log: [],
    });
    api.emit('job:update', job(10));
    expect(store.getState().announcement).toBe('');
    api.emit('job:update', job(30));
    expect(store.getState().announcement).toBe('Write 8 MiB to vda: 25%');
    api.emit('job:update', job(40));
    expect(store.getState().announcement).toBe('Write 8 MiB to vda: 25%');
    api.emit('job:update', job(100, 'succeeded'));
    expect(store.getState().announcement).toBe('Write 8 MiB to vda finished');
    expect(store.getState().jobs.j1!.state).toBe('succeeded');
  });

  it('stops listening on stop()', async () => {
    const { api, store } = setup();
    await store.getState().start();
    store.getState().stop();
    expect(api.listenerCount('vm:bitmaps')).toBe(0);
  });
});
