// The NBD client's reads and the transmission rules against a scripted fake server (handshake:
// client-handshake.test.ts; block status and writes: client-status.test.ts). Real servers (QEMU,
// qemu-nbd, nbdkit) are covered by client.itest.ts.

import { describe, expect, it } from 'vitest';
import { NbdClient } from './client';
import { NbdCommandError, NbdConnectionError, NbdProtocolError } from './errors';
import { exportInfo, FakeNbdConn, FakeRequest, u32, u64 } from './fake-server';
import { big64, closeAfterEach, failure, MiB, RO, serve, serveRequests } from './client-test-rig';
import * as P from './protocol';

let client: NbdClient | undefined;
closeAfterEach(() => client, () => (client = undefined));

describe('reads', () => {
  it('reads into the caller\'s buffer when it is given and large enough, else into a new one', async () => {
    const s = await serveRequests((c, r) => c.data(r.handle, r.offset, Buffer.alloc(r.length, r.offset / 4096), true));
    client = await NbdClient.connect(s.uri());
    const mine = Buffer.alloc(8192, 0xee);
    const got = await client.read(4096, 4096, mine);
    expect(got.buffer).toBe(mine.buffer);
    expect(got.byteOffset).toBe(mine.byteOffset);
    expect(got.length).toBe(4096);
    expect(mine.subarray(0, 4096).every((x) => x === 1)).toBe(true);
    expect(mine.subarray(4096).every((x) => x === 0xee)).toBe(true);
    const small = Buffer.alloc(100, 0xee);
    const other = await client.read(8192, 4096, small);
    expect(other.buffer).not.toBe(small.buffer);
    expect(other.every((x) => x === 2)).toBe(true);
    expect(small.every((x) => x === 0xee)).toBe(true);
  });

  it('assembles data and hole chunks sent in any order, zeroes in holes', async () => {
    const s = await serveRequests((c, r) => {
      const half = r.length / 2;
      c.hole(r.handle, r.offset + half, half / 2);
      c.data(r.handle, r.offset + half + half / 2, Buffer.alloc(half / 2, 0xbb));
      c.data(r.handle, r.offset, Buffer.alloc(half, 0xaa), true);
    });
    client = await NbdClient.connect(s.uri());
    const b = await client.read(4096, 4096);
    expect(b.subarray(0, 2048).every((x) => x === 0xaa)).toBe(true);
    expect(b.subarray(2048, 3072).every((x) => x === 0)).toBe(true);
    expect(b.subarray(3072).every((x) => x === 0xbb)).toBe(true);
  });

  it('matches concurrent replies to requests by handle, whatever their order', async () => {
    const held: FakeRequest[] = [];
    const s = await serveRequests((c, r) => {
      held.push(r);
      if (held.length === 3) for (const h of [...held].reverse()) c.data(h.handle, h.offset, Buffer.alloc(h.length, h.offset / 512), true);
    });
    client = await NbdClient.connect(s.uri());
    const [a, b, d] = await Promise.all([client.read(512, 16), client.read(1024, 16), client.read(1536, 16)]);
    expect([a![0], b![0], d![0]]).toEqual([1, 2, 3]);
  });

  it('splits a read to the server maximum block size and aligns to its minimum', async () => {
    const seen: [number, number][] = [];
    const s = await serveRequests((c, r) => {
      seen.push([r.offset, r.length]);
      const data = Buffer.alloc(r.length);
      for (let i = 0; i < r.length; i++) data[i] = (r.offset + i) % 251;
      c.data(r.handle, r.offset, data, true);
    }, { size: 4 * MiB, blockSize: [512, 4096, 65536] });
    client = await NbdClient.connect(s.uri());
    expect(client.maxRequest()).toBe(65536);
    const b = await client.read(1000, 150_000);
    expect(b.length).toBe(150_000);
    for (const i of [0, 1, 65535, 149_999]) expect(b[i]).toBe((1000 + i) % 251);
    expect(seen.every(([o, l]) => o % 512 === 0 && l % 512 === 0 && l <= 65536)).toBe(true);
    expect(seen.reduce((sum, [, l]) => sum + l, 0)).toBe(150_528); // [512, 151040): the range widened to 512-byte alignment
  });

  it('honours a smaller client-side cap on request size', async () => {
    const lengths: number[] = [];
    const s = await serveRequests((c, r) => {
      lengths.push(r.length);
      c.data(r.handle, r.offset, Buffer.alloc(r.length), true);
    });
    client = await NbdClient.connect(s.uri(), { maxRequestBytes: 1024 });
    await client.read(0, 5000);
    expect(lengths.sort((a, b) => a - b)).toEqual([904, 1024, 1024, 1024, 1024]);
  });

  it('turns an error chunk into NbdCommandError and keeps the connection usable', async () => {
    let n = 0;
    const s = await serveRequests((c, r) => {
      if (n++ === 0) c.error(r.handle, P.NBD_EIO, 'disk on fire');
      else c.data(r.handle, r.offset, Buffer.alloc(r.length, 1), true);
    });
    client = await NbdClient.connect(s.uri());
    const err = (await failure(client.read(0, 512))) as NbdCommandError;
    expect(err).toBeInstanceOf(NbdCommandError);
    expect(err.code).toBe('NBD_EIO');
    expect(err.message).toMatch(/NBD_CMD_READ of 512 bytes at offset 0 on export "exp" failed: NBD_EIO \(disk on fire\)/);
    expect(client.isOpen).toBe(true);
    expect((await client.read(0, 4))[0]).toBe(1);
  });

  it('reports the offset of NBD_REPLY_TYPE_ERROR_OFFSET', async () => {
    const s = await serveRequests((c, r) => {
      c.data(r.handle, r.offset, Buffer.alloc(512, 1));
      c.error(r.handle, 28, 'full', r.offset + 512);
    });
    client = await NbdClient.connect(s.uri());
    const err = (await failure(client.read(0, 1024))) as NbdCommandError;
    expect(err.errorOffset).toBe(512);
    expect(err.code).toBe('NBD_ENOSPC');
  });

  it('treats an unknown error chunk type as an error of that request only', async () => {
    let n = 0;
    const s = await serveRequests((c, r) => {
      if (n++ === 0) c.chunk(r.handle, P.NBD_REPLY_FLAG_DONE, P.NBD_REPLY_TYPE_ERROR_BIT + 77, Buffer.concat([u32(22), Buffer.from([0, 2]), Buffer.from('no')]));
      else c.data(r.handle, r.offset, Buffer.alloc(r.length, 2), true);
    });
    client = await NbdClient.connect(s.uri());
    expect((await failure(client.read(0, 8))).message).toMatch(/NBD_EINVAL \(unknown error chunk type 32845: no\)/);
    expect((await client.read(0, 8))[0]).toBe(2);
  });

  it('on ESHUTDOWN, fails the request and disconnects softly (NBD_CMD_DISC)', async () => {
    let disc = false;
    const s = await serve(async (c) => {
      await c.handshake({ size: MiB });
      const r = await c.readRequest();
      c.simpleReply(r.handle, P.NBD_ESHUTDOWN);
      disc = (await c.readRequest()).type === P.NBD_CMD_DISC;
      c.sock.end();
    });
    client = await NbdClient.connect(s.uri());
    expect(((await failure(client.read(0, 8))) as NbdCommandError).code).toBe('NBD_ESHUTDOWN');
    await new Promise<void>((resolve) => client!.onClose(() => resolve()));
    expect(disc).toBe(true);
  });

  it('reads with simple replies when structured replies are not wanted', async () => {
    let n = 0;
    const s = await serve(async (c) => {
      await c.greet();
      for (;;) {
        const { option } = await c.readOption();
        if (option !== P.NBD_OPT_GO) throw new Error(`unexpected option ${option}`);
        c.optReply(option, P.NBD_REP_INFO, exportInfo(MiB, RO));
        c.optReply(option, P.NBD_REP_ACK);
        break;
      }
      for (;;) {
        const r = await c.readRequest();
        if (n++ === 0) c.simpleReply(r.handle, 0, Buffer.alloc(r.length, 9));
        else c.simpleReply(r.handle, P.NBD_EIO);
      }
    });
    client = await NbdClient.connect(s.uri(), { structuredReplies: false });
    expect(client.info.structuredReplies).toBe(false);
    expect([...(await client.read(0, 3))]).toEqual([9, 9, 9]);
    expect(((await failure(client.read(0, 3))) as NbdCommandError).code).toBe('NBD_EIO');
  });

  it('refuses reads outside the export before sending anything', async () => {
    const s = await serveRequests(() => undefined, { size: MiB });
    client = await NbdClient.connect(s.uri());
    await expect(client.read(MiB - 10, 11)).rejects.toThrow(/go past the end of export "exp" \(1048576 bytes\)/);
    await expect(client.read(-1, 1)).rejects.toThrow(/offset -1/);
    await expect(client.read(0.5, 1)).rejects.toThrow(/not a non-negative integer/);
  });

  it('closes with NBD_CMD_DISC (offset and length zero) once requests in flight are answered', async () => {
    let disc: FakeRequest | undefined;
    const s = await serve(async (c) => {
      await c.handshake({ size: MiB });
      const r = await c.readRequest();
      setTimeout(() => c.data(r.handle, r.offset, Buffer.alloc(r.length, 5), true), 50);
      disc = await c.readRequest();
      c.sock.end();
    });
    client = await NbdClient.connect(s.uri());
    const reading = client.read(0, 16);
    await client.close();
    expect((await reading)[0]).toBe(5);
    expect(disc).toMatchObject({ type: P.NBD_CMD_DISC, offset: 0, length: 0 });
    expect(client.isOpen).toBe(false);
    await expect(client.read(0, 1)).rejects.toThrow(/closed by the client/);
  });
});

describe('transmission violations close the connection and fail every pending request', () => {
  const cases: [string, (c: FakeNbdConn, r: FakeRequest) => void, RegExp][] = [
    ['data beyond the request (a reply larger than asked)', (c, r) => c.data(r.handle, r.offset, Buffer.alloc(r.length + 512), true), /data for 1024 bytes at offset 512 lies outside the requested 512 bytes at 512 \(refusing a reply larger than asked\)/],
    ['data before the request', (c, r) => c.data(r.handle, r.offset - 1, Buffer.alloc(8), true), /lies outside the requested/],
    ['a hole outside the request', (c, r) => c.hole(r.handle, r.offset + r.length, 512, true), /hole for 512 bytes at offset 1024 lies outside/],
    ['bad reply magic', (c) => c.write(Buffer.from('garbage!garbage!garbage!')), /bad reply magic 0x67617262/],
    ['a reply for a handle never sent', (c, r) => c.data(r.handle + 1000n, r.offset, Buffer.alloc(8), true), /handle \d+, which no request in flight has/],
    ['an unknown non-error chunk type', (c, r) => c.chunk(r.handle, P.NBD_REPLY_FLAG_DONE, 42, Buffer.alloc(4)), /unexpected structured reply type 42/],
    ['success without all the data', (c, r) => c.data(r.handle, r.offset, Buffer.alloc(r.length / 2), true), /claimed success but sent nothing for 256 bytes at offset 768/],
    ['overlapping chunks', (c, r) => {
      c.data(r.handle, r.offset, Buffer.alloc(r.length));
      c.hole(r.handle, r.offset, 8, true);
    }, /content chunks overlap/],
    ['a simple reply to a read after structured replies were negotiated', (c, r) => c.simpleReply(r.handle, 0, Buffer.alloc(r.length)), /simple reply although structured replies were negotiated/],
    ['NBD_REPLY_TYPE_NONE with a payload', (c, r) => c.chunk(r.handle, P.NBD_REPLY_FLAG_DONE, P.NBD_REPLY_TYPE_NONE, Buffer.alloc(3)), /NONE with a 3-byte payload/],
    ['a short data chunk', (c, r) => c.chunk(r.handle, P.NBD_REPLY_FLAG_DONE, P.NBD_REPLY_TYPE_OFFSET_DATA, Buffer.alloc(8)), /OFFSET_DATA of 8 bytes/],
    ['an error message longer than its chunk', (c, r) => c.chunk(r.handle, P.NBD_REPLY_FLAG_DONE, P.NBD_REPLY_TYPE_ERROR, Buffer.concat([u32(5), Buffer.from([0, 50])])), /error message length 50 does not fit/],
    ['an error offset outside the request', (c, r) => c.error(r.handle, 5, 'x', 99 * MiB), /error offset 103809024 lies outside the request/],
    ['block status in reply to a read', (c, r) => c.status(r.handle, 100, [[512, 0]], true), /unexpected structured reply type 5/],
  ];
  for (const [what, reply, message] of cases) {
    it(what, async () => {
      const s = await serveRequests((c, r) => {
        if (r.offset === 512) reply(c, r); // the second request gets the violation; the first stays pending
      });
      client = await NbdClient.connect(s.uri());
      const pendingOther = client.read(0, 512);
      const err = await failure(client.read(512, 512));
      expect(err).toBeInstanceOf(NbdProtocolError);
      expect(err.message).toMatch(message);
      expect(await failure(pendingOther)).toBe(err);
      expect(client.isOpen).toBe(false);
    });
  }

  it('reports a server that closes in the middle of a reply', async () => {
    const s = await serveRequests((c, r) => {
      // A header promising 4104 bytes of payload, then only 50 before the hang-up.
      const header = Buffer.concat([u32(P.NBD_STRUCTURED_REPLY_MAGIC), Buffer.from([0, 1, 0, 1]), big64(r.handle), u32(8 + r.length)]);
      c.write(Buffer.concat([header, u64(r.offset), Buffer.alloc(42)]));
      setTimeout(() => c.sock.destroy(), 20);
    });
    client = await NbdClient.connect(s.uri());
    const err = await failure(client.read(0, 4096));
    expect(err).toBeInstanceOf(NbdConnectionError);
    expect(err.message).toMatch(/closed the connection in the middle of the reply to NBD_CMD_READ of 4096 bytes at offset 0/);
  });

  it('reports a server that closes with requests unanswered', async () => {
    const s = await serveRequests((c) => void setTimeout(() => c.sock.destroy(), 20));
    client = await NbdClient.connect(s.uri());
    const err = await failure(client.read(0, 4096));
    expect(err.message).toMatch(/closed the connection with 1 request\(s\) unanswered/);
  });

  it('closes the connection when a request gets no reply in time', async () => {
    const s = await serveRequests(() => undefined);
    client = await NbdClient.connect(s.uri(), { requestTimeoutMs: 200 });
    const err = await failure(client.read(0, 4096));
    expect(err.message).toMatch(/no reply to NBD_CMD_READ of 4096 bytes at offset 0 on export "exp" within 200 ms; connection closed/);
  });

  it('times each request from its own sending, not from the first request in flight', async () => {
    // Each read is answered 100 ms after it arrives; with a 400 ms limit none is late, although the
    // connection has had a request in flight for much longer than 400 ms in all.
    const s = await serveRequests((c, r) => void setTimeout(() => c.data(r.handle, Number(r.offset), Buffer.alloc(r.length), true), 100));
    client = await NbdClient.connect(s.uri(), { requestTimeoutMs: 400 });
    for (let i = 0; i < 4; i++) {
      const first = client.read(0, 512);
      await new Promise((r) => setTimeout(r, 80));
      const second = client.read(512, 512);
      await Promise.all([first, second]);
    }
  });

  it('names the late request when an earlier one was answered in time', async () => {
    let n = 0;
    const s = await serveRequests((c, r) => {
      if (n++ === 0) c.data(r.handle, Number(r.offset), Buffer.alloc(r.length), true);
    });
    client = await NbdClient.connect(s.uri(), { requestTimeoutMs: 200 });
    await client.read(0, 512);
    await new Promise((r) => setTimeout(r, 120));
    const err = await failure(client.read(4096, 512));
    expect(err.message).toMatch(/no reply to NBD_CMD_READ of 512 bytes at offset 4096 on export "exp" within 200 ms/);
  });

  it('survives random garbage after the handshake without an unhandled error', async () => {
    for (let seed = 1; seed <= 25; seed++) {
      let x = seed;
      const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) & 0xff);
      const s = await serveRequests((c, r) => {
        // Sometimes a valid-looking header first, so the garbage lands inside a reply.
        if (seed % 2) c.write(Buffer.concat([u32(P.NBD_STRUCTURED_REPLY_MAGIC), Buffer.from([0, rand() & 1, 0, rand() % 3]), u64(Number(r.handle))]));
        c.write(Buffer.from(Array.from({ length: 64 + rand() * 4 }, rand)));
        setTimeout(() => c.sock.destroy(), 10);
      });
      client = await NbdClient.connect(s.uri(), { requestTimeoutMs: 2000 });
      const err = await failure(client.read(0, 4096));
      expect(err).toSatisfy((e: Error) => e instanceof NbdProtocolError || e instanceof NbdConnectionError);
      client.destroy(new Error('next'));
      await s.close();
    }
  });
});
