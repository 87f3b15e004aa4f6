// The service against a real demo VM: lab start → connected → checkpoints → live bitmaps →
// write jobs (progress, cancel) → a second, CLI-style service on the other socket → lab stop.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventMap, EventName, JobInfo } from '../../shared/contract';
import { stopLab } from '../engine/lab/labvm';
import { createService, DEMO_VM_ID, type Service } from './service';

let dir: string;
let svc: Service;
const seen: { [E in EventName]?: EventMap[E][] } = {};

function next<E extends EventName>(s: Service, event: E, pred: (p: EventMap[E]) => boolean, timeoutMs = 20_000): Promise<EventMap[E]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error(`no ${event} event matching within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = s.events.on(event, (p) => {
      if (!pred(p)) return;
      clearTimeout(t);
      off();
      resolve(p);
    });
  });
}

const demoState = (s: Service) => s.handlers['vm:list']().then((l) => l.find((v) => v.id === DEMO_VM_ID)!);

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tms-'));
  svc = createService({ stateDir: dir, bitmapPollMs: 100 });
  for (const e of ['vm:list', 'checkpoints:changed', 'job:update'] as const) {
    svc.events.on(e, (p) => ((seen[e] ??= []) as unknown[]).push(p));
  }
});

afterAll(async () => {
  await svc?.close();
  if (dir) {
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('service over the demo VM', () => {
  it('lab:start brings the demo VM up and the service connects to it', async () => {
    const connected = next(svc, 'vm:list', (l) => l.some((v) => v.id === DEMO_VM_ID && v.connection === 'connected'));
    const lab = await svc.handlers['lab:start']();
    expect(lab).toMatchObject({ running: true, vmId: DEMO_VM_ID });
    expect(lab.disks.map((d) => [d.name, d.legacy])).toEqual([['vda', false], ['vdb', false], ['vdc', true]]);
    await connected;
    const info = await svc.handlers['vm:info'](DEMO_VM_ID);
    expect(info.name).toBe('tidemark-demo');
    expect(info.disks.map((d) => d.name)).toEqual(['vda', 'vdb', 'vdc']);
  });

  it('creates a checkpoint, says so, and pushes the new bitmap live', async () => {
    const bitmaps = next(svc, 'vm:bitmaps', (p) => p.disks.find((d) => d.disk === 'vda')?.bitmaps.some((b) => b.name === 'c1') ?? false);
    const changed = next(svc, 'checkpoints:changed', (p) => p.vmId === DEMO_VM_ID);
    const cp = await svc.handlers['checkpoint:create'](DEMO_VM_ID, { name: 'c1' });
    expect(cp.disks.map((d) => [d.name, d.checkpoint])).toEqual([['vda', 'bitmap'], ['vdb', 'bitmap'], ['vdc', 'no']]);
    await changed;
    const ev = await bitmaps;
    expect(ev.disks.find((d) => d.disk === 'vda')!.bitmaps.find((b) => b.name === 'c1')).toMatchObject({ recording: true, persistent: true, count: 0 });
    expect((await svc.handlers['checkpoint:current'](DEMO_VM_ID))?.name).toBe('c1');
  });

  it('a write job reports progress, succeeds, and the bitmap count grows (pushed as vm:bitmaps)', async () => {
    const grown = next(svc, 'vm:bitmaps', (p) => (p.disks.find((d) => d.disk === 'vdb')?.bitmaps.find((b) => b.name === 'c1')?.count ?? 0) >= 2 * 1024 * 1024);
    const job = await svc.handlers['lab:write'](DEMO_VM_ID, { disk: 'vdb', pattern: 'sequential', mib: 2 });
    expect(job).toMatchObject({ kind: 'write-sim', vmId: DEMO_VM_ID, state: 'running', progress: [{ disk: 'vdb', done: 0, total: 2 * 1024 * 1024 }] });
    const done = await next(svc, 'job:update', (j) => j.id === job.id && j.state !== 'running');
    expect(done.state).toBe('succeeded');
    expect(done.progress).toEqual([{ disk: 'vdb', done: 2 * 1024 * 1024, total: 2 * 1024 * 1024 }]);
    const ev = await grown;
    // two sequential 1 MiB writes: exactly 2 MiB of 64 KiB granules
    expect(ev.disks.find((d) => d.disk === 'vdb')!.bitmaps.find((b) => b.name === 'c1')!.count).toBe(2 * 1024 * 1024);
    const changes = await svc.handlers['checkpoint:changes'](DEMO_VM_ID, 'c1');
    expect(changes.disks.find((d) => d.disk === 'vdb')!.bytes).toBe(2 * 1024 * 1024);
    expect((await svc.handlers['job:list'](DEMO_VM_ID)).map((j) => j.id)).toContain(job.id);
  });

  it('a throttled job can be cancelled', async () => {
    const job = await svc.handlers['lab:write'](DEMO_VM_ID, { disk: 'vda', pattern: 'random', mib: 64, rateMibPerS: 1 });
    await next(svc, 'job:update', (j) => j.id === job.id && j.progress[0]!.done > 0);
    const cancelled = await svc.handlers['job:cancel'](job.id);
    expect(cancelled.state).toBe('cancelled');
    expect(cancelled.progress[0]!.done).toBeLessThan(64 * 1024 * 1024);
    expect(((seen['job:update'] ?? []) as JobInfo[]).filter((j) => j.id === job.id).at(-1)!.state).toBe('cancelled');
  });

  it('names an unknown disk', async () => {
    await expect(svc.handlers['lab:write'](DEMO_VM_ID, { disk: 'vdz', pattern: 'random', mib: 1 })).rejects.toThrow('the demo VM has no disk "vdz" (it has vda, vdb, vdc)');
  });

  it('a CLI-style service (on-demand, secondary socket) sees the same checkpoints while the app holds the primary', async () => {
    const cli = createService({ stateDir: dir, connectMode: 'on-demand', demoSocket: 'secondary' });
    // the app's service notices the other process's change through its metadata watcher
    const noticed = next(svc, 'checkpoints:changed', (p) => p.vmId === DEMO_VM_ID);
    try {
      const cps = await cli.handlers['checkpoint:list'](DEMO_VM_ID);
      expect(cps.map((c) => c.name)).toEqual(['c1']);
      const c2 = await cli.handlers['checkpoint:create'](DEMO_VM_ID, { name: 'c2' });
      expect(c2.parent).toBe('c1');
      expect((await demoState(cli)).endpoint).toBe(`unix:${path.join(dir, 'lab', 'qmp2.sock')}`);
    } finally {
      await cli.close();
    }
    await noticed;
    expect((await svc.handlers['checkpoint:list'](DEMO_VM_ID)).map((c) => c.name)).toEqual(['c1', 'c2']);
    expect((await svc.handlers['checkpoint:current'](DEMO_VM_ID))?.name).toBe('c2');
  });

  it('the demo VM keeps its id across service restarts', async () => {
    const again = createService({ stateDir: dir, connectMode: 'on-demand', demoSocket: 'secondary' });
    try {
      const info = await again.handlers['lab:status']();
      expect(info.vmId).toBe(DEMO_VM_ID);
      expect((await again.handlers['checkpoint:get'](DEMO_VM_ID, 'c1')).name).toBe('c1');
    } finally {
      await again.close();
    }
  });

  it('deletes with --children semantics and pushes the removal', async () => {
    const gone = next(svc, 'vm:bitmaps', (p) => !p.disks.some((d) => d.bitmaps.some((b) => b.name === 'c1' || b.name === 'c2')));
    const res = await svc.handlers['checkpoint:delete'](DEMO_VM_ID, 'c1', 'children');
    expect(res.deleted.sort()).toEqual(['c1', 'c2']);
    await gone;
    expect(await svc.handlers['checkpoint:list'](DEMO_VM_ID)).toEqual([]);
  });

  it('lab:stop stops QEMU and the demo VM shows as not running', async () => {
    const lab = await svc.handlers['lab:stop']();
    expect(lab.running).toBe(false);
    expect(lab.vmId).toBeUndefined();
    const demo = await demoState(svc);
    expect(demo).toMatchObject({ connection: 'disconnected', detail: 'the demo VM is not running (start it with: tidemark lab start)' });
    await expect(svc.handlers['vm:info'](DEMO_VM_ID)).rejects.toThrow('the demo VM is not running');
  });
});
