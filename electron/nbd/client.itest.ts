// The NBD client against real servers: qemu-nbd, nbdkit (an independent implementation) and QEMU's
// own NBD server on the lab VM. What the client reads is checked against qemu-img convert,
// nbdcopy, qemu-img compare and nbdinfo --map.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectLab, startLab, stopLab } from '../engine/lab/labvm';
import type { QmpClient } from '../qmp/client';
import { NbdClient } from './client';
import { NbdCommandError, NbdConnectionError, NbdExportNotFoundError, NbdMetaContextError, NbdProtocolError } from './errors';
import { BASE_ALLOCATION, dirtyBitmapContext } from './protocol';
import { QemuNbdServer, startQemuNbd } from './qemu-nbd';
import { freePort, makeTlsCreds, mergeExtents, nbdinfoMap, RunningServer, startNbdkit } from './testkit';

const KiB = 1024;
const MiB = 1024 * KiB;
let dir: string;
const stops: (() => Promise<void>)[] = [];
const clients: NbdClient[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-nbd-'));
});
afterAll(async () => {
  for (const c of clients) c.destroy(new Error('test over'));
  for (const s of stops.reverse()) await s().catch(() => undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function connect(uri: string, opts: Parameters<typeof NbdClient.connect>[1] = {}): Promise<NbdClient> {
  const c = await NbdClient.connect(uri, opts);
  clients.push(c);
  return c;
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.equals(b);
}

describe('qemu-nbd (qcow2 with a dirty bitmap)', () => {
  let img: string;
  let reference: Buffer;
  let srv: QemuNbdServer;

  beforeAll(async () => {
    img = path.join(dir, 'img.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', img, '64M']);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x11 0 1M', '-c', 'write -P 0x22 5M 192k', img]);
    run('qemu-img', ['bitmap', '--add', img, 'b1']); // enabled: offline writers record too
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x33 8M 128k', '-c', 'write -z 16M 64k', '-c', 'write -P 0x44 5M 4k', '-c', 'write -P 0x55 63M 1M', img]);
    run('qemu-img', ['bitmap', '--disable', img, 'b1']);
    run('qemu-img', ['convert', '-O', 'raw', img, path.join(dir, 'img.raw')]);
    reference = fs.readFileSync(path.join(dir, 'img.raw'));
    srv = await startQemuNbd({ image: img, format: 'qcow2', runDir: dir, exportName: 'vda', readOnly: true, bitmaps: ['b1'] });
    stops.push(srv.stop);
  });

  it('reads the whole export byte-identical to qemu-img convert, and qemu-img compare agrees', async () => {
    const c = await connect(srv.uri);
    expect(c.info).toMatchObject({ name: 'vda', size: 64 * MiB, readOnly: true, structuredReplies: true, blockSize: { maximum: 32 * MiB } });
    const all = await c.read(0, c.size);
    expect(sameBytes(all, reference)).toBe(true);
    const out = path.join(dir, 'read-by-client.raw');
    fs.writeFileSync(out, all);
    expect(run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', out, srv.uri])).toMatch(/Images are identical/);
    // A negative control: one byte changed is noticed by the same comparison.
    all[63 * MiB + 5] = all[63 * MiB + 5]! ^ 0xff;
    expect(sameBytes(all, reference)).toBe(false);
    await c.close();
  });

  it('reports the dirty bitmap as nbdinfo --map does, at 64 KiB granularity', async () => {
    const ctx = dirtyBitmapContext('b1');
    const c = await connect(srv.uri, { metaContexts: [BASE_ALLOCATION, ctx] });
    const dirty = await c.extents(ctx);
    expect(dirty).toEqual(nbdinfoMap(srv.uri, ctx));
    expect(dirty.filter((e) => e.flags & 1).map((e) => [e.offset / KiB, e.length / KiB])).toEqual([
      [5 * 1024, 64], // the 4 KiB write dirties its whole 64 KiB granule
      [8 * 1024, 128],
      [16 * 1024, 64],
      [63 * 1024, 1024],
    ]);
    expect(await c.extents(BASE_ALLOCATION)).toEqual(nbdinfoMap(srv.uri));
    await c.close();
  });

  it('reads only the dirty extents, each equal to the same range of the reference', async () => {
    const ctx = dirtyBitmapContext('b1');
    const c = await connect(srv.uri, { metaContexts: [ctx], maxRequestBytes: 64 * KiB });
    const dirty = (await c.extents(ctx)).filter((e) => e.flags & 1);
    const parts = await Promise.all(dirty.map((e) => c.read(e.offset, e.length)));
    dirty.forEach((e, i) => expect(sameBytes(parts[i]!, reference.subarray(e.offset, e.offset + e.length))).toBe(true));
    await c.close();
  });

  it('reads with simple replies when structured replies are turned off', async () => {
    const c = await connect(srv.uri, { structuredReplies: false });
    expect(c.info.structuredReplies).toBe(false);
    const b = await c.read(4 * MiB, 6 * MiB);
    expect(sameBytes(b, reference.subarray(4 * MiB, 10 * MiB))).toBe(true);
    await c.close();
  });

  it('names an export that does not exist, and a bitmap that is not exported', async () => {
    const wrong = srv.uri.replace('///vda', '///vdz');
    const e1 = await NbdClient.connect(wrong).then(() => undefined, (e: Error) => e);
    expect(e1).toBeInstanceOf(NbdExportNotFoundError);
    expect(e1!.message).toMatch(/no export named "vdz"/);
    const e2 = await NbdClient.connect(srv.uri, { metaContexts: [dirtyBitmapContext('nope')] }).then(() => undefined, (e: Error) => e);
    expect(e2).toBeInstanceOf(NbdMetaContextError);
    expect(e2!.message).toMatch(/does not offer metadata context "qemu:dirty-bitmap:nope"/);
  });

  it('keeps many reads in flight on one connection and matches each reply', async () => {
    const c = await connect(srv.uri, { maxInFlight: 8 });
    const offsets = Array.from({ length: 64 }, (_, i) => ((i * 7919) % 1000) * 64 * KiB);
    const bufs = await Promise.all(offsets.map((o) => c.read(o, 64 * KiB)));
    offsets.forEach((o, i) => expect(sameBytes(bufs[i]!, reference.subarray(o, o + 64 * KiB))).toBe(true));
    await c.close();
  });
});

describe('writing through qemu-nbd into a qcow2 overlay', () => {
  it('writes data and zeroes over a backing file; qemu-img compare agrees with the expected bytes', async () => {
    const base = path.join(dir, 'wbase.qcow2');
    const top = path.join(dir, 'wtop.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x61 0 16M', base]);
    run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'wbase.qcow2', '-F', 'qcow2', top]);
    const srv = await startQemuNbd({ image: top, format: 'qcow2', runDir: dir, exportName: 'top' });
    stops.push(srv.stop);
    const c = await connect(srv.uri);
    expect(c.info.readOnly).toBe(false);
    const data = Buffer.alloc(3 * MiB + 4096, 0x7a);
    await c.write(MiB, data);
    await c.writeZeroes(8 * MiB, 2 * MiB);
    await c.flush();
    // Read back through the same connection before closing.
    expect((await c.read(8 * MiB - 1, 2)).toJSON().data).toEqual([0x61, 0]);
    await c.close();
    await srv.stop();
    const expected = Buffer.alloc(16 * MiB, 0x61);
    data.copy(expected, MiB);
    expected.fill(0, 8 * MiB, 10 * MiB);
    const want = path.join(dir, 'wexpected.raw');
    fs.writeFileSync(want, expected);
    expect(run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', want, top])).toMatch(/Images are identical/);
    // The zeroes live in the overlay (zero clusters), not as a hole that would show the backing data.
    const map = JSON.parse(run('qemu-img', ['map', '--output=json', top])) as { start: number; length: number; depth: number; zero: boolean; data: boolean }[];
    const z = map.find((m) => m.start <= 8 * MiB && m.start + m.length > 8 * MiB)!;
    expect(z).toMatchObject({ depth: 0, zero: true, data: false });
  });
});

describe('qemu-nbd over TCP with TLS', () => {
  it('refuses to serve TCP without TLS; the client reads through STARTTLS with mutual certificates', async () => {
    const img = path.join(dir, 'tls.qcow2');
    run('qemu-img', ['create', '-q', '-f', 'qcow2', img, '8M']);
    run('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x77 1M 1M', img]);
    const port = await freePort();
    await expect(startQemuNbd({ image: img, format: 'qcow2', runDir: dir, tcp: { host: '127.0.0.1', port } })).rejects.toThrow(/needs TLS/);
    const creds = makeTlsCreds(path.join(dir, 'tls'));
    const srv = await startQemuNbd({ image: img, format: 'qcow2', runDir: dir, tcp: { host: '127.0.0.1', port }, tlsCredsDir: creds.dir, readOnly: true, exportName: 'disk' });
    stops.push(srv.stop);
    expect(srv.uri).toBe(`nbds://127.0.0.1:${port}/disk`);
    // Without TLS the server refuses every option.
    const plain = await NbdClient.connect(`nbd://127.0.0.1:${port}/disk`).then(() => undefined, (e: Error) => e);
    expect(plain!.message).toMatch(/NBD_REP_ERR_TLS_REQD/);
    // With a wrong CA the TLS handshake fails.
    const other = makeTlsCreds(path.join(dir, 'tls-other'));
    const wrongCa = await NbdClient.connect(srv.uri, { tls: { ca: other.caPem, cert: creds.clientCert, key: creds.clientKey } }).then(() => undefined, (e: Error) => e);
    expect(wrongCa).toBeInstanceOf(NbdConnectionError);
    expect(wrongCa!.message).toMatch(/TLS handshake failed/);
    // QEMU verifies client certificates: without one the server hangs up during the handshake.
    const noCert = await NbdClient.connect(srv.uri, { tls: { ca: creds.caPem } }).then(() => undefined, (e: Error) => e);
    expect(noCert).toBeInstanceOf(NbdConnectionError);
    const c = await connect(srv.uri, { tls: { ca: creds.caPem, cert: creds.clientCert, key: creds.clientKey } });
    expect(c.info.tls).toBe(true);
    const b = await c.read(MiB - 4, 8);
    expect([...b]).toEqual([0, 0, 0, 0, 0x77, 0x77, 0x77, 0x77]);
    await c.close();
  });
});

describe('nbdkit (an independent server)', () => {
  let data: RunningServer;
  beforeAll(async () => {
    // Data at 64 KiB and 128 KiB, zero data at 192 KiB, holes elsewhere.
    data = await startNbdkit(dir, ['data', 'data=@0x10000 1 2 3 @0x20000 "hello" @0x30000 0 0 0 @0x80000 (0xa5)*70000', 'size=1M']);
    stops.push(data.stop);
  });

  it('reads what nbdcopy copies, and reports holes as nbdinfo --map does', async () => {
    const c = await connect(data.uri, { metaContexts: [BASE_ALLOCATION] });
    const all = await c.read(0, c.size);
    const copied = path.join(dir, 'nbdcopy.raw');
    run('nbdcopy', [data.uri, copied]);
    expect(sameBytes(all, fs.readFileSync(copied))).toBe(true);
    expect([...all.subarray(0x10000, 0x10004)]).toEqual([1, 2, 3, 0]);
    expect(all.subarray(0x20000, 0x20005).toString()).toBe('hello');
    expect(await c.extents(BASE_ALLOCATION)).toEqual(nbdinfoMap(data.uri));
    await c.close();
  });

  it('reads with simple replies from a server started with --no-sr', async () => {
    const s = await startNbdkit(dir, ['--no-sr', 'pattern', 'size=4M']);
    stops.push(s.stop);
    const c = await connect(s.uri);
    expect(c.info.structuredReplies).toBe(false);
    const b = await c.read(MiB, 16);
    // The pattern plugin writes each 8-byte offset as a big-endian number.
    expect(b.readBigUInt64BE(0)).toBe(BigInt(MiB));
    expect(b.readBigUInt64BE(8)).toBe(BigInt(MiB + 8));
    await expect(NbdClient.connect(s.uri, { metaContexts: [BASE_ALLOCATION] })).rejects.toThrow(/refused NBD_OPT_STRUCTURED_REPLY/);
    await c.close();
  });

  it('splits reads to a small advertised maximum block size (blocksize-policy filter)', async () => {
    const s = await startNbdkit(dir, ['--filter=blocksize-policy', 'pattern', 'size=4M', 'blocksize-minimum=512', 'blocksize-preferred=4096', 'blocksize-maximum=65536', 'blocksize-error-policy=error']);
    stops.push(s.stop);
    const c = await connect(s.uri);
    expect(c.info.blockSize).toEqual({ minimum: 512, preferred: 4096, maximum: 65536 });
    expect(c.maxRequest()).toBe(65536);
    const b = await c.read(1000, 300_000); // unaligned: widened to 512, split into 64 KiB requests
    // nbdcopy cannot read this export (its requests are larger than 64 KiB and the server errors),
    // so the oracle is the pattern plugin's definition: each 8-byte word holds its own offset.
    const expected = Buffer.alloc(302_000);
    for (let o = 0; o < expected.length; o += 8) expected.writeBigUInt64BE(BigInt(o), o);
    expect(sameBytes(b, expected.subarray(1000, 301_000))).toBe(true);
    expect(() => run('nbdcopy', [s.uri, path.join(dir, 'pattern.raw')])).toThrow();
    await c.close();
  });

  it('turns server I/O errors into NbdCommandError and stays connected (error filter)', async () => {
    const trigger = path.join(dir, 'error-now');
    const s = await startNbdkit(dir, ['--filter=error', 'pattern', 'size=1M', 'error-pread=EIO', 'error-pread-rate=100%', `error-pread-file=${trigger}`]);
    stops.push(s.stop);
    const c = await connect(s.uri);
    expect((await c.read(0, 8)).readBigUInt64BE(0)).toBe(0n);
    fs.writeFileSync(trigger, '');
    const err = await c.read(4096, 4096).then(() => undefined, (e: Error) => e);
    expect(err).toBeInstanceOf(NbdCommandError);
    expect((err as NbdCommandError).code).toBe('NBD_EIO');
    fs.rmSync(trigger);
    expect(c.isOpen).toBe(true);
    expect((await c.read(4096, 8)).readBigUInt64BE(0)).toBe(4096n);
    await c.close();
  });

  it('refuses a server that does not do fixed newstyle (--mask-handshake=0)', async () => {
    const s = await startNbdkit(dir, ['--mask-handshake=0', 'null', 'size=1M']);
    stops.push(s.stop);
    const err = await NbdClient.connect(s.uri).then(() => undefined, (e: Error) => e);
    expect(err).toBeInstanceOf(NbdProtocolError);
    expect(err!.message).toMatch(/does not support fixed newstyle/);
  });

  it('works over plain TCP', async () => {
    const port = await freePort();
    const s = await startNbdkit(dir, ['pattern', 'size=2M'], { tcpPort: port });
    stops.push(s.stop);
    const c = await connect(s.uri);
    expect(c.size).toBe(2 * MiB);
    expect((await c.read(2 * MiB - 8, 8)).readBigUInt64BE(0)).toBe(BigInt(2 * MiB - 8));
    await c.close();
  });
});

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

// A sanity check of the comparison helper itself (so a broken merge cannot hide a difference).
describe('mergeExtents', () => {
  it('merges only adjacent extents with equal flags', () => {
    expect(mergeExtents([{ offset: 0, length: 1, flags: 0 }, { offset: 1, length: 1, flags: 0 }, { offset: 2, length: 1, flags: 1 }], 'flags')).toEqual([
      { offset: 0, length: 2, flags: 0 }, { offset: 2, length: 1, flags: 1 },
    ]);
  });

  it('merges by the key it is given, and never across a gap', () => {
    const ops = [{ offset: 0, length: 1, op: 'data' }, { offset: 1, length: 1, op: 'data' }, { offset: 3, length: 1, op: 'data' }, { offset: 4, length: 1, op: 'zero' }];
    expect(mergeExtents(ops, 'op')).toEqual([{ offset: 0, length: 2, op: 'data' }, { offset: 3, length: 1, op: 'data' }, { offset: 4, length: 1, op: 'zero' }]);
    expect(ops[0]).toEqual({ offset: 0, length: 1, op: 'data' }); // the input is left as it was
  });
});
