// An NBD client (NetworkBlockDevice/nbd doc/proto.md) over unix sockets or TCP, optionally TLS:
// fixed newstyle handshake, structured replies, metadata contexts (base:allocation,
// qemu:dirty-bitmap:NAME), NBD_OPT_GO with block-size info, READ, WRITE, WRITE_ZEROES, FLUSH,
// BLOCK_STATUS and DISC. Requests are matched to replies by handle, so many can be in flight.
// Whatever the server sends, the process never crashes: a protocol violation closes the connection
// and rejects every pending request with an error that says what was wrong.
//
// Hand-written because there is no maintained NBD client library for Node (libnbd has bindings for
// C, Python, OCaml, Go and Rust, not for Node). The pieces: connection.ts (the socket, how it ends),
// handshake.ts (negotiation), transmission.ts (requests in flight and their replies); this file is
// the API the pull engine and the dirty map use: requests split to the negotiated sizes.

import { NbdConnectionError } from './errors';
import { NbdConnection, openSocket } from './connection';
import { ByteReader } from './reader';
import { negotiate, type NbdExportInfo, type NbdHandshakeOptions, type Negotiated } from './handshake';
import * as P from './protocol';
import { Transmission, type Extent, type NbdTransmissionOptions } from './transmission';
import { NbdAddress, parseNbdUri } from './uri';
import { settleAll } from '../os/settle-all';
import { usedCodePath } from '../os/code-paths';

export type { NbdBlockSize, NbdExportInfo, NbdTlsOptions } from './handshake';
export type { Extent } from './transmission';

export interface NbdClientOptions extends NbdHandshakeOptions, NbdTransmissionOptions {
  connectTimeoutMs?: number;
}

const MAX_READ_PER_CALL = 1024 * 1024 * 1024;
/**
 * Whole-export block status is asked in windows of this size, several at once (extentsIn): the
 * largest multiple of 1 MiB a 32-bit NBD length holds (4 GiB - 1 MiB; 1 MiB is a multiple of any
 * minimum block size, a power of two up to 64 KiB), so a 1 TiB walk is 257 requests, not 512.
 */
export const STATUS_WINDOW = 0x1_0000_0000 - 1024 * 1024;
const U32 = 0x1_0000_0000;

export class NbdClient {
  readonly address: NbdAddress;
  readonly info: NbdExportInfo;
  private readonly where: string;

  private constructor(
    address: NbdAddress,
    private readonly conn: NbdConnection,
    private readonly tx: Transmission,
    private readonly maxRequestBytes: number,
  ) {
    this.address = address;
    this.info = tx.info;
    this.where = conn.where;
  }

  /** Connects to `where` (an NBD URI or an address) and completes the handshake. */
  static async connect(where: string | NbdAddress, options: NbdClientOptions = {}): Promise<NbdClient> {
    usedCodePath('nbd');
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
    const reader = opts.tls ? undefined : new ByteReader();
    const conn = new NbdConnection(await openSocket(address.transport, opts.connectTimeoutMs, reader), address.transport, reader);
    const timer = setTimeout(
      () => conn.destroy(new NbdConnectionError(`${conn.where}: handshake did not finish within ${opts.connectTimeoutMs} ms`)),
      opts.connectTimeoutMs,
    );
    let negotiated: Negotiated;
    try {
      negotiated = await negotiate(conn, address, opts);
    } catch (e) {
      conn.destroy(e as Error);
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return new NbdClient(address, conn, new Transmission(conn, negotiated, opts), opts.maxRequestBytes);
  }

  get size(): number {
    return this.info.size;
  }

  get isOpen(): boolean {
    return this.conn.closedReason === undefined;
  }

  /** Subscribes to the connection ending (for any reason). */
  onClose(listener: (reason: Error) => void): () => void {
    return this.conn.onClose(listener);
  }

  /**
   * Reads `length` bytes at `offset` (split into requests of at most the negotiated maximum), into
   * `into` when it is given, large enough and the read needs no widening to the block size.
   */
  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.checkRange('read', offset, length);
    if (length > MAX_READ_PER_CALL) throw new RangeError(`read of ${length} bytes is larger than ${MAX_READ_PER_CALL} per call: read in pieces`);
    if (length === 0) return Buffer.alloc(0);
    const align = this.info.blockSize?.minimum ?? 1;
    const start = Math.floor(offset / align) * align;
    const end = Math.min(Math.ceil((offset + length) / align) * align, this.size);
    // Each request fills its own slice of `out` straight from the socket. allocUnsafe is safe:
    // a reply only succeeds once data or hole chunks have covered every byte it was asked for.
    const out = into && into.length >= length && start === offset && end === offset + length ? into.subarray(0, length) : Buffer.allocUnsafe(end - start);
    const step = this.maxRequest();
    const parts: Promise<unknown>[] = [];
    for (let pos = start; pos < end; pos += step) {
      const n = Math.min(step, end - pos);
      parts.push(this.tx.readInto(pos, n, out.subarray(pos - start, pos - start + n)));
    }
    await settleAll(parts);
    return start === offset && end === offset + length ? out : out.subarray(offset - start, offset - start + length);
  }

  /** The largest read this connection sends in one request. */
  maxRequest(): number {
    const bs = this.info.blockSize;
    let m = Math.min(this.maxRequestBytes, bs && bs.maximum !== 0xffffffff ? bs.maximum : Infinity, this.size || 1);
    if (bs) m = Math.max(bs.minimum, Math.floor(m / bs.minimum) * bs.minimum);
    return m;
  }

  /** One NBD_CMD_BLOCK_STATUS: extents per selected context (the server may cover less than asked). */
  async blockStatus(offset: number, length: number, options: { reqOne?: boolean } = {}): Promise<Map<string, Extent[]>> {
    if (this.info.contexts.length === 0) throw new Error(`${this.where}: block status needs a metadata context selected at connect time (metaContexts)`);
    this.checkRange('block status', offset, length);
    if (length === 0) throw new RangeError('block status of 0 bytes');
    const align = this.info.blockSize?.minimum ?? 1;
    // The length field is 32 bits (kept a multiple of the minimum block size); the server may answer
    // for less anyway. No payload travels, so the maximum block size does not bound it (QEMU's server
    // advertises 32 MiB and answers block status of any 32-bit length).
    const len = Math.min(length, Math.floor((U32 - 1) / align) * align);
    return this.tx.blockStatus(offset, len, options.reqOne ? P.NBD_CMD_FLAG_REQ_ONE : 0);
  }

  /** Every extent of `context` over [offset, offset+length), adjacent equal flags merged. */
  async extents(context: string, offset = 0, length = this.size - offset): Promise<Extent[]> {
    if (!this.info.contexts.includes(context)) throw new Error(`${this.where}: metadata context ${JSON.stringify(context)} was not selected (selected: ${this.info.contexts.join(', ') || 'none'})`);
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

  /**
   * `extents` over several ranges, in order, up to `parallel` (default 16) ranges asked at once: requests
   * in flight share their round trips. Without `ranges`, the whole export in windows of `windowBytes`
   * (default `STATUS_WINDOW`). Adjacent extents with equal flags are merged.
   */
  async extentsIn(context: string, ranges?: { offset: number; length: number }[], options: { parallel?: number; windowBytes?: number } = {}): Promise<Extent[]> {
    const asked = ranges ?? windows(this.size, options.windowBytes ?? STATUS_WINDOW);
    const parts = new Array<Extent[]>(asked.length);
    let next = 0;
    let failed = false;
    const worker = async () => {
      while (!failed && next < asked.length) {
        const k = next++;
        parts[k] = await this.extents(context, asked[k]!.offset, asked[k]!.length).catch((e: Error) => {
          failed = true;
          throw e;
        });
      }
    };
    await settleAll(Array.from({ length: Math.max(1, Math.min(options.parallel ?? 16, asked.length)) }, worker));
    const out: Extent[] = [];
    for (const e of parts.flat()) {
      const last = out[out.length - 1];
      if (last && last.flags === e.flags && last.offset + last.length === e.offset) last.length += e.length;
      else out.push({ ...e });
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
      parts.push(this.tx.ack(P.NBD_CMD_WRITE, flags, offset + pos, piece.length, piece));
    }
    await settleAll(parts);
  }

  /** Makes [offset, offset+length) read as zeroes (NBD_CMD_WRITE_ZEROES; a hole is allowed unless noHole). */
  async writeZeroes(offset: number, length: number, options: { noHole?: boolean } = {}): Promise<void> {
    this.checkWritable('write zeroes', offset, length);
    if (!(this.info.flags & P.NBD_FLAG_SEND_WRITE_ZEROES)) throw new Error(`export ${JSON.stringify(this.info.name)} does not support NBD_CMD_WRITE_ZEROES`);
    // The length field is 32 bits; 1 GiB pieces stay well inside it (no payload travels).
    const align = this.info.blockSize?.minimum ?? 1;
    const step = Math.floor(0x4000_0000 / align) * align;
    const parts: Promise<unknown>[] = [];
    for (let pos = 0; pos < length; pos += step) {
      parts.push(this.tx.ack(P.NBD_CMD_WRITE_ZEROES, options.noHole ? P.NBD_CMD_FLAG_NO_HOLE : 0, offset + pos, Math.min(step, length - pos)));
    }
    await settleAll(parts);
  }

  /** Asks the server to persist completed writes (NBD_CMD_FLUSH). */
  async flush(): Promise<void> {
    if (!this.isOpen) throw this.conn.closedReason!;
    if (!(this.info.flags & P.NBD_FLAG_SEND_FLUSH)) return; // nothing to flush: the server writes through
    await this.tx.ack(P.NBD_CMD_FLUSH, 0, 0, 0);
  }

  private checkWritable(what: string, offset: number, length: number): void {
    this.checkRange(what, offset, length);
    if (this.info.readOnly) throw new Error(`${what}: export ${JSON.stringify(this.info.name)} is read-only`);
    const align = this.info.blockSize?.minimum ?? 1;
    if (offset % align !== 0 || length % align !== 0) throw new RangeError(`${what}: ${length} bytes at offset ${offset} are not aligned to the server's minimum block size ${align}`);
  }

  private checkRange(what: string, offset: number, length: number): void {
    if (!this.isOpen) throw this.conn.closedReason!;
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`${what}: offset ${offset} is not a non-negative integer`);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`${what}: length ${length} is not a non-negative integer`);
    if (offset + length > this.size) throw new RangeError(`${what}: ${length} bytes at offset ${offset} go past the end of export ${JSON.stringify(this.info.name)} (${this.size} bytes)`);
  }

  /** Waits for requests in flight, sends NBD_CMD_DISC and closes the socket. */
  async close(): Promise<void> {
    await this.tx.close();
  }

  /** Hard disconnect: every pending request fails with `reason`. */
  destroy(reason: Error): void {
    this.conn.destroy(reason);
  }
}

/** [0, size) cut into consecutive windows of at most `step` bytes. */
function windows(size: number, step: number): { offset: number; length: number }[] {
  if (!Number.isSafeInteger(step) || step < 1) throw new RangeError(`window size must be a positive integer, got ${step}`);
  const out: { offset: number; length: number }[] = [];
  for (let pos = 0; pos < size; pos += step) out.push({ offset: pos, length: Math.min(step, size - pos) });
  return out;
}
