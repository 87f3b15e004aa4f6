// Where each operation's time goes today (figures, never pass/fail). Runs Tidemark's CLI on a lab VM
// holding the side-by-side bench's data (vda 1 GiB random, vdb 512 MiB, vdc 1 TiB sparse; 64 MiB dirty
// as 256 × 256 KiB) with the trace preload (bench/profile/trace.cjs: start-up, module loading, QMP
// commands, child processes, fsyncs, engine steps), and optionally under `--cpu-prof` (V8 profile,
// grouped by place) and `strace -c -f` (syscalls of every process, fsync family counted).
// Run: npx tsx bench/profile.ts [--cpu-prof] [--strace] [--ops checkpoint,full,inc-push,inc-pull,big-push,big-pull,restore]
// Profiles go to bench/results/profile-<time>/ (ignored by git). Traced runs use the compiled CLI (out/node),
// whose modules the trace can wrap, so their start-up is not the bundle's (bench/cli-start.ts measures that).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Machines } from './peers/machines';
import { findOnPath } from '../electron/os/find-on-path';
import { load, run, settle } from './peers/proc';
import { cpuProfileSummary, straceSummary, traceSummary, type Trace } from './profile/summary';

const BIN = path.join(__dirname, '..', 'bin', 'tidemark.js');
const PRELOAD = path.join(__dirname, 'profile', 'trace.cjs');
const OPS = ['checkpoint', 'full', 'inc-push', 'inc-pull', 'big-push', 'big-pull', 'restore'] as const;
type Op = (typeof OPS)[number];

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const cpuProf = argv.includes('--cpu-prof');
  const strace = argv.includes('--strace') && Boolean(findOnPath('strace'));
  const i = argv.indexOf('--ops');
  const ops = (i >= 0 ? argv[i + 1]!.split(',') : [...OPS]) as Op[];
  if (argv.includes('--strace') && !strace) console.log('skipped: strace is not installed (apt-get install strace)');
  const outDir = path.join(__dirname, 'results', `profile-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  fs.mkdirSync(outDir, { recursive: true });
  await run('npx', ['tsc', '-b'], { cwd: path.join(__dirname, '..') });
  const m = Machines.create();
  const stop = () => void m.close().finally(() => process.exit(130));
  process.on('SIGINT', stop);
  try {
    m.makeImages(false);
    await m.startLab();
    const base = ['--state-dir', m.p('state'), '--connect', m.lab!.cliEndpoint];
    const plain = (args: string[]) => run('node', [BIN, ...base, ...args]);
    /** One CLI run with the trace preload (+ --cpu-prof, + strace), summarised. */
    const profiled = async (label: string, args: string[]) => {
      const traceFile = path.join(outDir, `${label}.trace.json`);
      const nodeArgs = ['-r', PRELOAD, ...(cpuProf ? ['--cpu-prof', '--cpu-prof-dir', outDir, '--cpu-prof-name', `${label}.cpuprofile`] : []), BIN, ...base, ...args];
      settle();
      // The compiled CLI (out/node), not the bundle: the trace wraps modules by their file (trace.cjs).
      const env = { ...process.env, TIDEMARK_TRACE: traceFile, TIDEMARK_CLI_MODE: 'compiled' };
      const r = strace
        ? await run('strace', ['-c', '-f', '-o', path.join(outDir, `${label}.strace.txt`), 'node', ...nodeArgs], { env })
        : await run('node', nodeArgs, { env });
      console.log(`\n${label}: tidemark ${args.join(' ')}   (load ${load()}${strace ? '; under strace, so slower' : ''})`);
      console.log(traceSummary(JSON.parse(fs.readFileSync(traceFile, 'utf8')) as Trace, r.ms));
      if (cpuProf) console.log(cpuProfileSummary(path.join(outDir, `${label}.cpuprofile`)));
      if (strace) console.log(straceSummary(path.join(outDir, `${label}.strace.txt`)));
      return r;
    };
    const node0 = await run('node', ['-e', '0']);
    console.log(`node -e 0 (bare Node start-up): ${node0.ms.toFixed(0)} ms; load ${load()}`);
    await plain(['checkpoint-create-as', 'warm-up', '--diskspec', 'vdc,checkpoint=no']);
    await plain(['checkpoint-delete', 'warm-up']);
    const repo = (name: string) => ['--repo', m.p('out', name)];

    if (ops.includes('checkpoint')) {
      await profiled('checkpoint', ['checkpoint-create-as', 'p1', '--diskspec', 'vda', '--diskspec', 'vdb', '--diskspec', 'vdc,checkpoint=no']);
      await plain(['checkpoint-delete', 'p1']);
    }
    if (ops.includes('full')) await profiled('full', ['backup-begin', '--full', ...repo('full'), '--disk', 'vda']);
    const needChain = ops.some((o) => o !== 'checkpoint' && o !== 'full');
    if (needChain) {
      await plain(['backup-begin', '--full', ...repo('push'), '--disk', 'vda']);
      await plain(['backup-begin', '--mode', 'pull', '--full', ...repo('pull'), '--disk', 'vda']);
      await plain(['backup-begin', '--full', ...repo('bigpush'), '--disk', 'vdc']);
      await plain(['backup-begin', '--mode', 'pull', '--full', ...repo('bigpull'), '--disk', 'vdc']);
    }
    let incs = 0;
    for (let round = 0; needChain && incs < 5; round++) {
      await m.dirty('vda');
      await m.dirty('vdc');
      const first = round === 0;
      if (first && ops.includes('inc-push')) await profiled('inc-push', ['backup-begin', ...repo('push'), '--disk', 'vda']);
      else await plain(['backup-begin', ...repo('push'), '--disk', 'vda']);
      incs++;
      if (!first) continue;
      if (ops.includes('inc-pull')) await profiled('inc-pull', ['backup-begin', '--mode', 'pull', ...repo('pull'), '--disk', 'vda']);
      if (ops.includes('big-push')) await profiled('big-push', ['backup-begin', ...repo('bigpush'), '--disk', 'vdc']);
      if (ops.includes('big-pull')) await profiled('big-pull', ['backup-begin', '--mode', 'pull', ...repo('bigpull'), '--disk', 'vdc']);
    }
    if (ops.includes('restore')) {
      const list = JSON.parse((await plain(['backup-list', ...repo('push'), '--json'])).stdout) as { id: string }[];
      await profiled('restore', ['restore', ...repo('push'), '--backup', list[5]!.id, '--disk', 'vda', '--to', m.p('out', 'restored.qcow2')]);
    }
    console.log(`\nprofiles and traces: ${outDir}`);
  } finally {
    await m.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
