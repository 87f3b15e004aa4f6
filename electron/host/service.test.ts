// The service without QEMU: the registry, its persistence and the errors a caller sees.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dispatch, type VmSummary } from '../../shared/contract';
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
