// The thin client: when a resident host (`tidemark host`, host-server.ts) serves this state folder,
// bin/tidemark.js hands the command line to it and prints what comes back, instead of loading the
// engine. Its own small bundle (out/cli/client.cjs): it must cost next to nothing when no host runs.
// TIDEMARK_HOST=off always runs commands in this process. bin/tidemark runs its C twin first
// (bin/tidemark-client.c, no Node start), which falls back to bin/tidemark.js and so to this one.

import * as fs from 'node:fs';
import * as net from 'node:net';
import { resolveStateDir } from '../engine/statedir';
import { parseGlobal } from './global-options';
import { FORWARDED_ENV, HOST_PROTOCOL, hostSocketPath, LineReader, type HostRequest } from './host-protocol';

export interface ClientIo {
  stdout(text: string): void;
  stderr(text: string): void;
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Calls `handler` on Ctrl-C until the returned function is called. */
  onInterrupt(handler: () => void): () => void;
}

/** After this many Ctrl-C the client stops waiting for the host (which then cancels, as for a closed caller). */
const GIVE_UP_AFTER_INTERRUPTS = 3;

/** The host's socket for this command line, or undefined when none is there (or the line does not parse: the CLI reports it). */
export function hostSocketFor(argv: readonly string[], env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  if (env.TIDEMARK_HOST === 'off') return undefined;
  try {
    const socket = hostSocketPath(resolveStateDir(parseGlobal(argv).global.stateDir, env, cwd));
    return fs.lstatSync(socket, { throwIfNoEntry: false })?.isSocket() ? socket : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs `argv` in the host: resolves to its exit status, or undefined when the command is to run in
 * this process (no host answers, or the host says so). Once the host took the command, a lost
 * connection is an error: the command may have run, so it is never run a second time here.
 */
export function runInHost(argv: readonly string[], io: ClientIo): Promise<number | undefined> {
  const socket = hostSocketFor(argv, io.env, io.cwd);
  if (socket === undefined) return Promise.resolve(undefined);
  const request: HostRequest = {
    v: HOST_PROTOCOL,
    argv: [...argv],
    cwd: io.cwd,
    env: Object.fromEntries(FORWARDED_ENV.filter((k) => io.env[k] !== undefined).map((k) => [k, io.env[k]!])),
    isTTY: io.isTTY,
  };
  return new Promise((resolve) => {
    const conn = net.connect(socket);
    let sent = false;
    let done = false;
    let interrupts = 0;
    const finish = (code: number | undefined) => {
      if (done) return;
      done = true;
      offInterrupt();
      conn.destroy();
      resolve(code);
    };
    const fail = (why: string) => {
      io.stderr(`error: ${why}\n`);
      finish(1);
    };
    const offInterrupt = io.onInterrupt(() => {
      if (++interrupts >= GIVE_UP_AFTER_INTERRUPTS) return fail(`interrupted; the Tidemark host (${socket}) cancels what it can of the command`);
      if (sent) conn.write('{"interrupt":true}\n');
    });
    const reader = new LineReader((line) => {
      let f: Record<string, unknown>;
      try {
        f = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return fail(`the Tidemark host (${socket}) sent a malformed reply`);
      }
      if (typeof f.out === 'string') io.stdout(f.out);
      else if (typeof f.err === 'string') io.stderr(f.err);
      else if (typeof f.exit === 'number' && Number.isInteger(f.exit)) finish(f.exit);
      else if (f.local === true) finish(undefined);
      else if (typeof f.error === 'string') fail(f.error);
      else fail(`the Tidemark host (${socket}) sent a malformed reply`);
    });
    conn.setEncoding('utf8');
    conn.once('connect', () => {
      sent = true;
      conn.write(`${JSON.stringify(request)}\n`);
    });
    conn.on('data', (chunk: string) => {
      try {
        reader.push(chunk);
      } catch (e) {
        fail(`the Tidemark host (${socket}) sent ${(e as Error).message}`);
      }
    });
    // Before the request is sent nothing ran: no host listens (a stale socket), so run here.
    conn.on('error', () => undefined);
    conn.on('close', () => {
      if (done) return;
      if (!sent) finish(undefined);
      else fail(`the Tidemark host (${socket}) closed the connection before the command ended; it may have run in part: check before running it again`);
    });
  });
}
