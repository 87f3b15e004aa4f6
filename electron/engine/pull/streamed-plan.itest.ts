// The streamed incremental plan against QEMU's NBD server code (qemu-nbd exporting a sparse qcow2
// with a persistent bitmap): window by window, it must give the same operations as the plan made
// from whole-disk maps (plan.ts copyOps), zero extents included, and stream while a copy consumes it.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdClient, STATUS_WINDOW } from '../../nbd/client';
import { BASE_ALLOCATION, dirtyBitmapContext } from '../../nbd/protocol';
import { startQemuNbd, type QemuNbdServer } from '../../nbd/qemu-nbd';
import { mergeExtents } from '../../nbd/testkit';
import { copyExtents } from './copy';
import { copyOps, type CopyOp } from './plan';
import { streamIncrementalPlan } from './streamed-plan';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const CTX = dirtyBitmapContext('b');
let dir: string;
let server: QemuNbdServer;
const clients: NbdClient[] = [];

async function connect(metaContexts: string[]): Promise<NbdClient> {
  const c = await NbdClient.connect(server.address, { metaContexts });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-stream-'));
  const image = path.join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', image, String(13 * GiB)]);
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x11 ${5 * GiB} 1M`, image], { stdio: 'ignore' }); // before the bitmap: not dirty
  execFileSync('qemu-img', ['bitmap', '--add', image, 'b']);
  const cmds = [
    'write -P 0x21 0 64k',
    `write -P 0x22 ${STATUS_WINDOW - 128 * KiB} 384k`, // across the first window edge
    `write -z ${5 * GiB} 256k`, // zeroes over old data: dirty, read as zeroes
    `write -P 0x23 ${5 * GiB + 2 * MiB} 128k`,
    `write -P 0x24 ${2 * STATUS_WINDOW + 3 * MiB} 64k`, // whole clusters only: a partial one may read back as zeroes beside the data
    `write -z ${10 * GiB} 1M`,
    `write -P 0x25 ${13 * GiB - 64 * KiB} 64k`, // the last cluster
  ];
  execFileSync('qemu-io', ['-f', 'qcow2', ...cmds.flatMap((c) => ['-c', c]), image], { stdio: 'ignore' });
  execFileSync('qemu-img', ['bitmap', '--add', image, 'none']); // added after every write: nothing changed since
  server = await startQemuNbd({ image, format: 'qcow2', runDir: dir, exportName: 'disk', readOnly: true, bitmaps: ['b', 'none'] });
});

afterAll(async () => {
  for (const c of clients) c.destroy(new Error('test over'));
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('streamIncrementalPlan', () => {
  it('gives, window by window, the operations of the whole-disk plan, zero extents included, and their total', async () => {
    const [a, d] = [await connect([BASE_ALLOCATION]), await connect([CTX])];
    const whole = copyOps('incremental', await a.extents(BASE_ALLOCATION), await d.extents(CTX));
    await Promise.all([a.close(), d.close()]);
    expect(whole.filter((o) => o.op === 'zero').map((o) => [o.offset, o.length])).toEqual([[5 * GiB, 256 * KiB], [10 * GiB, MiB]]);
    for (const joinGap of [0, 64 * MiB]) {
      const [dirtyMap, allocation] = [await connect([CTX]), await connect([BASE_ALLOCATION])];
      const plan = streamIncrementalPlan(dirtyMap, CTX, allocation, 'incremental', joinGap);
      const batches: CopyOp[][] = [];
      for await (const b of plan.batches) batches.push(b);
      expect(batches).toHaveLength(Math.ceil((13 * GiB) / STATUS_WINDOW));
      expect(mergeExtents(batches.flat(), 'op')).toEqual(whole); // joined again where the stream cut at window edges
      expect(await plan.total).toBe(whole.reduce((n, o) => n + o.length, 0));
      expect(plan.knownBytes()).toBe(await plan.total);
      await Promise.all([dirtyMap.close(), allocation.close()]);
    }
  });

  it('gives empty batches and a zero total when nothing changed', async () => {
    const none = dirtyBitmapContext('none');
    const [dirtyMap, allocation] = [await connect([none]), await connect([BASE_ALLOCATION])];
    const plan = streamIncrementalPlan(dirtyMap, none, allocation, 'differential', 64 * MiB);
    const batches: CopyOp[][] = [];
    for await (const b of plan.batches) batches.push(b);
    expect(batches).toEqual(Array.from({ length: Math.ceil((13 * GiB) / STATUS_WINDOW) }, () => []));
    expect(await plan.total).toBe(0);
    await Promise.all([dirtyMap.close(), allocation.close()]);
  });

  for (const readWithoutStatus of [0, MiB]) it(`feeds a copy while it streams: the layer reads back as the dirty data and zeroes (windows of up to ${readWithoutStatus} changed bytes read without their allocation)`, async () => {
    const layer = path.join(dir, `layer-${readWithoutStatus}.qcow2`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', layer, String(13 * GiB)]);
    const writer = await startQemuNbd({ image: layer, format: 'qcow2', runDir: dir, exportName: 'layer', cache: 'unsafe' });
    try {
      const dst = await NbdClient.connect(writer.address);
      clients.push(dst);
      const src = await connect([BASE_ALLOCATION]);
      const dirtyMap = await connect([CTX]);
      const asked: number[] = [];
      const extentsIn = src.extentsIn.bind(src);
      src.extentsIn = (context, ranges, options) => {
        asked.push(ranges?.[0]?.offset ?? -1);
        return extentsIn(context, ranges, options);
      };
      const plan = streamIncrementalPlan(dirtyMap, CTX, src, 'incremental', 64 * MiB, readWithoutStatus);
      const r = await copyExtents(src, dst, plan.batches, { pieceBytes: 64 * KiB, parallel: 4 });
      // Windows 0, 1 and 3 change 192 KiB, 640 KiB (zeroes at 5 GiB included) and 64 KiB; window 2, 1,088 KiB.
      expect(asked.sort((a, b) => a - b)).toEqual(readWithoutStatus ? [2 * STATUS_WINDOW + 3 * MiB] : [0, STATUS_WINDOW, 2 * STATUS_WINDOW + 3 * MiB, 13 * GiB - 64 * KiB]);
      // The zeroes at 5 GiB, read as data when planned without their allocation, are written as zeroes all the same.
      expect(r).toEqual({ dataBytes: 64 * KiB + 384 * KiB + 128 * KiB + 64 * KiB + 64 * KiB, zeroBytes: 256 * KiB + MiB });
      for (const [offset, length, byte] of [[STATUS_WINDOW - 128 * KiB, 384 * KiB, 0x22], [5 * GiB, 256 * KiB, 0], [2 * STATUS_WINDOW + 3 * MiB, 64 * KiB, 0x24]] as const) {
        expect((await dst.read(offset, length)).every((x) => x === byte)).toBe(true);
      }
      await Promise.all([dst.close(), src.close(), dirtyMap.close()]);
    } finally {
      await writer.stop();
    }
    // Nothing outside the dirty extents was written: the 1 MiB at 5 GiB beyond the zeroed 256 KiB stays unallocated in the layer.
    const map = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', layer], { encoding: 'utf8' })) as { start: number; length: number; data: boolean; zero: boolean }[];
    expect(map.filter((m) => m.data).reduce((n, m) => n + m.length, 0)).toBe(64 * KiB + 384 * KiB + 128 * KiB + 64 * KiB + 64 * KiB);
  });
});
