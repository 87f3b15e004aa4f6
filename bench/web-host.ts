// Benchmark: the web host over the real service and demo VM. Prints the time to start the host
// with the demo VM until the VM is connected, and WebSocket round trips through dispatch():
// vm:list (no QMP) and vm:info (QMP discovery), against the same calls made directly on the
// handlers, so the transport's own cost is visible. Not pass/fail.
// Run: npx tsx bench/web-host.ts [rounds]

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import NodeWs from 'ws';
import type { VmSummary } from '../shared/contract';
import { stopLab } from '../electron/engine/lab/labvm';
import { startWebHost } from '../electron/host/web-host';
import { loginCookie } from '../test/web-host-login';

const rounds = Number(process.argv[2] ?? 200);

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const pct = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `median ${pct(0.5).toFixed(3)} ms, p95 ${pct(0.95).toFixed(3)} ms [${s[0]!.toFixed(3)}..${s[s.length - 1]!.toFixed(3)}] (n=${s.length})`;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function main(): Promise<void> {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmbench-wh-'));
  fs.mkdirSync(path.join(stateDir, 'r'));
  fs.writeFileSync(path.join(stateDir, 'r', 'index.html'), '<!doctype html>');
  const t0 = performance.now();
  const host = await startWebHost({ stateDir, startDemo: true, rendererDir: path.join(stateDir, 'r') });
  const started = performance.now() - t0;
  try {
    const ws = new NodeWs(`ws://127.0.0.1:${host.port}/ipc`, { origin: host.origin, headers: { Cookie: await loginCookie(host) } });
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
    let id = 0;
    const waiting = new Map<number, (m: { ok: boolean; result?: unknown; error?: string }) => void>();
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (typeof m.id === 'number') waiting.get(m.id)?.(m);
    });
    const call = (channel: string, ...args: unknown[]) =>
      new Promise<unknown>((resolve, reject) => {
        const n = ++id;
        waiting.set(n, (m) => (waiting.delete(n), m.ok ? resolve(m.result) : reject(new Error(m.error))));
        ws.send(JSON.stringify({ id: n, channel, args }));
      });
    for (;;) {
      const list = (await call('vm:list')) as VmSummary[];
      if (list.some((v) => v.kind === 'demo' && v.connection === 'connected')) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const connected = performance.now() - t0;
    console.log(`start web host + demo VM: ${started.toFixed(0)} ms; demo VM connected after ${connected.toFixed(0)} ms`);

    for (const [label, channel, args] of [['vm:list', 'vm:list', []], ['vm:info demo', 'vm:info', ['demo']]] as const) {
      for (let i = 0; i < 10; i++) await call(channel, ...args); // warm up
      const overWs: number[] = [];
      const direct: number[] = [];
      for (let i = 0; i < rounds; i++) {
        overWs.push(await time(() => call(channel, ...args)));
        direct.push(await time(() => (host.handlers[channel] as (...a: unknown[]) => Promise<unknown>)(...args)));
      }
      console.log(`${label.padEnd(13)} over WebSocket: ${stats(overWs)}`);
      console.log(`${label.padEnd(13)} direct call:   ${stats(direct)}`);
    }
    ws.close();
  } finally {
    await host.close();
    await stopLab(path.join(stateDir, 'lab'));
    fs.rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
