// The NBD client against QEMU's own NBD server on the lab VM (block-export-add with a bitmap), the
// server a pull reads: checked against nbdcopy and nbdinfo --map. Other servers: client.itest.ts.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectLab, startLab, stopLab } from '../engine/lab/labvm';
import type { QmpClient } from '../qmp/client';
import { NbdClient } from './client';
import { NbdConnectionError } from './errors';
import { BASE_ALLOCATION, dirtyBitmapContext } from './protocol';
import { nbdinfoMap, run, sameBytes } from './testkit';

const KiB = 1024;
const MiB = 1024 * KiB;
const clients: NbdClient[] = [];
afterAll(() => {
  for (const c of clients) c.destroy(new Error('test over'));
});

async function connect(uri: string, opts: Parameters<typeof NbdClient.connect>[1] = {}): Promise<NbdClient> {
  const c = await NbdClient.connect(uri, opts);
  clients.push(c);
  return c;
}

/**
 * The lab VM with one disk, vda, of `sizeBytes`, for the describe block that calls it: started before
 * its tests, stopped and removed after them.
 */
function oneDiskLab(prefix: string, sizeBytes: number) {
  let dir = '';
  let qmp: QmpClient | undefined;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    await startLab({ dir, disks: [{ name: 'vda', sizeBytes }] });
    qmp = await connectLab(dir);
  });
  afterAll(async () => {
    await qmp?.close().catch(() => undefined);
    await stopLab(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const lab = {
    get dir(): string {
      return dir;
    },
    get qmp(): QmpClient {
      if (!qmp) throw new Error('the lab VM did not start');
      return qmp;
    },
    /** A guest write: qemu-io on vda inside QEMU. */
    io: (cmd: string) => lab.qmp.hmp(`qemu-io drive-vda "${cmd}"`),
    /** `into`: a disabled copy of bitmap `from` (what a pull backup exports), made in one transaction. */
    freezeBitmap: (from: string, into: string) =>
      lab.qmp.execute('transaction', {
        actions: [
          { type: 'block-dirty-bitmap-add', data: { node: 'vda-fmt', name: into, persistent: false, disabled: true } },
          { type: 'block-dirty-bitmap-merge', data: { node: 'vda-fmt', target: into, bitmaps: [from] } },
        ],
      }),
    /** Starts QEMU's NBD server on a unix socket in the lab's folder; the URI export `vda` will have there. */
    async startNbdServer(): Promise<string> {
      const sock = path.join(dir, 'nbd.sock');
      await lab.qmp.execute('nbd-server-start', { addr: { type: 'unix', data: { path: sock } } });
      return `nbd+unix:///vda?socket=${sock}`;
    },
  };
  return lab;
}

describe("QEMU's own NBD server (lab VM, block-export-add with a bitmap)", () => {
  const lab = oneDiskLab('tm-nbdlab-', 64 * MiB);

  it('exports a disabled bitmap that the client and nbdinfo read alike, with point-in-time data', async () => {
    const { qmp, io } = lab;
    await io('write -P 0x10 0 2M');
    await qmp.execute('block-dirty-bitmap-add', { node: 'vda-fmt', name: 'c1', persistent: true });
    await io('write -P 0x20 3M 64k');
    await io('write -P 0x30 10M 256k');
    await io('write -P 0x40 60M 4k');
    await lab.freezeBitmap('c1', 'tm-tmp');
    const uri = await lab.startNbdServer();
    // An enabled bitmap cannot go into a read-only export (G8).
    await expect(qmp.execute('block-export-add', { type: 'nbd', id: 'e0', 'node-name': 'vda-fmt', name: 'vda', writable: false, bitmaps: ['c1'] })).rejects.toThrow(/Enabled bitmap 'c1' incompatible with readonly export/);
    await qmp.execute('block-export-add', { type: 'nbd', id: 'e1', 'node-name': 'vda-fmt', name: 'vda', writable: false, bitmaps: ['tm-tmp'] });
    const ctx = dirtyBitmapContext('tm-tmp');
    const c = await connect(uri, { metaContexts: [ctx, BASE_ALLOCATION] });
    expect(c.info.contexts.sort()).toEqual([BASE_ALLOCATION, ctx].sort());
    const dirty = await c.extents(ctx);
    expect(dirty).toEqual(nbdinfoMap(uri, ctx));
    const dirtyOnly = dirty.filter((e) => e.flags & 1);
    expect(dirtyOnly.map((e) => [e.offset, e.length])).toEqual([[3 * MiB, 64 * KiB], [10 * MiB, 256 * KiB], [60 * MiB, 64 * KiB]]);
    const nodes = await qmp.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string; count: number; busy: boolean }[] }[]>('query-named-block-nodes');
    const tmp = nodes.find((n) => n['node-name'] === 'vda-fmt')!['dirty-bitmaps']!.find((b) => b.name === 'tm-tmp')!;
    expect(tmp.busy).toBe(true);
    expect(dirtyOnly.reduce((s, e) => s + e.length, 0)).toBe(tmp.count);
    const got = await c.read(3 * MiB, 64 * KiB);
    expect(got.every((x) => x === 0x20)).toBe(true);
    // The whole export equals what nbdcopy reads from it.
    const whole = await c.read(0, c.size);
    const copied = path.join(lab.dir, 'copy.raw');
    run('nbdcopy', [uri, copied]);
    expect(sameBytes(whole, fs.readFileSync(copied))).toBe(true);
    await c.close();
    await qmp.execute('block-export-del', { id: 'e1' });
    await qmp.execute('nbd-server-stop');
  });

  it('reports QEMU closing the export under a connected client', async () => {
    const { qmp } = lab;
    const uri = await lab.startNbdServer();
    await qmp.execute('block-export-add', { type: 'nbd', id: 'e2', 'node-name': 'vda-fmt', name: 'vda', writable: false });
    const c = await connect(uri);
    expect((await c.read(0, 4))[0]).toBe(0x10);
    const closed = new Promise<Error>((resolve) => c.onClose(resolve));
    await qmp.execute('block-export-del', { id: 'e2', mode: 'hard' });
    const reason = await closed;
    expect(reason).toBeInstanceOf(NbdConnectionError);
    await expect(c.read(0, 4)).rejects.toBeInstanceOf(NbdConnectionError);
    await qmp.execute('nbd-server-stop');
  });
});

describe("block status over a sparse 20 GiB disk on QEMU's own NBD server", () => {
  const GiB = 1024 * MiB;
  const lab = oneDiskLab('tm-nbdbig-', 20 * GiB);

  it('windows asked together (4 GiB, 64 in flight) give the same extents as requests one after another, and as nbdinfo --map', async () => {
    const { qmp, io } = lab;
    await qmp.execute('block-dirty-bitmap-add', { node: 'vda-fmt', name: 'c1', persistent: true });
    // Writes on both sides of window edges (STATUS_WINDOW = 4 GiB - 1 MiB, and 1 GiB below), a zero write, the last cluster.
    const window = 4 * GiB - MiB;
    const writes: [number, number][] = [[0, 64 * KiB], [window - 64 * KiB, 192 * KiB], [GiB - 64 * KiB, 128 * KiB], [2 * window + 3 * MiB, 256 * KiB], [13 * GiB, 64 * KiB], [20 * GiB - 64 * KiB, 64 * KiB]];
    for (const [o, l] of writes) await io(`write -P 0x5a ${o} ${l}`);
    await io(`write -z ${9 * GiB} ${2 * MiB}`);
    await lab.freezeBitmap('c1', 'tm-tmp');
    const uri = await lab.startNbdServer();
    await qmp.execute('block-export-add', { type: 'nbd', id: 'big', 'node-name': 'vda-fmt', name: 'vda', writable: false, bitmaps: ['tm-tmp'] });
    const ctx = dirtyBitmapContext('tm-tmp');
    for (const context of [ctx, BASE_ALLOCATION]) {
      const c = await connect(uri, { metaContexts: [context], maxInFlight: 64 });
      const pipelined = await c.extentsIn(context, undefined, { parallel: 64 });
      expect(await c.extentsIn(context, undefined, { parallel: 1 })).toEqual(pipelined);
      expect(await c.extentsIn(context, undefined, { parallel: 1, windowBytes: GiB })).toEqual(pipelined);
      expect(await c.extents(context)).toEqual(pipelined);
      expect(pipelined).toEqual(nbdinfoMap(uri, context));
      if (context === ctx) {
        const dirty = pipelined.filter((e) => e.flags & 1).map((e) => [e.offset, e.length]);
        expect(dirty).toEqual([[0, 64 * KiB], [GiB - 64 * KiB, 128 * KiB], [window - 64 * KiB, 192 * KiB], [2 * window + 3 * MiB, 256 * KiB], [9 * GiB, 2 * MiB], [13 * GiB, 64 * KiB], [20 * GiB - 64 * KiB, 64 * KiB]]);
      }
      await c.close();
    }
    await qmp.execute('block-export-del', { id: 'big' });
    await qmp.execute('nbd-server-stop');
  });
});
