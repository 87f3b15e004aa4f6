// The web host: the renderer in a browser. One HTTP server on 127.0.0.1 only, serving the built
// renderer (out/renderer) as static files and a WebSocket at /ipc speaking the contract in the
// transport's frames (shared/transport.ts).
// Static files hold no secrets. The page logs in by exchanging the one-time code of the printed URL
// (its #fragment, never sent in a request line) at /session for a session cookie (web-login.ts,
// login-route.ts); the WebSocket needs that cookie and an Origin equal to the host's own, so other
// web pages and other local users cannot drive the engine. Every request goes through dispatch() (channel allow-list and
// argument validation); errors travel as their message only, never a stack.

import * as fs from 'node:fs';
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import * as path from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';
import { EVENT_NAMES, dispatch, type EventName, type Handlers } from '../../shared/contract';
import { WS_PATH, encodeEvent, encodeReply, parseRequest, rendererCsp, settle, type WsReply } from '../../shared/transport';
import { contentTypeFor, resolveStaticPath } from './static-files';
import { shouldStartDemo } from './first-run';
import { SESSION_PATH, handleSessionRequest } from './login-route';
import { createWebLogin } from './web-login';
import { createService, type ServiceEvents } from './service';

/** What the host needs from the service: the contract handlers and its event source. */
export interface HostService {
  handlers: Handlers;
  events: Pick<ServiceEvents, 'on'>;
}

export interface WebHostOptions {
  service: HostService;
  /** Directory of the built renderer (index.html + assets). */
  rendererDir: string;
  /** 0 or undefined: a free port. */
  port?: number;
  /** Fixed one-time login code (tests); default: 32 random bytes, base64url. */
  code?: string;
  /** Clock for the code's expiry (tests). */
  now?: () => number;
}

export interface WebHost {
  /** http://127.0.0.1:PORT/#code=… — the address to print (the code works once). */
  url: string;
  /** http://127.0.0.1:PORT */
  origin: string;
  port: number;
  /** The one-time login code (in `url`; the login page also takes it pasted). */
  code: string;
  /** Name of the session cookie (per port). */
  cookieName: string;
  /** Number of connected WebSocket clients. */
  clients(): number;
  close(): Promise<void>;
}

export { WS_PATH, parseRequest, resolveStaticPath };
/** Largest accepted request (checkpoint XML may be 1 MiB of text, JSON-escaped). */
const MAX_REQUEST_BYTES = 4 * 1024 * 1024;
/** A client this far behind on events is skipped rather than buffered without bound. */
const MAX_BUFFERED_EVENT_BYTES = 8 * 1024 * 1024;

/** The CSP sent with every response: the renderer's, allowing this host's WebSocket. */
export function contentSecurityPolicy(port: number): string {
  return rendererCsp({ connect: [`ws://127.0.0.1:${port}`] });
}

function rejectUpgrade(socket: Duplex, status: number, reason: string): void {
  const text = `${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
  );
}

/** Starts the HTTP + WebSocket server on 127.0.0.1 for an existing service. */
export async function createWebHost(options: WebHostOptions): Promise<WebHost> {
  const rendererDir = path.resolve(options.rendererDir);
  const { handlers, events } = options.service;
  let port = 0;
  const origin = () => `http://127.0.0.1:${port}`;
  // Host header check: refuses DNS-rebinding (a foreign name resolving to 127.0.0.1).
  const hostAllowed = (host: string | undefined) => host === `127.0.0.1:${port}` || host === `localhost:${port}`;

  const server = http.createServer((req, res) => {
    const headers: http.OutgoingHttpHeaders = {
      'Content-Security-Policy': contentSecurityPolicy(port),
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'X-Frame-Options': 'DENY',
      'Cache-Control': 'no-cache',
    };
    const send = (status: number, body: string, extra: http.OutgoingHttpHeaders = {}) => {
      res.writeHead(status, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', ...extra });
      res.end(req.method === 'HEAD' || status === 204 ? undefined : `${body}\n`);
    };
    if (!hostAllowed(req.headers.host)) return send(421, `unexpected Host header; open ${origin()}/`);
    const rawPath = (req.url ?? '/').split('?')[0]!;
    if (rawPath === SESSION_PATH) return handleSessionRequest(req, send, login, origin());
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      headers.Allow = 'GET, HEAD';
      return send(405, 'only GET and HEAD are served');
    }
    const found = resolveStaticPath(rendererDir, rawPath);
    if ('status' in found) {
      if (found.status === 404 && (rawPath === '/' || rawPath === '/index.html')) {
        return send(503, `the renderer is not built (${rendererDir}/index.html is missing): run npm run build`);
      }
      return send(found.status, found.reason);
    }
    const type = contentTypeFor(found.file);
    fs.readFile(found.file, (err, data) => {
      if (err) return send(500, 'cannot read file');
      res.writeHead(200, { ...headers, 'Content-Type': type, 'Content-Length': data.length });
      res.end(req.method === 'HEAD' ? undefined : data);
    });
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_REQUEST_BYTES });
  const clients = new Set<WebSocket>();

  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => undefined);
    const url = new URL(req.url ?? '/', origin());
    if (url.pathname !== WS_PATH) return rejectUpgrade(socket, 404, `no WebSocket endpoint at ${url.pathname}`);
    if (!hostAllowed(req.headers.host)) return rejectUpgrade(socket, 421, 'unexpected Host header');
    if (req.headers.origin !== origin()) return rejectUpgrade(socket, 403, `Origin ${JSON.stringify(req.headers.origin ?? null)} is not ${origin()}`);
    if (!login.hasSession(req.headers.cookie)) return rejectUpgrade(socket, 401, 'not logged in: open the address `tidemark serve` printed');
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws));
  });

  function reply(ws: WebSocket, message: WsReply): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(encodeReply(message));
  }

  function onConnection(ws: WebSocket): void {
    clients.add(ws);
    if (clients.size === 1) subscribe();
    ws.on('error', () => undefined); // e.g. an oversized frame: ws closes the socket itself
    ws.on('close', () => {
      clients.delete(ws);
      if (clients.size === 0) unsubscribe();
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return reply(ws, { id: null, ok: false, error: 'binary frames are not accepted; send JSON text' });
      const req = parseRequest(data.toString());
      if (req.error !== undefined) return reply(ws, { id: req.id, ok: false, error: req.error });
      void settle(() => dispatch(handlers, req.channel, req.args)).then((outcome) => reply(ws, { id: req.id, ...outcome }));
    });
  }

  // Subscribed only while a client is connected: the service polls bitmaps while anyone listens.
  let subscriptions: (() => void)[] = [];
  function subscribe(): void {
    subscriptions = EVENT_NAMES.map((event) => events.on(event, (payload) => broadcast(event, payload)));
  }
  function unsubscribe(): void {
    for (const off of subscriptions) off();
    subscriptions = [];
  }
  function broadcast(event: EventName, payload: unknown): void {
    const text = encodeEvent(event, payload);
    if (text === undefined) return;
    for (const ws of clients) {
      if (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < MAX_BUFFERED_EVENT_BYTES) ws.send(text);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: options.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as { port: number }).port;
  // Made once the port (part of the cookie name) is known; no request can arrive before listen().
  const login = createWebLogin({ port, code: options.code, now: options.now });
  const { code, cookieName } = login;

  let closing: Promise<void> | undefined;
  return {
    url: `${origin()}/#code=${code}`,
    origin: origin(),
    port,
    code,
    cookieName,
    clients: () => clients.size,
    close() {
      closing ??= (async () => {
        unsubscribe();
        for (const ws of clients) ws.close(1001, 'host shutting down');
        await new Promise<void>((r) => wss.close(() => r()));
        await new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        });
        for (const ws of clients) ws.terminate();
      })();
      return closing;
    },
  };
}

/** The project root (holds package.json "tidemark"), from wherever this file was compiled to. */
export function findProjectRoot(start: string = __dirname): string {
  let dir = start;
  for (;;) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'tidemark') return dir;
    } catch {
      // keep walking up
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the Tidemark project root above ${start}`);
    dir = up;
  }
}

export function defaultRendererDir(): string {
  return path.join(findProjectRoot(), 'out', 'renderer');
}

export interface StartWebHostOptions {
  stateDir: string;
  /** The demo VM's directory; default STATE/lab. */
  labDir?: string;
  port?: number;
  /** Start the demo VM if it is not running (and stop it again on close); 'if-unconfigured': only
   *  when the user has added no VM of their own. */
  startDemo?: boolean | 'if-unconfigured';
  rendererDir?: string;
}

export interface RunningWebHost extends WebHost {
  handlers: Handlers;
  /** True when this host started the demo VM (close() stops it). */
  startedDemo: boolean;
}

/** The host service over the real engine, served on 127.0.0.1. Used by `tidemark serve`, e2e and bench. */
export async function startWebHost(options: StartWebHostOptions): Promise<RunningWebHost> {
  const service = createService({ stateDir: options.stateDir, labDir: options.labDir, connectMode: 'eager', demoSocket: 'primary' });
  let host: WebHost | undefined;
  let startedDemo = false;
  try {
    const lab = await service.handlers['lab:status']();
    const wanted = options.startDemo === 'if-unconfigured' ? shouldStartDemo(await service.handlers['vm:list'](), lab) : Boolean(options.startDemo);
    if (wanted && !lab.running) {
      await service.handlers['lab:start']();
      startedDemo = true;
    }
    host = await createWebHost({ service, rendererDir: options.rendererDir ?? defaultRendererDir(), port: options.port });
  } catch (e) {
    if (startedDemo) await service.handlers['lab:stop']().catch(() => undefined);
    await service.close();
    throw e;
  }
  const web = host;
  let closing: Promise<void> | undefined;
  return {
    ...web,
    handlers: service.handlers,
    startedDemo,
    close() {
      closing ??= (async () => {
        await web.close();
        if (startedDemo) await service.handlers['lab:stop']().catch(() => undefined);
        await service.close();
      })();
      return closing;
    },
  };
}
