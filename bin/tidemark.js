#!/usr/bin/env -S -u NODE_EXTRA_CA_CERTS node
// The `tidemark` command. Runs, in this order of preference:
//  1. the bundled CLI, out/cli/tidemark.cjs (scripts/build-cli.mjs), when none of the sources it was
//     built from changed since (tidemark.inputs.json lists them); compiled with a V8 code cache;
//  2. the compiled CLI, out/node/electron/cli/main.js, when every source has an up-to-date .js;
//  3. the TypeScript sources through tsx, so `npx tidemark …` works in a checkout without a build.
// TIDEMARK_CLI_MODE=bundle|compiled|tsx forces one of them.
// The shebang starts Node without NODE_EXTRA_CA_CERTS: Node reads and parses that file before any
// script runs (~40 ms a start, bench/README.md "Phase 12"), and Tidemark never uses Node's CA store
// (NBD over TLS names its own CA; libvirt and ssh have their own). `env -S`: GNU coreutils ≥ 8.30.
'use strict';

const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const outDir = path.join(root, 'out', 'node');
const bundle = path.join(root, 'out', 'cli', 'tidemark.cjs');
const mode = process.env.TIDEMARK_CLI_MODE;

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/** out/cli/tidemark.inputs.json: when the bundles were built and from which sources (undefined: unreadable). */
function readStamp() {
  try {
    const stamp = JSON.parse(fs.readFileSync(path.join(root, 'out', 'cli', 'tidemark.inputs.json'), 'utf8'));
    return typeof stamp.builtAt === 'number' && Array.isArray(stamp.inputs) ? stamp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * True when `file` exists and none of `inputs` is newer than the build (or gone).
 * One stat per input (~190 for the bundle): plain string paths, and no exception for a missing file,
 * keep it at ~3 ms (path.join alone cost more than the stats).
 */
function builtFresh(stamp, inputs, file) {
  if (stamp === undefined || !Array.isArray(inputs) || mtime(file) < 0) return false;
  for (const rel of inputs) {
    let st;
    try {
      st = fs.statSync(`${root}/${rel}`, { throwIfNoEntry: false });
    } catch {
      return false;
    }
    if (st === undefined || st.mtimeMs >= stamp.builtAt) return false;
  }
  return true;
}

/** True when each non-test .ts under electron/ and shared/ has a newer .js in out/node. */
function compiledIsFresh() {
  const excluded = new Set([path.join('electron', 'main.ts'), path.join('electron', 'preload.ts')]);
  const stack = ['electron', 'shared'];
  while (stack.length > 0) {
    const rel = stack.pop();
    let entries;
    try {
      entries = fs.readdirSync(path.join(root, rel), { withFileTypes: true });
    } catch {
      return false;
    }
    for (const e of entries) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) {
        stack.push(r);
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !/\.i?test\.ts$/.test(e.name) && !excluded.has(r)) {
        const js = path.join(outDir, r.replace(/\.ts$/, '.js'));
        if (mtime(js) < mtime(path.join(root, r))) return false;
      }
    }
  }
  return true;
}

/**
 * Which code cache a run uses: a cache holds the functions compiled by the run that wrote it, so each
 * command has its own (the first word after the global options; "help" for any help), and a
 * checkpoint-create-as does not start from what `--help` compiled (~10 ms of CPU). A wrong guess only
 * costs compiling, never the result.
 */
function cacheKey(argv) {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-c' || a === '--connect' || a === '--domain' || a === '--state-dir') i++;
    else if (!a.startsWith('-')) return /^[a-z][a-z-]{0,39}$/.test(a) ? a : 'other';
  }
  return 'help';
}

const CACHE_MAGIC = 'TMC1';

/**
 * A code cache file: "TMC1", then the optional parts of the code the cache holds (electron/os/code-paths.ts:
 * comma-separated, after a 16-bit length), then V8's data. A file without the header (an older launcher's)
 * is V8's data holding no named part.
 */
function readCodeCache(file) {
  let b;
  try {
    b = fs.readFileSync(file);
  } catch {
    return { data: undefined, parts: [] };
  }
  if (b.length < 6 || b.toString('latin1', 0, 4) !== CACHE_MAGIC) return { data: b, parts: [] };
  const n = b.readUInt16BE(4);
  return { data: b.subarray(6 + n), parts: b.toString('latin1', 6, 6 + n).split(',').filter(Boolean) };
}

function writeCodeCache(file, parts, data) {
  const { Buffer } = require('buffer');
  const names = Buffer.from(parts.filter((p) => /^[a-z][a-z-]{0,39}$/.test(p)).join(','), 'latin1');
  const head = Buffer.alloc(6);
  head.write(CACHE_MAGIC, 0, 'latin1');
  head.writeUInt16BE(names.length, 4);
  const tmp = `${file}.${process.pid}`;
  try {
    fs.writeFileSync(tmp, Buffer.concat([head, names, data]), { mode: 0o644 });
    fs.renameSync(tmp, file); // atomic: a concurrent run reads the old cache or the new one
  } catch {
    try { fs.unlinkSync(tmp); } catch { /* nothing was written */ }
  }
}

/**
 * Loads the bundle (minified, so half the bytes to read) with a V8 code cache beside it: Node 22+ has
 * module.enableCompileCache; on Node 20 the bundle is compiled through vm.Script with cachedData, and the
 * cache (one per command, cacheKey) is (re)written at exit when it was missing or rejected (a rebuilt
 * bundle, another Node), or when the run used an optional part of the code it lacks (codePaths: a pull
 * after the first push, a large disk's push with its NBD map), which is then added to what it holds.
 * A cache that cannot be written (a read-only install) only costs the compile.
 */
function runBundle() {
  if (process.env.TIDEMARK_DEBUG === '1') {
    // The bundle is minified: with its source map (tidemark.cjs.map), stacks name the TypeScript sources.
    process.setSourceMapsEnabled(true);
    require(bundle).main();
    return;
  }
  const Module = require('module');
  if (typeof Module.enableCompileCache === 'function') {
    Module.enableCompileCache(path.join(root, 'out', 'cli', 'compile-cache'));
    require(bundle).main();
    return;
  }
  const vm = require('vm');
  const cacheFile = `${bundle}.${cacheKey(process.argv.slice(2))}.v8cache`;
  const cached = readCodeCache(cacheFile);
  // scripts/build-cli.mjs makes the bundle ASCII, which latin1 decodes to the same text several times
  // faster than UTF-8 (~5 vs ~15 ms at load); a bundle that is not (an edited build) is read as UTF-8.
  const bytes = fs.readFileSync(bundle);
  const source = require('buffer').isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  const script = new vm.Script(Module.wrap(source), { filename: bundle, cachedData: cached.data });
  const m = new Module(bundle, module);
  m.filename = bundle;
  m.paths = Module._nodeModulePaths(path.dirname(bundle));
  m.loaded = true;
  script.runInThisContext().call(m.exports, m.exports, (id) => m.require(id), m, bundle, path.dirname(bundle));
  process.once('exit', () => {
    const used = typeof m.exports.codePaths === 'function' ? m.exports.codePaths() : [];
    const fresh = cached.data === undefined || script.cachedDataRejected;
    const parts = fresh ? used : [...new Set([...cached.parts, ...used])];
    // Functions the old cache held were loaded from it, so the new one holds them and this run's too.
    if (fresh || parts.length > cached.parts.length) writeCodeCache(cacheFile, parts, script.createCachedData());
  });
  m.exports.main();
}

/**
 * When a resident host (`tidemark host`) serves the state folder, the command runs there
 * (electron/cli/host-client.ts) and this process only relays it; else, or when the host says the
 * command runs in its caller, `local` runs it here. TIDEMARK_HOST=off: always here.
 */
function hostOr(client, local) {
  if (process.env.TIDEMARK_HOST === 'off') return local();
  const io = {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    isTTY: Boolean(process.stderr.isTTY),
    env: process.env,
    cwd: process.cwd(),
    onInterrupt: (h) => {
      process.on('SIGINT', h);
      return () => process.off('SIGINT', h);
    },
  };
  client().runInHost(process.argv.slice(2), io).then((code) => {
    if (code === undefined) local();
    else process.exitCode = code;
  });
}

const compiled = path.join(outDir, 'electron', 'cli', 'main.js');
const clientBundle = path.join(root, 'out', 'cli', 'client.cjs');
const stamp = mode === undefined ? readStamp() : undefined;

/** Runs the command in this process, from the freshest build there is. */
function runHere() {
  if (mode === 'bundle' || (mode === undefined && builtFresh(stamp, stamp && stamp.inputs, bundle))) {
    runBundle();
  } else if (mode !== 'tsx' && (mode === 'compiled' || compiledIsFresh()) && fs.existsSync(compiled)) {
    require(compiled).main();
  } else {
    // Both of tsx's hooks: the CLI loads its command modules with import() (lazily, one group per run).
    require('tsx/cjs');
    import('tsx/esm').then(() => require(path.join(root, 'electron', 'cli', 'main.ts')).main());
  }
}

// The thin client first (its few inputs checked, not the bundle's ~190): with a host running, the big
// bundle is never read.
const compiledClient = path.join(outDir, 'electron', 'cli', 'host-client.js');
if (mode === undefined ? builtFresh(stamp, stamp && stamp.clientInputs, clientBundle) : mode === 'bundle' && fs.existsSync(clientBundle)) {
  hostOr(() => require(clientBundle), runHere);
} else if (mode === 'compiled' && fs.existsSync(compiledClient)) {
  hostOr(() => require(compiledClient), runHere);
} else {
  runHere();
}
