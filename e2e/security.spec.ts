// Security of the web host and the page, checked from a real browser and a raw client:
// CSP enforcement, the WebSocket's session-cookie + Origin checks, contract validation, loopback-only.
// (The login itself, code → cookie, is in smoke.spec.ts.)
import * as net from 'node:net';
import * as os from 'node:os';
import NodeWs from 'ws'; // not "WebSocket": that name would shadow the browser global in page.evaluate
import { loginCookie } from '../test/web-host-login';
import { expect, test } from './fixtures';

function rawConnect(url: string, origin?: string, cookie?: string): Promise<NodeWs | string> {
  return new Promise((resolve) => {
    const ws = new NodeWs(url, { ...(origin ? { origin } : {}), ...(cookie ? { headers: { Cookie: cookie } } : {}) });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => resolve(`HTTP ${res.statusCode}`));
    ws.once('error', (e) => resolve(`error ${e.message}`));
  });
}

function call(ws: NodeWs, msg: unknown): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const onMessage = (data: NodeWs.RawData) => {
      const m = JSON.parse(data.toString()) as Record<string, unknown>;
      if ('event' in m) return;
      ws.off('message', onMessage);
      resolve(m);
    };
    ws.on('message', onMessage);
    ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  });
}

test('CSP: a cross-origin connect and an injected inline script are blocked and reported', async ({ app }) => {
  const violations = await app.evaluate(async () => {
    const seen: string[] = [];
    document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI}`));
    try {
      new WebSocket('ws://127.0.0.2:9/');
    } catch {
      // Chromium may throw synchronously as well as report
    }
    const s = document.createElement('script');
    s.textContent = 'window.__injected = true';
    document.body.appendChild(s);
    // Reports arrive as events; wait for both (10 s at most) rather than a fixed time a loaded machine can overrun.
    const both = () => seen.some((v) => v.startsWith('connect-src')) && seen.some((v) => v.startsWith('script-src'));
    for (const until = Date.now() + 10_000; !both() && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
    return { seen, injected: (window as unknown as { __injected?: boolean }).__injected ?? false };
  });
  expect(violations.injected).toBe(false);
  expect(violations.seen.some((v) => v.startsWith('connect-src') && v.includes('127.0.0.2'))).toBe(true);
  expect(violations.seen.some((v) => v.startsWith('script-src'))).toBe(true);
});

test('the served page carries the CSP header and no login code', async ({ host, request }) => {
  const res = await request.get(`${host.origin}/`);
  expect(res.status()).toBe(200);
  expect(res.headers()['content-security-policy']).toContain("default-src 'none'");
  expect(res.headers()['content-security-policy']).toContain("script-src 'self'");
  expect(await res.text()).not.toContain(host.code);
  expect((await request.get(`${host.origin}/..%2f..%2fetc%2fpasswd`)).status()).toBe(403);
});

test('the WebSocket refuses a missing or wrong session cookie and a foreign Origin', async ({ host }) => {
  const ws = `ws://127.0.0.1:${host.port}/ipc`;
  expect(await rawConnect(ws, host.origin)).toBe('HTTP 401');
  expect(await rawConnect(`${ws}?code=${host.code}`, host.origin)).toBe('HTTP 401');
  const cookie = await loginCookie(host);
  expect(await rawConnect(ws, host.origin, `${host.cookieName}=${'x'.repeat(43)}`)).toBe('HTTP 401');
  expect(await rawConnect(ws, 'http://evil.example', cookie)).toBe('HTTP 403');
  expect(await rawConnect(ws, `http://localhost:${host.port}`, cookie)).toBe('HTTP 403');
  expect(await rawConnect(ws, undefined, cookie)).toBe('HTTP 403');
  const ok = await rawConnect(ws, host.origin, cookie);
  expect(typeof ok).not.toBe('string');
  (ok as NodeWs).close();
});

test('a page on another origin cannot use the WebSocket', async ({ page, host }) => {
  // localhost:PORT is the same server under another origin, as a rebinding or a foreign page would be.
  await page.goto(`http://localhost:${host.port}/`).catch(() => undefined);
  const result = await page.evaluate(
    (url) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(url);
        ws.onopen = () => resolve('open');
        ws.onclose = (e) => resolve(`closed ${e.code}`);
      }),
    `ws://127.0.0.1:${host.port}/ipc`,
  );
  expect(result).toBe('closed 1006');
});

test('the host refuses unknown channels and payloads of the wrong shape, with clear messages', async ({ host }) => {
  const ws = (await rawConnect(`ws://127.0.0.1:${host.port}/ipc`, host.origin, await loginCookie(host))) as NodeWs;
  try {
    expect(await call(ws, { id: 1, channel: 'fs:readFile', args: ['/etc/passwd'] })).toEqual({ id: 1, ok: false, error: 'unknown channel "fs:readFile"' });
    expect(await call(ws, { id: 2, channel: 'checkpoint:create', args: ['demo'] })).toEqual({ id: 2, ok: false, error: 'checkpoint:create[1]: expected an object, got nothing' });
    expect(await call(ws, { id: 3, channel: 'checkpoint:create', args: ['demo', { name: 'x', disks: 'all' }] })).toEqual({
      id: 3, ok: false, error: 'checkpoint:create[1].disks: expected an array, got string "all"',
    });
    expect(await call(ws, { id: 4, channel: 'lab:write', args: ['demo', { disk: 'vda', pattern: 'random', mib: -5 }] })).toMatchObject({ ok: false, error: 'lab:write[1].mib: must be at least 1' });
    expect(await call(ws, '{"id":5,')).toEqual({ id: null, ok: false, error: 'request is not valid JSON' });
    // an engine error is a message, not a stack (asked once the demo VM is connected: the spec before
    // may have left it reconnecting, and then the error is "not connected", which names no checkpoint)
    await expect.poll(async () => {
      const list = await call(ws, { id: 7, channel: 'vm:list', args: [] });
      return (list.result as { id: string; connection: string }[] | undefined)?.find((v) => v.id === 'demo')?.connection;
    }, { timeout: 30_000 }).toBe('connected');
    const r = await call(ws, { id: 6, channel: 'checkpoint:get', args: ['demo', 'no-such-checkpoint'] });
    expect(r.ok).toBe(false);
    expect(String(r.error)).toContain('no-such-checkpoint');
    expect(String(r.error)).not.toMatch(/\n\s+at /);
  } finally {
    ws.close();
  }
});

test('the host listens on 127.0.0.1 only', async ({ host }) => {
  const others = ['127.0.0.2', ...Object.values(os.networkInterfaces()).flat().filter((a) => a && !a.internal && a.family === 'IPv4').map((a) => a!.address)];
  for (const address of others) {
    const result = await new Promise<string>((resolve) => {
      const s = net.connect({ host: address, port: host.port });
      s.once('connect', () => (s.destroy(), resolve('connected')));
      s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(`${address}: ${result}`).toBe(`${address}: ECONNREFUSED`);
  }
});
