// One VM id through the service: the demo VM is "demo" in every job (backups, restores), their
// 'job:update' events, health and filters; the backup records are the manifests as written, which
// name the VM by its durable identity (its UUID), and nothing translates one into the other.
// Real demo VM, real backups.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobInfo } from '../../shared/contract';
import { labStatus, stopLab } from '../engine/lab/labvm';
import { createService, DEMO_VM_ID, type Service } from './service';

let dir: string;
let svc: Service;
let uuid: string;
const updates: JobInfo[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmsid-'));
  svc = createService({ stateDir: dir, connectMode: 'on-demand', demoSocket: 'secondary' });
  svc.events.on('job:update', (j) => updates.push(j));
  await svc.handlers['lab:start']();
  uuid = labStatus(path.join(dir, 'lab')).uuid;
});

afterAll(async () => {
  await svc?.close();
  if (dir) {
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('one VM id; manifests keep the durable identity', () => {
  let backupId = '';

  it('backup:begin: the job and its updates say "demo"; the returned record is the manifest on disk (the UUID)', async () => {
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/);
    await svc.handlers['lab:write'](DEMO_VM_ID, { disk: 'vdb', pattern: 'sequential', mib: 1 });
    const r = await svc.handlers['backup:begin'](DEMO_VM_ID, { full: true, disks: ['vdb'] });
    backupId = r.backup.id;
    expect(r.job).toMatchObject({ kind: 'backup', vmId: DEMO_VM_ID, state: 'succeeded' });
    expect(r.backup.vm).toEqual({ id: uuid, name: 'tidemark-demo', uuid });
    const backupUpdates = updates.filter((j) => j.id === r.job.id);
    expect(backupUpdates.length).toBeGreaterThan(1);
    expect(new Set(backupUpdates.map((j) => j.vmId))).toEqual(new Set([DEMO_VM_ID]));
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'backups', 'vms', uuid, 'manifests', `${backupId}.json`), 'utf8'));
    expect(manifest.vm).toEqual(r.backup.vm);
  });

  it('backup:list and backup:info carry the manifests as written; the list filter takes the VM id (or the UUID)', async () => {
    const all = await svc.handlers['backup:list']();
    expect(all.backups.map((b) => [b.id, b.vm.id])).toEqual([[backupId, uuid]]);
    expect((await svc.handlers['backup:list'](undefined, DEMO_VM_ID)).backups.map((b) => b.id)).toEqual([backupId]);
    expect((await svc.handlers['backup:list'](undefined, uuid)).backups.map((b) => b.id)).toEqual([backupId]);
    expect((await svc.handlers['backup:list'](undefined, 'ep-000000000000')).backups).toEqual([]);
    const info = await svc.handlers['backup:info'](backupId);
    expect(info.backup.vm.id).toBe(uuid);
    expect(info.chains).toEqual([{ disk: 'vdb', layers: [backupId] }]);
  });

  it('restore:run: its job (result, updates, job:list) is the demo VM\'s', async () => {
    const target = path.join(dir, 'restored-vdb.qcow2');
    const out = await svc.handlers['restore:run']({ backup: backupId, to: { disk: 'vdb', path: target } });
    expect(out.job).toMatchObject({ kind: 'restore', vmId: DEMO_VM_ID, state: 'succeeded' });
    expect(out.restored.map((x) => [x.disk, x.path])).toEqual([['vdb', target]]);
    expect(new Set(updates.filter((j) => j.id === out.job.id).map((j) => j.vmId))).toEqual(new Set([DEMO_VM_ID]));
    expect((await svc.handlers['job:list'](DEMO_VM_ID)).map((j) => j.id)).toContain(out.job.id);
  });

  it('vm:health names the VM by the service id', async () => {
    expect((await svc.handlers['vm:health'](DEMO_VM_ID)).vmId).toBe(DEMO_VM_ID);
  });

  it('with the VM stopped, the filter by "demo" still finds its backups (the UUID from lab.json)', async () => {
    await svc.handlers['lab:stop']();
    const again = createService({ stateDir: dir, connectMode: 'on-demand' });
    try {
      expect((await again.handlers['backup:list']()).backups.map((b) => b.vm.id)).toEqual([uuid]);
      expect((await again.handlers['backup:list'](undefined, DEMO_VM_ID)).backups.map((b) => b.id)).toEqual([backupId]);
    } finally {
      await again.close();
    }
  });
});
