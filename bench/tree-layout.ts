// The timeline's checkpoint tree layout (renderer/src/timeline/lanes.ts layoutTree) as the number of
// checkpoints grows: a chain (a VM's usual history: each checkpoint's parent is the one before) and
// the timeline bench's tree (a branch from a random earlier checkpoint 4 % of the time). Each case runs
// in a fresh Node process (its first call is cold, as on a first render), then warm. Prints figures,
// decides nothing.
// Run: npx tsx bench/tree-layout.ts [--sizes 1000,10000,30000] [--runs 5]

import { execFileSync } from 'node:child_process';
import { layoutTree } from '../renderer/src/timeline/lanes';

type Shape = 'chain' | 'branched';

function tree(n: number, shape: Shape) {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  return Array.from({ length: n }, (_, i) => ({
    name: `cp-${i}`,
    parent: i === 0 ? undefined : shape === 'branched' && rnd() < 0.04 ? `cp-${Math.floor(rnd() * i)}` : `cp-${i - 1}`,
    time: i * 1000 + rnd() * 600,
  }));
}

/** One case in this process: the first call, then the median of `runs` more. */
function one(n: number, shape: Shape, runs: number): { cold: number; warm: number } {
  const input = tree(n, shape);
  const current = `cp-${n - 1}`;
  let t = performance.now();
  layoutTree(input, current);
  const cold = performance.now() - t;
  const warm: number[] = [];
  for (let k = 0; k < runs; k++) {
    t = performance.now();
    layoutTree(input, current);
    warm.push(performance.now() - t);
  }
  warm.sort((a, b) => a - b);
  return { cold, warm: warm[Math.floor(runs / 2)]! };
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const runs = Number(arg('runs', '5'));
if (process.argv.includes('--one')) {
  const [n, shape] = arg('one', '').split(':');
  process.stdout.write(JSON.stringify(one(Number(n), shape as Shape, runs)));
} else {
  const sizes = arg('sizes', '1000,10000,30000').split(',').map(Number);
  console.log(`layoutTree, ms (first call in a fresh process / median of ${runs} more)`);
  for (const shape of ['chain', 'branched'] as const) {
    for (const n of sizes) {
      const out = execFileSync(process.execPath, [...process.execArgv, __filename, '--one', `${n}:${shape}`, '--runs', String(runs)], { encoding: 'utf8' });
      const r = JSON.parse(out) as { cold: number; warm: number };
      console.log(`${shape.padEnd(8)} ${String(n).padStart(6)}  ${r.cold.toFixed(1).padStart(7)} / ${r.warm.toFixed(1).padStart(7)}`);
    }
  }
}
