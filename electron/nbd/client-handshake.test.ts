// The NBD client's handshake against a scripted fake server: options, export info, meta contexts,
// and every way a server can break it. Real servers are covered by client.itest.ts.

import { describe, expect, it } from 'vitest';
import { NbdClient } from './client';
import { NbdConnectionError, NbdExportNotFoundError, NbdMetaContextError, NbdOptionError, NbdProtocolError } from './errors';
import { blockSizeInfo, exportInfo, FakeNbdConn, parseMetaQueries, u32, u64 } from './fake-server';
import { big64, closeAfterEach, failure, MiB, RO, serve } from './client-test-rig';
import * as P from './protocol';

let client: NbdClient | undefined;
closeAfterEach(() => client, () => (client = undefined));

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
