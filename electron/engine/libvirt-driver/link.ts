// One libvirt connection kept up for a registry entry (one URI): connect on demand or at start,
// notice a loss (libvirtd restarted, SSH link cut, keepalive timeout: the client reports it and does
// not reconnect by itself), and in eager mode reconnect with backoff (1 s doubling to 30 s). The
// LibvirtConnection object stays the same across reconnects (reconnect() swaps its virsh), so
// whoever holds it (a domain handle, a backup) keeps a valid reference.

import { LibvirtConnection, type LibvirtConnectionOptions } from '../../libvirt/connection';
import { LibvirtConnectionError } from '../../libvirt/errors';
import type { ConnectionState } from '../driver';

export interface LinkOptions {
  mode: 'eager' | 'on-demand';
  /** The state or its detail changed. */
  onState(): void;
  /** Connected (first time or again). */
  onOpen?(): void;
  connection?: LibvirtConnectionOptions;
  /** First and longest wait between reconnect attempts (default 1 s and 30 s). */
  backoffMs?: { first: number; max: number };
}

export class LibvirtLink {
  state: ConnectionState = 'disconnected';
  detail: string | undefined;
  private conn: LibvirtConnection | undefined;
  private connecting: Promise<LibvirtConnection> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private waitMs: number;
  private keep = false;
  private closed = false;

  constructor(readonly uri: string, private readonly o: LinkOptions) {
    this.waitMs = o.backoffMs?.first ?? 1000;
  }

  private set(state: ConnectionState, detail?: string): void {
    if (this.state === state && this.detail === detail) return;
    this.state = state;
    this.detail = detail;
    this.o.onState();
  }

  /** The connection when it is up now, else undefined (never connects). */
  get live(): LibvirtConnection | undefined {
    return this.state === 'connected' && this.conn && !this.conn.lost ? this.conn : undefined;
  }

  /** The connection, connecting (or reconnecting once) first when needed; throws naming why not. */
  async ensure(): Promise<LibvirtConnection> {
    if (this.closed) throw new LibvirtConnectionError(this.uri, `libvirt connection to ${this.uri} is closed`);
    if (this.conn && !this.conn.lost && this.state === 'connected') return this.conn;
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async open(): Promise<LibvirtConnection> {
    this.set('connecting', this.detail);
    try {
      if (this.conn) await this.conn.reconnect();
      else {
        this.conn = await LibvirtConnection.open(this.uri, this.o.connection);
        this.conn.onLost((reason) => this.lost(reason));
      }
    } catch (e) {
      this.set('disconnected', (e as Error).message);
      this.schedule();
      throw e;
    }
    this.waitMs = this.o.backoffMs?.first ?? 1000;
    this.set('connected');
    this.o.onOpen?.();
    return this.conn;
  }

  private lost(reason: LibvirtConnectionError): void {
    if (this.closed) return;
    this.set('disconnected', reason.message.replace(/; call reconnect\(\) to continue$/, ''));
    this.schedule();
  }

  /** A command failed: when it was the connection, mark it lost (the client reports it once). */
  failed(e: unknown): void {
    if (e instanceof LibvirtConnectionError && !this.closed) this.lost(e);
  }

  /** Keep connected from now on (eager mode). */
  start(): void {
    this.keep = true;
    void this.ensure().catch(() => undefined);
  }

  private schedule(): void {
    if (!this.keep || this.closed || this.timer || this.o.mode !== 'eager') return;
    const wait = this.waitMs;
    this.waitMs = Math.min(this.waitMs * 2, this.o.backoffMs?.max ?? 30_000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.ensure().catch(() => undefined);
    }, wait);
    this.timer.unref?.();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.connecting?.catch(() => undefined);
    await this.conn?.close();
    this.set('disconnected', 'closed');
  }
}
