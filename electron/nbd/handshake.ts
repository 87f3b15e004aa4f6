// The NBD handshake (NetworkBlockDevice/nbd doc/proto.md, "Handshake"): fixed newstyle
// negotiation, NBD_OPT_STARTTLS, NBD_OPT_STRUCTURED_REPLY, NBD_OPT_SET_META_CONTEXT and NBD_OPT_GO
// with block-size information (NBD_OPT_EXPORT_NAME for servers without GO). It ends with what
// the transmission phase needs: the export's size and flags and the selected metadata contexts.
// Anything unexpected is an error that names the server, the option and what was wrong.

import * as net from 'node:net';
import * as tls from 'node:tls';
import { toSafeNumber, type NbdConnection } from './connection';
import { NbdConnectionError, NbdExportNotFoundError, NbdMetaContextError, NbdOptionError, NbdProtocolError } from './errors';
import * as P from './protocol';
import type { NbdAddress } from './uri';

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

export interface NbdHandshakeOptions {
  /** Metadata contexts to select, e.g. "base:allocation", "qemu:dirty-bitmap:tmp". */
  metaContexts?: string[];
  /** Ask for structured replies (default true; needed for metadata contexts). */
  structuredReplies?: boolean;
  /** Upgrade to TLS with NBD_OPT_STARTTLS before any other option; the connection fails without it. */
  tls?: NbdTlsOptions;
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

export interface Negotiated {
  info: NbdExportInfo;
  /** Metadata context id (as the server numbered it) → name. */
  contextIds: Map<number, string>;
}

const MAX_OPTION_REPLY = 1024 * 1024;

/** The handshake options with their defaults filled in. */
export type HandshakeSettings = Required<Omit<NbdHandshakeOptions, 'tls'>> & Pick<NbdHandshakeOptions, 'tls'>;
type OptionReply = { type: number; data: Buffer };
type ExportFacts = Omit<NbdExportInfo, 'structuredReplies' | 'contexts' | 'tls'>;

/** Runs the whole handshake on a freshly opened connection. */
export async function negotiate(conn: NbdConnection, address: NbdAddress, options: HandshakeSettings): Promise<Negotiated> {
  return new Handshake(conn, address, options).run();
}

class Handshake {
  private readonly contextIds = new Map<number, string>();
  private readonly contextByName = new Map<string, number>();
  private readonly where: string;

  constructor(
    private readonly conn: NbdConnection,
    private readonly address: NbdAddress,
    private readonly opts: HandshakeSettings,
  ) {
    this.where = conn.where;
  }

  async run(): Promise<Negotiated> {
    const r = this.conn.reader;
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
    this.conn.send(clientFlags);

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
    const facts = await this.go(noZeroes);
    const info = { ...facts, structuredReplies: structured, contexts: [...this.contextByName.keys()], tls: Boolean(this.opts.tls) };
    return { info, contextIds: this.contextIds };
  }

  private async startTls(t: NbdTlsOptions): Promise<void> {
    this.sendOption(P.NBD_OPT_STARTTLS, Buffer.alloc(0));
    const rep = await this.readOptionReply(P.NBD_OPT_STARTTLS);
    if (rep.type !== P.NBD_REP_ACK) this.refuse(P.NBD_OPT_STARTTLS, rep, 'TLS was required but the server does not offer it');
    this.conn.reader.detach();
    const tr = this.address.transport;
    const servername = t.servername ?? this.address.tlsHostname ?? (tr.kind === 'tcp' ? tr.host : 'localhost');
    const secure = tls.connect({
      socket: this.conn.socket,
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
    this.conn.useTls(secure);
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

  private async go(noZeroes: boolean): Promise<ExportFacts> {
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
  private async exportNameFallback(noZeroes: boolean): Promise<ExportFacts> {
    this.sendOption(P.NBD_OPT_EXPORT_NAME, Buffer.from(this.address.exportName, 'utf8'));
    this.conn.midReply = `the reply to NBD_OPT_EXPORT_NAME ${JSON.stringify(this.address.exportName)} (no such export?)`;
    const b = await this.conn.reader.read(10 + (noZeroes ? 0 : 124));
    this.conn.midReply = undefined;
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
    this.conn.send(data.length > 0 ? Buffer.concat([h, data]) : h);
  }

  private async readOptionReply(option: number): Promise<OptionReply> {
    this.conn.midReply = `the reply to ${P.optionName(option)}`;
    const h = await this.conn.reader.read(20);
    const magic = h.readBigUInt64BE(0);
    if (magic !== P.REPLY_MAGIC_OPT) throw new NbdProtocolError(`${this.where}: bad option reply magic 0x${magic.toString(16)} in the reply to ${P.optionName(option)}`);
    const replyOpt = h.readUInt32BE(8);
    if (replyOpt !== option) throw new NbdProtocolError(`${this.where} answered ${P.optionName(replyOpt)} while ${P.optionName(option)} was asked`);
    const type = h.readUInt32BE(12);
    const len = h.readUInt32BE(16);
    if (len > MAX_OPTION_REPLY) throw new NbdProtocolError(`${this.where}: ${P.replyTypeName(type)} reply of ${len} bytes to ${P.optionName(option)} is larger than ${MAX_OPTION_REPLY}`);
    const data = len > 0 ? await this.conn.reader.read(len) : Buffer.alloc(0);
    this.conn.midReply = undefined;
    return { type, data };
  }

  /** Throws for a reply that is not the expected success: an option error, or a protocol error. */
  private refuse(option: number, rep: OptionReply, context: string): never {
    if (rep.type >= P.NBD_REP_FLAG_ERROR) {
      const msg = rep.data.toString('utf8');
      if (rep.type === P.NBD_REP_ERR_UNKNOWN && option === P.NBD_OPT_GO) throw new NbdExportNotFoundError(option, rep.type, msg, this.where, this.address.exportName);
      const hint = rep.type === P.NBD_REP_ERR_TLS_REQD ? ' — the server requires TLS: connect with TLS credentials' : '';
      throw new NbdOptionError(option, rep.type, msg + hint, `${this.where}, ${context}`);
    }
    throw new NbdProtocolError(`${this.where}: unexpected ${P.replyTypeName(rep.type)} while ${context}`);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
