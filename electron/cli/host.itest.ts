// `tidemark host` with a real demo VM: the real CLI (bin/tidemark.js) hands its commands to the
// host and prints their output; commands run side by side (status and cancel of a running backup);
// Ctrl-C and a caller that goes away cancel the command's job; once the host stops, the CLI connects
// by itself again (the host released the VM's socket). runTidemark runs bin/tidemark, so with the
// host up these go through the native client (out/cli/tidemark-client), which the build makes.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { labStatus, stopLab } from '../engine/lab/labvm';
import { QmpClient } from '../qmp/client';
import { runInHost, type ClientIo } from './host-client';
import { HOST_PROTOCOL } from './host-protocol';
import { startCliHost, type CliHost } from './host-server';
import { runCli } from './main';
import { runTidemark, TIDEMARK_COMMAND } from './run-cli';

let dir: string;
let host: CliHost | undefined;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmh-'));
  const r = await runTidemark(dir, ['lab', 'start']);
  if (r.code !== 0) throw new Error(`lab start: ${r.err}`);
  host = await startCliHost({ stateDir: dir, idleMs: 60_000, run: runCli });
}, 120_000);

afterAll(async () => {
  await host?.close();
  if (dir) {
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

interface Ran {
  code: number | undefined;
  out: string;
  err: string;
}

/** Runs argv through runInHost (the thin client in this process); `interrupt` receives its Ctrl-C. */
async function viaHost(argv: string[], interrupt?: (press: () => void) => void): Promise<Ran> {
  const ran: Ran = { code: undefined, out: '', err: '' };
  const io: ClientIo = {
    stdout: (t) => void (ran.out += t),
    stderr: (t) => void (ran.err += t),
    isTTY: false,
    env: {},
    cwd: dir,
    onInterrupt: (h) => {
      interrupt?.(h);
      return () => undefined;
    },
  };
  ran.code = await runInHost(['--state-dir', dir, ...argv], io);
  return ran;
}

/** How long the tests wait for what they wait for (polled), instead of a fixed delay. */
const WAIT = { timeout: 30_000, interval: 50 };

/** The bytes checkpoint h1's bitmap on vda counts as written (read on the lab's first QMP socket, which the host never uses). */
async function vdaDirty(): Promise<number> {
  const qmp = await QmpClient.connect(labStatus(path.join(dir, 'lab')).qmp);
  try {
    const nodes = await qmp.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string; count: number }[] }[]>('query-named-block-nodes', { flat: true });
    const counts = nodes.flatMap((n) => n['dirty-bitmaps'] ?? []).filter((b) => b.name === 'h1').map((b) => b.count);
    if (counts.length !== 2) throw new Error(`expected bitmap h1 on vda and vdb, found ${counts.length}`);
    return counts[0]! + counts[1]!;
  } finally {
    await qmp.close();
  }
}

describe('tidemark host with the demo VM', () => {
  it('runs the real CLI\'s commands: same output, and the host ran them', async () => {
    // bin/tidemark runs the native client only when it is built and newer than its source
    const nativeClient = path.join(path.dirname(TIDEMARK_COMMAND), '..', 'out', 'cli', 'tidemark-client');
    const built = fs.statSync(nativeClient, { throwIfNoEntry: false });
    expect(built, 'out/cli/tidemark-client is missing: npm run build:node (needs cc)').toBeDefined();
    const source = fs.statSync(path.join(path.dirname(TIDEMARK_COMMAND), 'tidemark-client.c'));
    expect(Math.floor(built!.mtimeMs / 1000), 'out/cli/tidemark-client is stale: npm run build:node').toBeGreaterThan(Math.floor(source.mtimeMs / 1000)); // dash's -nt: whole seconds
    const before = host!.commandsRun;
    const made = await runTidemark(dir, ['checkpoint-create-as', 'h1', '--description', 'through the host']);
    expect(made, made.err).toEqual({ code: 0, out: 'Domain checkpoint h1 created\n', err: '' });
    expect(host!.commandsRun - before, 'bin/tidemark.js ran the command itself: is out/cli stale? (npm run build:node)').toBe(1);
    const list = await runTidemark(dir, ['checkpoint-list', '--json']);
    expect(list.code, list.err).toBe(0);
    expect((JSON.parse(list.out) as { name: string; description?: string }[]).map((c) => [c.name, c.description])).toEqual([['h1', 'through the host']]);
    // usage errors and their exit status come back as they are
    expect(await runTidemark(dir, ['checkpoint-create-as', '--bogus'])).toEqual({ code: 2, out: '', err: 'error: unknown option --bogus for checkpoint-create-as\n' });
  }, 60_000);

  it('runs commands side by side: backup-status and backup-cancel answer while a backup runs in the host', async () => {
    const wrote = await viaHost(['lab', 'write', '--disk', 'vda', '--mib', '32']);
    expect(wrote.code, wrote.err).toBe(0);
    const backup = viaHost(['backup-begin', '--full', '--speed', '1']); // ≥ 32 MiB at 1 MiB/s
    let running = false;
    for (let i = 0; i < 100 && !running; i++) {
      const st = await viaHost(['backup-status', '--json']);
      expect(st.code, st.err).toBe(0);
      const s = JSON.parse(st.out) as { running: boolean; phase?: string; progress: { done: number }[] };
      running = s.running && s.phase === 'running' && s.progress.some((p) => p.done > 0);
      if (!running) await new Promise((r) => setTimeout(r, 100));
    }
    if (!running) {
      const b = await backup;
      throw new Error(`the backup never showed as running: ${JSON.stringify(b)}`);
    }
    const cancel = await viaHost(['backup-cancel']);
    expect(cancel.code, cancel.err).toBe(0);
    expect(cancel.out).toMatch(/^Backup \S+ cancelled\n/);
    const b = await backup;
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/was cancelled; checkpoint \S+ rolled back/);
    expect((await viaHost(['checkpoint-list', '--name'])).out).toBe('h1\n\n');
  }, 120_000);

  it('Ctrl-C of the caller cancels the command\'s job', async () => {
    const before = await vdaDirty();
    let press: (() => void) | undefined;
    const write = viaHost(['lab', 'write', '--disk', 'vda', '--mib', '64', '--rate', '4'], (p) => (press = p));
    // Ctrl-C once the job writes (h1 counts its first writes), not after a fixed 1.5 s: on a loaded
    // machine the job may not have started by then, and a Ctrl-C before it starts has nothing to cancel.
    await vi.waitFor(async () => expect(await vdaDirty(), 'the write job has started').toBeGreaterThan(before), WAIT);
    press!();
    const w = await write;
    expect(w.code).toBe(1);
    expect(w.err).toMatch(/^error: write simulation cancelled after /m);
  }, 60_000);

  it('Ctrl-C of bin/tidemark (the native client) cancels the command\'s job', async () => {
    const before = await vdaDirty();
    const child = spawn(TIDEMARK_COMMAND, ['--state-dir', dir, 'lab', 'write', '--disk', 'vda', '--mib', '64', '--rate', '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const ended = new Promise<number | null>((r) => child.on('close', r));
    await vi.waitFor(async () => expect(await vdaDirty(), 'the write job has started').toBeGreaterThan(before), WAIT);
    child.kill('SIGINT');
    expect(await ended).toBe(1);
    expect(err).toMatch(/^error: write simulation cancelled after /m);
  }, 60_000);

  it('a caller that goes away cancels the command\'s job too', async () => {
    const before = await vdaDirty();
    const ran = host!.commandsRun;
    const conn = net.connect(host!.socket);
    await new Promise((r) => conn.once('connect', r));
    conn.write(`${JSON.stringify({ v: HOST_PROTOCOL, argv: ['--state-dir', dir, 'lab', 'write', '--disk', 'vda', '--pattern', 'sequential', '--mib', '64', '--rate', '4'], cwd: dir, env: {}, isTTY: false })}\n`);
    // Waited for, not fixed delays (1.5 s, then 0.5 s) that a loaded machine outlasted: the caller goes
    // away once the job writes, and what it wrote is counted once the command has ended in the host.
    await vi.waitFor(async () => expect(await vdaDirty(), 'the write job has started').toBeGreaterThan(before), WAIT);
    conn.destroy();
    await vi.waitFor(() => expect(host!.commandsRun, 'the command has ended in the host').toBeGreaterThan(ran), WAIT);
    const stopped = (await vdaDirty()) - before;
    // a write still running at 4 MiB/s would dirty ~6 MiB more in these 1.5 s
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await vdaDirty()) - before).toBe(stopped);
    expect(stopped).toBeGreaterThan(0);
    expect(stopped).toBeLessThan(32 * 1024 * 1024); // stopped within moments at 4 MiB/s; the whole write would dirty ~60 MiB
    const status = await viaHost(['lab', 'status']);
    expect(status.code, status.err).toBe(0);
  }, 60_000);

  it('once the host stops, the CLI connects to the VM by itself again', async () => {
    await host!.close();
    host = undefined;
    const del = await runTidemark(dir, ['checkpoint-delete', 'h1']);
    expect(del, del.err).toEqual({ code: 0, out: 'Domain checkpoint h1 deleted\n\n', err: '' });
  }, 60_000);
});
