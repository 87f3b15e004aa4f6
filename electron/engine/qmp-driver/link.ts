// One QMP connection to one VM and the checkpoint engine opened over it, with its state
// (connected / connecting / disconnected and why). Eager (the app, the web host): connect at
// start() and keep reconnecting by itself. On demand (the CLI): connect when a call needs it,
// once, and never reconnect.

import type { VmSummary } from '../../../shared/contract';
import { QmpClient, QmpReconnector } from '../../qmp/client';
import { formatEndpoint } from '../../qmp/endpoint';
import { CheckpointEngine } from '../checkpoints/engine';
import type { DurableIdentity } from '../identity';

/** Where a QMP VM is and what is known about it without connecting. */
export interface QmpTarget {
  kind: VmSummary['kind'];
  label(): string;
  /** How errors about its recorded metadata name the VM ("tidemark-demo", "VM A"). */
  recordedName(): string;
  /** The endpoint to connect to now (the demo VM's can change when it restarts). */
  endpoint(): string;
  connect(timeoutMs: number): Promise<QmpClient>;
  /** Why there is nothing to connect to now (the demo VM is not running), or undefined: try. */
  absent(): string | undefined;
  /** True when `err` (from connecting) means nothing runs there, rather than a VM we cannot reach. */
  nothingRuns(err: unknown): boolean;
  /** The identity recorded without connecting (endpoints.json, the demo VM's lab.json). */
  remembered(): DurableIdentity | undefined;
  /** Called with the identity of the VM found at each connection (to remember it). */
  seen(identity: DurableIdentity): void;
}

export interface QmpLinkOptions {
  stateDir: string;
  mode: 'eager' | 'on-demand';
  onState(): void;
  /** A new engine is open (after every connection). */
  onOpen?(engine: CheckpointEngine, client: QmpClient): void;
}

export class QmpLink {
  state: VmSummary['connection'] = 'disconnected';
  detail: string | undefined;
  client: QmpClient | undefined;
  engine: CheckpointEngine | undefined;
  /** The endpoint of the current (or last) connection. */
  connectedAt: string | undefined;
  private reconnector: QmpReconnector | undefined;
  private connecting: Promise<CheckpointEngine> | undefined;
  private closed = false;

  constructor(readonly target: QmpTarget, private readonly o: QmpLinkOptions) {
    this.detail = target.absent();
  }

  get eager(): boolean {
    return this.o.mode === 'eager';
  }

  setState(state: VmSummary['connection'], detail?: string): void {
    if (this.state === state && this.detail === detail) return;
    this.state = state;
    this.detail = detail;
    if (!this.closed) this.o.onState();
  }

  /** A new QMP client: opens its engine, or records why it cannot. */
  private async attach(client: QmpClient): Promise<CheckpointEngine> {
    await this.engine?.close();
    this.engine = undefined;
    this.client = client;
    const endpoint = formatEndpoint(client.endpoint);
    const engine = await CheckpointEngine.open(client, { endpoint, stateDir: this.o.stateDir });
    this.engine = engine;
    this.connectedAt = endpoint;
    this.target.seen({ key: engine.vmId });
    client.onClose((reason) => {
      if (this.client !== client) return;
      this.client = undefined;
      void engine.close();
      if (this.engine === engine) this.engine = undefined;
      this.setState('disconnected', this.target.absent() ?? reason.message);
    });
    this.o.onOpen?.(engine, client);
    this.setState('connected');
    return engine;
  }

  /** Eager mode: connect now and keep reconnecting (until stop()). */
  start(): void {
    if (this.reconnector || this.closed) return;
    const r = new QmpReconnector(this.target.endpoint(), async (client) => {
      try {
        await this.attach(client);
      } catch (err) {
        // The VM answers but its metadata cannot be used: keep the connection (no retry storm)
        // and say why; the next call retries opening the engine.
        this.setState('disconnected', (err as Error).message);
      }
    }, { connectTimeoutMs: 3_000 });
    this.reconnector = r;
    r.onState((state, detail) => {
      if (state !== 'disconnected') return;
      const absent = this.target.absent();
      if (absent !== undefined) {
        // Nothing to reconnect to until it is started again.
        void this.stopReconnecting();
        this.setState('disconnected', absent);
      } else {
        this.setState('connecting', detail);
      }
    });
    this.setState('connecting');
    r.start();
  }

  get reconnecting(): boolean {
    return this.reconnector !== undefined;
  }

  async stopReconnecting(): Promise<void> {
    const r = this.reconnector;
    this.reconnector = undefined;
    await r?.stop();
  }

  private async connectOnce(): Promise<CheckpointEngine> {
    this.setState('connecting');
    let client: QmpClient;
    try {
      client = await this.target.connect(5_000);
    } catch (err) {
      this.setState('disconnected', (err as Error).message);
      throw err;
    }
    try {
      return await this.attach(client);
    } catch (err) {
      await client.close();
      this.setState('disconnected', (err as Error).message);
      throw err;
    }
  }

  /** The engine of the connected VM (connecting first in on-demand mode), or a clear error. */
  async ensure(): Promise<CheckpointEngine> {
    if (this.closed) throw new Error('the service is closed');
    if (this.engine) return this.engine;
    if (this.client?.isOpen) {
      // connected, but the engine could not be opened last time: try again
      try {
        return await this.attach(this.client);
      } catch (err) {
        this.setState('disconnected', (err as Error).message);
        throw err;
      }
    }
    if (!this.eager) {
      this.connecting ??= this.connectOnce().finally(() => (this.connecting = undefined));
      return this.connecting;
    }
    const absent = this.target.absent();
    if (absent !== undefined) throw new Error(absent);
    throw new Error(`VM ${this.target.label()} is not connected${this.detail ? `: ${this.detail}` : ''}`);
  }

  /** The open client, or a clear error. */
  liveClient(): QmpClient {
    const c = this.client;
    if (!c?.isOpen) throw new Error(`VM ${this.target.label()} is not connected`);
    return c;
  }

  async disconnect(detail?: string): Promise<void> {
    await this.stopReconnecting();
    const client = this.client;
    this.client = undefined;
    await this.engine?.close();
    this.engine = undefined;
    await client?.close();
    this.setState('disconnected', detail);
  }

  async close(): Promise<void> {
    await this.disconnect(this.detail).catch(() => undefined);
    this.closed = true;
  }
}
