// A QMP client: one socket, the greeting and capability negotiation, commands matched to
// replies by id (so many can be in flight), typed events, per-command timeouts, and a clean
// close. Whatever the peer sends, the process never crashes: a broken stream closes the
// connection and rejects every pending command with an error that says why.

import * as net from 'node:net';
import { Endpoint, formatEndpoint, parseEndpoint } from './endpoint';
import { QmpConnectionError, QmpError, QmpProtocolError, QmpTimeoutError } from './errors';

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpGreeting {
  version: { qemu: { major: number; minor: number; micro: number }; package: string };
  capabilities: string[];
}

export interface QmpClientOptions {
  /** Time allowed for connect + greeting + qmp_capabilities. */
  connectTimeoutMs?: number;
  /** Default per-command timeout. */
  commandTimeoutMs?: number;
  /** Largest single message accepted from the peer, in bytes. */
  maxMessageBytes?: number;
}

export interface ExecuteOptions {
  timeoutMs?: number;
}

type Pending = {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
};

const DEFAULTS = { connectTimeoutMs: 5_000, commandTimeoutMs: 30_000, maxMessageBytes: 64 * 1024 * 1024 };

export class QmpClient {
  readonly endpoint: Endpoint;
  private socket: net.Socket;
  private readonly opts: Required<QmpClientOptions>;
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly eventListeners = new Set<(e: QmpEvent) => void>();
  private readonly closeListeners = new Set<(reason: Error) => void>();
  private closedReason: Error | undefined;
  private greetingValue: QmpGreeting | undefined;
  private onGreeting: ((g: QmpGreeting) => void) | undefined;

  private constructor(endpoint: Endpoint, socket: net.Socket, opts: Required<QmpClientOptions>) {
    this.endpoint = endpoint;
    this.socket = socket;
    this.opts = opts;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A reset or broken pipe is QEMU going away (killed, crashed): say so plainly.
      const gone = err.code === 'ECONNRESET' || err.code === 'EPIPE';
      const message = gone
        ? `QMP connection to ${formatEndpoint(endpoint)} was closed by QEMU (connection reset: did QEMU exit?)`
        : `QMP connection to ${formatEndpoint(endpoint)} failed: ${err.message}`;
      this.fail(new QmpConnectionError(message, { cause: err }));
    });
    socket.on('close', () => this.fail(new QmpConnectionError(`QMP connection to ${formatEndpoint(endpoint)} was closed by QEMU`)));
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static async connect(endpoint: Endpoint | string, options: QmpClientOptions = {}): Promise<QmpClient> {
    const ep = typeof endpoint === 'string' ? parseEndpoint(endpoint) : endpoint;
    const opts = { ...DEFAULTS, ...options };
    const where = formatEndpoint(ep);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = ep.kind === 'unix' ? net.createConnection({ path: ep.path }) : net.createConnection({ host: ep.host, port: ep.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new QmpConnectionError(`cannot connect to QMP at ${where}: timed out after ${opts.connectTimeoutMs} ms`));
      }, opts.connectTimeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const hint = err.code === 'ENOENT' ? ' (no such socket: is QEMU running?)' : err.code === 'ECONNREFUSED' ? ' (connection refused: is QEMU running?)' : '';
        reject(new QmpConnectionError(`cannot connect to QMP at ${where}: ${err.message}${hint}`, { cause: err }));
      });
    });
    const client = new QmpClient(ep, socket, opts);
    try {
      await client.handshake();
    } catch (e) {
      client.destroy(e as Error);
      throw e;
    }
    return client;
  }

  get greeting(): QmpGreeting {
    if (!this.greetingValue) throw new QmpConnectionError('QMP greeting not received yet');
    return this.greetingValue;
  }

  get isOpen(): boolean {
    return this.closedReason === undefined;
  }

  private async handshake(): Promise<void> {
    const where = formatEndpoint(this.endpoint);
    const greeting = await new Promise<QmpGreeting>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new QmpConnectionError(`no QMP greeting from ${where} within ${this.opts.connectTimeoutMs} ms (is this a QMP socket? is another client holding it?)`)),
        this.opts.connectTimeoutMs,
      );
      this.onGreeting = (g) => {
        clearTimeout(timer);
        resolve(g);
      };
      this.closeListeners.add((reason) => {
        clearTimeout(timer);
        reject(reason);
      });
    });
    this.greetingValue = greeting;
    await this.execute('qmp_capabilities', undefined, { timeoutMs: this.opts.connectTimeoutMs });
  }

  /** Runs one QMP command; resolves with its `return` value, rejects with QmpError on an error reply. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, options: ExecuteOptions = {}): Promise<T> {
    if (this.closedReason) return Promise.reject(this.closedReason);
    // A number, the shortest id: QEMU 7.2 reads a command one byte per turn of its loop (bench/qmp-bytes.ts).
    const id = this.nextId++;
    const msg = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    const timeoutMs = options.timeoutMs ?? this.opts.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const timer = timeoutMs > 0
        ? setTimeout(() => {
            this.pending.delete(id);
            reject(new QmpTimeoutError(command, timeoutMs));
          }, timeoutMs)
        : undefined;
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(JSON.stringify(msg) + '\n');
    });
  }

  /** Runs an HMP command through QMP (`human-monitor-command`) and returns its text output. */
  hmp(commandLine: string, options: ExecuteOptions = {}): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine }, options);
  }

  /** Subscribes to every event; returns an unsubscribe function. */
  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  /** Subscribes to the connection closing (for any reason); returns an unsubscribe function. */
  onClose(listener: (reason: Error) => void): () => void {
    if (this.closedReason) {
      queueMicrotask(() => listener(this.closedReason!));
      return () => undefined;
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  /** Resolves with the first event matching `predicate`, or rejects after `timeoutMs` or on close. */
  waitForEvent(predicate: (e: QmpEvent) => boolean, timeoutMs: number, what = 'QMP event'): Promise<QmpEvent> {
    if (this.closedReason) return Promise.reject(this.closedReason);
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        offEvent();
        offClose();
      };
      const timer = setTimeout(() => {
        done();
        reject(new QmpTimeoutError(`waiting for ${what}`, timeoutMs));
      }, timeoutMs);
      const offEvent = this.onEvent((e) => {
        if (predicate(e)) {
          done();
          resolve(e);
        }
      });
      const offClose = this.onClose((reason) => {
        done();
        reject(reason);
      });
    });
  }

  /** Closes the connection; pending commands are rejected. */
  async close(): Promise<void> {
    if (this.closedReason) return;
    const ended = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    this.fail(new QmpConnectionError(`QMP connection to ${formatEndpoint(this.endpoint)} was closed by the client`));
    this.socket.end();
    const t = setTimeout(() => this.socket.destroy(), 1000);
    await ended;
    clearTimeout(t);
  }

  private destroy(reason: Error): void {
    this.fail(reason);
    this.socket.destroy();
  }

  private fail(reason: Error): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(new QmpConnectionError(`${p.command}: ${reason.message}`, { cause: reason }));
    }
    this.pending.clear();
    for (const l of this.closeListeners) l(reason);
    this.closeListeners.clear();
    this.eventListeners.clear();
  }

  private onData(chunk: string): void {
    if (this.closedReason) return;
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line !== '') this.onLine(line);
      if (this.closedReason) return;
    }
    if (this.buffer.length > this.opts.maxMessageBytes) {
      this.destroy(new QmpProtocolError(`QEMU sent a message larger than ${this.opts.maxMessageBytes} bytes without a line break; connection closed`));
    }
  }

  private onLine(line: string): void {
    if (line.length > this.opts.maxMessageBytes) {
      this.destroy(new QmpProtocolError(`QEMU sent a message larger than ${this.opts.maxMessageBytes} bytes; connection closed`));
      return;
    }
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.destroy(new QmpProtocolError(`QEMU sent invalid JSON (${JSON.stringify(line.slice(0, 80))}); connection closed`));
      return;
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      this.destroy(new QmpProtocolError(`QEMU sent a JSON value that is not an object (${JSON.stringify(line.slice(0, 80))}); connection closed`));
      return;
    }
    const m = msg as Record<string, unknown>;
    if ('QMP' in m) {
      const g = m.QMP as QmpGreeting | undefined;
      if (!this.onGreeting || this.greetingValue) return; // a repeated greeting is ignored
      if (!g || typeof g !== 'object' || typeof g.version !== 'object') {
        this.destroy(new QmpProtocolError('QEMU sent a malformed QMP greeting; connection closed'));
        return;
      }
      this.onGreeting(g);
      return;
    }
    if (typeof m.event === 'string') {
      const ev: QmpEvent = {
        event: m.event,
        data: (typeof m.data === 'object' && m.data !== null ? m.data : {}) as Record<string, unknown>,
        timestamp: (m.timestamp as QmpEvent['timestamp']) ?? { seconds: 0, microseconds: 0 },
      };
      for (const l of [...this.eventListeners]) {
        try {
          l(ev);
        } catch {
          // a faulty listener must not break the stream
        }
      }
      return;
    }
    if ('return' in m || 'error' in m) {
      const id = typeof m.id === 'number' ? m.id : undefined;
      const p = id === undefined ? undefined : this.pending.get(id);
      if (!p || id === undefined) return; // a late reply to a timed-out command, or one we never sent
      this.pending.delete(id);
      if (p.timer) clearTimeout(p.timer);
      if ('error' in m) {
        const err = (m.error ?? {}) as { class?: unknown; desc?: unknown };
        p.reject(new QmpError(p.command, typeof err.class === 'string' ? err.class : 'GenericError', typeof err.desc === 'string' ? err.desc : JSON.stringify(m.error)));
      } else {
        p.resolve(m.return);
      }
      return;
    }
    // Any other object is not part of QMP: ignore it rather than guess.
  }
}

/**
 * Keeps a QMP connection up: connects, and after a drop retries with backoff until closed.
 * `onConnect` runs for every new client (re-subscribe to events there).
 */
export class QmpReconnector {
  private client: QmpClient | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners = new Set<(state: 'connected' | 'disconnected', detail?: string) => void>();

  constructor(
    private readonly endpoint: Endpoint | string,
    private readonly onConnect: (c: QmpClient) => void | Promise<void>,
    private readonly options: QmpClientOptions & { minDelayMs?: number; maxDelayMs?: number } = {},
  ) {}

  onState(listener: (state: 'connected' | 'disconnected', detail?: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get current(): QmpClient | undefined {
    return this.client?.isOpen ? this.client : undefined;
  }

  start(): void {
    void this.attempt(this.options.minDelayMs ?? 200);
  }

  private async attempt(delay: number): Promise<void> {
    if (this.stopped) return;
    try {
      const c = await QmpClient.connect(this.endpoint, this.options);
      if (this.stopped) {
        await c.close();
        return;
      }
      this.client = c;
      await this.onConnect(c);
      for (const l of this.listeners) l('connected');
      c.onClose((reason) => {
        for (const l of this.listeners) l('disconnected', reason.message);
        this.schedule(this.options.minDelayMs ?? 200);
      });
    } catch (e) {
      for (const l of this.listeners) l('disconnected', (e as Error).message);
      this.schedule(Math.min(delay * 2, this.options.maxDelayMs ?? 5_000));
    }
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.attempt(delay), delay);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.client?.close();
  }
}
