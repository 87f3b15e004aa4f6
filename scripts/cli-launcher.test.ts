// What bin/tidemark.js runs and what scripts/build-cli.mjs builds for it: a stale bundle is never run
// (an input edited after the build, or gone), a fresh one is (ASCII or not, with its code cache), and
// the built bundle lists only real files as inputs, is ASCII, and loads no heavy Node built-in for --help.
// The launcher is run from a copy in a temp "checkout" whose bundle and compiled CLI are stand-ins that
// say which of them ran.

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..');
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-launcher-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A temp checkout: bin/tidemark.js, a bundle printing `bundleText`, its inputs (src/a.ts, src/b.ts), a compiled CLI. */
function checkout(name: string, bundleText: string): string {
  const co = path.join(dir, name);
  for (const d of ['bin', 'out/cli', 'out/node/electron/cli', 'electron', 'shared', 'src']) fs.mkdirSync(path.join(co, d), { recursive: true });
  fs.copyFileSync(path.join(root, 'bin', 'tidemark.js'), path.join(co, 'bin', 'tidemark.js'));
  fs.writeFileSync(path.join(co, 'out/cli/tidemark.cjs'), `exports.main = () => process.stdout.write(${JSON.stringify(bundleText)} + ' ' + process.argv.slice(2).join(' '));\n`);
  fs.writeFileSync(path.join(co, 'out/node/electron/cli/main.js'), "exports.main = () => process.stdout.write('compiled');\n");
  const past = new Date(Date.now() - 60_000);
  for (const f of ['src/a.ts', 'src/b.ts']) {
    fs.writeFileSync(path.join(co, f), '');
    fs.utimesSync(path.join(co, f), past, past);
  }
  fs.writeFileSync(path.join(co, 'out/cli/tidemark.inputs.json'), JSON.stringify({ builtAt: Date.now() - 1_000, inputs: ['src/a.ts', 'src/b.ts'] }));
  return co;
}

/** This process's environment without the launcher's own switches, with `env` on top. */
function launcherEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base = { ...process.env };
  delete base.TIDEMARK_CLI_MODE;
  delete base.TIDEMARK_DEBUG;
  return { ...base, ...env };
}

function launch(co: string, env: NodeJS.ProcessEnv = {}, args = ['x', 'y']): string {
  const r = spawnSync(process.execPath, [path.join(co, 'bin', 'tidemark.js'), ...args], { encoding: 'utf8', env: launcherEnv(env) });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

describe('bin/tidemark.js', () => {
  it('runs a fresh bundle, and writes its code cache on the first run', () => {
    const co = checkout('fresh', 'bundle');
    expect(launch(co)).toBe('bundle x y');
    expect(fs.statSync(path.join(co, 'out/cli/tidemark.cjs.x.v8cache')).size).toBeGreaterThan(0);
    expect(launch(co)).toBe('bundle x y');
  });

  it('keeps one code cache per command, and one for help', () => {
    const co = checkout('caches', 'bundle');
    expect(launch(co, {}, ['--state-dir', 'S', '-c', 'unix:/x', 'checkpoint-list', '--name'])).toBe('bundle --state-dir S -c unix:/x checkpoint-list --name');
    expect(launch(co, {}, ['lab', 'start', '--help'])).toBe('bundle lab start --help');
    expect(launch(co, {}, ['--connect=unix:/x'])).toBe('bundle --connect=unix:/x');
    const caches = fs.readdirSync(path.join(co, 'out/cli')).filter((f) => f.endsWith('.v8cache')).sort();
    expect(caches).toEqual(['tidemark.cjs.checkpoint-list.v8cache', 'tidemark.cjs.help.v8cache']);
  });

  it('rewrites a command\'s code cache when a run used an optional part of the code it lacks, and only then', () => {
    const co = checkout('parts', 'bundle');
    // A stand-in bundle that names the parts "+name" arguments ask for, as electron/os/code-paths.ts does.
    fs.writeFileSync(path.join(co, 'out/cli/tidemark.cjs'), [
      'const used = new Set();',
      'exports.codePaths = () => [...used];',
      "exports.main = () => { for (const a of process.argv.slice(2)) if (a.startsWith('+')) used.add(a.slice(1)); process.stdout.write('bundle'); };",
    ].join('\n'));
    const cache = path.join(co, 'out/cli/tidemark.cjs.cmd.v8cache');
    /** The parts the cache file's header names, and when it was written. */
    const header = () => {
      const b = fs.readFileSync(cache);
      expect(b.toString('latin1', 0, 4)).toBe('TMC1');
      return { parts: b.toString('latin1', 6, 6 + b.readUInt16BE(4)), mtime: fs.statSync(cache).mtimeMs, size: b.length };
    };
    const run = (...args: string[]) => expect(launch(co, {}, ['cmd', ...args])).toBe('bundle');
    run();
    const first = header();
    expect(first.parts).toBe('');
    run();
    expect(header()).toEqual(first); // nothing new: not rewritten
    run('+nbd');
    expect(header().parts).toBe('nbd');
    const withNbd = header();
    run('+nbd');
    expect(header()).toEqual(withNbd);
    run('+pull-incremental');
    expect(header().parts).toBe('nbd,pull-incremental'); // added to what it held
    // A cache V8 rejects (garbage, or an older launcher's file with no header) is written anew.
    fs.writeFileSync(cache, 'not a code cache');
    run('+pull-incremental');
    expect(header().parts).toBe('pull-incremental');
  });

  it('reads a bundle that is not ASCII as UTF-8', () => {
    expect(launch(checkout('utf8', 'bündle ✓'))).toBe('bündle ✓ x y');
  });

  it('never runs a bundle whose input changed after the build, or is gone', () => {
    const edited = checkout('edited', 'bundle');
    fs.writeFileSync(path.join(edited, 'src/b.ts'), 'changed');
    expect(launch(edited)).toBe('compiled');
    const gone = checkout('gone', 'bundle');
    fs.rmSync(path.join(gone, 'src/a.ts'));
    expect(launch(gone)).toBe('compiled');
    const noStamp = checkout('nostamp', 'bundle');
    fs.writeFileSync(path.join(noStamp, 'out/cli/tidemark.inputs.json'), '{"inputs": "src/a.ts"}');
    expect(launch(noStamp)).toBe('compiled');
  });

  it('TIDEMARK_CLI_MODE and TIDEMARK_DEBUG=1 still run the bundle when asked', () => {
    const co = checkout('modes', 'bundle');
    expect(launch(co, { TIDEMARK_CLI_MODE: 'compiled' })).toBe('compiled');
    expect(launch(co, { TIDEMARK_DEBUG: '1' })).toBe('bundle x y');
    fs.writeFileSync(path.join(co, 'src/a.ts'), 'changed');
    expect(launch(co, { TIDEMARK_CLI_MODE: 'bundle' })).toBe('bundle x y');
  });
});

describe('bin/tidemark.js run as a program', () => {
  it('starts Node without NODE_EXTRA_CA_CERTS (its shebang), which Node would read and parse before any script', () => {
    const co = checkout('no-extra-ca', 'unused');
    fs.writeFileSync(path.join(co, 'out/cli/tidemark.cjs'), "exports.main = () => process.stdout.write(String(process.env.NODE_EXTRA_CA_CERTS));\n");
    const bin = path.join(co, 'bin', 'tidemark.js');
    fs.chmodSync(bin, 0o755);
    const env = launcherEnv({ NODE_EXTRA_CA_CERTS: path.join(dir, 'no-such-ca.pem') });
    // Node itself warns when it cannot load the file: what the program must not do.
    expect(spawnSync(process.execPath, ['-e', '0'], { encoding: 'utf8', env }).stderr).toContain('Ignoring extra certs');
    const r = spawnSync(bin, ['x'], { encoding: 'utf8', env });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('undefined');
    expect(r.stderr).not.toContain('extra certs');
  });
});

describe('bin/tidemark.js and a resident host', () => {
  /** A checkout whose thin client (out/cli/client.cjs) says it ran and answers `answer` (undefined: "run it here"). */
  function withClient(name: string, answer: number | undefined): string {
    const co = checkout(name, 'bundle');
    fs.writeFileSync(path.join(co, 'out/cli/client.cjs'), `exports.runInHost = (argv, io) => { io.stdout('client ' + argv.join(' ') + ' in ' + io.cwd + '; '); return Promise.resolve(${String(answer)}); };\n`);
    fs.writeFileSync(path.join(co, 'src/c.ts'), '');
    const past = new Date(Date.now() - 60_000);
    fs.utimesSync(path.join(co, 'src/c.ts'), past, past);
    const stamp = JSON.parse(fs.readFileSync(path.join(co, 'out/cli/tidemark.inputs.json'), 'utf8')) as { inputs: string[] };
    fs.writeFileSync(path.join(co, 'out/cli/tidemark.inputs.json'), JSON.stringify({ ...stamp, clientInputs: ['src/c.ts'] }));
    return co;
  }

  it('hands the command to the thin client first; the bundle runs only when the client says "here"', () => {
    expect(launch(withClient('host-ran', 0))).toBe(`client x y in ${process.cwd()}; `);
    expect(launch(withClient('host-local', undefined))).toBe(`client x y in ${process.cwd()}; bundle x y`);
  });

  it('never loads a stale thin client, nor any with TIDEMARK_HOST=off', () => {
    const stale = withClient('host-stale', 0);
    fs.writeFileSync(path.join(stale, 'src/c.ts'), 'changed');
    expect(launch(stale)).toBe('bundle x y');
    expect(launch(withClient('host-off', 0), { TIDEMARK_HOST: 'off' })).toBe('bundle x y');
    // a build from before the thin client existed: no clientInputs, no client.cjs
    expect(launch(checkout('host-none', 'bundle'))).toBe('bundle x y');
  });
});

describe('scripts/build-cli.mjs', () => {
  let out: string;
  beforeAll(() => {
    out = path.join(dir, 'build');
    execFileSync(process.execPath, [path.join(root, 'scripts', 'build-cli.mjs'), '--outdir', out], { cwd: root, stdio: 'pipe' });
  }, 120_000);

  it('lists as inputs only files of the checkout (a missing one would make every run stale)', () => {
    const stamp = JSON.parse(fs.readFileSync(path.join(out, 'tidemark.inputs.json'), 'utf8')) as { builtAt: number; inputs: string[] };
    expect(stamp.inputs).toContain('electron/cli/main.ts');
    for (const rel of stamp.inputs) expect(fs.statSync(path.join(root, rel)).isFile(), rel).toBe(true);
  });

  it('makes an ASCII bundle that prints help without loading child_process, crypto, net or the web host', () => {
    const bundle = path.join(out, 'tidemark.cjs');
    expect(fs.readFileSync(bundle).every((b) => b < 0x80)).toBe(true);
    const listFile = path.join(dir, 'loaded.json');
    const script = `require(${JSON.stringify(bundle)}).main().then(() => require('fs').writeFileSync(${JSON.stringify(listFile)}, JSON.stringify(process.moduleLoadList)));`;
    // output to files: a pipe would be a net.Socket, loading net itself
    const outFile = path.join(dir, 'help.txt');
    const fd = fs.openSync(outFile, 'w');
    spawnSync(process.execPath, ['-e', script, '--', 'argv1', '--help'], { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    expect(fs.readFileSync(outFile, 'utf8')).toContain('checkpoint-create-as');
    const loaded = JSON.parse(fs.readFileSync(listFile, 'utf8')) as string[];
    for (const m of ['child_process', 'crypto', 'net', 'http', 'tls', 'zlib']) expect(loaded).not.toContain(`NativeModule ${m}`);
  });
});
