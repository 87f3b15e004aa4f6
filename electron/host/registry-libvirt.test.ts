// The registry with libvirt URIs, without libvirtd (nothing connects until a connection starts):
// URIs are checked, kept in endpoints.json beside QMP endpoints, and shown as a row of their own
// while they have no domain to list.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { endpointId, libvirtConnectionId, readEndpoints, VmRegistry } from './registry';

let dir: string;
let registry: VmRegistry;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-reg-lv-'));
  registry = new VmRegistry({ file: path.join(dir, 'endpoints.json'), stateDir: dir, mode: 'on-demand', offlineReads: true, onListChanged: () => undefined });
});

afterEach(async () => {
  await Promise.all(registry.connections().map((c) => c.close()));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('registry with libvirt URIs', () => {
  it('keeps a libvirt URI beside a QMP endpoint in endpoints.json, and reads both back', () => {
    const a = registry.addLibvirt(' qemu+ssh://root@h1:2222/system?keyfile=/k ', { persist: true, label: 'rack 1' });
    expect(a.added).toBe(true);
    expect(registry.addLibvirt('qemu+ssh://root@h1:2222/system?keyfile=/k', { persist: true }).added).toBe(false);
    registry.addEndpoint('unix:/run/vm.sock', { persist: true });
    registry.addLibvirt('qemu:///system', { persist: false });
    registry.save();
    expect(readEndpoints(path.join(dir, 'endpoints.json'))).toEqual([
      { endpoint: 'qemu+ssh://root@h1:2222/system?keyfile=/k', label: 'rack 1' },
      { endpoint: 'unix:/run/vm.sock', label: 'unix:/run/vm.sock' },
    ]);
  });

  it('shows a connection with no domain listed as its own row, disconnected', () => {
    const { connection } = registry.addLibvirt('qemu:///system', { persist: false });
    expect(connection.id).toBe(libvirtConnectionId('qemu:///system'));
    expect(connection.id).not.toBe(endpointId('unix:/x'));
    expect(registry.summaries()).toEqual([{ id: connection.id, label: 'qemu:///system', endpoint: 'qemu:///system', kind: 'libvirt', connection: 'disconnected', connectionId: connection.id }]);
    expect(registry.vms()).toEqual([]);
  });

  it('refuses a malformed URI, naming it, and a damaged endpoints.json entry', () => {
    expect(() => registry.addLibvirt('qemu+ssh://h/system?command=rm', { persist: true })).toThrow('libvirt URI "qemu+ssh://h/system?command=rm" has parameter "command", which Tidemark does not pass on');
    fs.writeFileSync(path.join(dir, 'endpoints.json'), JSON.stringify([{ endpoint: 'qemu:///root', label: 'x' }]));
    expect(() => readEndpoints(path.join(dir, 'endpoints.json'))).toThrow('libvirt URI "qemu:///root" has path "/root"; it must be /system or /session');
  });
});
