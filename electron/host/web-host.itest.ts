// The web host over the real service and a real demo VM (QEMU), reached as a browser would:
// logged in with the one-time code, then a WebSocket with the session cookie and the host's own Origin.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import NodeWs from 'ws';
import type { VmSummary } from '../../shared/contract';
import { labStatus, stopLab } from '../engine/lab/labvm';
import { loginCookie } from '../../test/web-host-login';
import { startWebHost, type RunningWebHost } from './web-host';

const sessions = new WeakMap<RunningWebHost, string>(); // each host allows one login: keep its cookie

async function connect(host: RunningWebHost): Promise<NodeWs> {
  const cookie = sessions.get(host) ?? (await loginCookie(host));
  sessions.set(host, cookie);
  const headers = { Cookie: cookie };
  return new Promise((resolve, reject) => {
    const ws = new NodeWs(`ws://127.0.0.1:${host.port}/ipc`, { origin: host.origin, headers });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** A tiny client: request/response by id, plus every pushed event kept in order. */
function client(ws: NodeWs) {
  let nextId = 1;
  const waiting = new Map<number, (m: Record<string, unknown>) => void>();
  const events: { event: string; payload: unknown }[] = [];
  const eventWaiters: { pred: (e: { event: string; payload: unknown }) => boolean; resolve: (e: unknown) => void }[] = [];
  ws.on('message', (d) => {
    const m = JSON.parse(d.toString()) as Record<string, unknown>;
    if ('event' in m) {
      const e = m as { event: string; payload: unknown };
      events.push(e);
      for (const w of [...eventWaiters]) if (w.pred(e)) {
        eventWaiters.splice(eventWaiters.indexOf(w), 1);
        w.resolve(e.payload);
      }
      return;
    }
    waiting.get(m.id as number)?.(m);
  });
  return {
    events,
    call(channel: string, ...args: unknown[]): Promise<Record<string, unknown>> {
      const id = nextId++;
      return new Promise((resolve) => {
        waiting.set(id, resolve);
        ws.send(JSON.stringify({ id, channel, args }));
      });
    },
    waitFor(pred: (e: { event: string; payload: unknown }) => boolean, timeoutMs = 20_000): Promise<unknown> {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen.payload);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('event did not arrive')), timeoutMs);
        eventWaiters.push({ pred, resolve: (p) => (clearTimeout(t), resolve(p)) });
      });
    },
  };
}

const demoConnected = (e: { event: string; payload: unknown }) =>
  e.event === 'vm:list' && (e.payload as VmSummary[]).some((v) => v.kind === 'demo' && v.connection === 'connected');

describe('startWebHost with the real demo VM', () => {
  let dir: string;
  let host: RunningWebHost;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-wh-'));
    fs.mkdirSync(path.join(dir, 'renderer'));
    fs.writeFileSync(path.join(dir, 'renderer', 'index.html'), '<!doctype html><title>Tidemark</title>');
    host = await startWebHost({ stateDir: path.join(dir, 's'), startDemo: true, rendererDir: path.join(dir, 'renderer') });
  });
  afterAll(async () => {
    await host?.close();
    await stopLab(path.join(dir, 's', 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('started the demo VM, serves the contract over the WebSocket and pushes engine events', async () => {
    expect(host.startedDemo).toBe(true);
    expect(labStatus(path.join(dir, 's', 'lab')).running).toBe(true);
    const c = client(await connect(host));
    // The login round trip comes first, so the demo may have connected before this client listened:
    // its vm:list event is then missed, and vm:list itself says so.
    const end = Date.now() + 20_000;
    while (!demoConnected({ event: 'vm:list', payload: (await c.call('vm:list')).result }) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
    }
    const list = await c.call('vm:list');
    expect(list.ok).toBe(true);
    const demo = (list.result as VmSummary[]).find((v) => v.kind === 'demo')!;
    const info = await c.call('vm:info', demo.id);
    expect(info.ok).toBe(true);
    expect((info.result as { disks: { name: string }[] }).disks.map((d) => d.name)).toEqual(['vda', 'vdb', 'vdc']);

    const created = await c.call('checkpoint:create', demo.id, { name: 'web-1' });
    expect(created).toMatchObject({ ok: true, result: { name: 'web-1' } });
    await c.waitFor((e) => e.event === 'checkpoints:changed' && (e.payload as { vmId: string }).vmId === demo.id);
    const bitmaps = (await c.waitFor((e) => e.event === 'vm:bitmaps' && JSON.stringify(e.payload).includes('"web-1"'))) as { disks: { disk: string; bitmaps: { name?: string }[] }[] };
    expect(bitmaps.disks.find((d) => d.disk === 'vda')!.bitmaps.map((b) => b.name)).toContain('web-1');

    const dup = await c.call('checkpoint:create', demo.id, { name: 'web-1' });
    expect(dup.ok).toBe(false);
    expect(String(dup.error)).toMatch(/web-1/);
    expect(String(dup.error)).not.toMatch(/\n\s+at /); // a message, never a stack
  });

  it('close() stops the demo VM it started', async () => {
    await host.close();
    expect(labStatus(path.join(dir, 's', 'lab')).running).toBe(false);
  });
});

describe('tidemark serve (stand-alone process)', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-sv-'));
  });
  afterAll(async () => {
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prints the URL with a one-time code, logs in with it once, and on SIGINT stops with the demo VM', async () => {
    const child = spawn(process.execPath, [require.resolve('tsx/cli'), path.join(__dirname, '../cli/commands/serve.ts'), '--state-dir', dir, '--no-open', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DISPLAY: '' },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      const t = setInterval(() => {
        const m = /serving on (http:\/\/127\.0\.0\.1:\d+\/#code=[A-Za-z0-9_-]{43})$/m.exec(out);
        // the two lines come from two writes (and may come in either order): wait for both
        if (m && out.includes('demo VM: started')) {
          clearInterval(t);
          resolve(m[1]!);
        }
      }, 50);
      child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
    });
    expect(out).toContain('demo VM: started');
    expect(labStatus(path.join(dir, 'lab')).running).toBe(true);
    const u = new URL(url);
    const res = await fetch(`${u.origin}/`);
    expect(res.headers.get('content-security-policy')).toContain("default-src 'none'");
    const code = u.hash.slice('#code='.length);
    expect(out).toContain(`paste the code: ${code}`);
    const session = await loginCookie({ origin: u.origin, code });
    expect(session).toMatch(/^tidemark_session_\d+=[\w-]{43}$/);
    await expect(loginCookie({ origin: u.origin, code })).rejects.toThrow(/HTTP 403 this login code was already used/);
    const ws = new NodeWs(`ws://${u.host}/ipc`, { origin: u.origin, headers: { Cookie: session } });
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    ws.close();
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(labStatus(path.join(dir, 'lab')).running).toBe(false);
  });
});
