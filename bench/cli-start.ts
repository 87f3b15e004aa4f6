// The CLI's own start-up, before ÷ after (figures, never pass/fail): `tidemark --help` and
// `tidemark checkpoint-create-as` on a 2-disk lab VM, run through bin/tidemark.js of this checkout and
// of another one (--before DIR: e.g. `git archive main | tar -x -C DIR`, node_modules linked, `npm run
// build:node` there), against `node -e 0`, interleaved in every round. Wall time and the CPU time of the
// process (user + system, /usr/bin/time), medians [min..max], and each median ÷ `node -e 0`'s.
// Both checkouts must be built (`npm run build:node`): each runs its own bundle.
// Run: npx tsx bench/cli-start.ts --before DIR [--rounds 10] [--env NAME=VALUE]… (the env goes to "after" only)

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startLab, stopLab } from '../electron/engine/lab/labvm';
import { printWallAndCpu, type WallAndCpu } from './measure';
import { load, run, runNodeTimed } from './peers/proc';

const ROOT = path.join(__dirname, '..');
const MiB = 1024 * 1024;

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const rounds = Number(option('--rounds') ?? 10);
  const before = option('--before');
  const afterEnv: NodeJS.ProcessEnv = {};
  process.argv.forEach((a, i) => {
    if (a === '--env') {
      const [k, ...v] = process.argv[i + 1]!.split('=');
      afterEnv[k!] = v.join('=');
    }
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmclistart-'));
  const timeFile = path.join(dir, 'time.txt');
  try {
    const lab = await startLab({ dir: path.join(dir, 'lab'), disks: [{ name: 'vda', sizeBytes: 1024 * MiB }, { name: 'vdb', sizeBytes: 512 * MiB }] });
    const common = ['--state-dir', path.join(dir, 'state'), '--connect', lab.qmpSecondary];
    const checkouts: [string, string, NodeJS.ProcessEnv][] = [['after', ROOT, afterEnv], ...(before ? [['before', path.resolve(before), {}] as [string, string, NodeJS.ProcessEnv]] : [])];
    type Variant = { name: string; args: string[]; env?: NodeJS.ProcessEnv; create?: string };
    const variants: Variant[] = [{ name: 'node -e 0', args: ['-e', '0'] }];
    for (const [label, checkout, env] of checkouts) {
      const bin = path.join(checkout, 'bin', 'tidemark.js');
      variants.push({ name: `${label}: --help`, args: [bin, '--help'], env });
      variants.push({ name: `${label}: checkpoint-create-as (2 disks)`, args: [bin, ...common], env, create: bin });
    }
    const figures = new Map<string, WallAndCpu>(variants.map((v) => [v.name, { wall: [], cpu: [] }]));
    // warm-up: records the VM, writes each bundle's code cache (its first run)
    for (const [, checkout, env] of checkouts) {
      const bin = path.join(checkout, 'bin', 'tidemark.js');
      await run('node', [bin, ...common, 'checkpoint-create-as', 'warm', '--diskspec', 'vda', '--diskspec', 'vdb'], { env: { ...process.env, ...env } });
      await run('node', [bin, ...common, 'checkpoint-delete', 'warm'], { env: { ...process.env, ...env } });
      await run('node', [bin, '--help'], { env: { ...process.env, ...env } });
    }
    let n = 0;
    for (let r = 0; r < rounds; r++) {
      const order = [...variants.slice(r % variants.length), ...variants.slice(0, r % variants.length)];
      for (const v of order) {
        const cp = `s${n++}`;
        const args = v.create ? [...v.args, 'checkpoint-create-as', cp, '--diskspec', 'vda', '--diskspec', 'vdb'] : v.args;
        const t = await runNodeTimed(args, v.env, timeFile, figures.get(v.name)!);
        if (v.create) {
          if (!/created/.test(t.stdout)) throw new Error(`${v.name}: unexpected output ${t.stdout} ${t.stderr}`);
          await run('node', [v.create, ...common, 'checkpoint-delete', cp], { env: { ...process.env, ...v.env } });
        }
      }
      process.stderr.write(`  round ${r + 1}/${rounds} (load ${load()})\n`);
    }
    console.log(`${rounds} interleaved rounds; load ${load()}`);
    printWallAndCpu(figures, 'node -e 0', '÷ node -e 0');
  } finally {
    await stopLab(path.join(dir, 'lab'));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
