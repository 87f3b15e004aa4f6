// Builds the CLI into one CommonJS file, out/cli/tidemark.cjs (esbuild), which bin/tidemark.js runs:
// one file to read and compile instead of ~60 modules resolved one by one (bench/startup.ts: CPU ×0.85,
// wall ×0.73 of out/node). Command groups stay lazy (esbuild turns import() into a deferred require).
// Next to it, tidemark.inputs.json lists the sources the bundle was built from, so bin/tidemark.js can
// tell a stale bundle (an input edited after the build) without walking the whole tree. Last, the native
// thin client that bin/tidemark runs first (out/cli/tidemark-client, scripts/build-native-client.mjs).
//   node scripts/build-cli.mjs [--outdir DIR]   (part of `npm run build:node` / `npm run build`; DIR: tests)
import { build } from 'esbuild';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildNativeClientReporting } from './build-native-client.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDirArg = process.argv.indexOf('--outdir');
const outDir = outDirArg >= 0 ? path.resolve(process.argv[outDirArg + 1]) : path.join(root, 'out', 'cli');
const outfile = path.join(outDir, 'tidemark.cjs');

/**
 * Node built-ins that a module imports at its top but only some commands use (child_process alone costs
 * more than the rest of `--help`): each becomes a stand-in whose properties load the real module on
 * first use. Same functions and classes (getters return the built-in's own), so the code cannot tell.
 * fs and path are not here: Node has loaded them before the bundle runs.
 */
const LAZY_BUILTINS = ['child_process', 'crypto', 'http', 'https', 'net', 'os', 'stream', 'tls', 'zlib'];
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const filter = new RegExp(`^(node:)?(${LAZY_BUILTINS.join('|')})$`);
    b.onResolve({ filter }, (args) =>
      args.namespace === 'lazy-builtin' ? { path: args.path, external: true } : { path: args.path.replace(/^node:/, ''), namespace: 'lazy-builtin' });
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => {
      const names = Object.getOwnPropertyNames(createRequire(import.meta.url)(`node:${args.path}`));
      return {
        loader: 'js',
        contents: `let real;\nconst load = () => (real ??= require('node:${args.path}'));\n` +
          `for (const name of ${JSON.stringify(names)}) Object.defineProperty(exports, name, { enumerable: true, get: () => load()[name] });\n`,
      };
    });
  },
};

fs.mkdirSync(outDir, { recursive: true });
const startedAt = Date.now();
/** What both bundles are built with. */
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // Half the bytes to read, all ASCII (a non-ASCII comment made V8 hold the whole source as UTF-16), no
  // comments: bench/cli-start.ts. keepNames: class and function names (error names, stacks) stay the sources'.
  minify: true,
  keepNames: true,
  metafile: true,
  logLevel: 'warning',
  absWorkingDir: root,
  plugins: [lazyBuiltins],
};
const result = await build({
  ...common,
  entryPoints: [path.join(root, 'electron', 'cli', 'main.ts')],
  outfile,
  // TIDEMARK_DEBUG=1 runs the bundle with source maps on, so its stacks name the TypeScript sources.
  sourcemap: 'linked',
  // Loaded from node_modules when needed: the native BLAKE3 binding, hash-wasm (~0.6 MiB of inlined wasm,
  // only for verifying BLAKE3 layers where the binding does not load) and ws (130 KiB, only `serve`)
  // would slow every start-up.
  external: ['@napi-rs/blake-hash', 'hash-wasm', 'ws'],
});
// The thin client (electron/cli/host-client.ts) that bin/tidemark.js loads first: when a resident host
// serves the state folder the command runs there, and the big bundle is never read.
const client = await build({ ...common, entryPoints: [path.join(root, 'electron', 'cli', 'host-client.ts')], outfile: path.join(outDir, 'client.cjs') });
// Only the project's own sources: node_modules change through `npm ci`, which is followed by a build
// (and the lazy built-ins' stand-ins are no files).
const ownSources = (meta) => Object.keys(meta.inputs).filter((f) => !f.startsWith('node_modules/') && !f.startsWith('lazy-builtin:')).sort();
const clientInputs = ownSources(client.metafile);
const inputs = [...new Set([...ownSources(result.metafile), ...clientInputs])].sort();
// The build's start time: an input saved during the build counts as newer than the bundle.
// clientInputs: the thin client's own few, so bin/tidemark.js can trust client.cjs without checking every input.
const stamp = { builtAt: startedAt, inputs, clientInputs };
const tmp = path.join(outDir, `.tidemark.inputs.json.${process.pid}`);
fs.writeFileSync(tmp, `${JSON.stringify(stamp)}\n`);
fs.renameSync(tmp, path.join(outDir, 'tidemark.inputs.json'));
// Code caches of an older bundle would be rejected by V8 anyway; drop them so the next runs write fresh ones.
for (const f of fs.readdirSync(outDir)) if (/^tidemark\.cjs\.(.+\.)?v8cache$/.test(f)) fs.rmSync(path.join(outDir, f), { force: true });
// bin/tidemark.js decodes an ASCII bundle as latin1 (fast); anything else falls back to UTF-8 (slower).
if (!fs.readFileSync(outfile).every((b) => b < 0x80)) console.warn('warning: tidemark.cjs is not ASCII: bin/tidemark.js will decode it as UTF-8 (slower start)');
console.log(`${path.relative(root, outfile)}: ${(fs.statSync(outfile).size / 1024).toFixed(0)} KiB from ${inputs.length} sources`);
// The native thin client (bin/tidemark-client.c), which bin/tidemark runs before any Node starts.
buildNativeClientReporting(path.join(outDir, 'tidemark-client'));
