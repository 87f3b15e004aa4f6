// Hostile replies from the peers Tidemark speaks to by hand-written protocol code: QMP (a scripted
// peer, electron/qmp/fake-peer.ts) and NBD (a scripted server, electron/nbd/fake-server.ts).
// Garbage, huge lines, wrong ids and handles, error objects of the wrong shape, missing greetings,
// bad magic, oversized lengths, truncated replies: each fails the call with one line naming what
// was wrong, and nothing throws outside the promise (an unhandled error would fail the run).

import { afterEach, describe, expect, it } from 'vitest';
import { QmpClient } from '../../electron/qmp/client';
import { GREETING, reply, startFakePeer, type FakePeer, type Responder } from '../../electron/qmp/fake-peer';
import { discoverVm } from '../../electron/engine/vm/discovery';
import { NbdClient } from '../../electron/nbd/client';
import { startFakeNbdServer, u32, u64, type FakeNbdConn, type FakeNbdServer, type FakeRequest } from '../../electron/nbd/fake-server';
import * as P from '../../electron/nbd/protocol';
import { tally } from './tally';

async function failure(p: Promise<unknown>): Promise<Error> {
  return p.then(() => new Error('accepted'), (e: Error) => e);
}
function oneLineMatching(err: Error, reason: RegExp): void {
  expect(err.message).not.toBe('accepted');
  expect(err.message.split('\n')).toHaveLength(1);
  expect(err.message.length).toBeLessThan(400);
  expect(err.message).toMatch(reason);
}

describe('QMP replies', () => {
  let peer: FakePeer | undefined;
  let client: QmpClient | undefined;
  afterEach(async () => {
    await client?.close().catch(() => undefined);
    client = undefined;
    await peer?.close();
    peer = undefined;
  });
  const greetingCases: [string, string | null, RegExp][] = [
    ['greeting missing', null, /no QMP greeting from unix:.* within 300 ms/],
    ['greeting garbage', 'hello, I am not QEMU', /QEMU sent invalid JSON \("hello, I am not QEMU"\)/],
    ['greeting of the wrong shape', JSON.stringify({ QMP: 5 }), /malformed QMP greeting/],
    ['greeting a JSON array', '[1,2]', /not an object \("\[1,2\]"\)/],
    ['greeting a 2 MiB line', 'x'.repeat(2 * 1024 * 1024), /larger than 1048576 bytes without a line break/],
  ];
  for (const [what, greeting, reason] of greetingCases) {
    it(what, async () => {
      peer = await startFakePeer(() => undefined, greeting);
      oneLineMatching(await failure(QmpClient.connect(peer.endpoint, { connectTimeoutMs: 300, maxMessageBytes: 1024 * 1024 })), reason);
      tally('QMP replies');
    });
  }

  const replyCases: [string, Responder, RegExp][] = [
    ['garbage reply', (_c, s) => s.write('}}}{{{\r\n'), /QEMU sent invalid JSON \("}}}{{{"\)/],
    ['a number for a reply', (_c, s) => s.write('42\r\n'), /not an object \("42"\)/],
    ['a huge reply line', (c, s) => s.write(JSON.stringify({ return: 'r'.repeat(2 * 1024 * 1024), id: c.id }) + '\r\n'), /larger than 1048576 bytes/],
    ['a reply with the wrong id', (_c, s) => reply(s, 'not-mine', {}), /query-status: no reply from QEMU within 300 ms/],
    ['a reply with an id of the wrong type', (c, s) => reply(s, { id: c.id }, {}), /query-status: no reply from QEMU within 300 ms/],
    ['an error that is a string', (c, s) => s.write(JSON.stringify({ error: 'boom', id: c.id }) + '\r\n'), /^query-status: "boom"$/],
    ['an error with a numeric class and desc', (c, s) => s.write(JSON.stringify({ error: { class: 5, desc: 7 }, id: c.id }) + '\r\n'), /^query-status: \{"class":5,"desc":7\}$/],
    ['an error that is null', (c, s) => s.write(JSON.stringify({ error: null, id: c.id }) + '\r\n'), /^query-status: null$/],
    ['a hang-up mid-command', (_c, s) => s.destroy(), /query-status: QMP connection to unix:.* was closed by QEMU/],
  ];
  for (const [what, responder, reason] of replyCases) {
    it(what, async () => {
      peer = await startFakePeer(responder, JSON.stringify(GREETING));
      client = await QmpClient.connect(peer.endpoint, { maxMessageBytes: 1024 * 1024 });
      // 300 ms only where the timeout is the expected outcome: a loaded machine may take longer to deliver a 2 MiB line.
      const timeoutMs = /within 300 ms/.test(reason.source) ? 300 : 20_000;
      oneLineMatching(await failure(client.execute('query-status', undefined, { timeoutMs })), reason);
      tally('QMP replies');
    });
  }

  const shapes: [string, string, unknown, RegExp][] = [
    ['query-block an object', 'query-block', {}, /QMP query-block replied object where a list was expected/],
    ['query-named-block-nodes null', 'query-named-block-nodes', null, /QMP query-named-block-nodes replied null where a list was expected/],
  ];
  for (const [what, command, value, reason] of shapes) {
    it(`VM discovery: ${what}`, async () => {
      // Found by this corpus: such replies used to end in "Cannot read properties of undefined (reading 'map')".
      peer = await startFakePeer((c, s) => reply(s, c.id, c.execute === command ? value : c.execute === 'x-debug-query-block-graph' ? 'garbage' : c.execute.startsWith('query-block') || c.execute === 'query-named-block-nodes' ? [] : {}));
      client = await QmpClient.connect(peer.endpoint);
      oneLineMatching(await failure(discoverVm(client, peer.endpoint)), reason);
      tally('QMP replies');
    });
  }
});

describe('NBD replies', () => {
  let server: FakeNbdServer | undefined;
  let client: NbdClient | undefined;
  afterEach(async () => {
    client?.destroy(new Error('test over'));
    client = undefined;
    await server?.close();
    server = undefined;
  });
  const header = (magic: number, flags: number, type: number, handle: bigint, length: number) => {
    const h = Buffer.alloc(20);
    h.writeUInt32BE(magic, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(handle, 8);
    h.writeUInt32BE(length, 16);
    return h;
  };

  const handshakeCases: [string, (c: FakeNbdConn) => Promise<void>, RegExp][] = [
    ['bad NBDMAGIC', async (c) => c.write(Buffer.from('HTTP/1.1 200 OK\r\n\r\n')), /is not an NBD server: bad magic 0x485454502f312e31 \(expected NBDMAGIC\)/],
    ['bad magic after NBDMAGIC', async (c) => {
      const b = Buffer.alloc(18);
      b.writeBigUInt64BE(P.NBDMAGIC, 0);
      b.writeBigUInt64BE(0x1234n, 8);
      c.write(b);
    }, /bad magic 0x1234 after NBDMAGIC \(expected IHAVEOPT\)/],
    ['a bad option reply magic', async (c) => {
      await c.greet();
      const { option } = await c.readOption();
      c.optReply(option, P.NBD_REP_ACK, Buffer.alloc(0), 0xdeadbeefn);
    }, /bad option reply magic 0xdeadbeef in the reply to NBD_OPT_STRUCTURED_REPLY/],
    ['an export size record of the wrong length', async (c) => {
      await c.greet();
      for (;;) {
        const { option } = await c.readOption();
        if (option === P.NBD_OPT_GO) return c.optReply(option, P.NBD_REP_INFO, Buffer.concat([Buffer.from([0, 0]), u64(1)]));
        c.optReply(option, P.NBD_REP_ERR_UNSUP);
      }
    }, /NBD_INFO_EXPORT must be 12 bytes, got 10/],
    ['truncated greeting', async (c) => {
      c.write(u64(Number(0)).subarray(0, 5));
      setTimeout(() => c.sock.destroy(), 10);
    }, /NBD server unix:\S+ closed the connection/],
  ];
  for (const [what, script, reason] of handshakeCases) {
    it(`handshake: ${what}`, async () => {
      server = await startFakeNbdServer(script);
      oneLineMatching(await failure(NbdClient.connect(server.uri(), { connectTimeoutMs: 2000 })), reason);
      tally('NBD replies');
    });
  }

  const replyCases: [string, (c: FakeNbdConn, r: FakeRequest) => void, RegExp][] = [
    ['bad reply magic', (c) => c.write(Buffer.from('garbage!garbage!garbage!')), /sent bad reply magic 0x67617262/],
    ['a reply for a handle never sent', (c, r) => c.data(r.handle + 7n, r.offset, Buffer.alloc(8), true), /for handle \d+, which no request in flight has/],
    ['a handle past 2^53', (c, r) => c.done(r.handle + (1n << 60n)), /for handle \d+, which no request in flight has/],
    ['data larger than asked', (c, r) => c.data(r.handle, r.offset, Buffer.alloc(r.length * 2), true), /lies outside the requested 512 bytes at 0/],
    ['a data chunk claiming 4 GiB', (c, r) => c.write(Buffer.concat([header(P.NBD_STRUCTURED_REPLY_MAGIC, 1, P.NBD_REPLY_TYPE_OFFSET_DATA, r.handle, 0xfffffff0), u64(r.offset)])), /data for 4294967272 bytes at offset 0 lies outside the requested 512 bytes/],
    ['an error chunk claiming 4 GiB', (c, r) => c.write(header(P.NBD_STRUCTURED_REPLY_MAGIC, 1, P.NBD_REPLY_TYPE_ERROR, r.handle, 0xffffffff)), /error chunk of 4294967295 bytes \(must be 6\.\./],
    ['an error message longer than its chunk', (c, r) => c.chunk(r.handle, P.NBD_REPLY_FLAG_DONE, P.NBD_REPLY_TYPE_ERROR, Buffer.concat([u32(5), Buffer.from([0, 50])])), /error message length 50 does not fit/],
    ['a simple reply after structured replies were negotiated', (c, r) => c.simpleReply(r.handle, 0, Buffer.alloc(r.length)), /simple reply although structured replies were negotiated/],
    ['success without all the data', (c, r) => c.data(r.handle, r.offset, Buffer.alloc(100), true), /claimed success but sent nothing for 412 bytes at offset 100/],
    ['an unknown chunk type', (c, r) => c.chunk(r.handle, P.NBD_REPLY_FLAG_DONE, 42, Buffer.alloc(4)), /unexpected structured reply type 42/],
    ['a reply truncated by a hang-up', (c, r) => {
      c.write(Buffer.concat([header(P.NBD_STRUCTURED_REPLY_MAGIC, 1, P.NBD_REPLY_TYPE_OFFSET_DATA, r.handle, 8 + r.length), u64(r.offset), Buffer.alloc(42)]));
      setTimeout(() => c.sock.destroy(), 20);
    }, /closed the connection in the middle of the reply to NBD_CMD_READ of 512 bytes at offset 0/],
    ['a truncated header, then a hang-up', (c) => {
      c.write(u32(P.NBD_STRUCTURED_REPLY_MAGIC));
      setTimeout(() => c.sock.destroy(), 20);
    }, /closed the connection in the middle of a reply header/],
  ];
  for (const [what, answer, reason] of replyCases) {
    it(`read: ${what}`, async () => {
      server = await startFakeNbdServer(async (c) => {
        await c.handshake({ size: 1024 * 1024 });
        for (;;) {
          const r = await c.readRequest();
          if (r.type === P.NBD_CMD_DISC) return void c.sock.end();
          answer(c, r);
        }
      });
      client = await NbdClient.connect(server.uri(), { requestTimeoutMs: 2000 });
      oneLineMatching(await failure(client.read(0, 512)), reason);
      expect(client.isOpen).toBe(false);
      tally('NBD replies');
    });
  }
});
