// The login over HTTP against a real web host (recording-free handlers): the code is exchanged once
// at POST /session for the cookie, and only that cookie with the host's Origin opens the WebSocket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import NodeWs from 'ws';
import type { Handlers } from '../../shared/contract';
import { createWebHost, type WebHost } from './web-host';
import { CODE_TTL_MS } from './web-login';

const handlers = new Proxy({} as Handlers, { get: () => async () => [] });
const events = { on: () => () => undefined };
let dir: string;
const hosts: WebHost[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-login-'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>Tidemark</title>');
});

afterAll(async () => {
  for (const h of hosts) await h.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function newHost(now?: () => number): Promise<WebHost> {
  const host = await createWebHost({ service: { handlers, events }, rendererDir: dir, now });
  hosts.push(host);
  return host;
}

function post(host: WebHost, body: string, headers: Record<string, string> = {}) {
  return fetch(`${host.origin}/session`, { method: 'POST', headers: { Origin: host.origin, 'Content-Type': 'application/json', ...headers }, body });
}

const login = (host: WebHost, code = host.code) => post(host, JSON.stringify({ code }));

function upgrade(host: WebHost, cookie?: string, origin: string | null = host.origin): Promise<string> {
  return new Promise((resolve) => {
    const ws = new NodeWs(`ws://127.0.0.1:${host.port}/ipc`, { ...(origin ? { origin } : {}), ...(cookie ? { headers: { Cookie: cookie } } : {}) });
    ws.once('open', () => (ws.close(), resolve('open')));
    ws.once('unexpected-response', (_req, res) => resolve(`HTTP ${res.statusCode}`));
    ws.once('error', (e) => resolve(`error ${e.message}`));
  });
}

async function loggedIn(host: WebHost, cookie?: string): Promise<unknown> {
  const res = await fetch(`${host.origin}/session`, { headers: cookie ? { Cookie: cookie } : {} });
  expect(res.status).toBe(200);
  return ((await res.json()) as { loggedIn: unknown }).loggedIn;
}

describe('POST /session', () => {
  it('exchanges the code once for an HttpOnly, SameSite=Strict, Path=/ cookie that opens the WebSocket', async () => {
    const host = await newHost();
    expect(await upgrade(host)).toBe('HTTP 401');
    expect(await loggedIn(host)).toBe(false);
    const res = await login(host);
    expect(res.status).toBe(204);
    const setCookie = res.headers.get('set-cookie')!;
    expect(setCookie.split('; ').slice(1).sort()).toEqual(['HttpOnly', 'Path=/', 'SameSite=Strict']);
    const cookie = setCookie.split(';')[0]!;
    expect(cookie).toMatch(new RegExp(`^tidemark_session_${host.port}=[\\w-]{43}$`));
    expect(cookie).not.toContain(host.code);
    expect(await loggedIn(host, cookie)).toBe(true);
    expect(await upgrade(host, cookie)).toBe('open');
    // the WebSocket still checks the Origin: a stolen cookie from a foreign page is not enough
    expect(await upgrade(host, cookie, 'http://evil.example')).toBe('HTTP 403');
    expect(await upgrade(host, cookie, `http://localhost:${host.port}`)).toBe('HTTP 403');
    expect(await upgrade(host, cookie, null)).toBe('HTTP 403');
  });

  it('answers a reused code with 403 and a plain message saying to restart tidemark serve', async () => {
    const host = await newHost();
    expect((await login(host)).status).toBe(204);
    const again = await login(host);
    expect(again.status).toBe(403);
    expect(again.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(again.headers.get('set-cookie')).toBeNull();
    expect(await again.text()).toMatch(/^this login code was already used: restart `tidemark serve` and open the address it prints/);
  });

  it('answers a wrong code with 403 and keeps the right one usable', async () => {
    const host = await newHost();
    const wrong = await login(host, 'A'.repeat(43));
    expect(wrong.status).toBe(403);
    expect(await wrong.text()).toMatch(/^wrong login code: restart `tidemark serve`/);
    expect((await login(host)).status).toBe(204);
  });

  it('refuses the code after it went unused for its lifetime', async () => {
    let t = 0;
    const host = await newHost(() => t);
    t = CODE_TTL_MS + 1;
    const res = await login(host);
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/^this login code expired/);
    expect(await upgrade(host)).toBe('HTTP 401');
  });

  it('refuses a login from another Origin, or not JSON, or too large, without spending the code', async () => {
    const host = await newHost();
    const body = JSON.stringify({ code: host.code });
    expect((await post(host, body, { Origin: 'http://evil.example' })).status).toBe(403);
    expect((await post(host, body, { Origin: `http://localhost:${host.port}` })).status).toBe(403);
    expect((await post(host, body, { 'Content-Type': 'text/plain' })).status).toBe(415);
    expect((await post(host, '{"code":')).status).toBe(400);
    expect((await post(host, JSON.stringify({ code: host.code, pad: 'x'.repeat(2000) }))).status).toBe(413);
    expect((await fetch(`${host.origin}/session`, { method: 'PUT', body })).status).toBe(405);
    expect((await login(host)).status).toBe(204);
  });

  it('serves static files without a session', async () => {
    const host = await newHost();
    const res = await fetch(`${host.origin}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<title>Tidemark</title>');
  });
});
