// A resident host for the CLI, as libvirtd is for virsh: `tidemark host` keeps running, and each
// `tidemark …` started meanwhile hands its command line to it over <state dir>/run/cli.sock
// (host-client.ts) instead of loading the engine and connecting to the VM itself. The host runs the
// very same runCli with the caller's arguments, folder, terminal flag and Ctrl-C, and keeps one
// service per VM endpoint open between commands, so QMP and libvirt connections stay warm.
// Commands share it and run side by side, as the app's calls do (backup-status and backup-cancel while
// a backup runs): the engine's own locks order what must not overlap, and a command follows only the
// job it started (own-job.ts).

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as v from 'valibot';
import { resolveStateDir } from '../engine/statedir';
import { createService, type Service, type ServiceOptions } from '../host/service';
import { mkdirPrivate } from '../os/atomic-file';
import type { CliIo, CliRunner, ServiceLease, ServiceSource } from './context';
import { parseGlobal } from './global-options';
import { FORWARDED_ENV, HOST_PROTOCOL, hostSocketPath, LineReader, RUN_LOCALLY, type HostFrame, type HostRequest } from './host-protocol';

const RequestSchema = v.strictObject({
  v: v.number(),
  argv: v.pipe(v.array(v.pipe(v.string(), v.maxLength(64 * 1024))), v.maxLength(4096)),
  cwd: v.pipe(v.string(), v.check((p) => path.isAbsolute(p), 'cwd is not an absolute path')),
  env: v.record(v.string(), v.string()),
  isTTY: v.boolean(),
});

export interface CliHostOptions {
  stateDir: string;
  /** What runs each command line: runCli (given, not imported: main.ts loads the commands, one of which starts this host). */
  run: CliRunner;
  /** A VM's service (and its connections) is closed after this long without a command (default 10 min). */
  idleMs?: number;
  /** One line per failure the host itself meets (not the commands' output: that goes to the caller). */
  log?(line: string): void;
}

export interface CliHost {
  readonly socket: string;
  readonly stateDir: string;
  /** How many commands it has run (handed-back ones not counted). */
  readonly commandsRun: number;
  /** Stops taking commands, waits for the running ones, closes every service, removes the socket. */
  close(): Promise<void>;
}

interface PoolEntry {
  service: Service;
  /** Commands using it now. */
  holders: number;
  idle?: NodeJS.Timeout;
}

/** One service per set of options, lent to every command that asks for it, closed after idleMs unused. */
export class ServicePool implements ServiceSource {
  private readonly entries = new Map<string, PoolEntry>();
  private closed = false;

  constructor(private readonly idleMs: number, private readonly make: (o: ServiceOptions) => Service = createService) {}

  acquire(options: ServiceOptions): ServiceLease {
    if (this.closed) throw new Error('the Tidemark host is stopping');
    const key = JSON.stringify(options);
    const entry = this.entries.get(key) ?? { service: this.make(options), holders: 0 };
    this.entries.set(key, entry);
    clearTimeout(entry.idle);
    entry.holders++;
    let released = false;
    return {
      service: entry.service,
      release: () => {
        if (released) return;
        released = true;
        entry.holders--;
        if (entry.holders === 0 && !this.closed) entry.idle = setTimeout(() => this.drop(key, entry), this.idleMs).unref();
      },
    };
  }

  private drop(key: string, e: PoolEntry): void {
    if (this.entries.get(key) !== e || e.holders > 0) return;
    this.entries.delete(key);
    void e.service.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.entries.values()];
    this.entries.clear();
    // The host waited for its running commands before this (CliHost.close).
    await Promise.all(all.map(async (e) => {
      clearTimeout(e.idle);
      await e.service.close().catch(() => undefined);
    }));
  }
}

/** Whether something answers on `socket` (a host is running there). */
function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socket);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/**
 * Makes <state dir>/run/cli.sock free to listen on: refuses when a host answers there, or when the
 * path holds anything but a socket (not ours to delete); a socket nobody listens on is a host's that
 * died, and is removed.
 */
async function claimSocket(socket: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(socket);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) throw new Error(`${socket} exists and is not a socket; move it away to start the host`);
  if (await answers(socket)) throw new Error(`a Tidemark host already serves this state folder (${socket})`);
  fs.rmSync(socket, { force: true });
}

export async function startCliHost(options: CliHostOptions): Promise<CliHost> {
  const stateDir = path.resolve(options.stateDir);
  const socket = hostSocketPath(stateDir);
  // sun_path holds 108 bytes on Linux: a longer path would be cut short by the kernel.
  if (Buffer.byteLength(socket) > 107) throw new Error(`the host's socket path is too long for a unix socket (${Buffer.byteLength(socket)} bytes, at most 107): ${socket}; use a shorter --state-dir`);
  mkdirPrivate(stateDir);
  mkdirPrivate(path.dirname(socket));
  await claimSocket(socket);
  const pool = new ServicePool(options.idleMs ?? 10 * 60_000);
  const running = new Set<Promise<void>>();
  const sockets = new Set<net.Socket>();
  /** Connections whose command has not arrived yet: closing the host closes them (nothing ran). */
  const waiting = new Set<net.Socket>();
  const log = options.log ?? (() => undefined);
  const counter = { ran: 0 };
  const server = net.createServer((conn) => {
    sockets.add(conn);
    waiting.add(conn);
    conn.on('close', () => {
      sockets.delete(conn);
      waiting.delete(conn);
    });
    const started = () => void waiting.delete(conn);
    const run = serveConnection(conn, { stateDir, pool, log, counter, runCli: options.run, started }).finally(() => running.delete(run));
    running.add(run);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
  fs.chmodSync(socket, 0o600);
  const ino = fs.statSync(socket).ino;
  let closing: Promise<void> | undefined;
  return {
    socket,
    stateDir,
    get commandsRun() {
      return counter.ran;
    },
    close: () => (closing ??= (async () => {
      // server.close() calls back once every connection has ended: stop listening, drop the callers
      // that never sent a command, let the running commands end, then end what is left.
      const stopped = new Promise<void>((r) => server.close(() => r()));
      for (const s of waiting) s.destroy();
      await Promise.all([...running]);
      for (const s of sockets) s.destroy();
      await stopped;
      await pool.close();
      // Only the socket this host made (a host started since would have its own).
      const st = fs.statSync(socket, { throwIfNoEntry: false });
      if (st?.isSocket() && st.ino === ino) fs.rmSync(socket, { force: true });
    })()),
  };
}

interface Serving {
  stateDir: string;
  pool: ServicePool;
  log(line: string): void;
  counter: { ran: number };
  runCli: CliRunner;
  /** The command arrived (the connection is no longer one that closing the host may drop). */
  started(): void;
}

/** Reads one request from `conn`, runs it, streams the output back, ends with its exit status. */
async function serveConnection(conn: net.Socket, { stateDir, pool, log, counter, runCli, started }: Serving): Promise<void> {
  conn.setEncoding('utf8');
  let open = true;
  conn.on('close', () => (open = false));
  conn.on('error', () => (open = false));
  const send = (f: HostFrame) => {
    if (open) conn.write(`${JSON.stringify(f)}\n`);
  };
  const interrupts = new Set<() => void>();
  const interrupt = () => {
    for (const h of [...interrupts]) h();
  };
  const request = await new Promise<HostRequest | undefined>((resolve) => {
    let got = false;
    const reader = new LineReader((line) => {
      if (!got) {
        got = true;
        resolve(parseRequest(line, (why) => send({ error: why })));
      } else if (isInterrupt(line)) interrupt();
    });
    conn.on('data', (chunk: string) => {
      try {
        reader.push(chunk);
      } catch (e) {
        send({ error: `malformed request: ${(e as Error).message}` });
        conn.end();
        if (!got) resolve(undefined);
      }
    });
    // The caller went away (killed, or its terminal closed): as its Ctrl-C, so a job it started is cancelled.
    conn.on('close', () => {
      if (!got) resolve(undefined);
      interrupt();
    });
  });
  if (!request) return void conn.end();
  started();
  const env = Object.fromEntries(FORWARDED_ENV.filter((k) => request.env[k] !== undefined).map((k) => [k, request.env[k]!]));
  if (!sameStateDir(request, env, stateDir)) {
    send({ local: true });
    return void conn.end();
  }
  const io: CliIo = {
    stdout: (text) => send({ out: text }),
    stderr: (text) => send({ err: text }),
    isTTY: request.isTTY,
    env,
    cwd: request.cwd,
    onInterrupt: (h) => {
      interrupts.add(h);
      return () => void interrupts.delete(h);
    },
  };
  try {
    const code = await runCli(request.argv, io, { source: pool });
    if (code !== RUN_LOCALLY) counter.ran++;
    send(code === RUN_LOCALLY ? { local: true } : { exit: code });
  } catch (e) {
    // runCli reports every command's failure itself; this is the host failing.
    log(`host: ${(e as Error).message}`);
    send({ error: `the Tidemark host failed: ${(e as Error).message}` });
  }
  conn.end();
}

function isInterrupt(line: string): boolean {
  try {
    return (JSON.parse(line) as { interrupt?: unknown }).interrupt === true;
  } catch {
    return false;
  }
}

function parseRequest(line: string, refuse: (why: string) => void): HostRequest | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    refuse('malformed request: not JSON');
    return undefined;
  }
  const r = v.safeParse(RequestSchema, raw);
  if (!r.success) {
    const issue = r.issues[0];
    refuse(`malformed request: ${v.getDotPath(issue) ?? 'request'}: ${issue.message}`);
    return undefined;
  }
  if (r.output.v !== HOST_PROTOCOL) {
    refuse(`this Tidemark host speaks protocol ${HOST_PROTOCOL}, the caller ${r.output.v}: restart the host after an upgrade`);
    return undefined;
  }
  return r.output;
}

/** The command's state dir is the host's: else it runs in the caller's process. */
function sameStateDir(request: HostRequest, env: NodeJS.ProcessEnv, stateDir: string): boolean {
  try {
    return resolveStateDir(parseGlobal(request.argv).global.stateDir, env, request.cwd) === stateDir;
  } catch {
    return true; // a usage error: runCli reports it
  }
}
