// The service without QEMU: the registry, its persistence and the errors a caller sees.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { dispatch, type VmSummary } from '../../shared/contract';
import { MetadataStore } from '../engine/checkpoints/store';
import { createService, DEMO_VM_ID, endpointId, type Service } from './service';

let dir: string;
const open: Service[] = [];
const make = (opts: Partial<Parameters<typeof createService>[0]> = {}) => {
  const s = createService({ stateDir: dir, connectMode: 'on-demand', ...opts });
  open.push(s);
  return s;
};

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-svc-'));
});
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('endpointId', () => {
  it('is stable and the same for equivalent spellings', () => {
    expect(endpointId('/run/vm.sock')).toBe(endpointId('unix:/run/vm.sock'));
    expect(endpointId('tcp:127.0.0.1:4444')).toMatch(/^ep-[0-9a-f]{12}$/);
    expect(endpointId('tcp:127.0.0.1:4444')).not.toBe(endpointId('tcp:127.0.0.1:4445'));
  });
});

describe('VM registry', () => {
  it('always lists the demo VM first, with a fixed id, not running', async () => {
    const s = make();
    const list = await s.handlers['vm:list']();
    expect(list).toEqual([{
      id: DEMO_VM_ID, label: 'Demo VM (tidemark-demo)', endpoint: `unix:${path.join(dir, 'lab', 'qmp.sock')}`, kind: 'demo',
      connection: 'disconnected', detail: 'the demo VM is not running (start it with: tidemark lab start)',
    }]);
  });

  it('persists added endpoints with stable ids, and forgets removed ones', async () => {
    const s1 = make();
    const events: VmSummary[][] = [];
    s1.events.on('vm:list', (l) => events.push(l));
    const added = await s1.handlers['vm:add']('/run/a.sock', '  VM A ');
    expect(added).toMatchObject({ id: endpointId('/run/a.sock'), label: 'VM A', endpoint: 'unix:/run/a.sock', kind: 'endpoint', connection: 'disconnected' });
    expect(await s1.handlers['vm:add']('unix:/run/a.sock')).toEqual(added); // idempotent
    await s1.handlers['vm:add']('tcp:127.0.0.1:4444');
    expect(events.at(-1)!.map((v) => v.endpoint)).toEqual([expect.stringContaining('qmp.sock'), 'unix:/run/a.sock', 'tcp:127.0.0.1:4444']);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'endpoints.json'), 'utf8'))).toEqual([
      { endpoint: 'unix:/run/a.sock', label: 'VM A' },
      { endpoint: 'tcp:127.0.0.1:4444', label: 'tcp:127.0.0.1:4444' },
    ]);
    await s1.close();

    const s2 = make();
    const ids = (await s2.handlers['vm:list']()).map((v) => v.id);
    expect(ids).toEqual([DEMO_VM_ID, added.id, endpointId('tcp:127.0.0.1:4444')]);
    await s2.handlers['vm:remove'](added.id);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'endpoints.json'), 'utf8'))).toEqual([{ endpoint: 'tcp:127.0.0.1:4444', label: 'tcp:127.0.0.1:4444' }]);
  });

  it('transient endpoints are listed but never written', async () => {
    const s = make({ transientEndpoints: ['/tmp/x.sock'] });
    expect((await s.handlers['vm:list']()).map((v) => v.endpoint)).toContain('unix:/tmp/x.sock');
    expect(fs.existsSync(path.join(dir, 'endpoints.json'))).toBe(false);
  });

  it('names what is wrong', async () => {
    const s = make();
    await expect(s.handlers['vm:add']('http://x')).rejects.toThrow('QMP endpoint "http://x" has an unknown scheme');
    await expect(s.handlers['vm:remove'](DEMO_VM_ID)).rejects.toThrow('the demo VM cannot be removed');
    await expect(s.handlers['vm:info']('ep-nope')).rejects.toThrow('no VM with id "ep-nope"');
    await expect(s.handlers['checkpoint:list'](DEMO_VM_ID)).rejects.toThrow('the demo VM is not running (start it with: tidemark lab start)');
    const ep = await s.handlers['vm:add']('/nonexistent/tidemark.sock');
    await expect(s.handlers['lab:write'](ep.id, { disk: 'vda', pattern: 'random', mib: 1 })).rejects.toThrow(/write simulation only runs on the demo VM/);
    await expect(s.handlers['vm:info'](ep.id)).rejects.toThrow(/cannot connect to QMP at unix:\/nonexistent\/tidemark.sock.*no such socket/);
    const after = (await s.handlers['vm:list']()).find((v) => v.id === ep.id)!;
    expect(after.connection).toBe('disconnected');
    expect(after.detail).toMatch(/no such socket/);
    await expect(s.handlers['job:cancel']('job-x')).rejects.toThrow('no job with id "job-x"');
  });

  it('refuses a damaged endpoints.json with the file name', () => {
    fs.writeFileSync(path.join(dir, 'endpoints.json'), '{not json');
    expect(() => createService({ stateDir: dir, connectMode: 'on-demand' })).toThrow(/endpoints.json is not valid JSON/);
    fs.writeFileSync(path.join(dir, 'endpoints.json'), '[{"endpoint": 5}]');
    expect(() => createService({ stateDir: dir, connectMode: 'on-demand' })).toThrow(/endpoints.json: entry 0 needs "endpoint" and "label" strings/);
  });

  it('is reachable through dispatch, which validates arguments first', async () => {
    const s = make();
    await expect(dispatch(s.handlers, 'lab:write', ['demo', { disk: 'vda', pattern: 'zigzag', mib: 1 }])).rejects.toThrow(/pattern: expected one of/);
    expect(await dispatch(s.handlers, 'lab:status', [])).toMatchObject({ running: false, disks: [] });
  });
});

describe('a VM that is not running: reads from its recorded metadata (on-demand mode)', () => {
  const cp = (name: string, parent?: string) => ({
    name, ...(parent ? { parent } : {}), creationTime: 1700000000, createdAtMs: 1700000000000 + name.length, layout: 'independent' as const,
    disks: [{ name: 'vda', checkpoint: 'bitmap' as const, bitmap: name }],
  });
  const record = (vmId: string) => {
    const store = new MetadataStore(dir, vmId, 'vm-a');
    store.writeVm({ id: vmId, name: 'vm-a', endpoint: 'unix:/x', layout: 'independent', current: 'c2' });
    store.writeCheckpoint(cp('c1'));
    store.writeCheckpoint(cp('c2', 'c1'));
  };

  it('an endpoint whose VM id was seen before: list, get, current and dumpxml work; sizes, changes and health do not', async () => {
    const sock = path.join(dir, 'gone.sock');
    fs.writeFileSync(path.join(dir, 'endpoints.json'), JSON.stringify([{ endpoint: `unix:${sock}`, label: 'VM A', vmId: 'uuid-a' }]));
    record('uuid-a');
    const s = make();
    const id = endpointId(sock);
    expect((await s.handlers['checkpoint:list'](id)).map((c) => c.name)).toEqual(['c1', 'c2']);
    expect((await s.handlers['checkpoint:list'](id, { from: 'c1' })).map((c) => c.name)).toEqual(['c2']);
    expect((await s.handlers['checkpoint:get'](id, 'c2')).parent).toBe('c1');
    expect((await s.handlers['checkpoint:current'](id))?.name).toBe('c2');
    expect(await s.handlers['checkpoint:dumpxml'](id, 'c1', { noDomain: true })).toContain('<name>c1</name>');
    await expect(s.handlers['checkpoint:get'](id, 'c9')).rejects.toThrow('checkpoint c9 not found');
    await expect(s.handlers['checkpoint:dumpxml'](id, 'c1', { size: true })).rejects.toThrow('VM VM A is not running: sizes are measured from its live bitmaps (dump without --size, or start the VM)');
    await expect(s.handlers['checkpoint:create'](id, { name: 'c3' })).rejects.toThrow(/cannot connect to QMP at unix:.*gone\.sock.*no such socket/);
    await expect(s.handlers['checkpoint:delete'](id, 'c1', 'plain')).rejects.toThrow(/no such socket/);
    await expect(s.handlers['vm:health'](id)).rejects.toThrow(/no such socket/);
    expect((await s.handlers['vm:list']()).find((v) => v.id === id)?.connection).toBe('disconnected');
    // the endpoint list keeps the remembered id
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'endpoints.json'), 'utf8'))[0].vmId).toBe('uuid-a');
  });

  it('not without a recorded id, not for a socket that exists but does not answer, and not in eager mode', async () => {
    const s = make({ transientEndpoints: [path.join(dir, 'never.sock')] });
    await expect(s.handlers['checkpoint:list'](endpointId(path.join(dir, 'never.sock')))).rejects.toThrow(/no such socket/);
    // the demo VM without lab.json has no identity yet
    await expect(s.handlers['checkpoint:list'](DEMO_VM_ID)).rejects.toThrow('the demo VM is not running (start it with: tidemark lab start)');

    // something listens there but is no QMP (it hangs up): that is not "not running"
    const file = path.join(dir, 'hangup.sock');
    const server = net.createServer((c) => c.destroy());
    await new Promise<void>((r) => server.listen(file, r));
    try {
      fs.writeFileSync(path.join(dir, 'endpoints.json'), JSON.stringify([{ endpoint: file, label: 'F', vmId: 'uuid-a' }]));
      record('uuid-a');
      await expect(make().handlers['checkpoint:list'](endpointId(file))).rejects.toThrow(/closed|greeting/);
    } finally {
      await new Promise((r) => server.close(r));
    }

    const eager = make({ connectMode: 'eager' });
    await expect(eager.handlers['checkpoint:list'](endpointId(file))).rejects.toThrow(/is not connected/);
  });

  it('a damaged remembered id in endpoints.json is refused with the file name', () => {
    fs.writeFileSync(path.join(dir, 'endpoints.json'), JSON.stringify([{ endpoint: '/x.sock', label: 'x', vmId: 7 }]));
    expect(() => createService({ stateDir: dir, connectMode: 'on-demand' })).toThrow(/endpoints.json: entry 0 has a "vmId" that is not a non-empty string/);
  });
});

describe('backup and pull channels', () => {
  it('load their modules on first use only, and answer through dispatch afterwards', async () => {
    const loaded: string[] = [];
    vi.resetModules();
    vi.doMock('./handlers/backup', async (original) => {
      loaded.push('backup');
      return original();
    });
    vi.doMock('./handlers/pull', async (original) => {
      loaded.push('pull');
      return original();
    });
    try {
      const fresh = await import('./service');
      const s = fresh.createService({ stateDir: dir, connectMode: 'on-demand' });
      open.push(s);
      await s.handlers['checkpoint:list'](DEMO_VM_ID).catch(() => undefined);
      expect(loaded).toEqual([]);
      expect(await dispatch(s.handlers, 'backup:list', [])).toEqual({ repo: path.join(dir, 'backups'), backups: [], problems: [] });
      expect(loaded).toEqual(['backup']);
      await expect(s.handlers['pull:wait'](DEMO_VM_ID)).rejects.toThrow('no export-only pull of VM demo is open in this process');
      await s.handlers['backup:list']();
      expect(loaded).toEqual(['backup', 'pull']);
    } finally {
      vi.doUnmock('./handlers/backup');
      vi.doUnmock('./handlers/pull');
      vi.resetModules();
    }
  });
});

describe('retention and schedule channels', () => {
  it('load their module on first use only, and refuse a prune of a VM never seen', async () => {
    const loaded: string[] = [];
    vi.resetModules();
    vi.doMock('./handlers/retention', async (original) => {
      loaded.push('retention');
      return original();
    });
    try {
      const fresh = await import('./service');
      const s = fresh.createService({ stateDir: dir, connectMode: 'on-demand' });
      open.push(s);
      await dispatch(s.handlers, 'backup:list', []);
      expect(loaded).toEqual([]);
      const units = path.join(dir, 'units');
      expect(await dispatch(s.handlers, 'schedule:list', [{ unitDir: units }])).toEqual({ target: { kind: 'systemd', dir: units, user: false }, schedules: [], problems: [] });
      expect(loaded).toEqual(['retention']);
      await expect(dispatch(s.handlers, 'backup:prune', [DEMO_VM_ID, { policy: { last: 1 }, dryRun: true }])).rejects.toThrow(/demo VM|not running|lab start/i);
    } finally {
      vi.doUnmock('./handlers/retention');
      vi.resetModules();
    }
  });
});

describe('events', () => {
  it('on() returns an unsubscribe function and a throwing listener does not stop others', () => {
    const s = make();
    const got: string[] = [];
    const off = s.events.on('checkpoints:changed', ({ vmId }) => got.push(`a:${vmId}`));
    s.events.on('checkpoints:changed', () => {
      throw new Error('boom');
    });
    s.events.on('checkpoints:changed', ({ vmId }) => got.push(`c:${vmId}`));
    s.events.emit('checkpoints:changed', { vmId: 'x' });
    off();
    s.events.emit('checkpoints:changed', { vmId: 'y' });
    expect(got).toEqual(['a:x', 'c:x', 'c:y']);
    expect(s.events.listenerCount('checkpoints:changed')).toBe(2);
  });
});
