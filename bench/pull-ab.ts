// Incremental pull (or push: --mode push), before ÷ after, inside one run (figures, never pass/fail): two checkouts' CLIs
// (`--before DIR`, a checkout of the older code with `npx tsc -b` run in it; "after" is this one)
// take turns against ONE lab VM holding the side-by-side bench's disks (bench/peers/machines.ts:
// vda 1 GiB random, vdc 1 TiB sparse), each into its own repository, after the same 64 MiB of guest
// writes (256 × 256 KiB) per round. Both run compiled (`TIDEMARK_CLI_MODE=compiled`), so start-up is
// the same code. Prints medians [min..max], the paired after ÷ before ratio, and each checkout's
// 1 TiB ÷ 1 GiB ratio (cost must follow the dirty bytes, not the disk's size).
// Make a "before" checkout: git archive main | tar -x -C /tmp/before && ln -s $PWD/node_modules /tmp/before/ && (cd /tmp/before && npx tsc -b)
// Run: npx tsx bench/pull-ab.ts --before /tmp/before [--rounds 3] [--mode pull|push]

import * as fs from 'node:fs';
import * as path from 'node:path';
import { median, stats } from './measure';
import { Machines } from './peers/machines';
import { load, run, settle } from './peers/proc';

const AFTER = path.join(__dirname, '..');

async function main(): Promise<void> {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const before = arg('--before');
  const rounds = Number(arg('--rounds') ?? 3);
  const mode = arg('--mode') ?? 'pull';
  if (mode !== 'pull' && mode !== 'push') throw new Error('--mode is pull or push');
  if (!before || !fs.existsSync(path.join(before, 'bin', 'tidemark.js'))) throw new Error('give --before DIR: a checkout of the older code (see the comment at the top)');
  await run('npx', ['tsc', '-b'], { cwd: AFTER });
  const m = Machines.create();
  process.on('SIGINT', () => void m.close().finally(() => process.exit(130)));
  try {
    m.makeImages(false);
    await m.startLab();
    const env = { ...process.env, TIDEMARK_CLI_MODE: 'compiled' };
    const cli = (root: string, args: string[]) => run('node', [path.join(root, 'bin', 'tidemark.js'), '--state-dir', m.p('state'), '--connect', m.lab!.cliEndpoint, ...args], { env });
    const tools = [{ key: 'before', root: before }, { key: 'after', root: AFTER }] as const;
    const pull = (t: (typeof tools)[number], disk: string, full = false) => cli(t.root, ['backup-begin', '--mode', mode, ...(full ? ['--full'] : []), '--repo', m.p('out', `${t.key}-${disk}`), '--disk', disk]);
    for (const t of tools) for (const d of ['vda', 'vdc']) await pull(t, d, true);
    const ms = new Map<string, number[]>();
    const add = (k: string, v: number) => ms.set(k, [...(ms.get(k) ?? []), v]);
    const loads: string[] = [];
    for (let r = 0; r < rounds; r++) {
      await m.dirty('vda');
      await m.dirty('vdc');
      loads.push(load());
      const order = r % 2 ? [...tools].reverse() : tools;
      for (const d of ['vda', 'vdc']) {
        for (const t of order) {
          settle();
          add(`${t.key} ${d}`, (await pull(t, d)).ms);
        }
      }
      console.log(`round ${r + 1}/${rounds} done (load ${loads[loads.length - 1]})`);
    }
    const paired = (a: string, b: string) => median(ms.get(a)!.map((x, i) => x / ms.get(b)![i]!)).toFixed(2);
    console.log(`\nincremental ${mode} of 64 MiB (256 × 256 KiB), ${rounds} interleaved rounds, load ${loads.join(' | ')}`);
    for (const d of ['vda', 'vdc']) {
      console.log(`  ${d === 'vda' ? '1 GiB random (vda)' : '1 TiB sparse (vdc)'}: before ${stats(ms.get(`before ${d}`)!)}, after ${stats(ms.get(`after ${d}`)!)}; after ÷ before ${paired(`after ${d}`, `before ${d}`)}× (paired median)`);
    }
    for (const t of tools) console.log(`  ${t.key}: 1 TiB ÷ 1 GiB = ${paired(`${t.key} vdc`, `${t.key} vda`)}× (paired median)`);
  } finally {
    await m.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
