// The byte reader's reused socket buffers: bytes must stay intact while they wait to be read, a
// buffer comes back for reuse only once every byte in it was taken, and reading pauses the socket
// when too much is buffered. Driven the way net's `onread` drives it: buffer() before each read,
// then callback(bytes read, that buffer).
import { randomBytes } from 'node:crypto';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ByteReader } from './reader';

/** Feeds `data` through the reader's onread hooks in reads of the given sizes. */
function feed(reader: ByteReader, data: Buffer, sizes: number[]): Buffer[] {
  const o = reader.socketReadOptions();
  const given: Buffer[] = [];
  let pos = 0;
  for (let i = 0; pos < data.length; i++) {
    const b = o.buffer();
    given.push(b);
    const n = Math.min(sizes[i % sizes.length]!, b.length, data.length - pos);
    data.copy(b, 0, pos, pos + n);
    o.callback(n, b);
    pos += n;
  }
  return given;
}

describe('ByteReader with reused read buffers', () => {
  it('returns every byte in order, whatever sizes the reads and the takes have', async () => {
    for (const sizes of [[1], [7, 300, 65536], [512 * 1024], [200_000, 3]]) {
      const r = new ByteReader();
      const data = randomBytes(sizes[0] === 1 ? 50_000 : 700_000);
      feed(r, data, sizes);
      const out: Buffer[] = [];
      for (let left = data.length, i = 0; left > 0; i++) {
        const n = Math.min(left, [16, 262144, 20, 1, 262144, 175535][i % 6]!);
        out.push(await r.read(n));
        left -= n;
      }
      expect(Buffer.concat(out).equals(data)).toBe(true);
    }
  });

  it('reuses a buffer only once all of it was taken: waiting bytes are never overwritten', async () => {
    const r = new ByteReader();
    const o = r.socketReadOptions();
    const big = 300 * 1024;
    const first = o.buffer();
    first.fill(0x11, 0, big);
    o.callback(big, first);
    expect(await r.read(60)).toEqual(Buffer.alloc(60, 0x11));
    // The rest of `first` still waits: the next read must get another buffer.
    const second = o.buffer();
    expect(second).not.toBe(first);
    second.fill(0x22, 0, big);
    o.callback(big, second);
    expect(o.buffer()).not.toBe(first);
    expect(await r.read(big)).toEqual(Buffer.concat([Buffer.alloc(big - 60, 0x11), Buffer.alloc(60, 0x22)]));
  });

  it('gives back a buffer once all of it was taken, and at once after a small read (copied out)', async () => {
    const r = new ByteReader();
    const o = r.socketReadOptions();
    const big = 300 * 1024;
    const a = o.buffer();
    a.fill(0x44, 0, big);
    o.callback(big, a);
    await r.read(big);
    expect(o.buffer()).toBe(a);
    const b = o.buffer();
    b.fill(0x55, 0, 10);
    o.callback(10, b);
    expect(o.buffer()).toBe(b); // reused before the 10 bytes were read
    b.fill(0);
    expect(await r.read(10)).toEqual(Buffer.alloc(10, 0x55));
  });

  it('a reader waiting before the bytes arrive gets them', async () => {
    const r = new ByteReader();
    const pending = r.read(300_000);
    const data = randomBytes(300_000);
    feed(r, data, [65536]);
    expect((await pending).equals(data)).toBe(true);
  });

  it('asks the socket to pause when 8 MiB wait unread, and reads on once they are taken', async () => {
    const r = new ByteReader();
    const o = r.socketReadOptions();
    let answers: boolean[] = [];
    for (let i = 0; i < 17; i++) {
      const b = o.buffer();
      answers.push(o.callback(b.length, b));
    }
    expect(answers.slice(0, 15).every(Boolean)).toBe(true);
    expect(answers[answers.length - 1]).toBe(false);
    await r.skip(17 * 512 * 1024);
    expect(r.buffered).toBe(0);
    answers = [];
    const b = o.buffer();
    answers.push(o.callback(10, b));
    expect(answers).toEqual([true]);
  });

  it('works as a real socket\'s onread: 32 MiB through a unix socket arrive intact', async () => {
    const sock = path.join(os.tmpdir(), `tidemark-reader-${process.pid}.sock`);
    const data = randomBytes(32 * 1024 * 1024);
    const server = net.createServer((s) => s.end(data));
    await new Promise<void>((res) => server.listen(sock, res));
    try {
      const r = new ByteReader();
      const c = net.createConnection({ path: sock, onread: r.socketReadOptions() });
      r.attach(c);
      const got: Buffer[] = [];
      for (let left = data.length; left > 0; left -= 1_000_003) got.push(await r.read(Math.min(left, 1_000_003)));
      expect(Buffer.concat(got).equals(data)).toBe(true);
      c.destroy();
    } finally {
      server.close();
    }
  });

  it('a large read waiting with nothing buffered has the socket read the rest straight into its target', async () => {
    const r = new ByteReader();
    const o = r.socketReadOptions();
    const data = randomBytes(300_000);
    const target = Buffer.alloc(300_010);
    const p = r.readInto(target, 10, 300_000);
    const b1 = o.buffer();
    expect([b1.buffer === target.buffer, b1.byteOffset - target.byteOffset, b1.length]).toEqual([true, 10, 300_000]);
    data.copy(b1, 0, 0, 100_000);
    o.callback(100_000, b1);
    const b2 = o.buffer(); // the rest of the same region
    expect([b2.buffer === target.buffer, b2.byteOffset - target.byteOffset, b2.length]).toEqual([true, 100_010, 200_000]);
    data.copy(b2, 0, 100_000);
    o.callback(200_000, b2);
    await p;
    expect(target.subarray(10).equals(data)).toBe(true);
    expect(o.buffer().buffer).not.toBe(target.buffer); // reused buffers again
  });

  it('takes the bytes buffered before the direct region first, and leaves those after it for the next read', async () => {
    const r = new ByteReader();
    const o = r.socketReadOptions();
    const data = randomBytes(300_000);
    const spare = o.buffer(); // chosen before the read waits, as the socket does after each read
    const target = Buffer.alloc(300_000);
    const p = r.readInto(target, 0, 300_000);
    data.copy(spare, 0, 0, 1000);
    o.callback(1000, spare);
    const direct = o.buffer();
    expect([direct.buffer === target.buffer, direct.byteOffset - target.byteOffset, direct.length]).toEqual([true, 1000, 299_000]);
    data.copy(direct, 0, 1000);
    o.callback(299_000, direct);
    const after = o.buffer();
    after.write('next', 0, 'latin1');
    o.callback(4, after);
    await p;
    expect(target.equals(data)).toBe(true);
    expect((await r.read(4)).toString('latin1')).toBe('next');
  });

  it('reads small ones (headers) through its own buffers, and fails a waiting direct read when the stream ends', async () => {
    const r = new ByteReader();
    const o = r.socketReadOptions();
    const small = r.read(100);
    expect(o.buffer().length).toBe(512 * 1024);
    const b = o.buffer();
    b.fill(7, 0, 100);
    o.callback(100, b);
    expect(await small).toEqual(Buffer.alloc(100, 7));
    const big = r.read(200_000);
    const d = o.buffer();
    expect(d.length).toBe(200_000);
    o.callback(5000, d);
    r.end(new Error('the server went away'));
    await expect(big).rejects.toThrow('the server went away');
  });
});
