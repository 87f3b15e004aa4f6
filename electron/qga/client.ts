// A QEMU guest agent client over the agent's unix socket (the host end of the
// org.qemu.guest_agent.0 virtio-serial port). Hand-written: there is no maintained Node library for
// the guest agent protocol, and it is small (qga/qapi-schema.json in QEMU):
//
// * JSON requests {"execute": …, "arguments": …} and one JSON reply per line, {"return": …} or
//   {"error": {"class", "desc"}}; no greeting, no events, one request at a time.
// * The channel outlives clients, so it may hold a previous client's half-written request or late
//   replies. guest-sync-delimited puts it back in step: we send a 0xFF byte first (the agent then
//   drops any partial input), then {"execute":"guest-sync-delimited","arguments":{"id":N}}; the
//   agent answers 0xFF followed by {"return": N}. Everything before that sentinel is stale, and a
//   reply after a sentinel with another id is a stale sync's. The sync runs on every (re)connection
//   and again after any timeout, as the schema asks.
// * An agent that is not running in the guest looks like a socket QEMU accepts and nobody answers:
//   the sync times out, which is reported as "no guest agent answered".

import { randomInt } from 'node:crypto';
import * as net from 'node:net';
import { AgentCommandError, AgentConnectionError, AgentProtocolError, AgentTimeoutError, AgentUnavailableError } from './errors';

export interface AgentClientOptions {
  connectTimeoutMs?: number;
  /** Time the agent has to answer guest-sync-delimited (default 3 s). */
  syncTimeoutMs?: number;
  /** Default time per command (default 10 s; fsfreeze commands take their own). */
  commandTimeoutMs?: number;
}

const SENTINEL = 0xff;
const MAX_LINE = 1024 * 1024;
const NO_AGENT_HINT = ': no guest agent answers on it (is qemu-guest-agent installed and running in the guest?)';

interface Waiter {
  mode: 'sync' | 'reply';
  syncId?: number;
  seenSentinel: boolean;
  resolve(reply: Record<string, unknown>): void;
  reject(e: Error): void;
}

function count(command: string, n: unknown): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw new AgentProtocolError(`${command} returned ${JSON.stringify(n)}, expected a number of file systems`);
  return n;
}

/** "unix:PATH" or a plain path → the path. */
export function agentSocketPath(endpoint: string): string {
  const p = endpoint.startsWith('unix:') ? endpoint.slice(5) : endpoint;
  if (p === '') throw new Error('--agent needs a socket path (unix:PATH)');
  return p;
}

export class GuestAgentClient {
  private sock?: net.Socket;
  private buf = Buffer.alloc(0);
  private waiter?: Waiter;
  private needsSync = true;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(readonly socketPath: string, private readonly options: AgentClientOptions) {}

  /** A client that connects (and syncs) on its first command. */
  static create(endpoint: string, options: AgentClientOptions = {}): GuestAgentClient {
    return new GuestAgentClient(agentSocketPath(endpoint), options);
  }

  /** Connects and syncs; throws AgentUnavailableError (no socket) or AgentTimeoutError (no agent answers). */
  static async connect(endpoint: string, options: AgentClientOptions = {}): Promise<GuestAgentClient> {
    const c = new GuestAgentClient(agentSocketPath(endpoint), options);
    try {
      await c.run(() => c.ready());
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  private open(): Promise<void> {
    const path = this.socketPath;
    return new Promise((resolve, reject) => {
      const sock = net.createConnection({ path });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new AgentUnavailableError(`could not connect to the guest agent socket ${path} within ${this.options.connectTimeoutMs ?? 3000} ms`));
      }, this.options.connectTimeoutMs ?? 3000);
      sock.once('connect', () => {
        clearTimeout(timer);
        this.sock = sock;
        this.buf = Buffer.alloc(0);
        this.needsSync = true;
        sock.on('data', (d: Buffer) => this.onData(d));
        sock.on('error', () => undefined); // 'close' follows and fails the waiting command
        sock.on('close', () => this.onClose(sock));
        resolve();
      });
      sock.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (this.sock !== sock) {
          const why = e.code === 'ENOENT' ? 'there is no such socket' : e.code === 'ECONNREFUSED' ? 'nothing listens on it' : e.message;
          reject(new AgentUnavailableError(`no guest agent at ${path}: ${why} (does the VM have a virtio-serial port named org.qemu.guest_agent.0?)`, { cause: e }));
        }
      });
    });
  }

  private onClose(sock: net.Socket): void {
    if (this.sock !== sock) return;
    this.sock = undefined;
    this.needsSync = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(new AgentConnectionError(`the guest agent connection ${this.socketPath} closed`));
  }

  /** Drops the connection (the next command reconnects and syncs) and fails the waiting command. */
  private fail(e: Error): void {
    const w = this.waiter;
    this.waiter = undefined;
    this.sock?.destroy();
    this.sock = undefined;
    this.needsSync = true;
    w?.reject(e);
  }

  private onData(chunk: Buffer): void {
    this.buf = Buffer.concat([this.buf, chunk]);
    while (this.waiter) {
      const w = this.waiter;
      if (w.mode === 'sync' && !w.seenSentinel) {
        const at = this.buf.indexOf(SENTINEL);
        if (at < 0) {
          this.buf = Buffer.alloc(0); // stale data from before the sync
          return;
        }
        this.buf = this.buf.subarray(at + 1);
        w.seenSentinel = true;
        continue;
      }
      const nl = this.buf.indexOf(0x0a);
      if (nl < 0) {
        if (this.buf.length > MAX_LINE) this.fail(new AgentProtocolError(`the guest agent at ${this.socketPath} sent a reply longer than ${MAX_LINE} bytes`));
        return;
      }
      let raw = this.buf.subarray(0, nl);
      this.buf = this.buf.subarray(nl + 1);
      while (raw.length > 0 && raw[0] === SENTINEL) raw = raw.subarray(1);
      const text = raw.toString('utf8').trim();
      if (text === '') continue;
      let reply: unknown;
      try {
        reply = JSON.parse(text);
      } catch {
        reply = undefined;
      }
      const isObject = typeof reply === 'object' && reply !== null && !Array.isArray(reply);
      if (w.mode === 'sync') {
        if (isObject && (reply as { return?: unknown }).return === w.syncId) {
          this.waiter = undefined;
          w.resolve(reply as Record<string, unknown>);
        } else {
          w.seenSentinel = false; // a stale sync's reply: wait for the next sentinel
        }
        continue;
      }
      if (!isObject) {
        this.fail(new AgentProtocolError(`the guest agent at ${this.socketPath} sent something that is not a JSON object: ${JSON.stringify(text.slice(0, 80))}`));
        return;
      }
      this.waiter = undefined;
      w.resolve(reply as Record<string, unknown>);
    }
  }

  private wait(mode: Waiter['mode'], command: string, timeoutMs: number, syncId?: number, hint = ''): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiter !== w) return;
        this.waiter = undefined;
        this.needsSync = true; // a late reply may still come: the next command syncs first
        reject(new AgentTimeoutError(command, timeoutMs, this.socketPath, hint));
      }, timeoutMs);
      const w: Waiter = {
        mode, syncId, seenSentinel: false,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.waiter = w;
      this.onData(Buffer.alloc(0)); // data may already be buffered
    });
  }

  private send(bytes: Buffer): void {
    if (!this.sock) throw new AgentConnectionError(`the guest agent connection ${this.socketPath} is closed`);
    this.sock.write(bytes);
  }

  /** guest-sync-delimited (with the 0xFF byte before it). */
  private async sync(): Promise<void> {
    const id = randomInt(1, 2 ** 31);
    const request = Buffer.concat([Buffer.from([SENTINEL]), Buffer.from(`${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } })}\n`)]);
    const done = this.wait('sync', 'guest-sync-delimited', this.options.syncTimeoutMs ?? 3000, id, NO_AGENT_HINT);
    this.send(request);
    await done;
    this.needsSync = false;
  }

  private async ready(): Promise<void> {
    if (this.closed) throw new AgentConnectionError(`the guest agent client for ${this.socketPath} is closed`);
    if (!this.sock) await this.open();
    if (this.needsSync) await this.sync();
  }

  /** One request at a time, in call order. */
  private run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Runs a command (reconnecting and re-syncing first when needed); resolves with its "return". */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: { timeoutMs?: number } = {}): Promise<T> {
    return this.run(async () => {
      await this.ready();
      const done = this.wait('reply', command, options.timeoutMs ?? this.options.commandTimeoutMs ?? 10_000);
      this.send(Buffer.from(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`));
      const reply = await done;
      const err = reply.error as { class?: unknown; desc?: unknown } | undefined;
      if (err) throw new AgentCommandError(command, String(err.class ?? 'GenericError'), String(err.desc ?? JSON.stringify(err)));
      if (!('return' in reply)) throw new AgentProtocolError(`the guest agent's reply to ${command} has neither "return" nor "error"`);
      return reply.return as T;
    });
  }

  ping(options: { timeoutMs?: number } = {}): Promise<void> {
    return this.execute<unknown>('guest-ping', undefined, { timeoutMs: options.timeoutMs ?? 3000 }).then(() => undefined);
  }

  async fsfreezeStatus(options: { timeoutMs?: number } = {}): Promise<'thawed' | 'frozen'> {
    const s = await this.execute<unknown>('guest-fsfreeze-status', undefined, { timeoutMs: options.timeoutMs ?? 5000 });
    if (s !== 'thawed' && s !== 'frozen') throw new AgentProtocolError(`guest-fsfreeze-status returned ${JSON.stringify(s)}, expected "thawed" or "frozen"`);
    return s;
  }

  /** Syncs and freezes every freezable guest file system; resolves with how many were frozen. */
  fsfreezeFreeze(options: { timeoutMs?: number } = {}): Promise<number> {
    return this.execute<unknown>('guest-fsfreeze-freeze', undefined, { timeoutMs: options.timeoutMs ?? 60_000 }).then((n) => count('guest-fsfreeze-freeze', n));
  }

  /** Thaws every frozen guest file system; resolves with how many were thawed. */
  fsfreezeThaw(options: { timeoutMs?: number } = {}): Promise<number> {
    return this.execute<unknown>('guest-fsfreeze-thaw', undefined, { timeoutMs: options.timeoutMs ?? 30_000 }).then((n) => count('guest-fsfreeze-thaw', n));
  }

  close(): void {
    this.closed = true;
    this.sock?.destroy();
    this.sock = undefined;
  }
}
