// End-to-end wall time of `tidemark checkpoint-create-as` (process start → exit) on the demo VM,
// through the compiled CLI (out/node) and through the tsx fallback, interleaved; `--print-xml` and
// `checkpoint-list` show the start-up cost without and with the engine modules. Prints figures;
// decides nothing. Run: npx tsc -b && npx tsx bench/cli-create.ts [ROUNDS]

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startLab, stopLab } from '../electron/engine/lab/labvm';
import { createService } from '../electron/host/service';

const root = path.join(__dirname, '..');
const bin = path.join(root, 'bin', 'tidemark.js');
const rounds = Number(process.argv[2] ?? 15);

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const med = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return `median ${med.toFixed(0)} ms [${s[0]!.toFixed(0)}..${s[s.length - 1]!.toFixed(0)}] (n=${s.length})`;
}

function timeRun(args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('node', args, { env: { ...process.env, ...env }, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return ms;
}

async function main(): Promise<void> {
  if (!fs.existsSync(path.join(root, 'out', 'node', 'electron', 'cli', 'main.js'))) execFileSync('npx', ['tsc', '-b'], { cwd: root, stdio: 'inherit' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmb-'));
  try {
    await startLab({ dir: path.join(dir, 'lab') });
    const env = { TIDEMARK_STATE_DIR: dir };
    const times: Record<string, number[]> = {
      'node startup (node -e 0)': [], 'compiled: --print-xml (no VM)': [], 'compiled: checkpoint-list': [], compiled: [], tsx: [], 'in-process (service handler)': [],
    };
    timeRun([bin, 'checkpoint-create-as', 'warmup-tsx'], { ...env, TIDEMARK_CLI_MODE: 'tsx' }); // fills tsx's cache
    for (let i = 0; i < rounds; i++) {
      times['node startup (node -e 0)']!.push(timeRun(['-e', '0'], {}));
      times['compiled: --print-xml (no VM)']!.push(timeRun([bin, 'checkpoint-create-as', 'x', '--print-xml'], { ...env, TIDEMARK_CLI_MODE: 'compiled' }));
      times['compiled: checkpoint-list']!.push(timeRun([bin, 'checkpoint-list'], { ...env, TIDEMARK_CLI_MODE: 'compiled' }));
      times.compiled!.push(timeRun([bin, 'checkpoint-create-as', `c${i}`], { ...env, TIDEMARK_CLI_MODE: 'compiled' }));
      times.tsx!.push(timeRun([bin, 'checkpoint-create-as', `t${i}`], { ...env, TIDEMARK_CLI_MODE: 'tsx' }));
    }
    const svc = createService({ stateDir: dir, connectMode: 'on-demand', demoSocket: 'secondary' });
    await svc.handlers['checkpoint:list']('demo');
    for (let i = 0; i < rounds; i++) {
      const t0 = process.hrtime.bigint();
      await svc.handlers['checkpoint:create']('demo', { name: `s${i}` });
      times['in-process (service handler)']!.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    await svc.close();
    console.log(`tidemark checkpoint-create-as, demo VM (3 disks, 2 with bitmaps), ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(2)}`);
    console.log('(each CLI run also adds one more recording bitmap per disk; the last runs see ~' + (2 * rounds + 1) + ')');
    for (const [k, v] of Object.entries(times)) console.log(`  ${k.padEnd(30)} ${stats(v)}`);
  } finally {
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
