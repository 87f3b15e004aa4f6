// Discovery against the real lab VM (qcow2 v3 vda/vdb, qcow2 v2 vdc), plus a runtime blockdev
// node and a running backup job (which adds anonymous bitmaps).

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../qmp/client';
import { startLab, stopLab, type LabStatus } from '../lab/labvm';
import { checkHealth } from '../checkpoints/health';
import { discoverVm } from './discovery';

const MiB = 1024 * 1024;

describe('discoverVm on the lab VM', () => {
  let root = '';
  let lab: LabStatus | undefined;
  let client: QmpClient | undefined;
  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'tmdisc-'));
    lab = await startLab({ dir: path.join(root, 'lab'), disks: [
      { name: 'vda', sizeBytes: 64 * MiB }, { name: 'vdb', sizeBytes: 32 * MiB, clusterSize: 4096 }, { name: 'vdc', sizeBytes: 16 * MiB, legacy: true },
    ] });
    client = await QmpClient.connect(lab.qmp);
  });
  afterAll(async () => {
    await client?.close();
    await stopLab(path.join(root, 'lab'));
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('identity: the lab uuid and name', async () => {
    const vm = await discoverVm(client!, lab!.qmp);
    expect(vm).toMatchObject({ id: lab!.uuid, uuid: lab!.uuid, name: 'tidemark-demo', endpoint: lab!.qmp, status: 'running', qemuVersion: expect.stringMatching(/^\d+\.\d+\.\d+$/) });
  });

  it('disks, formats, capability and granularity', async () => {
    const vm = await discoverVm(client!, lab!.qmp);
    expect(vm.disks.map((d) => ({ name: d.name, node: d.nodeName, cap: d.bitmapCapable, why: d.bitmapIncapableReason, gran: d.granularity, size: d.virtualSize }))).toEqual([
      { name: 'vda', node: 'vda-fmt', cap: true, why: undefined, gran: 65536, size: 64 * MiB },
      { name: 'vdb', node: 'vdb-fmt', cap: true, why: undefined, gran: 4096, size: 32 * MiB },
      { name: 'vdc', node: 'vdc-fmt', cap: false, why: 'qcow2 v2 (compat 0.10) cannot store persistent bitmaps', gran: 65536, size: 16 * MiB },
    ]);
    expect(vm.disks[0]!.imageFile).toBe(lab!.disks[0]!.image);
  });

  it('the predicted granularity is what QEMU gives a new bitmap, and qdevPath reaches the device', async () => {
    const vm = await discoverVm(client!, lab!.qmp);
    for (const d of vm.disks.filter((x) => x.bitmapCapable)) {
      await client!.execute('block-dirty-bitmap-add', { node: d.nodeName, name: 'probe', persistent: true });
      await client!.hmp(`qemu-io -d ${d.qdevPath} "write 0 1"`);
    }
    const again = await discoverVm(client!, lab!.qmp);
    expect(again.disks.filter((d) => d.bitmapCapable).map((d) => [d.name, d.bitmaps])).toEqual([
      ['vda', [{ name: 'probe', recording: true, persistent: true, busy: false, inconsistent: false, count: 65536, granularity: 65536 }]],
      ['vdb', [{ name: 'probe', recording: true, persistent: true, busy: false, inconsistent: false, count: 4096, granularity: 4096 }]],
    ]);
    await expect(client!.execute('block-dirty-bitmap-add', { node: 'vdc-fmt', name: 'probe', persistent: true })).rejects.toThrow(/Cannot store dirty bitmaps in qcow2 v2 files/);
  });

  it('an unattached blockdev node is a disk; a tidemark-* node is not; a running job\'s anonymous bitmaps are not foreign', async () => {
    const img = path.join(root, 'extra.qcow2');
    const target = path.join(root, 'target.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '8M']);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', target, '64M']);
    await client!.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'extra', file: { driver: 'file', filename: img } });
    await client!.execute('blockdev-add', { driver: 'qcow2', 'node-name': 'tidemark-target', file: { driver: 'file', filename: target } });
    await client!.hmp('qemu-io drive-vda "write -P 0x11 0 8M"');
    await client!.execute('blockdev-backup', { 'job-id': 'bk', device: 'vda-fmt', target: 'tidemark-target', sync: 'full', speed: 1024 * 1024 });
    try {
      const vm = await discoverVm(client!, lab!.qmp);
      expect(vm.disks.map((d) => d.name)).toEqual(['vda', 'vdb', 'vdc', 'extra']);
      // query-block shows the backup's copy-before-write filter on vda; bitmaps live below it.
      expect(vm.disks[0]).toMatchObject({ nodeName: 'vda-fmt', format: 'qcow2', bitmapCapable: true });
      const anon = vm.disks[0]!.bitmaps.filter((b) => b.name === undefined);
      expect(anon.length).toBeGreaterThan(0);
      const issues = checkHealth({ layout: 'independent', checkpoints: new Map(), disks: vm.disks });
      // 'probe' bitmaps have no metadata, so they are foreign; the anonymous ones are not.
      expect(issues.filter((i) => i.state === 'foreign-bitmap').map((i) => [i.disk, i.bitmap])).toEqual([['vda', 'probe'], ['vdb', 'probe']]);
    } finally {
      const cancelled = client!.waitForEvent((e) => e.event === 'BLOCK_JOB_CANCELLED' || e.event === 'BLOCK_JOB_COMPLETED', 10_000);
      await client!.execute('job-cancel', { id: 'bk' });
      await cancelled;
    }
  });
});
