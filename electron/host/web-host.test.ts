import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import NodeWs from 'ws';
import { EVENT_NAMES, type EventMap, type EventName, type Handlers } from '../../shared/contract';
import { loginCookie } from '../../test/web-host-login';
import { contentSecurityPolicy, createWebHost, parseRequest, resolveStaticPath, type WebHost } from './web-host';

/** Waits (polling) until `cond` holds or 10 s pass: close frames travel asynchronously, slower on a loaded machine. */
async function until(cond: () => boolean): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

// The transport is tested here with recording handlers; web-host.itest.ts runs it over the real
// service and demo VM.

class Emitter {
  listeners = new Map<string, Set<(p: unknown) => void>>();
  on<E extends EventName>(event: E, fn: (p: EventMap[E]) => void): () => void {
    const set = this.listeners.get(event) ?? new Set();
    this.listeners.set(event, set);
    set.add(fn as (p: unknown) => void);
    return () => set.delete(fn as (p: unknown) => void);
  }
  emit<E extends EventName>(event: E, payload: EventMap[E]) {
    for (const fn of this.listeners.get(event) ?? []) fn(payload);
  }
  count() {
    let n = 0;
    for (const s of this.listeners.values()) n += s.size;
    return n;
  }
}

const calls: [string, unknown[]][] = [];
const handlers = new Proxy({} as Handlers, {
  get: (_t, channel: string) => async (...args: unknown[]) => {
    calls.push([channel, args]);
    if (channel === 'vm:info') {
      const e = new Error(`VM "${String(args[0])}" is not known`);
      e.stack = 'Error: secret stack\n    at /home/someone/engine.ts:1:1';
      throw e;
    }
    if (channel === 'vm:remove') return undefined;
    return { echoed: channel, args };
  },
});

let dir: string;
let host: WebHost;
/** "name=value" of the session this file's host gave at its one login. */
let session: string;
const events = new Emitter();

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-wh-'));
  const root = path.join(dir, 'renderer');
  fs.mkdirSync(path.join(root, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(root, 'index.html'), '<!doctype html><title>Tidemark</title>');
  fs.writeFileSync(path.join(root, 'assets', 'app.js'), 'console.log(1)');
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'outside');
  fs.symlinkSync(path.join(dir, 'secret.txt'), path.join(root, 'assets', 'link.txt'));
  host = await createWebHost({ service: { handlers, events }, rendererDir: root, code: 'code-123' });
  session = await loginCookie(host);
});

afterAll(async () => {
  await host.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function get(p: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    // Raw path on purpose: http.request would not normalise "..", so traversal attempts reach the server as written.
    const req = http.request({ host: '127.0.0.1', port: host.port, path: p, method, headers: { host: `127.0.0.1:${host.port}`, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function connect(cookie: string | null = 'SESSION', origin: string | null = 'SELF', wsPath = '/ipc'): Promise<NodeWs> {
  return new Promise((resolve, reject) => {
    const o = origin === 'SELF' ? host.origin : origin;
    const c = cookie === 'SESSION' ? session : cookie;
    const ws = new NodeWs(`ws://127.0.0.1:${host.port}${wsPath}`, { ...(o ? { origin: o } : {}), ...(c ? { headers: { Cookie: c } } : {}) });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => reject(new Error(`${res.statusCode} ${body.trim()}`)));
    });
    ws.once('error', reject);
  });
}

function request(ws: NodeWs, msg: unknown): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const onMsg = (data: NodeWs.RawData) => {
      const m = JSON.parse(data.toString()) as Record<string, unknown>;
      if ('event' in m) return;
      ws.off('message', onMsg);
      resolve(m);
    };
    ws.on('message', onMsg);
    ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  });
}

describe('static files', () => {
  it('listens on 127.0.0.1 only and prints a URL with the one-time code in its fragment', () => {
    expect(host.origin).toBe(`http://127.0.0.1:${host.port}`);
    expect(host.url).toBe(`http://127.0.0.1:${host.port}/#code=code-123`);
  });

  it('is not reachable on another local address', async () => {
    const err = await new Promise<string>((resolve) => {
      const s = net.connect({ host: '127.0.0.2', port: host.port });
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(err).toBe('ECONNREFUSED');
  });

  it('serves index.html without a session, with the CSP and hardening headers, and no secret in the body', async () => {
    const r = await get('/');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.headers['content-security-policy']).toBe(contentSecurityPolicy(host.port));
    expect(r.headers['content-security-policy']).toContain("default-src 'none'");
    expect(r.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['referrer-policy']).toBe('no-referrer');
    expect(r.body).toBe('<!doctype html><title>Tidemark</title>');
    expect(r.body).not.toContain('code-123');
    expect(r.body).not.toContain(session.split('=')[1]);
  });

  it('serves assets with their content type and answers HEAD without a body', async () => {
    const r = await get('/assets/app.js');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(r.body).toBe('console.log(1)');
    const h = await get('/assets/app.js', {}, 'HEAD');
    expect(h.status).toBe(200);
    expect(h.body).toBe('');
  });

  it.each([
    ['/../secret.txt', 403],
    ['/assets/../../secret.txt', 403],
    ['/%2e%2e/secret.txt', 403],
    ['/assets/..%2f..%2fsecret.txt', 403],
    ['/assets/link.txt', 403],
    ['/%00index.html', 400],
    ['/..%5csecret.txt', 400],
    ['/%E0%A4%A', 400],
    ['/nope.js', 404],
    ['/assets', 404],
  ])('refuses %s with %i', async (p, status) => {
    const r = await get(p);
    expect(r.status).toBe(status);
    expect(r.body).not.toContain('outside');
  });

  it('refuses other methods and foreign Host headers (DNS rebinding)', async () => {
    const post = await get('/', {}, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    const foreign = await get('/', { host: `evil.example:${host.port}` });
    expect(foreign.status).toBe(421);
  });
});

describe('resolveStaticPath', () => {
  it('maps / to index.html and keeps files inside the root', () => {
    const root = path.join(dir, 'renderer');
    expect(resolveStaticPath(root, '/')).toEqual({ file: fs.realpathSync(path.join(root, 'index.html')) });
    expect(resolveStaticPath(root, '/..')).toEqual({ status: 403, reason: 'path contains ".."' });
    expect(resolveStaticPath(root, 'index.html')).toMatchObject({ status: 400 });
  });
});

describe('parseRequest', () => {
  it('names what is wrong with a frame', () => {
    expect(parseRequest('{')).toEqual({ id: null, error: 'request is not valid JSON' });
    expect(parseRequest('[1]')).toMatchObject({ error: 'request must be a JSON object {id, channel, args}' });
    expect(parseRequest('{"id":{},"channel":"vm:list","args":[]}')).toMatchObject({ id: null, error: /id must be/ });
    expect(parseRequest('{"id":3,"channel":1,"args":[]}')).toMatchObject({ id: 3, error: /channel must be a string/ });
    expect(parseRequest('{"id":"a","channel":"vm:list","args":{}}')).toMatchObject({ id: 'a', error: /args must be an array/ });
    expect(parseRequest('{"id":4,"channel":"vm:list","args":[]}')).toEqual({ id: 4, channel: 'vm:list', args: [] });
  });
});

describe('WebSocket /ipc', () => {
  it.each([
    [null, 'SELF', /^401 not logged in/],
    ['tidemark_session_1=x', 'SELF', /^401 not logged in/],
    ['WRONG', 'SELF', /^401 not logged in/],
    ['SESSION', null, /^403 Origin null/],
    ['SESSION', 'http://evil.example', /^403 Origin "http:\/\/evil.example"/],
    ['SESSION', 'http://localhost:1', /^403/],
  ])('refuses the upgrade for cookie %j and origin %j', async (cookie, origin, expected) => {
    const c = cookie === 'WRONG' ? `${session.split('=')[0]}=${'A'.repeat(43)}` : cookie;
    await expect(connect(c, origin)).rejects.toThrow(expected);
  });

  it('refuses the code in the WebSocket URL (the cookie is the only credential)', async () => {
    await expect(connect(null, 'SELF', '/ipc?code=code-123')).rejects.toThrow(/^401/);
  });

  it('refuses other paths', async () => {
    await expect(connect('SESSION', host.origin, '/ws')).rejects.toThrow(/^404/);
  });

  it('dispatches a valid request to the handler with the validated arguments', async () => {
    const ws = await connect();
    calls.length = 0;
    const r = await request(ws, { id: 7, channel: 'checkpoint:get', args: ['vm-1', 'c1'] });
    expect(r).toEqual({ id: 7, ok: true, result: { echoed: 'checkpoint:get', args: ['vm-1', 'c1'] } });
    expect(calls).toEqual([['checkpoint:get', ['vm-1', 'c1']]]);
    const v = await request(ws, { id: 8, channel: 'vm:remove', args: ['vm-1'] });
    expect(v).toEqual({ id: 8, ok: true });
    ws.close();
  });

  it('rejects unknown channels and wrong payloads before any handler runs', async () => {
    const ws = await connect();
    calls.length = 0;
    expect(await request(ws, { id: 1, channel: 'fs:readFile', args: ['/etc/passwd'] })).toEqual({ id: 1, ok: false, error: 'unknown channel "fs:readFile"' });
    expect(await request(ws, { id: 2, channel: '__proto__', args: [] })).toMatchObject({ ok: false, error: 'unknown channel "__proto__"' });
    expect(await request(ws, { id: 3, channel: 'checkpoint:create', args: ['vm'] })).toEqual({
      id: 3, ok: false, error: 'checkpoint:create[1]: expected an object, got nothing',
    });
    expect(await request(ws, { id: 4, channel: 'vm:info', args: [42] })).toEqual({ id: 4, ok: false, error: 'vm:info[0]: expected a string, got number 42' });
    expect(await request(ws, { id: 5, channel: 'checkpoint:create', args: ['vm', { name: 'x', evil: 1 }] })).toMatchObject({ ok: false, error: 'checkpoint:create[1]: unexpected field "evil"' });
    expect(await request(ws, 'not json')).toEqual({ id: null, ok: false, error: 'request is not valid JSON' });
    expect(await request(ws, { id: 6, channel: 'vm:list' })).toEqual({ id: 6, ok: false, error: 'request args must be an array' });
    expect(calls).toEqual([]);
    ws.close();
  });

  it('returns the engine error message, never its stack', async () => {
    const ws = await connect();
    const r = await request(ws, { id: 9, channel: 'vm:info', args: ['ghost'] });
    expect(r).toEqual({ id: 9, ok: false, error: 'VM "ghost" is not known' });
    expect(JSON.stringify(r)).not.toContain('engine.ts');
    ws.close();
  });

  it('pushes events to every client, and listens to the service only while a client is connected', async () => {
    await until(() => events.count() === 0); // earlier clients' close frames land first
    expect(events.count()).toBe(0);
    const a = await connect();
    const b = await connect();
    expect(events.count()).toBe(EVENT_NAMES.length); // one per event name, however many clients
    const got = (ws: NodeWs) => new Promise<unknown>((resolve) => ws.once('message', (d) => resolve(JSON.parse(d.toString()))));
    const pa = got(a);
    const pb = got(b);
    events.emit('checkpoints:changed', { vmId: 'vm-1' });
    expect(await pa).toEqual({ event: 'checkpoints:changed', payload: { vmId: 'vm-1' } });
    expect(await pb).toEqual({ event: 'checkpoints:changed', payload: { vmId: 'vm-1' } });
    a.close();
    b.close();
    await until(() => host.clients() === 0 && events.count() === 0);
    expect(host.clients()).toBe(0);
    expect(events.count()).toBe(0);
  });

  it('closes a client that sends an oversized frame, and keeps serving others', async () => {
    const ws = await connect();
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send('x'.repeat(5 * 1024 * 1024));
    expect(await closed).toBe(1009);
    const other = await connect();
    expect(await request(other, { id: 1, channel: 'vm:list', args: [] })).toMatchObject({ ok: true });
    other.close();
  });
});
