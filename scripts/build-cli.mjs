// Builds the CLI into one CommonJS file, out/cli/tidemark.cjs (esbuild), which bin/tidemark.js runs:
// one file to read and compile instead of ~60 modules resolved one by one (bench/startup.ts: CPU ×0.85,
// wall ×0.73 of out/node). Command groups stay lazy (esbuild turns import() into a deferred require).
// Next to it, tidemark.inputs.json lists the sources the bundle was built from, so bin/tidemark.js can
// tell a stale bundle (an input edited after the build) without walking the whole tree.
//   node scripts/build-cli.mjs        (part of `npm run build:node` / `npm run build`)
import { build } from 'esbuild';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'out', 'cli');
const outfile = path.join(outDir, 'tidemark.cjs');

fs.mkdirSync(outDir, { recursive: true });
const startedAt = Date.now();
const result = await build({
  entryPoints: [path.join(root, 'electron', 'cli', 'main.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: false, // readable stacks under TIDEMARK_DEBUG=1; minifying saved ~2 % of CPU (bench/startup.ts)
  sourcemap: false,
  metafile: true,
  logLevel: 'warning',
  absWorkingDir: root,
  // Loaded from node_modules when needed: the native BLAKE3 binding, and hash-wasm (~0.6 MiB of inlined
  // wasm, only for verifying BLAKE3 layers where the binding does not load) would slow every start-up.
  external: ['@napi-rs/blake-hash', 'hash-wasm'],
});
// Only the project's own sources: node_modules change through `npm ci`, which is followed by a build.
const inputs = Object.keys(result.metafile.inputs).filter((f) => !f.startsWith('node_modules/')).sort();
// The build's start time: an input saved during the build counts as newer than the bundle.
const stamp = { builtAt: startedAt, inputs };
const tmp = path.join(outDir, `.tidemark.inputs.json.${process.pid}`);
fs.writeFileSync(tmp, `${JSON.stringify(stamp)}\n`);
fs.renameSync(tmp, path.join(outDir, 'tidemark.inputs.json'));
// A code cache of an older bundle would be rejected by V8 anyway; drop it so the next run writes a fresh one.
fs.rmSync(path.join(outDir, 'tidemark.cjs.v8cache'), { force: true });
console.log(`out/cli/tidemark.cjs: ${(fs.statSync(outfile).size / 1024).toFixed(0)} KiB from ${inputs.length} sources`);
