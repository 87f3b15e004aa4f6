// Protocol behaviour and violations against a scripted fake server. Real servers (QEMU, qemu-nbd,
// nbdkit) are covered by client.itest.ts.

import { afterEach, describe, expect, it } from 'vitest';
import { NbdClient } from './client';
import { NbdCommandError, NbdConnectionError, NbdExportNotFoundError, NbdMetaContextError, NbdOptionError, NbdProtocolError } from './errors';
import { blockSizeInfo, exportInfo, FakeNbdConn, FakeNbdServer, FakeRequest, parseMetaQueries, startFakeNbdServer, u32, u64 } from './fake-server';
import * as P from './protocol';

let server: FakeNbdServer | undefined;
let client: NbdClient | undefined;
afterEach(async () => {
  client?.destroy(new Error('test over'));
  client = undefined;
  await server?.close();
  server = undefined;
});

async function serve(script: (c: FakeNbdConn) => Promise<void>): Promise<FakeNbdServer> {
  server = await startFakeNbdServer(script);
  return server;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a failure, got success');
}

const MiB = 1024 * 1024;
const KiB = 1024;
function big64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v);
  return b;
}
const RO = P.NBD_FLAG_HAS_FLAGS | P.NBD_FLAG_READ_ONLY;

describe('handshake', () => {
  it('asks for fixed newstyle + no zeroes when offered, then structured replies, contexts and GO with block-size info', async () => {
    const seen: { clientFlags?: number; options: number[]; goData?: Buffer; queries?: string[] } = { options: [] };
    const s = await serve(async (c) => {
      seen.clientFlags = await c.greet();
      for (;;) {
        const { option, data } = await c.readOption();
        seen.options.push(option);
        if (option === P.NBD_OPT_STRUCTURED_REPLY) c.optReply(option, P.NBD_REP_ACK);
        if (option === P.NBD_OPT_SET_META_CONTEXT) {
          seen.queries = parseMetaQueries(data);
          c.optReply(option, P.NBD_REP_META_CONTEXT, Buffer.concat([u32(7), Buffer.from('qemu:dirty-bitmap:tmp')]));
          c.optReply(option, P.NBD_REP_META_CONTEXT, Buffer.concat([u32(3), Buffer.from('base:allocation')]));
          c.optReply(option, P.NBD_REP_ACK);
        }
        if (option === P.NBD_OPT_GO) {
          seen.goData = data;
          c.optReply(option, P.NBD_REP_INFO, exportInfo(5 * MiB, RO | P.NBD_FLAG_CAN_MULTI_CONN));
          c.optReply(option, P.NBD_REP_INFO, blockSizeInfo(512, 4096, MiB));
          c.optReply(option, P.NBD_REP_INFO, Buffer.concat([Buffer.from([0, 2]), Buffer.from('a test export')]));
          c.optReply(option, P.NBD_REP_INFO, Buffer.from([0, 99, 1, 2, 3])); // unknown info: ignored
          c.optReply(option, P.NBD_REP_ACK);
          return;
        }
      }
    });
    client = await NbdClient.connect(s.uri('disk a'), { metaContexts: ['base:allocation', 'qemu:dirty-bitmap:tmp'] });
    expect(seen.clientFlags).toBe(P.NBD_FLAG_C_FIXED_NEWSTYLE | P.NBD_FLAG_C_NO_ZEROES);
    expect(seen.options).toEqual([P.NBD_OPT_STRUCTURED_REPLY, P.NBD_OPT_SET_META_CONTEXT, P.NBD_OPT_GO]);
    expect(seen.queries).toEqual(['base:allocation', 'qemu:dirty-bitmap:tmp']);
    // GO: name length, name, 2 info requests (BLOCK_SIZE, DESCRIPTION)
    expect(seen.goData!.readUInt32BE(0)).toBe(6);
    expect(seen.goData!.subarray(4, 10).toString()).toBe('disk a');
    expect(seen.goData!.readUInt16BE(10)).toBe(2);
    expect([seen.goData!.readUInt16BE(12), seen.goData!.readUInt16BE(14)]).toEqual([P.NBD_INFO_BLOCK_SIZE, P.NBD_INFO_DESCRIPTION]);
    expect(client.info).toMatchObject({
      name: 'disk a', size: 5 * MiB, readOnly: true, canMultiConn: true, structuredReplies: true, description: 'a test export',
      blockSize: { minimum: 512, preferred: 4096, maximum: MiB }, contexts: ['qemu:dirty-bitmap:tmp', 'base:allocation'], legacyExportName: false,
    });
  });

  it('does not claim NO_ZEROES when the server did not offer it', async () => {
    let flags = -1;
    const s = await serve(async (c) => {
      flags = await c.greet(P.NBD_FLAG_FIXED_NEWSTYLE);
      c.sock.destroy();
    });
    await failure(NbdClient.connect(s.uri()));
    expect(flags).toBe(P.NBD_FLAG_C_FIXED_NEWSTYLE);
  });

  it('falls back to NBD_OPT_EXPORT_NAME (reading the 124 zero bytes) when GO is unknown', async () => {
    const s = await serve(async (c) => {
      await c.greet(P.NBD_FLAG_FIXED_NEWSTYLE);
      for (;;) {
        const { option, data } = await c.readOption();
        if (option === P.NBD_OPT_EXPORT_NAME) {
          expect(data.toString()).toBe('old');
          c.write(Buffer.concat([u64(3 * MiB), Buffer.from([0, RO]), Buffer.alloc(124)]));
          const req = await c.readRequest();
          c.chunk(req.handle, P.NBD_REPLY_FLAG_DONE, P.NBD_REPLY_TYPE_OFFSET_DATA, Buffer.concat([u64(req.offset), Buffer.alloc(req.length, 7)]));
          return;
        }
        c.optReply(option, option === P.NBD_OPT_STRUCTURED_REPLY ? P.NBD_REP_ACK : P.NBD_REP_ERR_UNSUP);
      }
    });
    client = await NbdClient.connect(s.uri('old'));
    expect(client.info).toMatchObject({ size: 3 * MiB, legacyExportName: true, readOnly: true });
    expect([...(await client.read(10, 4))]).toEqual([7, 7, 7, 7]);
  });

  const handshakeViolations: [string, (c: FakeNbdConn) => Promise<void>, RegExp][] = [
    ['a wrong first magic', async (c) => c.write(Buffer.from('HTTP/1.1 400 Bad Request\r\n')), /not an NBD server: bad magic/],
    ['oldstyle negotiation', async (c) => c.write(Buffer.concat([big64(P.NBDMAGIC), big64(P.OLDSTYLE_MAGIC)])), /oldstyle/],
    ['a server without fixed newstyle', async (c) => void (await c.greet(0)), /fixed newstyle/],
    ['a bad option reply magic', async (c) => {
      await c.greet();
      const { option } = await c.readOption();
      c.optReply(option, P.NBD_REP_ACK, Buffer.alloc(0), 0x1234n);
    }, /bad option reply magic 0x1234/],
    ['a reply to another option', async (c) => {
      await c.greet();
      await c.readOption();
      c.optReply(P.NBD_OPT_LIST, P.NBD_REP_ACK);
    }, /answered NBD_OPT_LIST while NBD_OPT_STRUCTURED_REPLY was asked/],
    ['an oversized option reply', async (c) => {
      await c.greet();
      const { option } = await c.readOption();
      const h = Buffer.alloc(20);
      h.writeBigUInt64BE(P.REPLY_MAGIC_OPT, 0);
      h.writeUInt32BE(option, 8);
      h.writeUInt32BE(P.NBD_REP_ACK, 12);
      h.writeUInt32BE(0xfffffff0, 16);
      c.write(h);
    }, /is larger than 1048576/],
    ['GO acknowledged without NBD_INFO_EXPORT', async (c) => {
      await c.greet();
      for (;;) {
        const { option } = await c.readOption();
        c.optReply(option, P.NBD_REP_ACK);
        if (option === P.NBD_OPT_GO) return;
      }
    }, /without sending NBD_INFO_EXPORT/],
    ['invalid block size constraints', async (c) => {
      await c.greet();
      for (;;) {
        const { option } = await c.readOption();
        if (option !== P.NBD_OPT_GO) c.optReply(option, P.NBD_REP_ACK);
        else c.optReply(option, P.NBD_REP_INFO, blockSizeInfo(3, 4096, 65536));
      }
    }, /invalid block size constraints \(min 3/],
    ['transmission flags without HAS_FLAGS', async (c) => {
      await c.greet();
      for (;;) {
        const { option } = await c.readOption();
        if (option === P.NBD_OPT_GO) c.optReply(option, P.NBD_REP_INFO, exportInfo(MiB, 2));
        c.optReply(option, P.NBD_REP_ACK);
      }
    }, /lack NBD_FLAG_HAS_FLAGS/],
  ];
  for (const [what, script, message] of handshakeViolations) {
    it(`refuses ${what} with a protocol error`, async () => {
      const s = await serve(script);
      const err = await failure(NbdClient.connect(s.uri(), { connectTimeoutMs: 3000 }));
      expect(err).toBeInstanceOf(NbdProtocolError);
      expect(err.message).toMatch(message);
    });
  }

  it('reports an unknown export by name (NBD_REP_ERR_UNKNOWN)', async () => {
    const s = await serve(async (c) => {
      await c.greet();
      for (;;) {
        const { option } = await c.readOption();
        c.optReply(option, option === P.NBD_OPT_GO ? P.NBD_REP_ERR_UNKNOWN : P.NBD_REP_ACK, option === P.NBD_OPT_GO ? Buffer.from('export not found') : undefined);
      }
    });
    const err = await failure(NbdClient.connect(s.uri('nope')));
    expect(err).toBeInstanceOf(NbdExportNotFoundError);
    expect(err.message).toMatch(/no export named "nope" on this server \(export not found\)/);
  });

  it('names the NBD_REP_ERR_* code of a refused option', async () => {
    const s = await serve(async (c) => {
      await c.greet();
      const { option } = await c.readOption();
      c.optReply(option, P.NBD_REP_ERR_POLICY, Buffer.from('not today'));
    });
    const err = (await failure(NbdClient.connect(s.uri()))) as NbdOptionError;
    expect(err).toBeInstanceOf(NbdOptionError);
    expect(err.code).toBe('NBD_REP_ERR_POLICY');
    expect(err.message).toMatch(/refused NBD_OPT_STRUCTURED_REPLY with NBD_REP_ERR_POLICY \(not today\)/);
  });

  it('says TLS is required when the server answers NBD_REP_ERR_TLS_REQD', async () => {
    const s = await serve(async (c) => {
      await c.greet();
      for (;;) {
        const { option } = await c.readOption();
        c.optReply(option, P.NBD_REP_ERR_TLS_REQD);
      }
    });
    const err = await failure(NbdClient.connect(s.uri()));
    expect(err.message).toMatch(/NBD_REP_ERR_TLS_REQD.*requires TLS/);
  });

  it('refuses to connect to an nbds:// URI without TLS credentials', async () => {
    await expect(NbdClient.connect('nbds://127.0.0.1/x')).rejects.toThrow(/asks for TLS/);
  });

  it('reports a metadata context the export does not offer', async () => {
    const s = await serve(async (c) => void (await c.handshake({ size: MiB, contexts: ['base:allocation'] })));
    const err = (await failure(NbdClient.connect(s.uri(), { metaContexts: ['base:allocation', 'qemu:dirty-bitmap:gone'] }))) as NbdMetaContextError;
    expect(err).toBeInstanceOf(NbdMetaContextError);
    expect(err.missing).toEqual(['qemu:dirty-bitmap:gone']);
    expect(err.message).toMatch(/does not offer metadata context "qemu:dirty-bitmap:gone" \(selected: base:allocation\)/);
  });

  it('times out a server that accepts and says nothing', async () => {
    const s = await serve(async () => new Promise(() => undefined));
    const err = await failure(NbdClient.connect(s.uri(), { connectTimeoutMs: 300 }));
    expect(err).toBeInstanceOf(NbdConnectionError);
    expect(err.message).toMatch(/handshake did not finish within 300 ms/);
  });

  it('reports a missing socket plainly', async () => {
    const err = await failure(NbdClient.connect('nbd+unix:///x?socket=/nonexistent/tm.sock'));
    expect(err.message).toMatch(/no such socket/);
  });
});

/** Runs the standard handshake, then `onRequest` for every request. */
async function serveRequests(onRequest: (c: FakeNbdConn, r: FakeRequest, ids: Map<string, number>) => void | Promise<void>, opts: Parameters<FakeNbdConn['handshake']>[0] = { size: 4 * MiB }): Promise<FakeNbdServer> {
  return serve(async (c) => {
    const ids = await c.handshake(opts);
    for (;;) {
      const r = await c.readRequest();
      if (r.type === P.NBD_CMD_DISC) {
        c.sock.end();
        return;
      }
      await onRequest(c, r, ids);
    }
  });
}

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
      server = undefined;
    }
  });
});

describe('block status', () => {
  it('decodes extents per context and follows short replies to the end of the range', async () => {
    const s = await serveRequests((c, r, ids) => {
      if (r.type !== P.NBD_CMD_BLOCK_STATUS) throw new Error('expected block status');
      // The disk is dirty in [0, 1 MiB). The server covers at most 1 MiB per reply, gives
      // base:allocation as one extent and splits the dirty part in two equal extents.
      const cover = Math.min(r.length, MiB);
      c.status(r.handle, ids.get('base:allocation')!, [[cover, 0]]);
      const dirty = Math.max(0, Math.min(MiB - r.offset, cover));
      const ext: [number, number][] = dirty > 0 ? [[dirty / 2, 1], [dirty / 2, 1]] : [];
      if (cover > dirty) ext.push([cover - dirty, 0]);
      c.status(r.handle, ids.get('qemu:dirty-bitmap:b')!, ext, true);
    }, { size: 4 * MiB, contexts: ['base:allocation', 'qemu:dirty-bitmap:b'] });
    client = await NbdClient.connect(s.uri(), { metaContexts: ['base:allocation', 'qemu:dirty-bitmap:b'] });
    const one = await client.blockStatus(0, 4 * MiB);
    expect(one.get('base:allocation')).toEqual([{ offset: 0, length: MiB, flags: 0 }]);
    expect(one.get('qemu:dirty-bitmap:b')).toEqual([{ offset: 0, length: MiB / 2, flags: 1 }, { offset: MiB / 2, length: MiB / 2, flags: 1 }]);
    expect(await client.extents('qemu:dirty-bitmap:b')).toEqual([{ offset: 0, length: MiB, flags: 1 }, { offset: MiB, length: 3 * MiB, flags: 0 }]);
    expect(await client.extents('qemu:dirty-bitmap:b', MiB / 4, MiB)).toEqual([{ offset: MiB / 4, length: (3 * MiB) / 4, flags: 1 }, { offset: MiB, length: MiB / 4, flags: 0 }]);
    await expect(client.extents('qemu:dirty-bitmap:other')).rejects.toThrow(/"qemu:dirty-bitmap:other" was not selected/);
  });

  it('extentsIn: the whole export in windows asked together, or only given ranges; in order, merged', async () => {
    const asked: [number, number][] = [];
    const s = await serveRequests((c, r, ids) => {
      asked.push([r.offset, r.length]);
      // Dirty in [1 MiB - 64 KiB, 1 MiB + 64 KiB) and [3 MiB, 4 MiB); each reply covers what was asked.
      const dirty = (o: number) => (o >= MiB - 64 * KiB && o < MiB + 64 * KiB) || o >= 3 * MiB;
      const ext: [number, number][] = [];
      for (let o = r.offset; o < r.offset + r.length; o += 64 * KiB) ext.push([64 * KiB, dirty(o) ? 1 : 0]);
      c.status(r.handle, ids.get('qemu:dirty-bitmap:b')!, ext, true);
    }, { size: 4 * MiB, contexts: ['qemu:dirty-bitmap:b'] });
    client = await NbdClient.connect(s.uri(), { metaContexts: ['qemu:dirty-bitmap:b'] });
    const whole = await client.extentsIn('qemu:dirty-bitmap:b', undefined, { windowBytes: MiB, parallel: 3 });
    expect(whole).toEqual([
      { offset: 0, length: MiB - 64 * KiB, flags: 0 }, { offset: MiB - 64 * KiB, length: 128 * KiB, flags: 1 },
      { offset: MiB + 64 * KiB, length: 2 * MiB - 64 * KiB, flags: 0 }, { offset: 3 * MiB, length: MiB, flags: 1 },
    ]);
    expect(whole).toEqual(await client.extents('qemu:dirty-bitmap:b'));
    expect(asked.slice(0, 4).map(([o, l]) => [o / MiB, l / MiB]).sort()).toEqual([[0, 1], [1, 1], [2, 1], [3, 1]]);
    asked.length = 0;
    expect(await client.extentsIn('qemu:dirty-bitmap:b', [{ offset: MiB - 64 * KiB, length: 128 * KiB }, { offset: 3 * MiB + 64 * KiB, length: 64 * KiB }])).toEqual([
      { offset: MiB - 64 * KiB, length: 128 * KiB, flags: 1 }, { offset: 3 * MiB + 64 * KiB, length: 64 * KiB, flags: 1 },
    ]);
    expect(asked).toEqual([[MiB - 64 * KiB, 128 * KiB], [3 * MiB + 64 * KiB, 64 * KiB]]);
    await expect(client.extentsIn('qemu:dirty-bitmap:b', [{ offset: 4 * MiB, length: 512 }])).rejects.toThrow(/go past the end/);
    await expect(client.extentsIn('qemu:dirty-bitmap:b', undefined, { windowBytes: 0 })).rejects.toThrow(/window size must be a positive integer/);
  });

  it('needs a selected context', async () => {
    const s = await serveRequests(() => undefined);
    client = await NbdClient.connect(s.uri());
    await expect(client.blockStatus(0, 512)).rejects.toThrow(/needs a metadata context/);
  });

  const cases: [string, (c: FakeNbdConn, r: FakeRequest, id: number) => void, RegExp][] = [
    ['a context id never selected', (c, r) => c.status(r.handle, 999, [[512, 0]], true), /context id 999, which was never selected/],
    ['a zero-length extent', (c, r, id) => c.status(r.handle, id, [[0, 0]], true), /extent 0 has length 0/],
    ['two chunks for one context', (c, r, id) => {
      c.status(r.handle, id, [[512, 0]]);
      c.status(r.handle, id, [[512, 0]], true);
    }, /two block status chunks/],
    ['no chunk at all', (c, r) => c.done(r.handle), /no block status for base:allocation/],
    ['extents past the request before the last', (c, r, id) => c.status(r.handle, id, [[r.length, 0], [512, 1]], true), /already cover the whole request/],
    ['a malformed chunk length', (c, r, id) => c.chunk(r.handle, P.NBD_REPLY_FLAG_DONE, P.NBD_REPLY_TYPE_BLOCK_STATUS, Buffer.concat([u32(id), Buffer.alloc(5)])), /must be 4 \+ a positive multiple of 8/],
    ['a simple success reply', (c, r) => c.simpleReply(r.handle, 0), /block status needs a structured reply/],
  ];
  for (const [what, reply, message] of cases) {
    it(`refuses ${what}`, async () => {
      const s = await serveRequests((c, r, ids) => reply(c, r, ids.get('base:allocation')!), { size: MiB, contexts: ['base:allocation'] });
      client = await NbdClient.connect(s.uri(), { metaContexts: ['base:allocation'] });
      const err = await failure(client.blockStatus(0, 4096));
      expect(err).toBeInstanceOf(NbdProtocolError);
      expect(err.message).toMatch(message);
    });
  }

  it('with REQ_ONE, refuses more than one extent', async () => {
    let flags = -1;
    const s = await serveRequests((c, r, ids) => {
      flags = r.flags;
      c.status(r.handle, ids.get('base:allocation')!, [[512, 0], [512, 1]], true);
    }, { size: MiB, contexts: ['base:allocation'] });
    client = await NbdClient.connect(s.uri(), { metaContexts: ['base:allocation'] });
    await expect(client.blockStatus(0, 4096, { reqOne: true })).rejects.toThrow(/2 extents although NBD_CMD_FLAG_REQ_ONE/);
    expect(flags).toBe(P.NBD_CMD_FLAG_REQ_ONE);
  });
});

describe('writes', () => {
  const RW = P.NBD_FLAG_HAS_FLAGS | P.NBD_FLAG_SEND_FLUSH | P.NBD_FLAG_SEND_FUA | P.NBD_FLAG_SEND_WRITE_ZEROES;

  it('sends WRITE payloads split to the maximum block size, WRITE_ZEROES and FLUSH, and takes either reply form', async () => {
    const got: { type: number; flags: number; offset: number; length: number; data?: Buffer }[] = [];
    const s = await serve(async (c) => {
      await c.handshake({ size: 4 * MiB, flags: RW, blockSize: [512, 4096, 65536] });
      for (let n = 0; ; n++) {
        const r = await c.readRequest();
        if (r.type === P.NBD_CMD_DISC) return void c.sock.end();
        const data = r.type === P.NBD_CMD_WRITE ? await c.reader.read(r.length) : undefined;
        got.push({ type: r.type, flags: r.flags, offset: r.offset, length: r.length, data });
        if (n % 2) c.simpleReply(r.handle, 0);
        else c.done(r.handle);
      }
    });
    client = await NbdClient.connect(s.uri());
    const data = Buffer.alloc(100 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = i % 253;
    await client.write(4096, data, { fua: true });
    await client.writeZeroes(MiB, 2 * MiB, { noHole: true });
    await client.flush();
    const writes = got.filter((g) => g.type === P.NBD_CMD_WRITE).sort((a, b) => a.offset - b.offset);
    expect(writes.map((w) => [w.offset, w.length, w.flags])).toEqual([[4096, 65536, P.NBD_CMD_FLAG_FUA], [4096 + 65536, 100 * 1024 - 65536, P.NBD_CMD_FLAG_FUA]]);
    expect(Buffer.concat(writes.map((w) => w.data!)).equals(data)).toBe(true);
    expect(got.find((g) => g.type === P.NBD_CMD_WRITE_ZEROES)).toMatchObject({ offset: MiB, length: 2 * MiB, flags: P.NBD_CMD_FLAG_NO_HOLE });
    expect(got.find((g) => g.type === P.NBD_CMD_FLUSH)).toMatchObject({ offset: 0, length: 0 });
  });

  it('reports a failed write and refuses writes the export cannot take', async () => {
    const s = await serve(async (c) => {
      await c.handshake({ size: MiB, flags: P.NBD_FLAG_HAS_FLAGS, blockSize: [512, 4096, MiB] });
      const r = await c.readRequest();
      await c.reader.read(r.length);
      c.error(r.handle, 28, 'no space', r.offset);
    });
    client = await NbdClient.connect(s.uri());
    const err = (await failure(client.write(0, Buffer.alloc(512)))) as NbdCommandError;
    expect(err.code).toBe('NBD_ENOSPC');
    expect(err.message).toMatch(/NBD_CMD_WRITE of 512 bytes at offset 0 on export "exp" failed: NBD_ENOSPC at offset 0 \(no space\)/);
    await expect(client.write(100, Buffer.alloc(512))).rejects.toThrow(/not aligned to the server's minimum block size 512/);
    await expect(client.writeZeroes(0, 512)).rejects.toThrow(/does not support NBD_CMD_WRITE_ZEROES/);
    await expect(client.write(MiB, Buffer.alloc(512))).rejects.toThrow(/go past the end/);
  });

  it('refuses to write to a read-only export', async () => {
    const s = await serveRequests(() => undefined);
    client = await NbdClient.connect(s.uri());
    await expect(client.write(0, Buffer.alloc(512))).rejects.toThrow(/export "exp" is read-only/);
  });

  it('refuses data chunks in reply to a write', async () => {
    const s = await serve(async (c) => {
      await c.handshake({ size: MiB, flags: RW });
      const r = await c.readRequest();
      await c.reader.read(r.length);
      c.data(r.handle, r.offset, Buffer.alloc(8), true);
    });
    client = await NbdClient.connect(s.uri());
    const err = await failure(client.write(0, Buffer.alloc(512)));
    expect(err).toBeInstanceOf(NbdProtocolError);
    expect(err.message).toMatch(/unexpected structured reply type 1/);
  });
});
