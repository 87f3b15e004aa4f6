// Images created by QEMU's blockdev-create (create-image.ts) against a real QEMU: the same header as
// `qemu-img create -f qcow2 -o compat=1.1 [-b BASE -F qcow2]`, mode 0600, an existing file refused,
// and a failed creation leaves no file, no node and no job behind.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../qmp/client';
import { imageInfo, createQcow2 } from '../backup/qemuimg';
import { startLab, stopLab } from '../lab/labvm';
import { createQcow2InQemu } from './create-image';

const MiB = 1024 * 1024;

describe('createQcow2InQemu', () => {
  let root = '';
  let client: QmpClient | undefined;
  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'tmmk-'));
    const lab = await startLab({ dir: path.join(root, 'lab'), disks: [{ name: 'vda', sizeBytes: 16 * MiB }] });
    client = await QmpClient.connect(lab.qmp);
  });
  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await stopLab(path.join(root, 'lab'));
    fs.rmSync(root, { recursive: true, force: true });
  });

  const leftovers = async () => {
    const nodes = await client!.execute<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true });
    const jobs = await client!.execute<{ id: string }[]>('query-jobs');
    return [...nodes.map((n) => n['node-name']), ...jobs.map((j) => j.id)].filter((n) => n.startsWith('tidemark-'));
  };

  it('writes the header qemu-img create writes, 0600, with the backing path as given', async () => {
    const dir = path.join(root, 'out');
    fs.mkdirSync(dir);
    await createQcow2(path.join(dir, 'base.qcow2'), 16 * MiB);
    await createQcow2(path.join(dir, 'by-qemu-img.qcow2'), 16 * MiB, { backing: 'base.qcow2' });
    await createQcow2InQemu(client!, 'tidemark-bkt-test01-0', { file: path.join(dir, 'by-qemu.qcow2'), sizeBytes: 16 * MiB, backing: 'base.qcow2' });
    const a = await imageInfo(path.join(dir, 'by-qemu-img.qcow2'), { format: 'qcow2' });
    const b = await imageInfo(path.join(dir, 'by-qemu.qcow2'), { format: 'qcow2' });
    const pick = (i: typeof a) => ({ virtualSize: i.virtualSize, clusterSize: i.clusterSize, compat: i.compat, backingFile: i.backingFile, backingFormat: i.backingFormat, fullBackingFile: i.fullBackingFile });
    expect(pick(b)).toEqual(pick(a));
    expect(b).toMatchObject({ compat: '1.1', clusterSize: 65536, backingFile: 'base.qcow2', backingFormat: 'qcow2' });
    expect(fs.statSync(path.join(dir, 'by-qemu.qcow2')).mode & 0o777).toBe(0o600);
    await createQcow2InQemu(client!, 'tidemark-bkt-test02-0', { file: path.join(dir, 'small.qcow2'), sizeBytes: 16 * MiB, clusterSize: 4096 });
    expect((await imageInfo(path.join(dir, 'small.qcow2'), { format: 'qcow2' })).clusterSize).toBe(4096);
    expect(await leftovers()).toEqual([]);
  });

  it('refuses a file that exists, and leaves it as it was', async () => {
    const file = path.join(root, 'exists.qcow2');
    fs.writeFileSync(file, 'not ours');
    await expect(createQcow2InQemu(client!, 'tidemark-bkt-test03-0', { file, sizeBytes: MiB })).rejects.toThrow(/EEXIST/);
    expect(fs.readFileSync(file, 'utf8')).toBe('not ours');
    expect(await leftovers()).toEqual([]);
  });

  it('a creation QEMU refuses leaves no file, no node and no job, and names the reason', async () => {
    const file = path.join(root, 'bad.qcow2');
    await expect(createQcow2InQemu(client!, 'tidemark-bkt-test04-0', { file, sizeBytes: 16 * MiB, clusterSize: 3000 })).rejects.toThrow(/^cannot create image .*bad\.qcow2: .*[Cc]luster size/);
    expect(fs.existsSync(file)).toBe(false);
    expect(await leftovers()).toEqual([]);
  });
});
