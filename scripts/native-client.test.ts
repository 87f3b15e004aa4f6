// The native thin client (bin/tidemark-client.c) against a stand-in host on a real unix socket: for
// the same command line it sends the request host-client.ts sends, finds the socket where
// resolveStateDir puts it, and for the same replies prints the same bytes and ends with the same status
// and messages; it runs the launcher whenever the command is not the host's, forwards Ctrl-C, and
// gives up after three. Then bin/tidemark: which of the client and bin/tidemark.js it runs.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runInHost, type ClientIo } from '../electron/cli/host-client';
import { hostSocketPath } from '../electron/cli/host-protocol';
import { resolveStateDir } from '../electron/engine/statedir';
// @ts-expect-error: a plain .mjs script without types
import { buildNativeClient } from './build-native-client.mjs';

const root = path.join(__dirname, '..');
let dir: string;
let client: string;
let launcher: string;
const servers: net.Server[] = [];

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-nc-'));
  client = path.join(dir, 'tidemark-client');
  expect(buildNativeClient(client), 'the compiler warned').toBe('');
  launcher = path.join(dir, 'launcher.sh');
  fs.writeFileSync(launcher, '#!/bin/sh\nprintf "launcher"; printf " [%s]" "$@"\n', { mode: 0o755 });
}, 60_000);
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

type Reply = (conn: net.Socket, request: string) => void;

/** A stand-in host on `stateDir`'s socket: records each request line and answers with `reply`. */
async function fakeHost(stateDir: string, reply: Reply): Promise<{ requests: string[]; lines: string[] }> {
  const seen = { requests: [] as string[], lines: [] as string[] };
  fs.mkdirSync(path.join(stateDir, 'run'), { recursive: true });
  const server = net.createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('error', () => undefined);
    conn.on('data', (d: string) => {
      buf += d;
      for (let nl; (nl = buf.indexOf('\n')) >= 0; buf = buf.slice(nl + 1)) {
        const line = buf.slice(0, nl);
        seen.lines.push(line);
        if (seen.lines.length === 1 || !line.includes('interrupt')) {
          seen.requests.push(line);
          reply(conn, line);
        }
      }
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(hostSocketPath(stateDir), r));
  return seen;
}

const frames = (conn: net.Socket, ...fs_: object[]) => conn.write(fs_.map((f) => `${JSON.stringify(f)}\n`).join(''));

interface Ran {
  code: number | null;
  out: Buffer;
  err: string;
}

/** The native client run as bin/tidemark runs it. */
function native(argv: string[], env: NodeJS.ProcessEnv = {}, cwd = dir): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(client, [launcher, ...argv], { cwd, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => resolve({ code, out: Buffer.concat(out), err }));
  });
}

/** host-client.ts in this process, for the same command line. */
async function node(argv: string[], env: NodeJS.ProcessEnv = {}, cwd = dir): Promise<{ code: number | undefined; out: Buffer; err: string }> {
  let out = '';
  let err = '';
  const io: ClientIo = { stdout: (t) => void (out += t), stderr: (t) => void (err += t), isTTY: false, env, cwd, onInterrupt: () => () => undefined };
  const code = await runInHost(argv, io);
  // as process.stderr.write encodes it (a lone surrogate as U+FFFD)
  return { code, out: Buffer.from(out, 'utf8'), err: Buffer.from(err, 'utf8').toString('utf8') };
}

describe('the native client', () => {
  it('sends the request host-client.ts sends: arguments, folder and the forwarded environment, escaped alike', async () => {
    const state = path.join(dir, 'req');
    const seen = await fakeHost(state, (c) => frames(c, { exit: 0 }));
    const tricky = ['naïve "quoted" \\ back/slash', 'line\nbreak\ttab\r\u0001\u001f\u007f', '🦀 日本', '--x=y', ''];
    const argv = [`--state-dir=${path.relative(dir, state)}/../req/.`, 'backup-begin', ...tricky];
    const env = { HOME: '/home/who "ever"', TIDEMARK_DEBUG: '0', XDG_DATA_HOME: '/x\ny', NOT_FORWARDED: 'secret' };
    expect((await native(argv, env)).code).toBe(0);
    expect((await node(argv, env)).code).toBe(0);
    expect(seen.requests).toHaveLength(2);
    const [mine, theirs] = seen.requests.map((l) => JSON.parse(l) as unknown);
    expect(mine).toEqual(theirs);
    expect(JSON.stringify(mine)).not.toContain('secret');
  });

  it('finds the host where resolveStateDir puts the state folder', async () => {
    const home = path.join(dir, 'home');
    const cases: [string, NodeJS.ProcessEnv, string[]][] = [
      ['TIDEMARK_STATE_DIR, relative', { TIDEMARK_STATE_DIR: 'sd/a/../b', HOME: home }, []],
      ['XDG_DATA_HOME', { XDG_DATA_HOME: `${dir}//xdg/./`, HOME: home }, []],
      ['a relative XDG_DATA_HOME is ignored', { XDG_DATA_HOME: 'rel', HOME: `${home}/` }, []],
      ['HOME', { HOME: `${home}//a/..` }, []],
      ['--state-dir before other global options', { HOME: home }, ['-c', 'qemu:///x', '--state-dir', 'sd2', '--domain=d']],
      ['a blank --state-dir', { TIDEMARK_STATE_DIR: `${dir}/sd3`, HOME: home }, ['--state-dir', ' ']],
    ];
    for (const [what, env, globals] of cases) {
      // resolveStateDir takes the home folder from os.homedir(), which is the caller's $HOME
      const state = env.XDG_DATA_HOME?.startsWith('/') || env.TIDEMARK_STATE_DIR || globals.includes('--state-dir')
        ? resolveStateDir(globals.includes('--state-dir') ? globals[globals.indexOf('--state-dir') + 1] : undefined, env, dir)
        : path.join(home, '.local', 'share', 'tidemark');
      const seen = await fakeHost(state, (c) => frames(c, { out: 'host\n' }, { exit: 3 }));
      const r = await native([...globals, 'checkpoint-list'], env);
      expect({ what, code: r.code, out: r.out.toString() }).toEqual({ what, code: 3, out: 'host\n' });
      expect(seen.requests, what).toHaveLength(1);
      for (const s of servers.splice(0)) s.close();
    }
  });

  it('prints what the host sends byte for byte as host-client.ts does, and ends with its status', async () => {
    const state = path.join(dir, 'out');
    const texts = ['plain ', 'é ü 日本 🦀', '\u0000\u001f"\\/\b\f\n\r\t', 'lone \ud800 and \udc00 surrogates', 'x'.repeat(300_000)];
    await fakeHost(state, (c) => frames(c, ...texts.map((t, i) => (i % 2 ? { err: t } : { out: t })), { exit: 300 }));
    const argv = ['--state-dir', state, 'backup-list'];
    const [mine, theirs] = [await native(argv), await node(argv)];
    expect(theirs.code).toBe(300);
    expect(mine.code).toBe(300 & 0xff); // as Node's process.exitCode = 300
    expect(mine.out.equals(theirs.out)).toBe(true);
    expect(mine.err).toBe(theirs.err);
    expect(mine.err).toContain('\ufffd and \ufffd');
  });

  it('reports the host\'s errors, malformed replies and a lost connection as host-client.ts does, with status 1', async () => {
    const replies: [string, Reply][] = [
      ['an error frame', (c) => frames(c, { out: 'partial\n' }, { error: 'the Tidemark host failed: boom' })],
      ['not JSON', (c) => c.write('nonsense\n')],
      ['an unknown frame', (c) => frames(c, { out: 5 })],
      ['an exit status that is no number', (c) => frames(c, { exit: '3' })],
      ['a closed connection', (c) => frames(c, { out: 'half' }) && c.end()],
    ];
    for (const [what, reply] of replies) {
      const state = path.join(dir, `bad-${replies.findIndex(([w]) => w === what)}`);
      await fakeHost(state, reply);
      const argv = ['--state-dir', state, 'backup-begin'];
      const [mine, theirs] = [await native(argv), await node(argv)];
      expect({ what, code: mine.code, out: mine.out.toString(), err: mine.err }).toEqual({ what, code: 1, out: theirs.out.toString(), err: theirs.err });
      expect(theirs.err, what).toMatch(/^error: /);
    }
  });

  it('refuses a line longer than a frame can be', async () => {
    const state = path.join(dir, 'long');
    await fakeHost(state, (c) => c.write('{"out":"' + 'y'.repeat(4 * 1024 * 1024)));
    const r = await native(['--state-dir', state, 'backup-list']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: the Tidemark host \(.*cli\.sock\) sent a line longer than \d+ bytes\n$/);
  });

  it('runs the launcher, with the same arguments, when the command is not the host\'s', async () => {
    const state = path.join(dir, 'local');
    const seen = await fakeHost(state, (c) => frames(c, { local: true }));
    const launched = (r: Ran) => ({ code: r.code, out: r.out.toString(), err: r.err });
    const argv = ['--state-dir', state, 'lab', 'start', 'a b'];
    expect(launched(await native(argv))).toEqual({ code: 0, out: `launcher [--state-dir] [${state}] [lab] [start] [a b]`, err: '' });
    expect(seen.requests).toHaveLength(1);
    // TIDEMARK_HOST=off, and a command line the client does not read: never connects
    expect(launched(await native(argv, { TIDEMARK_HOST: 'off' })).out).toMatch(/^launcher /);
    expect(launched(await native(['--bogus', '--state-dir', state, 'x'])).out).toBe(`launcher [--bogus] [--state-dir] [${state}] [x]`);
    expect(launched(await native(['--state-dir']))).toEqual({ code: 0, out: 'launcher [--state-dir]', err: '' });
    expect(seen.requests).toHaveLength(1);
    // no host, and a socket nobody listens on (a host that died)
    expect(launched(await native(['--state-dir', path.join(dir, 'nohost'), 'x'])).out).toMatch(/^launcher /);
    const dead = path.join(dir, 'dead');
    fs.mkdirSync(path.join(dir, 'dead', 'run'), { recursive: true });
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(hostSocketPath(dead), r));
    const inode = fs.statSync(hostSocketPath(dead)).ino;
    fs.renameSync(hostSocketPath(dead), `${hostSocketPath(dead)}.kept`);
    s.close();
    fs.renameSync(`${hostSocketPath(dead)}.kept`, hostSocketPath(dead));
    expect(fs.lstatSync(hostSocketPath(dead)).ino).toBe(inode);
    expect(launched(await native(['--state-dir', dead, 'x']))).toEqual({ code: 0, out: 'launcher [--state-dir] [' + dead + '] [x]', err: '' });
    // a missing launcher is an error that names it
    const r = spawnSync(client, [path.join(dir, 'missing.js'), '--state-dir', path.join(dir, 'nohost')], { encoding: 'utf8' });
    expect(r.status).toBe(127);
    expect(r.stderr).toContain(`cannot run ${path.join(dir, 'missing.js')}`);
  });

  it('forwards Ctrl-C to the host, and after the third stops waiting', async () => {
    const state = path.join(dir, 'int');
    const seen = await fakeHost(state, () => undefined);
    const waitFor = async (n: number) => {
      for (let i = 0; i < 200 && seen.lines.length < n; i++) await new Promise((r) => setTimeout(r, 25));
      expect(seen.lines.length).toBeGreaterThanOrEqual(n);
    };
    const once = spawn(client, [launcher, '--state-dir', state, 'backup-begin'], { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitFor(1);
    once.kill('SIGINT');
    await waitFor(2);
    expect(JSON.parse(seen.lines[1]!)).toEqual({ interrupt: true });
    expect(once.exitCode).toBeNull(); // still waiting for the host's answer
    once.kill('SIGKILL');

    seen.lines.length = 0;
    const thrice = spawn(client, [launcher, '--state-dir', state, 'backup-begin'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    thrice.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const ended = new Promise<number | null>((r) => thrice.on('close', r));
    await waitFor(1);
    for (let press = 1; press <= 3; press++) {
      thrice.kill('SIGINT');
      if (press < 3) await waitFor(1 + press);
    }
    expect(await ended).toBe(1);
    expect(err).toBe(`error: interrupted; the Tidemark host (${hostSocketPath(state)}) cancels what it can of the command\n`);
  });
});

describe('bin/tidemark', () => {
  /** A temp checkout with bin/tidemark, stand-ins for bin/tidemark.js and the built client that say which ran. */
  function checkout(name: string, built = true): string {
    const co = path.join(dir, name);
    fs.mkdirSync(path.join(co, 'bin'), { recursive: true });
    fs.mkdirSync(path.join(co, 'out', 'cli'), { recursive: true });
    fs.copyFileSync(path.join(root, 'bin', 'tidemark'), path.join(co, 'bin', 'tidemark'));
    fs.writeFileSync(path.join(co, 'bin', 'tidemark.js'), '#!/bin/sh\nprintf "node %s" "$*"\n', { mode: 0o755 });
    fs.writeFileSync(path.join(co, 'bin', 'tidemark-client.c'), '');
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(path.join(co, 'bin', 'tidemark-client.c'), past, past);
    if (built) fs.writeFileSync(path.join(co, 'out', 'cli', 'tidemark-client'), '#!/bin/sh\nprintf "client %s" "$*"\n', { mode: 0o755 });
    return co;
  }
  const run = (cmd: string, env: NodeJS.ProcessEnv = {}) => {
    const base = { ...process.env };
    delete base.TIDEMARK_CLI_MODE;
    delete base.TIDEMARK_HOST;
    const r = spawnSync(cmd, ['x', 'y z'], { encoding: 'utf8', env: { ...base, ...env } });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  };

  it('runs the built client, handing it bin/tidemark.js, also when run through a link', () => {
    const co = checkout('front');
    expect(run(path.join(co, 'bin', 'tidemark'))).toBe(`client ${co}/bin/../bin/tidemark.js x y z`.replace('/bin/../bin/', '/bin/'));
    const link = path.join(dir, 'links', 'tidemark');
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(co, 'bin', 'tidemark'), link);
    expect(run(link)).toBe(`client ${co}/bin/tidemark.js x y z`);
  });

  it('runs bin/tidemark.js when no client is built, the client is older than its source, or the caller says so', () => {
    expect(run(path.join(checkout('unbuilt', false), 'bin', 'tidemark'))).toBe('node x y z');
    const stale = checkout('stale');
    fs.writeFileSync(path.join(stale, 'bin', 'tidemark-client.c'), 'edited');
    const built = new Date(Date.now() - 30_000);
    fs.utimesSync(path.join(stale, 'out', 'cli', 'tidemark-client'), built, built);
    expect(run(path.join(stale, 'bin', 'tidemark'))).toBe('node x y z');
    const co = checkout('forced');
    expect(run(path.join(co, 'bin', 'tidemark'), { TIDEMARK_HOST: 'off' })).toBe('node x y z');
    expect(run(path.join(co, 'bin', 'tidemark'), { TIDEMARK_CLI_MODE: 'bundle' })).toBe('node x y z');
  });
});
