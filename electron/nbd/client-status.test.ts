// The NBD client's block status and writes against a scripted fake server. Real servers are
// covered by client.itest.ts.

import { describe, expect, it } from 'vitest';
import { NbdClient } from './client';
import { NbdCommandError, NbdProtocolError } from './errors';
import { FakeNbdConn, FakeRequest, u32 } from './fake-server';
import { closeAfterEach, failure, KiB, MiB, serve, serveRequests } from './client-test-rig';
import * as P from './protocol';

let client: NbdClient | undefined;
closeAfterEach(() => client, () => (client = undefined));

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
