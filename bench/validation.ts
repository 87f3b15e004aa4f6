// Validation libraries compared on Tidemark's own schemas (bench/validation-candidates/: the same
// subset of the contract, the manifest and a checkpoint file in valibot, zod and zod/mini, each with
// the contract's error texts). Prints, per candidate:
//   - bundle: the candidate module bundled for the browser by esbuild (minified, tree-shaken), raw and gzip;
//   - speed: µs per check of real payloads (arguments of six channels, a 3-disk manifest, a checkpoint
//     file), and the error path (first issue → message).
// Figures only, never pass/fail. Run: npx tsx bench/validation.ts
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { bad, calls, checkpointFile, manifest, type Candidate } from './validation-candidates/payloads';
import { candidate as valibot } from './validation-candidates/valibot';
import { candidate as zod, candidateJitless as zodJitless } from './validation-candidates/zod';
import { candidate as zodMini, candidateJitless as zodMiniJitless } from './validation-candidates/zod-mini';

const DIR = path.join(__dirname, 'validation-candidates');

async function bundleSize(file: string): Promise<{ raw: number; gzip: number }> {
  const out = await build({
    entryPoints: [path.join(DIR, file)], bundle: true, write: false, minify: true, format: 'esm', platform: 'browser', target: 'es2022',
  });
  const code = out.outputFiles[0]!.contents;
  return { raw: code.length, gzip: gzipSync(code).length };
}

/**
 * Microseconds per call of each fn: rounds of `n` calls, the candidates interleaved round by round
 * (so a busy machine slows them alike), the fastest round kept (the least disturbed one).
 */
function usPerCall(fns: (() => void)[], n = 20_000, rounds = 9): number[] {
  for (const fn of fns) for (let i = 0; i < n; i++) fn(); // warm-up (and zod's JIT)
  const best = fns.map(() => Infinity);
  for (let r = 0; r < rounds; r++) {
    fns.forEach((fn, k) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) fn();
      best[k] = Math.min(best[k]!, Number(process.hrtime.bigint() - t0) / 1e3 / n);
    });
  }
  return best;
}

function errorText(fn: () => unknown): string {
  try {
    fn();
    return '(accepted!)';
  } catch (e) {
    return (e as Error).message;
  }
}

async function main(): Promise<void> {
  console.log('bundle (esbuild, minified, tree-shaken, es2022)');
  for (const [name, file] of [['valibot', 'valibot.ts'], ['zod', 'zod.ts'], ['zod/mini', 'zod-mini.ts']] as const) {
    const s = await bundleSize(file);
    console.log(`  ${name.padEnd(20)} ${(s.raw / 1024).toFixed(1).padStart(6)} KiB  gzip ${(s.gzip / 1024).toFixed(1).padStart(5)} KiB`);
  }
  console.log(`\nspeed (µs per check, fastest of 9 interleaved rounds × 20 000; Node ${process.version})`);
  console.log(`  ${'candidate'.padEnd(20)} ${'6 channels'.padStart(11)} ${'manifest'.padStart(9)} ${'checkpoint'.padStart(11)} ${'bad args'.padStart(9)} ${'bad manif.'.padStart(11)}`);
  const candidates: Candidate[] = [valibot, zod, zodJitless, zodMini, zodMiniJitless];
  const columns = [
    (c: Candidate) => () => { for (const [ch, a] of calls) c.parseArgs(ch, a); },
    (c: Candidate) => () => c.parseManifest(manifest),
    (c: Candidate) => () => c.parseCheckpoint(checkpointFile),
    (c: Candidate) => () => errorText(() => c.parseArgs(...bad.call)),
    (c: Candidate) => () => errorText(() => c.parseManifest(bad.manifest)),
  ].map((column) => usPerCall(candidates.map(column)));
  candidates.forEach((c, k) => {
    console.log(`  ${c.name.padEnd(20)} ${columns.map((col, i) => col[k]!.toFixed(2).padStart([11, 9, 11, 9, 11][i]!)).join(' ')}`);
  });
  console.log('\nerror texts');
  for (const c of [valibot, zod, zodMini]) {
    console.log(`  ${c.name.padEnd(10)} ${errorText(() => c.parseArgs(...bad.call))}`);
    console.log(`  ${''.padEnd(10)} ${errorText(() => c.parseManifest(bad.manifest))}`);
  }
}

if (require.main === module) void main();
