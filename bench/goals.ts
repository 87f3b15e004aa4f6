// Issue 11's goals in one run: the side-by-side run (bench/peers.ts --json --host); the timeline's
// zoom frames and heap over 2,400 live events (bench/timeline-render.ts, which builds out/renderer if
// it is stale); its own first render on fresh contexts (--ab out/renderer --kinds own). Then a line
// per goal with the figure, the goal and whether it is met (bench/goals/evaluate.ts). Prints figures
// and decides nothing else; the table goes to bench/results/goals-<time>.json too.
// Run: npx tsx bench/goals.ts [--rounds 5] [--timeline-rounds 16] [--peers PEERS_JSON] [--no-timeline]
//   --peers: read an earlier side-by-side run instead of running one (its rows must be in it).

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { evaluateGoals, formatGoals, type PeersRun, type TimelineRun } from './goals/evaluate';

const root = path.resolve(__dirname, '..');

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function count(name: string, fallback: number): number {
  const v = Number(arg(name) ?? fallback);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
  return v;
}

/** Runs a bench script with tsx, its output passed through; resolves with that output. */
function bench(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'node_modules/tsx/dist/cli.mjs'), path.join(root, 'bench', script), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      process.stdout.write(b);
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`bench/${script} exited with ${code}`))));
  });
}

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

async function main(): Promise<void> {
  const rounds = count('rounds', 5);
  const timelineRounds = count('timeline-rounds', 16);
  let peersFile = arg('peers');
  if (!peersFile) {
    const out = await bench('peers.ts', ['--json', '--host', '--rounds', String(rounds)]);
    peersFile = /^results: (.+)$/m.exec(out)?.[1];
    if (!peersFile) throw new Error('bench/peers.ts wrote no results file');
  }
  const peers = readJson<PeersRun>(peersFile);
  let timeline: TimelineRun | undefined;
  if (!process.argv.includes('--no-timeline')) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-goals-'));
    try {
      await bench('timeline-render.ts', ['--live-events', '2400', '--json', path.join(tmp, 'frames.json')]);
      await bench('timeline-render.ts', ['--ab', path.join(root, 'out/renderer'), '--kinds', 'own', '--rounds', String(timelineRounds), '--json', path.join(tmp, 'first.json')]);
      timeline = { ...readJson<TimelineRun>(path.join(tmp, 'frames.json')), firstRenderCpuMs: readJson<TimelineRun>(path.join(tmp, 'first.json')).firstRenderCpuMs };
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  const goals = evaluateGoals(peers, timeline);
  console.log(`\nissue 11's goals, one run (side by side: ${peersFile}; load now ${os.loadavg().map((l) => l.toFixed(1)).join(' ')})\n${formatGoals(goals)}`);
  const dir = path.join(root, 'bench/results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `goals-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, `${JSON.stringify({ when: new Date().toISOString(), peersFile, timeline, goals }, null, 2)}\n`);
  console.log(`\nresults: ${file}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
