// Test helper for crash.itest.ts (not part of the app): runs one prune or merge in its own process,
// so that the test can kill it with SIGKILL at a precise moment.
//
//   tsx retention-child.ts REPO VM_ID OPTIONS_JSON [--kill-at PHASE[#N]] [--announce PHASE[#N]]
//
// --kill-at: the process SIGKILLs itself at the N-th time the executor reaches PHASE (default 1).
// --announce: prints "@PHASE" on stdout at that moment and sleeps 20 ms, for the parent to kill
// the whole process group (a running qemu-img helper included). On success it prints the outcome
// as JSON.

import { BackupRepository } from '../backup/repository';
import { applyRetention } from './retention';

function phaseArg(argv: string[], flag: string): { phase: string; nth: number } | undefined {
  const i = argv.indexOf(flag);
  if (i < 0) return undefined;
  const [phase, nth] = argv[i + 1]!.split('#');
  return { phase: phase!, nth: Number(nth ?? 1) };
}

async function main(): Promise<void> {
  const [root, vmId, json] = process.argv.slice(2);
  const kill = phaseArg(process.argv, '--kill-at');
  const announce = phaseArg(process.argv, '--announce');
  const seen = new Map<string, number>();
  const out = await applyRetention({
    repo: BackupRepository.open(root!),
    vmId: vmId!,
    ...(JSON.parse(json!) as { policy?: Record<string, number>; maxChain?: number }),
    onPhase: async (phase) => {
      const n = (seen.get(phase) ?? 0) + 1;
      seen.set(phase, n);
      if (kill && kill.phase === phase && kill.nth === n) process.kill(process.pid, 'SIGKILL');
      if (announce && announce.phase === phase && announce.nth === n) {
        process.stdout.write(`@${phase}\n`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  });
  process.stdout.write(JSON.stringify({ kept: out.kept.map((k) => k.id), removed: out.removed.map((r) => r.id), steps: out.result?.stepsRun }) + '\n');
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
