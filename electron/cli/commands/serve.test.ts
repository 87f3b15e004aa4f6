import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseServeArgs, runServe, startServe } from './serve';

describe('parseServeArgs', () => {
  it('reads every option, in both --flag value and --flag=value forms', () => {
    expect(parseServeArgs([])).toEqual({ open: true, demo: 'if-unconfigured' });
    expect(parseServeArgs(['--port', '8123', '--state-dir', '/tmp/s', '--no-open', '--demo'])).toEqual({ port: 8123, stateDir: '/tmp/s', open: false, demo: 'always' });
    expect(parseServeArgs(['--port=0', '--state-dir=/x', '--no-demo'])).toEqual({ port: 0, stateDir: '/x', open: true, demo: 'never' });
  });
  it.each([
    [['--port'], '--port needs a value'],
    [['--port', 'abc'], '--port must be a number from 0 to 65535, got "abc"'],
    [['--port', '70000'], '--port must be a number from 0 to 65535, got "70000"'],
    [['--port', '-1'], '--port must be a number from 0 to 65535, got "-1"'],
    [['--state-dir='], '--state-dir needs a value'],
    [['--bogus'], 'unknown option --bogus'],
    [['extra'], 'unexpected argument "extra"'],
    [['--demo', '--no-demo'], 'give --demo or --no-demo, not both'],
  ])('%j → %s', (argv, message) => {
    expect(() => parseServeArgs(argv)).toThrow(message);
  });
});

describe('runServe', () => {
  it('prints usage on --help and exits 0; a usage error exits 2 with one error line first', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    expect(await runServe(['--help'], io)).toBe(0);
    expect(out[0]).toMatch(/^usage: tidemark serve/);
    expect(await runServe(['--port', 'x'], io)).toBe(2);
    expect(err[0]).toBe('error: --port must be a number from 0 to 65535, got "x"');
  });
});

describe('tidemark serve in the CLI', () => {
  async function cli(argv: string[]) {
    const { runCli } = await import('../main');
    let stdout = '';
    let stderr = '';
    const code = await runCli(argv, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), isTTY: false, env: {} });
    return { code, stdout, stderr };
  }
  it('is listed in help with its options', async () => {
    expect((await cli(['help'])).stdout).toMatch(/Web UI:\n\s+serve\s+Serve the Tidemark UI/);
    const help = await cli(['help', 'serve']);
    for (const o of ['--port N', '--no-open', '--demo', '--no-demo']) expect(help.stdout).toContain(o);
  });
  it('refuses bad options with a usage error (exit 2) before starting anything', async () => {
    expect(await cli(['serve', '--port', 'x'])).toMatchObject({ code: 2, stderr: 'error: --port must be a number from 0 to 65535, got "x"\n' });
    expect(await cli(['serve', '--demo', '--no-demo'])).toMatchObject({ code: 2, stderr: 'error: give --demo or --no-demo, not both\n' });
  });
});

describe('startServe', () => {
  it('prints the address with its one-time code, and opens the browser on the plain login page (no secret in argv)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-serve-'));
    const bin = path.join(dir, 'bin');
    const argvFile = path.join(dir, 'xdg-open-argv');
    fs.mkdirSync(bin);
    // A stand-in xdg-open that records its arguments.
    fs.writeFileSync(path.join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$@" > '${argvFile}.tmp' && mv '${argvFile}.tmp' '${argvFile}'\n`, { mode: 0o755 });
    const out: string[] = [];
    const host = await startServe({ stateDir: path.join(dir, 'state'), port: 0, open: true, demo: 'never' }, { out: (l) => out.push(l), err: (l) => out.push(l), env: { PATH: `${bin}:/usr/bin:/bin`, DISPLAY: ':0' } });
    try {
      expect(out[0]).toBe(`Tidemark is serving on ${host.origin}/#code=${host.code}`);
      expect(host.code).toMatch(/^[\w-]{43}$/);
      const end = Date.now() + 10_000;
      while (!fs.existsSync(argvFile) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(fs.readFileSync(argvFile, 'utf8')).toBe(`${host.origin}/\n`);
    } finally {
      await host.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
