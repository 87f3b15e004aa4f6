// One NBD connection's socket, shared by the handshake and the transmission phase: where it goes,
// the byte reader over it, how bytes are sent, and how it ends. Whatever ends it (a socket error,
// the server hanging up, a timeout, the client) ends it once, with one reason every waiter gets.

import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { NbdConnectionError, NbdProtocolError } from './errors';
import { ByteReader } from './reader';
import { describeTransport, NbdTransport } from './uri';

/** What the transmission phase knows when the socket ends, for the message that explains it. */
export interface InFlightState {
  /** NBD_CMD_DISC was sent: the client is the one hanging up. */
  disconnecting: boolean;
  unanswered: number;
}

export class NbdConnection {
  /** "NBD server unix:/path" or "NBD server HOST:PORT", the start of every message. */
  readonly where: string;
  readonly reader: ByteReader;
  /** The plain socket; STARTTLS wraps it. */
  readonly socket: net.Socket;
  /** What is being read right now, for a "closed in the middle of ..." message (a function: built only if needed). */
  midReply: string | (() => string) | undefined;
  /** Set by the transmission phase once it runs. */
  inFlight: () => InFlightState = () => ({ disconnecting: false, unanswered: 0 });
  private out: Duplex;
  private corked = false;
  private reason: Error | undefined;
  private readonly closeListeners = new Set<(e: Error) => void>();

  constructor(socket: net.Socket, transport: NbdTransport, reader = new ByteReader()) {
    this.reader = reader;
    this.socket = socket;
    this.out = socket;
    this.where = `NBD server ${describeTransport(transport)}`;
    socket.on('error', (err) => this.lost(new NbdConnectionError(`${this.where}: ${err.message}`, { cause: err })));
    socket.on('close', () => this.lost(new NbdConnectionError(`${this.where} closed the connection`)));
    this.reader.attach(socket);
  }

  /** Why the connection ended, or undefined while it is open. */
  get closedReason(): Error | undefined {
    return this.reason;
  }

  /** From now on, bytes go through and come from `secure` (after STARTTLS). */
  useTls(secure: Duplex): void {
    secure.on('error', (err) => this.lost(new NbdConnectionError(`${this.where}: ${err.message}`, { cause: err })));
    this.out = secure;
    this.reader.attach(secure);
  }

  send(b: Buffer): void {
    if (this.reason || this.out.destroyed || this.out.writableEnded) return;
    // Everything sent in one tick leaves in one writev: requests made together (a batch of reads, a
    // window of block status) cost one system call, not one each (costly in a VM: bench/README.md).
    if (!this.corked) {
      this.corked = true;
      this.out.cork();
      const out = this.out;
      process.nextTick(() => {
        this.corked = false;
        out.uncork();
      });
    }
    this.out.write(b);
  }

  /** No more bytes will be sent (after NBD_CMD_DISC). */
  endOutput(): void {
    this.out.end();
  }

  /** Subscribes to the connection ending (for any reason); listeners hear it in subscription order. */
  onClose(listener: (reason: Error) => void): () => void {
    if (this.reason) {
      const r = this.reason;
      queueMicrotask(() => listener(r));
      return () => undefined;
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** Hard disconnect: reads in progress and every close listener get `reason`. */
  destroy(reason: Error): void {
    if (this.reason) return;
    this.reason = reason;
    this.reader.end(reason);
    this.out.destroy();
    this.socket.destroy();
    for (const l of this.closeListeners) l(reason);
    this.closeListeners.clear();
  }

  /** The socket ended or failed: explain it in terms of what was going on. */
  private lost(reason: NbdConnectionError): void {
    if (this.reason) return;
    const { disconnecting, unanswered } = this.inFlight();
    let err: Error = reason;
    if (disconnecting && unanswered === 0) err = new NbdConnectionError(`${this.where}: closed by the client`);
    else if (this.midReply) err = new NbdConnectionError(`${this.where} closed the connection in the middle of ${typeof this.midReply === 'function' ? this.midReply() : this.midReply}`, { cause: reason });
    else if (unanswered > 0) err = new NbdConnectionError(`${this.where} closed the connection with ${unanswered} request(s) unanswered`, { cause: reason });
    this.destroy(err);
  }
}

/**
 * Opens the socket to an NBD server, with a message that hints at the usual causes. With `reader`,
 * the socket's bytes go to it through reused buffers (`onread`; only for a connection that will not
 * start TLS, which takes over the socket's reads).
 */
export function openSocket(t: NbdTransport, timeoutMs: number, reader?: ByteReader): Promise<net.Socket> {
  const where = describeTransport(t);
  return new Promise((resolve, reject) => {
    const onread = reader ? { onread: reader.socketReadOptions() } : {};
    const s = t.kind === 'unix' ? net.createConnection({ path: t.path, ...onread }) : net.createConnection({ host: t.host, port: t.port, ...onread });
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

/** A 64-bit number from the server, as a JS number (refused above 2^53). */
export function toSafeNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new NbdProtocolError(`${what} ${v} is larger than this client supports`);
  return Number(v);
}
