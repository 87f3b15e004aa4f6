// The resident host and its thin client, without a VM: a command's output and exit status are the
// same as in-process, relative paths are the caller's, commands that must run in the caller's process
// are handed back, bad requests and replies get clear errors, and the socket is claimed and released
// only when it is the host's to claim. (host.itest.ts runs commands on a real QEMU VM through it.)

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runInHost, type ClientIo } from './host-client';
import { hostSocketPath, LineReader, MAX_FRAME_BYTES } from './host-protocol';
import { startCliHost, type CliHost } from './host-server';
import { runCli } from './main';

let dir: string;
let hosts: CliHost[] = [];
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-host-'));
});
afterEach(async () => {
  await Promise.all(hosts.map((h) => h.close()));
  hosts = [];
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function host(name: string): Promise<CliHost> {
  const h = await startCliHost({ stateDir: path.join(dir, name), idleMs: 60_000, run: runCli });
  hosts.push(h);
  return h;
}

interface Ran {
  code: number | undefined;
  out: string;
  err: string;
}

function io(cwd: string, env: NodeJS.ProcessEnv = {}): ClientIo & { ran: Ran } {
  const ran: Ran = { code: undefined, out: '', err: '' };
  return { ran, stdout: (t) => void (ran.out += t), stderr: (t) => void (ran.err += t), isTTY: false, env, cwd, onInterrupt: () => () => undefined };
}

async function viaHost(argv: string[], cwd = dir, env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  const c = io(cwd, env);
  c.ran.code = await runInHost(argv, c);
  return c.ran;
}

async function inProcess(argv: string[], cwd = dir): Promise<Ran> {
  const c = io(cwd);
  c.ran.code = await runCli(argv, { ...c, env: {} });
  return c.ran;
}

/** Sends raw bytes to the socket; resolves with everything the host answered. */
function raw(socket: string, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socket);
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (got += d));
    c.on('error', reject);
    c.on('close', () => resolve(got));
    c.write(data);
  });
}

describe('tidemark host: commands', () => {
  it('prints what the command prints in-process, with the same exit status', async () => {
    const h = await host('same');
    for (const argv of [['--state-dir', h.stateDir, 'lab', 'status'], ['--state-dir', h.stateDir, 'checkpoint-list', '--bogus'], ['--state-dir', h.stateDir, 'help', 'backup-begin']]) {
      const [a, b] = [await viaHost(argv), await inProcess(argv)];
      expect(a, argv.join(' ')).toEqual(b);
    }
    expect((await viaHost(['--state-dir', h.stateDir, 'checkpoint-list', '--bogus'])).code).toBe(2);
  });

  it('takes relative paths from the caller\'s folder, not its own', async () => {
    const h = await host('rel');
    const elsewhere = fs.mkdtempSync(path.join(dir, 'caller-'));
    const r = await viaHost(['--state-dir', h.stateDir, 'backup-list', '--repo', 'my-repo'], elsewhere);
    expect(r.code).toBe(1);
    expect(r.err).toContain(path.join(elsewhere, 'my-repo'));
    // a relative --state-dir that names the host's folder from there
    const rel = path.relative(elsewhere, h.stateDir);
    expect((await viaHost(['--state-dir', rel, 'lab', 'status'], elsewhere)).code).toBe(0);
  });

  it('hands back commands that run in the caller\'s process, and other state folders', async () => {
    const h = await host('local');
    expect(await viaHost(['--state-dir', h.stateDir, 'schedule', 'list'])).toEqual({ code: undefined, out: '', err: '' });
    expect(await viaHost(['--state-dir', h.stateDir, 'serve', '--no-open'])).toEqual({ code: undefined, out: '', err: '' });
    // TIDEMARK_STATE_DIR names another folder: no host there
    expect((await viaHost(['lab', 'status'], dir, { TIDEMARK_STATE_DIR: path.join(dir, 'other') })).code).toBeUndefined();
    expect((await viaHost(['lab', 'status'], dir, { TIDEMARK_STATE_DIR: h.stateDir })).code).toBe(0);
    expect((await viaHost(['--state-dir', h.stateDir, 'lab', 'status'], dir, { TIDEMARK_HOST: 'off' })).code).toBeUndefined();
  });
});

describe('tidemark host: its socket', () => {
  it('is private: the folder 0700, the socket 0600; close() removes it and the client runs in-process again', async () => {
    const h = await host('private');
    expect(h.socket).toBe(hostSocketPath(h.stateDir));
    expect(fs.statSync(path.dirname(h.socket)).mode & 0o777).toBe(0o700);
    expect(fs.statSync(h.socket).mode & 0o777).toBe(0o600);
    await h.close();
    expect(fs.existsSync(h.socket)).toBe(false);
    expect((await viaHost(['--state-dir', h.stateDir, 'lab', 'status'])).code).toBeUndefined();
  });

  it('stops although a caller connected and never sent its command (that connection is closed)', async () => {
    const h = await host('silent');
    const c = net.connect(h.socket);
    await new Promise((r) => c.once('connect', r));
    const closedByHost = new Promise((r) => c.once('close', r));
    await h.close();
    await closedByHost;
    expect(fs.existsSync(h.socket)).toBe(false);
  });

  it('refuses a second host on the same folder, and a path that is not a socket (left as it was)', async () => {
    const h = await host('twice');
    await expect(startCliHost({ stateDir: h.stateDir, run: runCli })).rejects.toThrow(/a Tidemark host already serves this state folder/);
    const notSocket = path.join(dir, 'file-there');
    fs.mkdirSync(path.join(notSocket, 'run'), { recursive: true });
    fs.writeFileSync(hostSocketPath(notSocket), 'precious');
    await expect(startCliHost({ stateDir: notSocket, run: runCli })).rejects.toThrow(/exists and is not a socket/);
    expect(fs.readFileSync(hostSocketPath(notSocket), 'utf8')).toBe('precious');
  });

  it('replaces the socket of a host that died (nobody listens), and the client runs in-process meanwhile', async () => {
    const stateDir = path.join(dir, 'stale');
    fs.mkdirSync(path.join(stateDir, 'run'), { recursive: true, mode: 0o700 });
    // a bound socket file with no listener, as a host killed with -9 leaves it
    execFileSync('python3', ['-c', 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])', hostSocketPath(stateDir)]);
    expect(fs.lstatSync(hostSocketPath(stateDir)).isSocket()).toBe(true);
    expect((await viaHost(['--state-dir', stateDir, 'lab', 'status'])).code).toBeUndefined();
    const h = await host('stale');
    expect((await viaHost(['--state-dir', h.stateDir, 'lab', 'status'])).code).toBe(0);
  });

  it('refuses a state folder whose socket path would not fit a unix socket address', async () => {
    await expect(startCliHost({ stateDir: path.join(dir, 'x'.repeat(120)), run: runCli })).rejects.toThrow(/too long for a unix socket/);
  });
});

describe('tidemark host: bad requests and bad replies', () => {
  it('answers a malformed request with an error naming what is wrong, and keeps serving', async () => {
    const h = await host('bad');
    expect(JSON.parse(await raw(h.socket, 'not json\n'))).toEqual({ error: 'malformed request: not JSON' });
    expect(JSON.parse(await raw(h.socket, '{"v":1,"argv":"lab status","cwd":"/","env":{},"isTTY":false}\n')).error).toMatch(/^malformed request: argv: /);
    expect(JSON.parse(await raw(h.socket, '{"v":1,"argv":[],"cwd":"rel","env":{},"isTTY":false}\n')).error).toBe('malformed request: cwd: cwd is not an absolute path');
    expect(JSON.parse(await raw(h.socket, '{"v":1,"argv":[],"cwd":"/","env":{},"isTTY":false,"extra":1}\n')).error).toMatch(/^malformed request: extra: /);
    expect(JSON.parse(await raw(h.socket, '{"v":99,"argv":[],"cwd":"/","env":{},"isTTY":false}\n')).error).toMatch(/speaks protocol 1, the caller 99: restart the host/);
    expect(JSON.parse((await raw(h.socket, 'x'.repeat(MAX_FRAME_BYTES + 10))).split('\n')[0]!).error).toMatch(/^malformed request: a line longer than/);
    expect((await viaHost(['--state-dir', h.stateDir, 'lab', 'status'])).code).toBe(0);
  });

  it('reads lines up to the limit, and refuses a longer one even when its end came in the same chunk', () => {
    const lines: number[] = [];
    const r = new LineReader((l) => lines.push(l.length));
    r.push(`${'a'.repeat(MAX_FRAME_BYTES)}\n\nb`);
    r.push('\n');
    expect(lines).toEqual([MAX_FRAME_BYTES, 1]);
    expect(() => new LineReader(() => undefined).push(`${'a'.repeat(MAX_FRAME_BYTES + 1)}\n`)).toThrow(`a line longer than ${MAX_FRAME_BYTES} bytes`);
  });

  /** A fake host on `stateDir`'s socket that answers every request with `reply` (then closes). */
  async function fakeHost(stateDir: string, reply: string): Promise<net.Server> {
    fs.mkdirSync(path.join(stateDir, 'run'), { recursive: true, mode: 0o700 });
    const server = net.createServer((c) => c.once('data', () => c.end(reply)));
    await new Promise<void>((r) => server.listen(hostSocketPath(stateDir), () => r()));
    return server;
  }

  it('the client: a host that goes away mid-command is an error (never a second run in-process), as is a garbage reply', async () => {
    for (const [reply, message] of [
      ['{"out":"half"}\n', /closed the connection before the command ended; it may have run in part/],
      ['garbage\n', /sent a malformed reply/],
      ['{"exit":"0"}\n', /sent a malformed reply/],
      ['{"error":"the Tidemark host failed: boom"}\n', /^error: the Tidemark host failed: boom/],
    ] as const) {
      const stateDir = fs.mkdtempSync(path.join(dir, 'fake-'));
      const server = await fakeHost(stateDir, reply);
      try {
        const r = await viaHost(['--state-dir', stateDir, 'lab', 'status']);
        expect(r.code, reply).toBe(1);
        expect(r.err, reply).toMatch(message);
      } finally {
        await new Promise((r) => server.close(r));
      }
    }
  });
});
