// The NBD client against real servers: qemu-nbd and nbdkit (an independent implementation); QEMU's
// own NBD server on the lab VM is in client-qemu.itest.ts. What the client reads is checked against
// qemu-img convert, nbdcopy, qemu-img compare and nbdinfo --map.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdClient } from './client';
import { NbdCommandError, NbdConnectionError, NbdExportNotFoundError, NbdMetaContextError, NbdProtocolError } from './errors';
import { BASE_ALLOCATION, dirtyBitmapContext } from './protocol';
import { QemuNbdServer, startQemuNbd } from './qemu-nbd';
import { freePort, makeTlsCreds, mergeExtents, nbdinfoMap, run, RunningServer, sameBytes, startNbdkit } from './testkit';

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
