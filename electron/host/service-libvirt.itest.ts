// The app's host with a libvirt connection (real libvirtd, qemu:///system, as root): added by URI
// through vm:add and kept in endpoints.json, its domains listed with their state in vm:list, and a
// checkpoint made with virsh announced as checkpoints:changed for that domain's VM id.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VmSummary } from '../../shared/contract';
import { LOCAL_URI, LibvirtTestLab, runsAsRoot, type TestDomain } from '../../test/libvirt/lab';
import { createService, type Service } from './service';

let dir: string;
let svc: Service;
let lab: LibvirtTestLab;
let dom: TestDomain;
const lists: VmSummary[][] = [];
const changed: string[] = [];

beforeAll(async () => {
  if (!runsAsRoot) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-svc-lv-'));
  lab = await LibvirtTestLab.open();
  dom = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 8 }] });
  svc = createService({ stateDir: dir, connectMode: 'eager', demoSocket: 'secondary' });
  svc.events.on('vm:list', (l) => lists.push(l));
  svc.events.on('checkpoints:changed', ({ vmId }) => changed.push(vmId));
}, 180_000);

afterAll(async () => {
  await svc?.close();
  await lab?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe.skipIf(!runsAsRoot)('host with a libvirt connection', () => {
  it('adds a URI, lists its domains with state, and announces a checkpoint virsh made', async () => {
    const added = await svc.handlers['vm:add'](LOCAL_URI, 'this host');
    expect(added).toMatchObject({ kind: 'libvirt', endpoint: LOCAL_URI });
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'endpoints.json'), 'utf8'))).toEqual([{ endpoint: LOCAL_URI, label: 'this host' }]);
    const vmId = `${LOCAL_URI}#${dom.uuid}`;
    await expect.poll(async () => (await svc.handlers['vm:list']()).find((v) => v.id === vmId), { timeout: 30_000 })
      .toMatchObject({ label: dom.name, kind: 'libvirt', connection: 'connected', domainState: 'running', connectionId: added.connectionId });
    expect(lists.some((l) => l.some((v) => v.id === vmId))).toBe(true); // pushed, not only answered
    execFileSync('virsh', ['-q', '-c', LOCAL_URI, 'checkpoint-create-as', dom.uuid, 'from-virsh']);
    await expect.poll(() => changed.includes(vmId), { timeout: 30_000 }).toBe(true);
    expect((await svc.handlers['checkpoint:list'](vmId)).map((c) => c.name)).toEqual(['from-virsh']);
    await svc.handlers['vm:remove'](added.connectionId!);
    expect((await svc.handlers['vm:list']()).some((v) => v.kind === 'libvirt')).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'endpoints.json'), 'utf8'))).toEqual([]);
  }, 120_000);
});
