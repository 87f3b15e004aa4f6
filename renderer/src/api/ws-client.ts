// AppApi over a WebSocket to the web host. Requests are matched to replies by id; pushed
// events go to the listeners registered with on(). A dropped connection rejects what is in
// flight; the next invoke (or, while anyone listens to events, a timer) connects again.

import type { AppApi, Args, EventMap, EventName, InvokeChannel, Result } from '../../../shared/contract';
import { WS_PATH, encodeRequest, parseHostMessage, unwrapReply } from '../../../shared/transport';

/** The subset of the browser WebSocket this client uses (lets tests pass a fake). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
}
export type WebSocketFactory = (url: string) => WebSocketLike;

export interface WsApiOptions {
  /** ws://host:port/ipc (the browser presents the session cookie) */
  url: string;
  createSocket?: WebSocketFactory;
  /** Delay before reconnecting for event listeners (doubles up to 10 s). */
  reconnectDelayMs?: number;
}

const OPEN = 1;

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** The host's WebSocket URL, on the page's own host. No secret: the upgrade is authorised by the
 *  session cookie (web-login.ts) and the Origin. */
export function wsUrlFromLocation(loc: { protocol: string; host: string }): string {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}${WS_PATH}`;
}

export function createWsApi(options: WsApiOptions): AppApi & { close(): void } {
  const createSocket = options.createSocket ?? ((url: string) => new WebSocket(url) as unknown as WebSocketLike);
  const baseDelay = options.reconnectDelayMs ?? 1_000;
  const pending = new Map<number, Pending>();
  const listeners = new Map<EventName, Set<(payload: never) => void>>();
  let socket: WebSocketLike | undefined;
  let opened: Promise<WebSocketLike> | undefined;
  let nextId = 1;
  let closedByUser = false;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let retryDelay = baseDelay;

  function hasListeners(): boolean {
    for (const set of listeners.values()) if (set.size > 0) return true;
    return false;
  }

  function scheduleReconnect(): void {
    if (closedByUser || retryTimer || !hasListeners()) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      connect().catch(() => scheduleReconnect());
    }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 10_000);
  }

  function onMessage(data: unknown): void {
    const msg = parseHostMessage(data); // anything but a reply or an event is ignored rather than crash the page
    if (!msg) return;
    if ('event' in msg) {
      for (const fn of [...(listeners.get(msg.event) ?? [])]) {
        try {
          (fn as (p: unknown) => void)(msg.payload);
        } catch (e) {
          console.error(`listener for ${msg.event} failed:`, e);
        }
      }
      return;
    }
    const p = typeof msg.id === 'number' ? pending.get(msg.id) : undefined;
    if (!p) return;
    pending.delete(msg.id as number);
    try {
      p.resolve(unwrapReply(msg));
    } catch (e) {
      p.reject(e as Error);
    }
  }

  function connect(): Promise<WebSocketLike> {
    if (opened) return opened;
    opened = new Promise<WebSocketLike>((resolve, reject) => {
      const ws = createSocket(options.url);
      socket = ws;
      let isOpen = false;
      ws.onopen = () => {
        isOpen = true;
        retryDelay = baseDelay;
        resolve(ws);
      };
      ws.onmessage = (ev) => onMessage(ev.data);
      ws.onerror = () => undefined; // onclose follows and says what happened
      ws.onclose = (ev) => {
        if (socket === ws) {
          socket = undefined;
          opened = undefined;
        }
        const why = ev.reason ? `: ${ev.reason}` : ev.code === 1006 ? ' (refused or lost: is `tidemark serve` still running? If it was restarted, open the address it printed)' : '';
        const err = new Error(`connection to the Tidemark host ${isOpen ? 'closed' : 'failed'}${why}`);
        if (!isOpen) reject(err);
        for (const [id, p] of pending) {
          pending.delete(id);
          p.reject(err);
        }
        scheduleReconnect();
      };
    });
    return opened;
  }

  return {
    transport: 'websocket',
    async invoke<C extends InvokeChannel>(channel: C, ...args: Args<C>): Promise<Result<C>> {
      if (closedByUser) throw new Error('the Tidemark API client was closed');
      const ws = await connect();
      const id = nextId++;
      return new Promise<Result<C>>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        try {
          ws.send(encodeRequest({ id, channel, args: args as unknown[] }));
        } catch (e) {
          pending.delete(id);
          reject(new Error(`cannot send ${channel} to the Tidemark host: ${(e as Error).message}`));
        }
      });
    },
    on<E extends EventName>(event: E, listener: (payload: EventMap[E]) => void): () => void {
      let set = listeners.get(event);
      if (!set) listeners.set(event, (set = new Set()));
      // Wrap so the same function can be registered twice and removed once per registration.
      const entry = (payload: EventMap[E]) => listener(payload);
      set.add(entry as (payload: never) => void);
      if (!closedByUser && (!socket || socket.readyState !== OPEN)) connect().catch(() => scheduleReconnect());
      return () => {
        set.delete(entry as (payload: never) => void);
      };
    },
    close(): void {
      closedByUser = true;
      if (retryTimer) clearTimeout(retryTimer);
      socket?.close(1000, 'client closed');
    },
  };
}
