// An NBD client (NetworkBlockDevice/nbd doc/proto.md) over unix sockets or TCP, optionally TLS:
// fixed newstyle handshake, structured replies, metadata contexts (base:allocation,
// qemu:dirty-bitmap:NAME), NBD_OPT_GO with block-size info, READ, BLOCK_STATUS and DISC.
// Requests are matched to replies by handle, so many can be in flight. Whatever the server sends,
// the process never crashes: a protocol violation closes the connection and rejects every pending
// request with an error that says what was wrong.

import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { NbdCommandError, NbdConnectionError, NbdExportNotFoundError, NbdMetaContextError, NbdOptionError, NbdProtocolError } from './errors';
import * as P from './protocol';
import { ByteReader } from './reader';
import { describeTransport, NbdAddress, NbdTransport, parseNbdUri } from './uri';

export interface NbdTlsOptions {
  /** PEM CA certificate(s) that signed the server's certificate. */
  ca?: string | Buffer;
  /** Client certificate and key, when the server asks for one. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Name to verify the server certificate against (default: the TCP host, or "localhost"). */
  servername?: string;
  /** Default true. */
  rejectUnauthorized?: boolean;
}

export interface NbdClientOptions {
  /** Metadata contexts to select, e.g. "base:allocation", "qemu:dirty-bitmap:tmp". */
  metaContexts?: string[];
  /** Ask for structured replies (default true; needed for metadata contexts). */
  structuredReplies?: boolean;
  /** Upgrade to TLS with NBD_OPT_STARTTLS before any other option; the connection fails without it. */
  tls?: NbdTlsOptions;
  /** Largest single NBD_CMD_READ (default 32 MiB, lowered to the server's maximum block size). */
  maxRequestBytes?: number;
  /** Requests in flight at once (default 16). */
  maxInFlight?: number;
  connectTimeoutMs?: number;
  /** A request unanswered this long closes the connection (default 120 s; 0 = never). */
  requestTimeoutMs?: number;
}

export interface NbdBlockSize {
  minimum: number;
  preferred: number;
  maximum: number;
}

export interface NbdExportInfo {
  name: string;
  size: number;
  /** Transmission flags as sent. */
  flags: number;
  readOnly: boolean;
  canMultiConn: boolean;
  /** As advertised with NBD_INFO_BLOCK_SIZE, if it was. */
  blockSize?: NbdBlockSize;
  description?: string;
  structuredReplies: boolean;
  /** Selected metadata contexts by name. */
  contexts: string[];
  tls: boolean;
  /** True when the server did not know NBD_OPT_GO and NBD_OPT_EXPORT_NAME was used. */
  legacyExportName: boolean;
}

export interface Extent {
  offset: number;
  length: number;
  flags: number;
}

const MAX_OPTION_REPLY = 1024 * 1024;
const MAX_ERROR_CHUNK = 6 + 65535 + 8;
const MAX_READ_PER_CALL = 1024 * 1024 * 1024;
const U32 = 0x1_0000_0000;
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
  what: string;
  data?: Buffer;
  covered: [number, number][];
  status: Map<number, Extent[]>;
  error?: NbdCommandError;
  resolve: (v: Buffer | Map<number, Extent[]>) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

export class NbdClient {
  readonly address: NbdAddress;
  private readonly opts: Required<Omit<NbdClientOptions, 'tls'>> & { tls?: NbdTlsOptions };
  private readonly raw: net.Socket;
  private out: Duplex;
  private readonly reader = new ByteReader();
  private infoValue: NbdExportInfo | undefined;
  private readonly contextIds = new Map<number, string>();
  private readonly contextByName = new Map<string, number>();
  private readonly pending = new Map<number, Pending>();
  private nextHandle = 1;
  private closedReason: Error | undefined;
  private closing = false;
  /** What the reply loop is in the middle of reading, for a "closed mid-reply" message. */
  private midReply: string | undefined;
  private inFlight = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly closeListeners = new Set<(e: Error) => void>();
  private readonly where: string;

  private constructor(address: NbdAddress, raw: net.Socket, opts: NbdClient['opts']) {
    this.address = address;
    this.raw = raw;
    this.out = raw;
    this.opts = opts;
    this.where = `NBD server ${describeTransport(address.transport)}`;
    raw.on('error', (err) => this.connectionLost(new NbdConnectionError(`${this.where}: ${err.message}`, { cause: err })));
    raw.on('close', () => this.connectionLost(new NbdConnectionError(`${this.where} closed the connection`)));
    this.reader.attach(raw);
  }

  /** Connects to `where` (an NBD URI or an address) and completes the handshake. */
  static async connect(where: string | NbdAddress, options: NbdClientOptions = {}): Promise<NbdClient> {
    const address = typeof where === 'string' ? parseNbdUri(where) : where;
    if (address.tls && !options.tls) throw new Error(`NBD URI asks for TLS (nbds): pass TLS credentials (a CA certificate) to connect`);
    const opts = {
      metaContexts: options.metaContexts ?? [],
      structuredReplies: options.structuredReplies ?? true,
      tls: options.tls,
      maxRequestBytes: options.maxRequestBytes ?? P.DEFAULT_MAX_REQUEST,
      maxInFlight: options.maxInFlight ?? 16,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 120_000,
    };
    if (opts.metaContexts.length > 0 && !opts.structuredReplies) throw new Error('metadata contexts need structured replies: do not disable structuredReplies');
    if (!Number.isInteger(opts.maxRequestBytes) || opts.maxRequestBytes < 512) throw new Error(`maxRequestBytes must be an integer of at least 512, got ${opts.maxRequestBytes}`);
    if (!Number.isInteger(opts.maxInFlight) || opts.maxInFlight < 1) throw new Error(`maxInFlight must be a positive integer, got ${opts.maxInFlight}`);
    const raw = await openSocket(address.transport, opts.connectTimeoutMs);
    const client = new NbdClient(address, raw, opts);
    const timer = setTimeout(
      () => client.destroy(new NbdConnectionError(`${client.where}: handshake did not finish within ${opts.connectTimeoutMs} ms`)),
      opts.connectTimeoutMs,
    );
    try {
      await client.handshake();
    } catch (e) {
      client.destroy(e as Error);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    void client.replyLoop();
    return client;
  }

  get info(): NbdExportInfo {
    if (!this.infoValue) throw new NbdConnectionError(`${this.where}: handshake not finished`);
    return this.infoValue;
  }

  get size(): number {
    return this.info.size;
  }

  get isOpen(): boolean {
    return this.closedReason === undefined;
  }

  /** Subscribes to the connection ending (for any reason). */
  onClose(listener: (reason: Error) => void): () => void {
    if (this.closedReason) {
      const r = this.closedReason;
      queueMicrotask(() => listener(r));
      return () => undefined;
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  // ------------------------------------------------------------------ handshake

  private async handshake(): Promise<void> {
    const r = this.reader;
    const hello = await r.read(16);
    if (hello.readBigUInt64BE(0) !== P.NBDMAGIC) throw new NbdProtocolError(`${this.where} is not an NBD server: bad magic 0x${hello.readBigUInt64BE(0).toString(16)} (expected NBDMAGIC)`);
    const second = hello.readBigUInt64BE(8);
    if (second === P.OLDSTYLE_MAGIC) throw new NbdProtocolError(`${this.where} speaks oldstyle negotiation, which this client does not support`);
    if (second !== P.IHAVEOPT) throw new NbdProtocolError(`${this.where}: bad magic 0x${second.toString(16)} after NBDMAGIC (expected IHAVEOPT)`);
    const hsFlags = (await r.read(2)).readUInt16BE(0);
    if (!(hsFlags & P.NBD_FLAG_FIXED_NEWSTYLE)) throw new NbdProtocolError(`${this.where} does not support fixed newstyle negotiation`);
    const noZeroes = (hsFlags & P.NBD_FLAG_NO_ZEROES) !== 0;
    const clientFlags = Buffer.alloc(4);
    clientFlags.writeUInt32BE(P.NBD_FLAG_C_FIXED_NEWSTYLE | (noZeroes ? P.NBD_FLAG_C_NO_ZEROES : 0));
    this.send(clientFlags);

    if (this.opts.tls) await this.startTls(this.opts.tls);

    let structured = false;
    if (this.opts.structuredReplies) {
      this.sendOption(P.NBD_OPT_STRUCTURED_REPLY, Buffer.alloc(0));
      const rep = await this.readOptionReply(P.NBD_OPT_STRUCTURED_REPLY);
      if (rep.type === P.NBD_REP_ACK) structured = true;
      else if (rep.type === P.NBD_REP_ERR_UNSUP && this.opts.metaContexts.length === 0) structured = false;
      else this.refuse(P.NBD_OPT_STRUCTURED_REPLY, rep, 'asking for structured replies');
    }
    if (this.opts.metaContexts.length > 0) await this.setMetaContexts();
    const info = await this.go(noZeroes);
    this.infoValue = { ...info, structuredReplies: structured, contexts: [...this.contextByName.keys()], tls: Boolean(this.opts.tls) };
  }

  private async startTls(t: NbdTlsOptions): Promise<void> {
    this.sendOption(P.NBD_OPT_STARTTLS, Buffer.alloc(0));
    const rep = await this.readOptionReply(P.NBD_OPT_STARTTLS);
    if (rep.type !== P.NBD_REP_ACK) this.refuse(P.NBD_OPT_STARTTLS, rep, 'TLS was required but the server does not offer it');
    this.reader.detach();
    const tr = this.address.transport;
    const servername = t.servername ?? this.address.tlsHostname ?? (tr.kind === 'tcp' ? tr.host : 'localhost');
    const secure = tls.connect({
      socket: this.raw,
      ca: t.ca,
      cert: t.cert,
      key: t.key,
      servername: net.isIP(servername) ? undefined : servername,
      rejectUnauthorized: t.rejectUnauthorized ?? true,
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(servername, cert),
    });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', (err) => reject(new NbdConnectionError(`${this.where}: TLS handshake failed: ${err.message}`, { cause: err })));
    });
    secure.on('error', (err) => this.connectionLost(new NbdConnectionError(`${this.where}: ${err.message}`, { cause: err })));
    this.out = secure;
    this.reader.attach(secure);
  }

  private async setMetaContexts(): Promise<void> {
    const name = Buffer.from(this.address.exportName, 'utf8');
    const queries = this.opts.metaContexts.map((q) => Buffer.from(q, 'utf8'));
    const parts: Buffer[] = [u32(name.length), name, u32(queries.length)];
    for (const q of queries) parts.push(u32(q.length), q);
    this.sendOption(P.NBD_OPT_SET_META_CONTEXT, Buffer.concat(parts));
    for (;;) {
      const rep = await this.readOptionReply(P.NBD_OPT_SET_META_CONTEXT);
      if (rep.type === P.NBD_REP_ACK) break;
      if (rep.type !== P.NBD_REP_META_CONTEXT) this.refuse(P.NBD_OPT_SET_META_CONTEXT, rep, `selecting metadata contexts ${this.opts.metaContexts.join(', ')}`);
      if (rep.data.length < 5) throw new NbdProtocolError(`${this.where}: NBD_REP_META_CONTEXT of ${rep.data.length} bytes is too short`);
      const id = rep.data.readUInt32BE(0);
      const ctx = rep.data.subarray(4).toString('utf8');
      if (this.contextIds.has(id)) throw new NbdProtocolError(`${this.where}: metadata context id ${id} was given twice`);
      this.contextIds.set(id, ctx);
      this.contextByName.set(ctx, id);
    }
    const missing = this.opts.metaContexts.filter((c) => !this.contextByName.has(c));
    if (missing.length > 0) throw new NbdMetaContextError(this.address.exportName, missing, [...this.contextByName.keys()]);
  }

  private async go(noZeroes: boolean): Promise<Omit<NbdExportInfo, 'structuredReplies' | 'contexts' | 'tls'>> {
    const name = Buffer.from(this.address.exportName, 'utf8');
    const infos = [P.NBD_INFO_BLOCK_SIZE, P.NBD_INFO_DESCRIPTION];
    const req = Buffer.alloc(4 + name.length + 2 + 2 * infos.length);
    req.writeUInt32BE(name.length, 0);
    name.copy(req, 4);
    req.writeUInt16BE(infos.length, 4 + name.length);
    infos.forEach((t, i) => req.writeUInt16BE(t, 4 + name.length + 2 + 2 * i));
    this.sendOption(P.NBD_OPT_GO, req);
    let size: number | undefined;
    let flags = 0;
    let blockSize: NbdBlockSize | undefined;
    let description: string | undefined;
    for (;;) {
      const rep = await this.readOptionReply(P.NBD_OPT_GO);
      if (rep.type === P.NBD_REP_ACK) break;
      if (rep.type === P.NBD_REP_ERR_UNSUP) return this.exportNameFallback(noZeroes);
      if (rep.type !== P.NBD_REP_INFO) this.refuse(P.NBD_OPT_GO, rep, `opening export ${JSON.stringify(this.address.exportName)}`);
      if (rep.data.length < 2) throw new NbdProtocolError(`${this.where}: NBD_REP_INFO of ${rep.data.length} bytes is too short`);
      const type = rep.data.readUInt16BE(0);
      if (type === P.NBD_INFO_EXPORT) {
        if (rep.data.length !== 12) throw new NbdProtocolError(`${this.where}: NBD_INFO_EXPORT must be 12 bytes, got ${rep.data.length}`);
        size = toSafeNumber(rep.data.readBigUInt64BE(2), `${this.where}: export size`);
        flags = rep.data.readUInt16BE(10);
      } else if (type === P.NBD_INFO_BLOCK_SIZE) {
        if (rep.data.length !== 14) throw new NbdProtocolError(`${this.where}: NBD_INFO_BLOCK_SIZE must be 14 bytes, got ${rep.data.length}`);
        blockSize = { minimum: rep.data.readUInt32BE(2), preferred: rep.data.readUInt32BE(6), maximum: rep.data.readUInt32BE(10) };
        this.checkBlockSize(blockSize);
      } else if (type === P.NBD_INFO_DESCRIPTION) {
        description = rep.data.subarray(2).toString('utf8');
      } // other information types are ignored, as the spec requires
    }
    if (size === undefined) throw new NbdProtocolError(`${this.where} accepted NBD_OPT_GO without sending NBD_INFO_EXPORT`);
    this.checkTransmissionFlags(flags);
    return {
      name: this.address.exportName, size, flags, blockSize, description, legacyExportName: false,
      readOnly: (flags & P.NBD_FLAG_READ_ONLY) !== 0, canMultiConn: (flags & P.NBD_FLAG_CAN_MULTI_CONN) !== 0,
    };
  }

  /** For servers without NBD_OPT_GO: NBD_OPT_EXPORT_NAME, which cannot report errors (the server just hangs up). */
  private async exportNameFallback(noZeroes: boolean): Promise<Omit<NbdExportInfo, 'structuredReplies' | 'contexts' | 'tls'>> {
    this.sendOption(P.NBD_OPT_EXPORT_NAME, Buffer.from(this.address.exportName, 'utf8'));
    this.midReply = `the reply to NBD_OPT_EXPORT_NAME ${JSON.stringify(this.address.exportName)} (no such export?)`;
    const b = await this.reader.read(10 + (noZeroes ? 0 : 124));
    this.midReply = undefined;
    const size = toSafeNumber(b.readBigUInt64BE(0), `${this.where}: export size`);
    const flags = b.readUInt16BE(8);
    this.checkTransmissionFlags(flags);
    return {
      name: this.address.exportName, size, flags, legacyExportName: true,
      readOnly: (flags & P.NBD_FLAG_READ_ONLY) !== 0, canMultiConn: (flags & P.NBD_FLAG_CAN_MULTI_CONN) !== 0,
    };
  }

  private checkTransmissionFlags(flags: number): void {
    if (!(flags & P.NBD_FLAG_HAS_FLAGS)) throw new NbdProtocolError(`${this.where}: transmission flags 0x${flags.toString(16)} lack NBD_FLAG_HAS_FLAGS`);
  }

  private checkBlockSize(b: NbdBlockSize): void {
    const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
    const bad = (why: string) => new NbdProtocolError(`${this.where}: invalid block size constraints (min ${b.minimum}, preferred ${b.preferred}, max ${b.maximum}): ${why}`);
    if (!pow2(b.minimum) || b.minimum > 65536) throw bad('minimum must be a power of 2 no larger than 65536');
    if (!pow2(b.preferred) || b.preferred < Math.max(b.minimum, 512)) throw bad('preferred must be a power of 2 of at least max(minimum, 512)');
    if (b.maximum !== 0xffffffff && b.maximum % b.minimum !== 0) throw bad('maximum must be a multiple of minimum');
  }

  private sendOption(option: number, data: Buffer): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(P.IHAVEOPT, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(data.length, 12);
    this.send(data.length > 0 ? Buffer.concat([h, data]) : h);
  }

  private async readOptionReply(option: number): Promise<{ type: number; data: Buffer }> {
    this.midReply = `the reply to ${P.optionName(option)}`;
    const h = await this.reader.read(20);
    const magic = h.readBigUInt64BE(0);
    if (magic !== P.REPLY_MAGIC_OPT) throw new NbdProtocolError(`${this.where}: bad option reply magic 0x${magic.toString(16)} in the reply to ${P.optionName(option)}`);
    const replyOpt = h.readUInt32BE(8);
    if (replyOpt !== option) throw new NbdProtocolError(`${this.where} answered ${P.optionName(replyOpt)} while ${P.optionName(option)} was asked`);
    const type = h.readUInt32BE(12);
    const len = h.readUInt32BE(16);
    if (len > MAX_OPTION_REPLY) throw new NbdProtocolError(`${this.where}: ${P.replyTypeName(type)} reply of ${len} bytes to ${P.optionName(option)} is larger than ${MAX_OPTION_REPLY}`);
    const data = len > 0 ? await this.reader.read(len) : Buffer.alloc(0);
    this.midReply = undefined;
    return { type, data };
  }

  /** Throws for a reply that is not the expected success: an option error, or a protocol error. */
  private refuse(option: number, rep: { type: number; data: Buffer }, context: string): never {
    if (rep.type >= P.NBD_REP_FLAG_ERROR) {
      const msg = rep.data.toString('utf8');
      if (rep.type === P.NBD_REP_ERR_UNKNOWN && option === P.NBD_OPT_GO) throw new NbdExportNotFoundError(option, rep.type, msg, this.where, this.address.exportName);
      const hint = rep.type === P.NBD_REP_ERR_TLS_REQD ? ' — the server requires TLS: connect with TLS credentials' : '';
      throw new NbdOptionError(option, rep.type, msg + hint, `${this.where}, ${context}`);
    }
    throw new NbdProtocolError(`${this.where}: unexpected ${P.replyTypeName(rep.type)} while ${context}`);
  }

  // ------------------------------------------------------------------ transmission

  /** Reads `length` bytes at `offset` (split into requests of at most the negotiated maximum). */
  async read(offset: number, length: number): Promise<Buffer> {
    this.checkRange('read', offset, length);
    if (length > MAX_READ_PER_CALL) throw new RangeError(`read of ${length} bytes is larger than ${MAX_READ_PER_CALL} per call: read in pieces`);
    if (length === 0) return Buffer.alloc(0);
    const align = this.info.blockSize?.minimum ?? 1;
    const start = Math.floor(offset / align) * align;
    const end = Math.min(Math.ceil((offset + length) / align) * align, this.size);
    // Each request fills its own slice of `out` straight from the socket. allocUnsafe is safe:
    // a reply only succeeds once data or hole chunks have covered every byte it was asked for.
    const out = Buffer.allocUnsafe(end - start);
    const step = this.maxRequest();
    const parts: Promise<unknown>[] = [];
    for (let pos = start; pos < end; pos += step) {
      const n = Math.min(step, end - pos);
      parts.push(this.request('read', P.NBD_CMD_READ, 0, pos, n, out.subarray(pos - start, pos - start + n)));
    }
    await settleAll(parts);
    return start === offset && end === offset + length ? out : out.subarray(offset - start, offset - start + length);
  }

  /** The largest read this connection sends in one request. */
  maxRequest(): number {
    const bs = this.info.blockSize;
    let m = Math.min(this.opts.maxRequestBytes, bs && bs.maximum !== 0xffffffff ? bs.maximum : Infinity, this.size || 1);
    if (bs) m = Math.max(bs.minimum, Math.floor(m / bs.minimum) * bs.minimum);
    return m;
  }

  /** One NBD_CMD_BLOCK_STATUS: extents per selected context (the server may cover less than asked). */
  async blockStatus(offset: number, length: number, options: { reqOne?: boolean } = {}): Promise<Map<string, Extent[]>> {
    if (this.contextByName.size === 0) throw new Error(`${this.where}: block status needs a metadata context selected at connect time (metaContexts)`);
    this.checkRange('block status', offset, length);
    if (length === 0) throw new RangeError('block status of 0 bytes');
    const align = this.info.blockSize?.minimum ?? 1;
    // The length field is 32 bits; the server may answer for less anyway.
    const len = Math.min(length, Math.floor((U32 - 1) / align) * align, Math.floor(0x8000_0000 / align) * align);
    const byId = (await this.request('status', P.NBD_CMD_BLOCK_STATUS, options.reqOne ? P.NBD_CMD_FLAG_REQ_ONE : 0, offset, len)) as Map<number, Extent[]>;
    const out = new Map<string, Extent[]>();
    for (const [id, ext] of byId) out.set(this.contextIds.get(id)!, ext);
    return out;
  }

  /** Every extent of `context` over [offset, offset+length), adjacent equal flags merged. */
  async extents(context: string, offset = 0, length = this.size - offset): Promise<Extent[]> {
    if (!this.contextByName.has(context)) throw new Error(`${this.where}: metadata context ${JSON.stringify(context)} was not selected (selected: ${[...this.contextByName.keys()].join(', ') || 'none'})`);
    this.checkRange('extents', offset, length);
    const end = offset + length;
    const out: Extent[] = [];
    let pos = offset;
    while (pos < end) {
      const got = (await this.blockStatus(pos, end - pos)).get(context)!;
      for (const e of got) {
        if (pos >= end) break;
        const len = Math.min(e.length, end - pos);
        const last = out[out.length - 1];
        if (last && last.flags === e.flags && last.offset + last.length === pos) last.length += len;
        else out.push({ offset: pos, length: len, flags: e.flags });
        pos += len;
      }
    }
    return out;
  }

  /** Writes `data` at `offset` (split into requests of at most the negotiated maximum). */
  async write(offset: number, data: Buffer, options: { fua?: boolean } = {}): Promise<void> {
    this.checkWritable('write', offset, data.length);
    const step = this.maxRequest();
    const flags = options.fua && this.info.flags & P.NBD_FLAG_SEND_FUA ? P.NBD_CMD_FLAG_FUA : 0;
    const parts: Promise<unknown>[] = [];
    for (let pos = 0; pos < data.length; pos += step) {
      const piece = data.subarray(pos, Math.min(pos + step, data.length));
      parts.push(this.request('ack', P.NBD_CMD_WRITE, flags, offset + pos, piece.length, undefined, piece));
    }
    await settleAll(parts);
  }

  /** Makes [offset, offset+length) read as zeroes (NBD_CMD_WRITE_ZEROES; a hole is allowed unless noHole). */
  async writeZeroes(offset: number, length: number, options: { noHole?: boolean } = {}): Promise<void> {
    this.checkWritable('write zeroes', offset, length);
    if (!(this.info.flags & P.NBD_FLAG_SEND_WRITE_ZEROES)) throw new Error(`export ${JSON.stringify(this.address.exportName)} does not support NBD_CMD_WRITE_ZEROES`);
    // The length field is 32 bits; 1 GiB pieces stay well inside it (no payload travels).
    const align = this.info.blockSize?.minimum ?? 1;
    const step = Math.floor(0x4000_0000 / align) * align;
    const parts: Promise<unknown>[] = [];
    for (let pos = 0; pos < length; pos += step) {
      parts.push(this.request('ack', P.NBD_CMD_WRITE_ZEROES, options.noHole ? P.NBD_CMD_FLAG_NO_HOLE : 0, offset + pos, Math.min(step, length - pos)));
    }
    await settleAll(parts);
  }

  /** Asks the server to persist completed writes (NBD_CMD_FLUSH). */
  async flush(): Promise<void> {
    if (!this.isOpen) throw this.closedReason!;
    if (!(this.info.flags & P.NBD_FLAG_SEND_FLUSH)) return; // nothing to flush: the server writes through
    await this.request('ack', P.NBD_CMD_FLUSH, 0, 0, 0);
  }

  private checkWritable(what: string, offset: number, length: number): void {
    this.checkRange(what, offset, length);
    if (this.info.readOnly) throw new Error(`${what}: export ${JSON.stringify(this.address.exportName)} is read-only`);
    const align = this.info.blockSize?.minimum ?? 1;
    if (offset % align !== 0 || length % align !== 0) throw new RangeError(`${what}: ${length} bytes at offset ${offset} are not aligned to the server's minimum block size ${align}`);
  }

  private checkRange(what: string, offset: number, length: number): void {
    if (!this.isOpen) throw this.closedReason!;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`${what}: offset ${offset} is not a non-negative integer`);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`${what}: length ${length} is not a non-negative integer`);
    if (offset + length > this.size) throw new RangeError(`${what}: ${length} bytes at offset ${offset} go past the end of export ${JSON.stringify(this.address.exportName)} (${this.size} bytes)`);
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
      if (this.closedReason) throw this.closedReason;
      if (this.closing) throw new NbdConnectionError(`${this.where}: the connection is closing`);
      const handle = this.nextHandle++;
      const what = `${P.commandName(command)} of ${length} bytes at offset ${offset} on export ${JSON.stringify(this.address.exportName)}`;
      return await new Promise<Buffer | Map<number, Extent[]>>((resolve, reject) => {
        const p: Pending = { handle, kind, command, cmdFlags, offset, length, what, covered: [], status: new Map(), resolve, reject };
        if (kind === 'read') p.data = target ?? Buffer.allocUnsafe(length);
        if (this.opts.requestTimeoutMs > 0) {
          p.timer = setTimeout(
            () => this.destroy(new NbdConnectionError(`${this.where}: no reply to ${what} within ${this.opts.requestTimeoutMs} ms; connection closed`)),
            this.opts.requestTimeoutMs,
          );
        }
        this.pending.set(handle, p);
        const h = Buffer.alloc(28);
        h.writeUInt32BE(P.NBD_REQUEST_MAGIC, 0);
        h.writeUInt16BE(cmdFlags, 4);
        h.writeUInt16BE(command, 6);
        h.writeBigUInt64BE(BigInt(handle), 8);
        h.writeBigUInt64BE(BigInt(offset), 16);
        h.writeUInt32BE(length, 24);
        this.send(h);
        if (payload) this.send(payload);
      });
    } finally {
      this.release();
    }
  }

  private finish(p: Pending, outcome: { value?: Buffer | Map<number, Extent[]>; error?: Error }): void {
    this.pending.delete(p.handle);
    if (p.timer) clearTimeout(p.timer);
    if (outcome.error) p.reject(outcome.error);
    else p.resolve(outcome.value!);
    if (this.closing && this.pending.size === 0) this.sendDisc();
  }

  private async replyLoop(): Promise<void> {
    try {
      for (;;) {
        this.midReply = undefined;
        const magic = (await this.reader.read(4)).readUInt32BE(0);
        this.midReply = 'a reply header';
        if (magic === P.NBD_SIMPLE_REPLY_MAGIC) await this.simpleReply();
        else if (magic === P.NBD_STRUCTURED_REPLY_MAGIC) await this.structuredChunk();
        else throw new NbdProtocolError(`${this.where} sent bad reply magic 0x${magic.toString(16).padStart(8, '0')}`);
      }
    } catch (e) {
      this.destroy(e as Error);
    }
  }

  private takePending(handleBig: bigint, kind: string): Pending {
    const p = handleBig <= BigInt(Number.MAX_SAFE_INTEGER) ? this.pending.get(Number(handleBig)) : undefined;
    if (!p) throw new NbdProtocolError(`${this.where} sent a ${kind} for handle ${handleBig}, which no request in flight has`);
    return p;
  }

  private async simpleReply(): Promise<void> {
    const h = await this.reader.read(12);
    const errno = h.readUInt32BE(0);
    const p = this.takePending(h.readBigUInt64BE(4), 'simple reply');
    this.midReply = `the reply to ${p.what}`;
    if (errno !== 0) {
      // The spec: after NBD_ESHUTDOWN the client must disconnect (softly, once nothing is in flight).
      if (errno === P.NBD_ESHUTDOWN) this.closing = true;
      this.finish(p, { error: new NbdCommandError(p.what, errno, '') });
      return;
    }
    if (p.kind === 'read') {
      if (this.info.structuredReplies) throw new NbdProtocolError(`${this.where} answered ${p.what} with a simple reply although structured replies were negotiated`);
      await this.reader.readInto(p.data!, 0, p.length);
      this.finish(p, { value: p.data! });
      return;
    }
    if (p.kind === 'ack') {
      this.finish(p, { value: EMPTY });
      return;
    }
    throw new NbdProtocolError(`${this.where} answered ${p.what} with a simple success reply; block status needs a structured reply`);
  }

  private async structuredChunk(): Promise<void> {
    if (!this.info.structuredReplies) throw new NbdProtocolError(`${this.where} sent a structured reply although structured replies were not negotiated`);
    const h = await this.reader.read(16);
    const flags = h.readUInt16BE(0);
    const type = h.readUInt16BE(2);
    const p = this.takePending(h.readBigUInt64BE(4), 'structured reply chunk');
    const len = h.readUInt32BE(12);
    this.midReply = `the reply to ${p.what}`;
    const bad = (why: string) => new NbdProtocolError(`${this.where}, reply to ${p.what}: ${why}`);

    if (type & P.NBD_REPLY_TYPE_ERROR_BIT) {
      if (len < 6 || len > MAX_ERROR_CHUNK) throw bad(`error chunk of ${len} bytes (must be 6..${MAX_ERROR_CHUNK})`);
      const b = await this.reader.read(len);
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
      p.error ??= new NbdCommandError(p.what, errno, known ? message : `unknown error chunk type ${type}${message ? `: ${message}` : ''}`, errorOffset);
      if (errno === P.NBD_ESHUTDOWN) this.closing = true;
    } else if (type === P.NBD_REPLY_TYPE_NONE) {
      if (len !== 0) throw bad(`NBD_REPLY_TYPE_NONE with a ${len}-byte payload`);
      if (!(flags & P.NBD_REPLY_FLAG_DONE)) throw bad('NBD_REPLY_TYPE_NONE without NBD_REPLY_FLAG_DONE');
    } else if (p.kind === 'read' && type === P.NBD_REPLY_TYPE_OFFSET_DATA) {
      if (len < 9) throw bad(`NBD_REPLY_TYPE_OFFSET_DATA of ${len} bytes (must be at least 9)`);
      const off = toSafeNumber((await this.reader.read(8)).readBigUInt64BE(0), 'data offset');
      const n = len - 8;
      this.checkContent(p, off, n, bad, 'data');
      await this.reader.readInto(p.data!, off - p.offset, n);
      p.covered.push([off, off + n]);
    } else if (p.kind === 'read' && type === P.NBD_REPLY_TYPE_OFFSET_HOLE) {
      if (len !== 12) throw bad(`NBD_REPLY_TYPE_OFFSET_HOLE of ${len} bytes (must be 12)`);
      const b = await this.reader.read(12);
      const off = toSafeNumber(b.readBigUInt64BE(0), 'hole offset');
      const n = b.readUInt32BE(8);
      if (n === 0) throw bad('hole of size 0');
      this.checkContent(p, off, n, bad, 'hole');
      p.data!.fill(0, off - p.offset, off - p.offset + n);
      p.covered.push([off, off + n]);
    } else if (p.kind === 'status' && type === P.NBD_REPLY_TYPE_BLOCK_STATUS) {
      if (len < 12 || (len - 4) % 8 !== 0) throw bad(`NBD_REPLY_TYPE_BLOCK_STATUS of ${len} bytes (must be 4 + a positive multiple of 8)`);
      if (len > this.opts.maxRequestBytes + 4) throw bad(`block status chunk of ${len} bytes is larger than this client accepts (${this.opts.maxRequestBytes + 4})`);
      const b = await this.reader.read(len);
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
      const clipped = Math.min(len, this.size - pos);
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
    if (this.closedReason) return;
    const closed = new Promise<void>((resolve) => this.onClose(() => resolve()));
    this.closing = true;
    if (this.pending.size === 0) this.sendDisc();
    const t = setTimeout(() => this.destroy(new NbdConnectionError(`${this.where}: closed by the client`)), 5_000);
    await closed;
    clearTimeout(t);
  }

  private discSent = false;
  private sendDisc(): void {
    if (this.discSent || this.closedReason) return;
    this.discSent = true;
    const h = Buffer.alloc(28);
    h.writeUInt32BE(P.NBD_REQUEST_MAGIC, 0);
    h.writeUInt16BE(P.NBD_CMD_DISC, 6);
    h.writeBigUInt64BE(BigInt(this.nextHandle++), 8);
    this.send(h);
    this.out.end();
    // A server that keeps the socket open after DISC is hung up on.
    setTimeout(() => this.destroy(new NbdConnectionError(`${this.where}: closed by the client`)), 1_000).unref();
  }

  private send(b: Buffer): void {
    if (this.closedReason || this.out.destroyed || this.out.writableEnded) return;
    this.out.write(b);
  }

  /** The socket ended or failed: explain it in terms of what was going on. */
  private connectionLost(reason: NbdConnectionError): void {
    if (this.closedReason) return;
    let err: Error = reason;
    if (this.discSent && this.pending.size === 0) err = new NbdConnectionError(`${this.where}: closed by the client`);
    else if (this.midReply) err = new NbdConnectionError(`${this.where} closed the connection in the middle of ${this.midReply}`, { cause: reason });
    else if (this.pending.size > 0) err = new NbdConnectionError(`${this.where} closed the connection with ${this.pending.size} request(s) unanswered`, { cause: reason });
    this.destroy(err);
  }

  /** Hard disconnect: every pending request fails with `reason`. */
  destroy(reason: Error): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    this.reader.end(reason);
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(reason);
    }
    this.pending.clear();
    for (const w of this.slotWaiters.splice(0)) w();
    this.out.destroy();
    this.raw.destroy();
    for (const l of this.closeListeners) l(reason);
    this.closeListeners.clear();
  }
}

function openSocket(t: NbdTransport, timeoutMs: number): Promise<net.Socket> {
  const where = describeTransport(t);
  return new Promise((resolve, reject) => {
    const s = t.kind === 'unix' ? net.createConnection({ path: t.path }) : net.createConnection({ host: t.host, port: t.port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new NbdConnectionError(`cannot connect to NBD server ${where}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      if (t.kind === 'tcp') s.setNoDelay(true);
      resolve(s);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = err.code === 'ENOENT' ? ' (no such socket: is the export running?)' : err.code === 'ECONNREFUSED' ? ' (connection refused: is the export running?)' : '';
      reject(new NbdConnectionError(`cannot connect to NBD server ${where}: ${err.message}${hint}`, { cause: err }));
    });
  });
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function toSafeNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new NbdProtocolError(`${what} ${v} is larger than this client supports`);
  return Number(v);
}

/** Like Promise.all, but waits for every promise before rejecting (no request is left dangling). */
async function settleAll(ps: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(ps);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
