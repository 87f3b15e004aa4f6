// CLI start-up candidates (figures, never pass/fail): `tidemark checkpoint-create-as` end to end on a
// 2-disk lab VM, today (bin/tidemark.js → out/node, lazy command groups) against one bundled CJS file
// (esbuild), the bundle minified, the bundle + a V8 code cache (vm.Script cachedData), the bundle in a
// Node start-up snapshot (--build-snapshot / --snapshot-blob), and Node flags; `node -e 0` is the floor.
// module.enableCompileCache needs Node 22 (this is Node 20: reported, not run).
// Interleaved rounds, medians [min..max]. Build products go to bench/results/startup/ (ignored by git).
// Run: npx tsx bench/startup.ts [--rounds N]

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildSync } from 'esbuild';
import { startLab, stopLab } from '../electron/engine/lab/labvm';
import { printWallAndCpu, type WallAndCpu } from './measure';
import { load, run, runNodeTimed } from './peers/proc';

const ROOT = path.join(__dirname, '..');
const OUT = path.join(__dirname, 'results', 'startup');
const MiB = 1024 * 1024;

/** One CJS file with everything the CLI needs (dynamic imports of command groups become lazy wrappers). */
function bundle(file: string, minify: boolean): void {
  buildSync({
    entryPoints: [path.join(ROOT, 'electron', 'cli', 'main.ts')],
    outfile: file, bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify, sourcemap: false, logLevel: 'warning',
    // the entry's `require.main === module` stays true for the bundle itself
  });
}

/** A loader that runs the bundle through vm.Script with a V8 code cache, written after the first run (and its lazily compiled functions). */
function cachedLoader(bundleFile: string, cacheFile: string): string {
  const loader = path.join(OUT, 'run-cached.cjs');
  fs.writeFileSync(loader, `'use strict';
const fs = require('fs'), vm = require('vm'), path = require('path'), Module = require('module');
const file = ${JSON.stringify(bundleFile)}, cacheFile = ${JSON.stringify(cacheFile)};
let cachedData;
try { cachedData = fs.readFileSync(cacheFile); } catch {}
const script = new vm.Script(Module.wrap(fs.readFileSync(file, 'utf8')), { filename: file, cachedData });
const m = new Module(file, module);
m.filename = file;
m.paths = Module._nodeModulePaths(path.dirname(file));
script.runInThisContext().call(m.exports, m.exports, (id) => m.require(id), m, file, path.dirname(file));
if (cachedData === undefined || script.cachedDataRejected) process.on('exit', () => fs.writeFileSync(cacheFile, script.createCachedData()));
m.exports.main();
`);
  return loader;
}

/**
 * A start-up snapshot holding the bundle's module graph; main() runs after deserialization. Node 20's
 * snapshot entry may require built-in modules only and has no `module`: the bundle is inlined into it.
 * The snapshot's process.argv has no script path, so it is run as `node --snapshot-blob BLOB tidemark ARGS`.
 */
function snapshot(bundleFile: string, blob: string): boolean {
  const entry = path.join(OUT, 'snapshot-entry.cjs');
  fs.writeFileSync(entry, `var module = { exports: {} }; var exports = module.exports;\n${fs.readFileSync(bundleFile, 'utf8')}\n` +
    "require('v8').startupSnapshot.setDeserializeMainFunction(() => module.exports.main());\n");
  try {
    execFileSync('node', ['--snapshot-blob', blob, '--build-snapshot', entry], { stdio: 'pipe' });
    return true;
  } catch (e) {
    console.log(`  snapshot: could not be built: ${String((e as { stderr?: Buffer }).stderr ?? e).trim().split('\n').slice(0, 3).join(' | ')}`);
    return false;
  }
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--rounds');
  const rounds = i >= 0 ? Number(process.argv[i + 1]) : 10;
  fs.mkdirSync(OUT, { recursive: true });
  execFileSync('npx', ['tsc', '-b'], { cwd: ROOT, stdio: 'inherit' });
  const plainBundle = path.join(OUT, 'tidemark-cli.cjs');
  const minBundle = path.join(OUT, 'tidemark-cli.min.cjs');
  bundle(plainBundle, false);
  bundle(minBundle, true);
  const cache = path.join(OUT, 'tidemark-cli.v8cache');
  fs.rmSync(cache, { force: true });
  const loader = cachedLoader(minBundle, cache);
  const blob = path.join(OUT, 'tidemark-cli.snapshot.blob');
  const haveSnapshot = snapshot(plainBundle, blob);
  console.log(`bundle ${(fs.statSync(plainBundle).size / 1024).toFixed(0)} KiB, minified ${(fs.statSync(minBundle).size / 1024).toFixed(0)} KiB${haveSnapshot ? `, snapshot blob ${(fs.statSync(blob).size / MiB).toFixed(1)} MiB` : ''}; module.enableCompileCache: ${typeof (require('node:module') as { enableCompileCache?: unknown }).enableCompileCache === 'function' ? 'available' : `not in Node ${process.version} (Node 22+)`}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmstart-'));
  try {
    const lab = await startLab({ dir: path.join(dir, 'lab'), disks: [{ name: 'vda', sizeBytes: 1024 * MiB }, { name: 'vdb', sizeBytes: 512 * MiB }] });
    const common = ['--state-dir', path.join(dir, 'state'), '--connect', lab.qmpSecondary];
    const bin = path.join(ROOT, 'bin', 'tidemark.js');
    const variants: [string, string[], NodeJS.ProcessEnv?][] = [
      ['today: node bin/tidemark.js (out/node)', [bin]],
      ['today, no freshness walk (TIDEMARK_CLI_MODE=compiled)', [bin], { TIDEMARK_CLI_MODE: 'compiled' }],
      ['bundle (one CJS file)', [plainBundle]],
      ['bundle, minified', [minBundle]],
      ['bundle, minified + V8 code cache', [loader]],
      ['bundle + --v8-pool-size=0', ['--v8-pool-size=0', plainBundle]],
      ['bundle + --jitless', ['--jitless', plainBundle]],
      ...(haveSnapshot ? [['bundle in a start-up snapshot', ['--snapshot-blob', blob, 'tidemark']] as [string, string[]]] : []),
    ];
    const floor = 'node -e 0 (Node start-up alone)';
    const figures = new Map<string, WallAndCpu>([floor, ...variants.map(([n]) => n)].map((n) => [n, { wall: [], cpu: [] }]));
    const timeFile = path.join(dir, 'time.txt');
    const timed = (name: string, args: string[], env?: NodeJS.ProcessEnv) => runNodeTimed(args, env, timeFile, figures.get(name)!);
    let n = 0;
    // warm-up: the first checkpoint records the VM; the code cache is written by its first run
    await run('node', [bin, ...common, 'checkpoint-create-as', 'warm', '--diskspec', 'vda', '--diskspec', 'vdb']);
    await run('node', [loader, ...common, 'checkpoint-list']);
    for (let r = 0; r < rounds; r++) {
      await timed(floor, ['-e', '0']);
      for (const [name, args, env] of [...variants.slice(r % variants.length), ...variants.slice(0, r % variants.length)]) {
        const cp = `s${n++}`;
        const t = await timed(name, [...args, ...common, 'checkpoint-create-as', cp, '--diskspec', 'vda', '--diskspec', 'vdb'], env);
        if (!/created/.test(t.stdout)) throw new Error(`${name}: unexpected output ${t.stdout} ${t.stderr}`);
        await run('node', [bin, ...common, 'checkpoint-delete', cp]);
      }
      process.stderr.write(`  round ${r + 1}/${rounds} (load ${load()})\n`);
    }
    console.log(`checkpoint-create-as on 2 disks, end to end, ${rounds} interleaved rounds; load ${load()}`);
    printWallAndCpu(figures, variants[0]![0], 'vs today');
    await stopLab(path.join(dir, 'lab'));
  } finally {
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
