// The VM registry without QEMU: order, persistence, lookups by VM id and by durable identity.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { VmConnection, VmDriver } from '../engine/driver';
import { endpointId, readEndpoints, VmRegistry } from './registry';

let dir: string;
let changes = 0;
const open: VmRegistry[] = [];

function registry(): VmRegistry {
  const r = new VmRegistry({ file: path.join(dir, 'endpoints.json'), stateDir: dir, mode: 'on-demand', offlineReads: true, onListChanged: () => changes++ });
  open.push(r);
  return r;
}

/** A connection with two VMs (as a libvirt URI will have), each with a durable identity. */
function twoVmConnection(): VmConnection {
  const vm = (id: string, key: string, name: string) => ({
    id, identity: () => ({ key, name }), on: () => () => undefined,
    summary: () => ({ id, label: name, endpoint: 'qemu:///system', kind: 'endpoint' as const, connection: 'connected' as const }),
  }) as unknown as VmDriver;
  const vms = [vm('lv-1/web', 'uuid-web', 'web'), vm('lv-1/db', 'uuid-db', 'db')];
  return { id: 'lv-1', kind: 'endpoint', vms: () => vms, onVmsChanged: () => () => undefined, start: () => undefined, close: async () => undefined };
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-reg-'));
  changes = 0;
});
afterEach(async () => {
  for (const r of open.splice(0)) await Promise.all(r.connections().map((c) => c.close()));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('VmRegistry', () => {
  it('lists VMs connection by connection, in the order they were added; several VMs per connection side by side', () => {
    const r = registry();
    r.addConnection(twoVmConnection());
    r.addEndpoint('/run/a.sock', { label: 'A', persist: true });
    expect(r.summaries().map((s) => s.id)).toEqual(['lv-1/web', 'lv-1/db', endpointId('/run/a.sock')]);
    expect(r.vm('lv-1/db').summary().label).toBe('db');
    expect(() => r.vm('nope')).toThrow('no VM with id "nope" (see vm:list)');
  });

  it('finds the VM a manifest names by its durable identity (key, name or UUID), never by guessing', () => {
    const r = registry();
    r.addConnection(twoVmConnection());
    r.addEndpoint('/run/b.sock', { label: 'B', persist: true, rememberedKey: 'uuid-b' });
    r.addEndpoint('/run/c.sock', { label: 'C', persist: true });
    expect(r.byIdentity('uuid-db')?.id).toBe('lv-1/db');
    expect(r.byIdentity('web')?.id).toBe('lv-1/web');
    expect(r.byIdentity('uuid-b')?.id).toBe(endpointId('/run/b.sock'));
    expect(r.byIdentity('uuid-c')).toBeUndefined(); // C was never connected: its identity is unknown
  });

  it('persists only endpoints that are not transient, with the identity last seen there', () => {
    const r = registry();
    r.addEndpoint('unix:/run/a.sock', { label: ' A ', persist: true, rememberedKey: 'uuid-a' });
    r.addEndpoint('/tmp/cli.sock', { persist: false });
    r.save();
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'endpoints.json'), 'utf8'))).toEqual([{ endpoint: 'unix:/run/a.sock', label: 'A', vmId: 'uuid-a' }]);
    expect(readEndpoints(path.join(dir, 'endpoints.json'))).toEqual([{ endpoint: 'unix:/run/a.sock', label: 'A', vmId: 'uuid-a' }]);
  });

  it('adding an endpoint again finds it; adding a transient one for good makes it persistent and says so', () => {
    const r = registry();
    const first = r.addEndpoint('/tmp/x.sock', { persist: false });
    expect(first.added).toBe(true);
    const again = r.addEndpoint('unix:/tmp/x.sock', { persist: false });
    expect([again.added, again.connection]).toEqual([false, first.connection]);
    expect(fs.existsSync(path.join(dir, 'endpoints.json'))).toBe(false);
    const kept = r.addEndpoint('/tmp/x.sock', { label: 'X', persist: true });
    expect(kept.added).toBe(false);
    expect(kept.connection.label).toBe('X');
    expect(changes).toBe(1);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'endpoints.json'), 'utf8'))).toEqual([{ endpoint: 'unix:/tmp/x.sock', label: 'X' }]);
  });

  it('names a bad endpoint', () => {
    expect(() => registry().addEndpoint('http://x', { persist: true })).toThrow('QMP endpoint "http://x" has an unknown scheme');
  });
});
