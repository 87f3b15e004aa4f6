// The write simulator against a real QEMU: bitmaps count exactly what was written, and failures
// that QEMU reports either in the HMP reply or only on stdout become clear errors.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiskInfo } from '../../../shared/domain';
import type { QmpClient } from '../../qmp/client';
import { connectLab, startLab, stopLab, type LabStatus } from './labvm';
import { dirtyBytes, simulateWrites, writeAt } from './writer';

const MiB = 1024 * 1024;
let dir: string;
let lab: LabStatus;
let client: QmpClient;

function labDisk(name: string, over: Partial<DiskInfo> = {}): DiskInfo {
  const d = lab.disks.find((x) => x.name === name)!;
  return {
    name, device: name, qdevPath: `/machine/peripheral/${name}/virtio-backend`, drive: d.drive, nodeName: `${name}-fmt`,
    format: 'qcow2', virtualSize: d.sizeBytes, imageFile: d.image, granularity: 65536, bitmapCapable: !d.legacy, readOnly: false, bitmaps: [],
    ...over,
  };
}

async function bitmapCount(node: string, name: string): Promise<number> {
  const nodes = await client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string; count: number }[] }[]>('query-named-block-nodes', { flat: true });
  const bm = nodes.find((n) => n['node-name'] === node)?.['dirty-bitmaps']?.find((b) => b.name === name);
  if (!bm) throw new Error(`no bitmap ${name} on ${node}`);
  return bm.count;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmw-'));
  lab = await startLab({ dir, disks: [{ name: 'vda', sizeBytes: 256 * MiB }, { name: 'vdb', sizeBytes: 64 * MiB }] });
  client = await connectLab(dir);
});

afterAll(async () => {
  await client?.close();
  if (dir) {
    await stopLab(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('simulateWrites against the lab VM', () => {
  it.each(['random', 'sequential', 'hotspot'] as const)('%s: a fresh bitmap counts exactly the granules written', async (pattern) => {
    const bitmap = `w-${pattern}`;
    await client.execute('block-dirty-bitmap-add', { node: 'vda-fmt', name: bitmap, granularity: 65536 });
    const disk = labDisk('vda');
    const progress: number[] = [];
    const writes = await simulateWrites(client, disk, { pattern, mib: 3, seed: 42, logFile: lab.log, onProgress: (d) => progress.push(d) });
    expect(writes.reduce((n, w) => n + w.len, 0)).toBe(3 * MiB);
    expect(progress[progress.length - 1]).toBe(3 * MiB);
    expect(await bitmapCount('vda-fmt', bitmap)).toBe(dirtyBytes(writes, 65536, disk.virtualSize));
    await client.execute('block-dirty-bitmap-remove', { node: 'vda-fmt', name: bitmap });
  });

  it('writes through the device path when the disk has no drive id, and the data lands', async () => {
    await client.execute('block-dirty-bitmap-add', { node: 'vda-fmt', name: 'w-qdev', granularity: 65536 });
    await writeAt(client, labDisk('vda', { drive: undefined }), 200 * MiB, 4096, 0x5a, { logFile: lab.log });
    await writeAt(client, labDisk('vda'), 201 * MiB, 65536, 'zero', { logFile: lab.log });
    expect(await bitmapCount('vda-fmt', 'w-qdev')).toBe(2 * 65536);
    // read it back with qemu-io's own pattern check: a mismatch would appear on stdout
    const before = fs.readFileSync(lab.log, 'utf8').length;
    expect(await client.hmp('qemu-io drive-vda "read -P 0x5a 209715200 4096"')).toBe('');
    const out = fs.readFileSync(lab.log, 'utf8').slice(before);
    expect(out).toContain('read 4096/4096 bytes at offset 209715200');
    expect(out).not.toContain('Pattern verification failed');
  });

  it('a permission conflict (a node name used as the drive) is a clear error', async () => {
    await expect(writeAt(client, labDisk('vda', { drive: 'vda-fmt' }), 0, 4096, 1)).rejects.toThrow(/write to vda at offset 0 failed: Permission conflict on node 'vda-fmt'/);
  });

  it('a write past the real end of the disk fails with the I/O error QEMU printed on stdout', async () => {
    const shrunk = labDisk('vdb', { virtualSize: 128 * MiB }); // metadata says bigger than it is
    await expect(writeAt(client, shrunk, 100 * MiB, 4096, 1, { logFile: lab.log })).rejects.toThrow('write to vdb at offset 104857600 failed (QEMU reported: write failed: Input/output error)');
  });

  it('after the disk is gone: its drive id is unknown, and its device has no medium', async () => {
    expect(await client.hmp('drive_del drive-vdb')).toBe('');
    await expect(writeAt(client, labDisk('vdb'), 0, 4096, 1)).rejects.toThrow("write to vdb at offset 0 failed: Error: Cannot find device='' nor node-name='drive-vdb'");
    await expect(simulateWrites(client, labDisk('vdb', { drive: undefined }), { pattern: 'random', mib: 1, logFile: lab.log }))
      .rejects.toThrow(/write to vdb at offset \d+ failed \(QEMU reported: write failed: No medium found\)/);
  });
});
