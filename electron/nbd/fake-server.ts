// A scripted NBD server for protocol edge cases only (violations, garbage, disconnects). Real
// server behaviour is tested against QEMU, qemu-nbd and nbdkit in the *.itest.ts files.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as P from './protocol';
import { ByteReader } from './reader';

export interface FakeRequest {
  flags: number;
  type: number;
  handle: bigint;
  offset: number;
  length: number;
}

export class FakeNbdConn {
  readonly reader = new ByteReader();
  constructor(readonly sock: net.Socket) {
    this.reader.attach(sock);
    sock.on('error', () => undefined);
    sock.on('close', () => this.reader.end(new Error('client closed')));
  }

  write(b: Buffer): void {
    if (!this.sock.destroyed) this.sock.write(b);
  }

  /** Sends NBDMAGIC, IHAVEOPT and handshake flags; returns the client's flags. */
  async greet(flags = P.NBD_FLAG_FIXED_NEWSTYLE | P.NBD_FLAG_NO_ZEROES): Promise<number> {
    const b = Buffer.alloc(18);
    b.writeBigUInt64BE(P.NBDMAGIC, 0);
    b.writeBigUInt64BE(P.IHAVEOPT, 8);
    b.writeUInt16BE(flags, 16);
    this.write(b);
    return (await this.reader.read(4)).readUInt32BE(0);
  }

  async readOption(): Promise<{ option: number; data: Buffer }> {
    const h = await this.reader.read(16);
    if (h.readBigUInt64BE(0) !== P.IHAVEOPT) throw new Error('fake server: client sent an option without IHAVEOPT');
    const len = h.readUInt32BE(12);
    return { option: h.readUInt32BE(8), data: len ? await this.reader.read(len) : Buffer.alloc(0) };
  }

  optReply(option: number, type: number, data: Buffer = Buffer.alloc(0), magic = P.REPLY_MAGIC_OPT): void {
    const h = Buffer.alloc(20);
    h.writeBigUInt64BE(magic, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(type, 12);
    h.writeUInt32BE(data.length, 16);
    this.write(Buffer.concat([h, data]));
  }

  /** The usual handshake: structured replies, the given contexts, GO with size and block sizes. */
  async handshake(opts: { size: number; contexts?: string[]; blockSize?: [number, number, number]; flags?: number } = { size: 1 << 20 }): Promise<Map<string, number>> {
    await this.greet();
    const ids = new Map<string, number>();
    for (;;) {
      const { option, data } = await this.readOption();
      if (option === P.NBD_OPT_STRUCTURED_REPLY) this.optReply(option, P.NBD_REP_ACK);
      else if (option === P.NBD_OPT_SET_META_CONTEXT) {
        for (const q of parseMetaQueries(data)) {
          if (!(opts.contexts ?? []).includes(q)) continue;
          const id = 100 + ids.size;
          ids.set(q, id);
          this.optReply(option, P.NBD_REP_META_CONTEXT, Buffer.concat([u32(id), Buffer.from(q)]));
        }
        this.optReply(option, P.NBD_REP_ACK);
      } else if (option === P.NBD_OPT_GO) {
        this.optReply(option, P.NBD_REP_INFO, exportInfo(opts.size, opts.flags ?? (P.NBD_FLAG_HAS_FLAGS | P.NBD_FLAG_READ_ONLY)));
        if (opts.blockSize) this.optReply(option, P.NBD_REP_INFO, blockSizeInfo(...opts.blockSize));
        this.optReply(option, P.NBD_REP_ACK);
        return ids;
      } else this.optReply(option, P.NBD_REP_ERR_UNSUP);
    }
  }

  async readRequest(): Promise<FakeRequest> {
    const h = await this.reader.read(28);
    if (h.readUInt32BE(0) !== P.NBD_REQUEST_MAGIC) throw new Error('fake server: bad request magic');
    return { flags: h.readUInt16BE(4), type: h.readUInt16BE(6), handle: h.readBigUInt64BE(8), offset: Number(h.readBigUInt64BE(16)), length: h.readUInt32BE(24) };
  }

  simpleReply(handle: bigint, error: number, data?: Buffer): void {
    const h = Buffer.alloc(16);
    h.writeUInt32BE(P.NBD_SIMPLE_REPLY_MAGIC, 0);
    h.writeUInt32BE(error, 4);
    h.writeBigUInt64BE(handle, 8);
    this.write(data ? Buffer.concat([h, data]) : h);
  }

  chunk(handle: bigint, flags: number, type: number, payload: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(20);
    h.writeUInt32BE(P.NBD_STRUCTURED_REPLY_MAGIC, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(handle, 8);
    h.writeUInt32BE(payload.length, 16);
    this.write(Buffer.concat([h, payload]));
  }

  data(handle: bigint, offset: number, data: Buffer, done = false): void {
    this.chunk(handle, done ? P.NBD_REPLY_FLAG_DONE : 0, P.NBD_REPLY_TYPE_OFFSET_DATA, Buffer.concat([u64(offset), data]));
  }

  hole(handle: bigint, offset: number, size: number, done = false): void {
    this.chunk(handle, done ? P.NBD_REPLY_FLAG_DONE : 0, P.NBD_REPLY_TYPE_OFFSET_HOLE, Buffer.concat([u64(offset), u32(size)]));
  }

  status(handle: bigint, contextId: number, extents: [number, number][], done = false): void {
    const body = Buffer.concat([u32(contextId), ...extents.map(([len, fl]) => Buffer.concat([u32(len), u32(fl)]))]);
    this.chunk(handle, done ? P.NBD_REPLY_FLAG_DONE : 0, P.NBD_REPLY_TYPE_BLOCK_STATUS, body);
  }

  error(handle: bigint, errno: number, message: string, offset?: number, done = true): void {
    const msg = Buffer.from(message);
    const parts = [u32(errno), u16(msg.length), msg];
    if (offset !== undefined) parts.push(u64(offset));
    this.chunk(handle, done ? P.NBD_REPLY_FLAG_DONE : 0, offset !== undefined ? P.NBD_REPLY_TYPE_ERROR_OFFSET : P.NBD_REPLY_TYPE_ERROR, Buffer.concat(parts));
  }

  done(handle: bigint): void {
    this.chunk(handle, P.NBD_REPLY_FLAG_DONE, P.NBD_REPLY_TYPE_NONE);
  }
}

export interface FakeNbdServer {
  socketPath: string;
  uri(exportName?: string): string;
  /** Errors thrown by scripts (a script that failed its own expectations). */
  scriptErrors: Error[];
  close(): Promise<void>;
}

/** Starts a fake NBD server on a fresh unix socket; `script` runs for each connection. */
export async function startFakeNbdServer(script: (c: FakeNbdConn) => Promise<void>): Promise<FakeNbdServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-nbdfake-'));
  const socketPath = path.join(dir, 'nbd.sock');
  const sockets = new Set<net.Socket>();
  const scriptErrors: Error[] = [];
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    script(new FakeNbdConn(sock)).catch((e: Error) => {
      if (!/client closed/.test(e.message)) scriptErrors.push(e);
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return {
    socketPath,
    uri: (exportName = 'exp') => `nbd+unix:///${encodeURIComponent(exportName)}?socket=${socketPath}`,
    scriptErrors,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function parseMetaQueries(data: Buffer): string[] {
  const nameLen = data.readUInt32BE(0);
  let pos = 4 + nameLen;
  const n = data.readUInt32BE(pos);
  pos += 4;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = data.readUInt32BE(pos);
    out.push(data.subarray(pos + 4, pos + 4 + len).toString('utf8'));
    pos += 4 + len;
  }
  return out;
}

export function exportInfo(size: number, flags: number): Buffer {
  return Buffer.concat([u16(P.NBD_INFO_EXPORT), u64(size), u16(flags)]);
}

export function blockSizeInfo(min: number, pref: number, max: number): Buffer {
  return Buffer.concat([u16(P.NBD_INFO_BLOCK_SIZE), u32(min), u32(pref), u32(max)]);
}

export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
export function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
