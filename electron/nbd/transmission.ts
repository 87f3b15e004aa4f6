// The NBD transmission phase (NetworkBlockDevice/nbd doc/proto.md, "Transmission"): one request
// per call (READ, WRITE, WRITE_ZEROES, FLUSH, BLOCK_STATUS), many in flight at once up to a limit,
// matched to their replies by handle; simple and structured replies are parsed and checked against
// the request they answer; NBD_CMD_DISC ends it. A reply that breaks the protocol closes the
// connection and fails every request in flight; an error reply fails only its own request.

import { toSafeNumber, type NbdConnection } from './connection';
import { NbdCommandError, NbdConnectionError, NbdProtocolError } from './errors';
import type { NbdExportInfo, Negotiated } from './handshake';
import * as P from './protocol';

export interface NbdTransmissionOptions {
  /** Largest single NBD_CMD_READ (default 32 MiB, lowered to the server's maximum block size). */
  maxRequestBytes?: number;
  /** Requests in flight at once (default 16). */
  maxInFlight?: number;
  /** A request unanswered this long closes the connection (default 120 s; 0 = never). */
  requestTimeoutMs?: number;
}

export interface Extent {
  offset: number;
  length: number;
  flags: number;
}

const MAX_ERROR_CHUNK = 6 + 65535 + 8;
const EMPTY = Buffer.alloc(0);

/** read: data chunks; status: block status chunks; ack: no payload (write, write zeroes, flush). */
type PendingKind = 'read' | 'status' | 'ack';
interface Pending {
  handle: number;
  kind: PendingKind;
  command: number;
  cmdFlags: number;
  offset: number;
  length: number;
  /** When it was sent (Date.now()), for the connection's one timeout timer. */
  sentAt: number;
  data?: Buffer;
  covered: [number, number][];
  status: Map<number, Extent[]>;
  error?: NbdCommandError;
  resolve: (v: Buffer | Map<number, Extent[]>) => void;
  reject: (e: Error) => void;
}

export class Transmission {
  readonly info: NbdExportInfo;
  private readonly contextIds: Map<number, string>;
  private readonly pending = new Map<number, Pending>();
  private nextHandle = 1;
  /** No new request is taken (close() was called, or the server said NBD_ESHUTDOWN). */
  private closing = false;
  private discSent = false;
  private inFlight = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly where: string;
  /** One timer for every request in flight (not one each: a 1 TiB map is 257 requests). */
  private timeout: NodeJS.Timeout | undefined;

  /** Takes over `conn` after the handshake and starts reading replies. */
  constructor(
    private readonly conn: NbdConnection,
    negotiated: Negotiated,
    private readonly opts: Required<NbdTransmissionOptions>,
  ) {
    this.info = negotiated.info;
    this.contextIds = negotiated.contextIds;
    this.where = conn.where;
    conn.inFlight = () => ({ disconnecting: this.discSent, unanswered: this.pending.size });
    // Subscribed before anyone else: requests fail before the client's close listeners run.
    conn.onClose((reason) => this.failAll(reason));
    void this.replyLoop();
  }

  /** One NBD_CMD_READ of exactly `length` bytes, written into `target` as they arrive. */
  async readInto(offset: number, length: number, target: Buffer): Promise<void> {
    await this.request('read', P.NBD_CMD_READ, 0, offset, length, target);
  }

  /** One NBD_CMD_BLOCK_STATUS: extents per selected context, by name (the server may cover less than asked). */
  async blockStatus(offset: number, length: number, cmdFlags: number): Promise<Map<string, Extent[]>> {
    const byId = (await this.request('status', P.NBD_CMD_BLOCK_STATUS, cmdFlags, offset, length)) as Map<number, Extent[]>;
    const out = new Map<string, Extent[]>();
    for (const [id, ext] of byId) out.set(this.contextIds.get(id)!, ext);
    return out;
  }

  /** A command answered by a bare acknowledgement: WRITE (with its payload), WRITE_ZEROES, FLUSH. */
  async ack(command: number, cmdFlags: number, offset: number, length: number, payload?: Buffer): Promise<void> {
    await this.request('ack', command, cmdFlags, offset, length, undefined, payload);
  }

  private release(): void {
    const next = this.slotWaiters.shift();
    if (next) next();
    else this.inFlight--;
  }

  private async request(kind: PendingKind, command: number, cmdFlags: number, offset: number, length: number, target?: Buffer, payload?: Buffer): Promise<Buffer | Map<number, Extent[]>> {
    // Take a slot without yielding when one is free, so a request made before close() is sent.
    if (this.inFlight < this.opts.maxInFlight) this.inFlight++;
    else await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    try {
      if (this.conn.closedReason) throw this.conn.closedReason;
      if (this.closing) throw new NbdConnectionError(`${this.where}: the connection is closing`);
      const handle = this.nextHandle++;
      return await new Promise<Buffer | Map<number, Extent[]>>((resolve, reject) => {
        const p: Pending = { handle, kind, command, cmdFlags, offset, length, sentAt: Date.now(), covered: [], status: new Map(), resolve, reject };
        if (kind === 'read') p.data = target ?? Buffer.allocUnsafe(length);
        this.pending.set(handle, p);
        if (this.timeout === undefined && this.opts.requestTimeoutMs > 0) this.armTimeout(this.opts.requestTimeoutMs);
        const h = Buffer.alloc(28);
        h.writeUInt32BE(P.NBD_REQUEST_MAGIC, 0);
        h.writeUInt16BE(cmdFlags, 4);
        h.writeUInt16BE(command, 6);
        h.writeBigUInt64BE(BigInt(handle), 8);
        h.writeBigUInt64BE(BigInt(offset), 16);
        h.writeUInt32BE(length, 24);
        this.conn.send(h);
        if (payload) this.conn.send(payload);
      });
    } finally {
      this.release();
    }
  }

  /** What a request was, for messages (built only when one is needed). */
  private what(p: Pending): string {
    return `${P.commandName(p.command)} of ${p.length} bytes at offset ${p.offset} on export ${JSON.stringify(this.info.name)}`;
  }

  /** Fires when the oldest request in flight (the first in `pending`) may be due; re-arms for the next one. */
  private armTimeout(ms: number): void {
    this.timeout = setTimeout(() => {
      this.timeout = undefined;
      const oldest = this.pending.values().next().value as Pending | undefined;
      if (!oldest) return;
      const left = oldest.sentAt + this.opts.requestTimeoutMs - Date.now();
      if (left > 0) return this.armTimeout(left);
      this.conn.destroy(new NbdConnectionError(`${this.where}: no reply to ${this.what(oldest)} within ${this.opts.requestTimeoutMs} ms; connection closed`));
    }, ms);
  }

  private finish(p: Pending, outcome: { value?: Buffer | Map<number, Extent[]>; error?: Error }): void {
    this.pending.delete(p.handle);
    if (this.pending.size === 0 && this.timeout !== undefined) {
      clearTimeout(this.timeout);
      this.timeout = undefined;
    }
    if (outcome.error) p.reject(outcome.error);
    else p.resolve(outcome.value!);
    if (this.closing && this.pending.size === 0) this.sendDisc();
  }

  private async replyLoop(): Promise<void> {
    try {
      for (;;) {
        this.conn.midReply = undefined;
        const magic = (await this.conn.reader.read(4)).readUInt32BE(0);
        this.conn.midReply = 'a reply header';
        if (magic === P.NBD_SIMPLE_REPLY_MAGIC) await this.simpleReply();
        else if (magic === P.NBD_STRUCTURED_REPLY_MAGIC) await this.structuredChunk();
        else throw new NbdProtocolError(`${this.where} sent bad reply magic 0x${magic.toString(16).padStart(8, '0')}`);
      }
    } catch (e) {
      this.conn.destroy(e as Error);
    }
  }

  private takePending(handleBig: bigint, kind: string): Pending {
    const p = handleBig <= BigInt(Number.MAX_SAFE_INTEGER) ? this.pending.get(Number(handleBig)) : undefined;
    if (!p) throw new NbdProtocolError(`${this.where} sent a ${kind} for handle ${handleBig}, which no request in flight has`);
    return p;
  }

  private async simpleReply(): Promise<void> {
    const h = await this.conn.reader.read(12);
    const errno = h.readUInt32BE(0);
    const p = this.takePending(h.readBigUInt64BE(4), 'simple reply');
    this.conn.midReply = () => `the reply to ${this.what(p)}`;
    if (errno !== 0) {
      // The spec: after NBD_ESHUTDOWN the client must disconnect (softly, once nothing is in flight).
      if (errno === P.NBD_ESHUTDOWN) this.closing = true;
      this.finish(p, { error: new NbdCommandError(this.what(p), errno, '') });
      return;
    }
    if (p.kind === 'read') {
      if (this.info.structuredReplies) throw new NbdProtocolError(`${this.where} answered ${this.what(p)} with a simple reply although structured replies were negotiated`);
      await this.conn.reader.readInto(p.data!, 0, p.length);
      this.finish(p, { value: p.data! });
      return;
    }
    if (p.kind === 'ack') {
      this.finish(p, { value: EMPTY });
      return;
    }
    throw new NbdProtocolError(`${this.where} answered ${this.what(p)} with a simple success reply; block status needs a structured reply`);
  }

  private async structuredChunk(): Promise<void> {
    if (!this.info.structuredReplies) throw new NbdProtocolError(`${this.where} sent a structured reply although structured replies were not negotiated`);
    const h = await this.conn.reader.read(16);
    const flags = h.readUInt16BE(0);
    const type = h.readUInt16BE(2);
    const p = this.takePending(h.readBigUInt64BE(4), 'structured reply chunk');
    const len = h.readUInt32BE(12);
    this.conn.midReply = () => `the reply to ${this.what(p)}`;
    const bad = (why: string) => new NbdProtocolError(`${this.where}, reply to ${this.what(p)}: ${why}`);

    if (type & P.NBD_REPLY_TYPE_ERROR_BIT) {
      if (len < 6 || len > MAX_ERROR_CHUNK) throw bad(`error chunk of ${len} bytes (must be 6..${MAX_ERROR_CHUNK})`);
      const b = await this.conn.reader.read(len);
      const errno = b.readUInt32BE(0);
      const msgLen = b.readUInt16BE(4);
      if (msgLen > len - 6) throw bad(`error message length ${msgLen} does not fit in a ${len}-byte chunk`);
      const message = b.subarray(6, 6 + msgLen).toString('utf8');
      let errorOffset: number | undefined;
      if (type === P.NBD_REPLY_TYPE_ERROR_OFFSET) {
        if (len - 6 - msgLen < 8) throw bad('NBD_REPLY_TYPE_ERROR_OFFSET without its offset');
        errorOffset = toSafeNumber(b.readBigUInt64BE(6 + msgLen), 'error offset');
        if (errorOffset < p.offset || errorOffset >= p.offset + p.length) throw bad(`error offset ${errorOffset} lies outside the request`);
      }
      const known = type === P.NBD_REPLY_TYPE_ERROR || type === P.NBD_REPLY_TYPE_ERROR_OFFSET;
      if (errno === 0) throw bad('error chunk with error value 0');
      p.error ??= new NbdCommandError(this.what(p), errno, known ? message : `unknown error chunk type ${type}${message ? `: ${message}` : ''}`, errorOffset);
      if (errno === P.NBD_ESHUTDOWN) this.closing = true;
    } else if (type === P.NBD_REPLY_TYPE_NONE) {
      if (len !== 0) throw bad(`NBD_REPLY_TYPE_NONE with a ${len}-byte payload`);
      if (!(flags & P.NBD_REPLY_FLAG_DONE)) throw bad('NBD_REPLY_TYPE_NONE without NBD_REPLY_FLAG_DONE');
    } else if (p.kind === 'read' && type === P.NBD_REPLY_TYPE_OFFSET_DATA) {
      if (len < 9) throw bad(`NBD_REPLY_TYPE_OFFSET_DATA of ${len} bytes (must be at least 9)`);
      const off = toSafeNumber((await this.conn.reader.read(8)).readBigUInt64BE(0), 'data offset');
      const n = len - 8;
      this.checkContent(p, off, n, bad, 'data');
      await this.conn.reader.readInto(p.data!, off - p.offset, n);
      p.covered.push([off, off + n]);
    } else if (p.kind === 'read' && type === P.NBD_REPLY_TYPE_OFFSET_HOLE) {
      if (len !== 12) throw bad(`NBD_REPLY_TYPE_OFFSET_HOLE of ${len} bytes (must be 12)`);
      const b = await this.conn.reader.read(12);
      const off = toSafeNumber(b.readBigUInt64BE(0), 'hole offset');
      const n = b.readUInt32BE(8);
      if (n === 0) throw bad('hole of size 0');
      this.checkContent(p, off, n, bad, 'hole');
      p.data!.fill(0, off - p.offset, off - p.offset + n);
      p.covered.push([off, off + n]);
    } else if (p.kind === 'status' && type === P.NBD_REPLY_TYPE_BLOCK_STATUS) {
      if (len < 12 || (len - 4) % 8 !== 0) throw bad(`NBD_REPLY_TYPE_BLOCK_STATUS of ${len} bytes (must be 4 + a positive multiple of 8)`);
      if (len > this.opts.maxRequestBytes + 4) throw bad(`block status chunk of ${len} bytes is larger than this client accepts (${this.opts.maxRequestBytes + 4})`);
      const b = await this.conn.reader.read(len);
      this.blockStatusChunk(p, b, bad);
    } else {
      throw bad(`unexpected structured reply type ${type}`);
    }

    if (flags & P.NBD_REPLY_FLAG_DONE) this.complete(p, bad);
  }

  private checkContent(p: Pending, off: number, n: number, bad: (w: string) => Error, what: string): void {
    if (off < p.offset || off + n > p.offset + p.length) {
      throw bad(`${what} for ${n} bytes at offset ${off} lies outside the requested ${p.length} bytes at ${p.offset} (refusing a reply larger than asked)`);
    }
  }

  private blockStatusChunk(p: Pending, b: Buffer, bad: (w: string) => Error): void {
    const id = b.readUInt32BE(0);
    if (!this.contextIds.has(id)) throw bad(`block status for metadata context id ${id}, which was never selected`);
    if (p.status.has(id)) throw bad(`two block status chunks for context ${this.contextIds.get(id)}`);
    const n = (b.length - 4) / 8;
    const reqOne = (p.cmdFlags & P.NBD_CMD_FLAG_REQ_ONE) !== 0;
    if (reqOne && n !== 1) throw bad(`${n} extents although NBD_CMD_FLAG_REQ_ONE asked for one`);
    const extents: Extent[] = [];
    let pos = p.offset;
    for (let i = 0; i < n; i++) {
      const len = b.readUInt32BE(4 + 8 * i);
      const st = b.readUInt32BE(8 + 8 * i);
      if (len === 0) throw bad(`extent ${i} has length 0`);
      if (i < n - 1 && pos + len - p.offset >= p.length) throw bad('extents before the last one already cover the whole request');
      if (reqOne && len > p.length) throw bad(`the single extent (${len} bytes) is longer than the request`);
      // The last extent may run past the request, never past the export.
      const clipped = Math.min(len, this.info.size - pos);
      if (clipped <= 0) throw bad(`extent at ${pos} lies beyond the end of the export`);
      extents.push({ offset: pos, length: clipped, flags: st });
      pos += clipped;
    }
    p.status.set(id, extents);
  }

  private complete(p: Pending, bad: (w: string) => Error): void {
    if (p.error) {
      this.finish(p, { error: p.error });
      return;
    }
    if (p.kind === 'read') {
      const spans = p.covered.sort((a, b) => a[0] - b[0]);
      let at = p.offset;
      for (const [s, e] of spans) {
        if (s < at) throw bad(`content chunks overlap at offset ${s}`);
        if (s > at) throw bad(`the server claimed success but sent nothing for ${s - at} bytes at offset ${at}`);
        at = e;
      }
      if (at !== p.offset + p.length) throw bad(`the server claimed success but sent nothing for ${p.offset + p.length - at} bytes at offset ${at}`);
      this.finish(p, { value: p.data! });
    } else if (p.kind === 'ack') {
      this.finish(p, { value: EMPTY });
    } else {
      const missing = [...this.contextIds.keys()].filter((id) => !p.status.has(id));
      if (missing.length > 0) throw bad(`no block status for ${missing.map((id) => this.contextIds.get(id)).join(', ')}`);
      this.finish(p, { value: p.status });
    }
  }

  // ------------------------------------------------------------------ closing

  /** Waits for requests in flight, sends NBD_CMD_DISC and closes the socket. */
  async close(): Promise<void> {
    if (this.conn.closedReason) return;
    const closed = new Promise<void>((resolve) => this.conn.onClose(() => resolve()));
    this.closing = true;
    if (this.pending.size === 0) this.sendDisc();
    const t = setTimeout(() => this.conn.destroy(new NbdConnectionError(`${this.where}: closed by the client`)), 5_000);
    await closed;
    clearTimeout(t);
  }

  private sendDisc(): void {
    if (this.discSent || this.conn.closedReason) return;
    this.discSent = true;
    const h = Buffer.alloc(28);
    h.writeUInt32BE(P.NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(P.NBD_CMD_DISC, 6);
    h.writeBigUInt64BE(BigInt(this.nextHandle++), 8);
    this.conn.send(h);
    this.conn.endOutput();
    // A server that keeps the socket open after DISC is hung up on.
    setTimeout(() => this.conn.destroy(new NbdConnectionError(`${this.where}: closed by the client`)), 1_000).unref();
  }

  /** The connection ended: every request in flight or waiting for a slot fails with `reason`. */
  private failAll(reason: Error): void {
    clearTimeout(this.timeout);
    this.timeout = undefined;
    for (const p of this.pending.values()) p.reject(reason);
    this.pending.clear();
    for (const w of this.slotWaiters.splice(0)) w();
  }
}
