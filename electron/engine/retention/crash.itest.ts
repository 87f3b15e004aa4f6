// kill -9 of a process running a real prune or merge (retention-child.ts) at precise moments:
// before, during and after qemu-img commit and rebase, between a rename and the manifest that names
// the renamed layer, after a drop, between steps; and of the whole process group while qemu-img
// writes. Right after the kill every kept point still reads byte for byte like the disk did (stock
// qemu-img through the backing files); the next run finishes the plan; then backup-verify passes
// and the chains still give the same bytes (retention.itest.ts restores with Tidemark's restore too).

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopBackupRig } from '../backup/itest-helpers';
import { lockPath } from '../backup/lock';
import type { BackupRepository } from '../backup/repository';
import { describeFailures, verifyBackups } from '../backup/verify';
import { isProcessAlive } from '../../os/process-liveness';
import { buildChains, chainsMatchOracle, copyRepo, type Chains } from './itest-chains';
import { journalPath, readJournal } from './journal';
import { applyRetention } from './retention';

const CHILD = path.join(__dirname, 'retention-child.ts');
const MERGE = { maxChain: 2 };
const PRUNE = { policy: { last: 3 } };

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

/** Runs retention-child.ts in its own process group; `killGroupOn` SIGKILLs the group when the child announces that phase. */
function runChild(repo: BackupRepository, vmId: string, options: object, extra: string[] = [], killGroupOn?: string): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, repo.root, vmId, JSON.stringify(options), ...extra], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (killGroupOn && out.includes(`@${killGroupOn}\n`)) process.kill(-child.pid!, 'SIGKILL');
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, out, err }));
  });
}

async function waitDead(pid: number | undefined, startTicks?: string): Promise<void> {
  if (pid === undefined) return;
  const deadline = Date.now() + 60_000;
  while (isProcessAlive(pid, startTicks) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}

describe('kill -9 during a prune or merge of real chains', () => {
  let c: Chains | undefined;
  let n = 0;
  const kept = new Map<object, string[]>();

  beforeAll(async () => {
    c = await buildChains({ bigMiB: 8 });
    for (const o of [MERGE, PRUNE]) kept.set(o, (await applyRetention({ repo: c.rig.repo, vmId: c.rig.engine.vmId, ...o, dryRun: true })).kept.map((k) => k.id));
  }, 300_000);
  afterAll(async () => {
    await stopBackupRig(c?.rig);
  });

  const vm = () => c!.rig.engine.vmId;

  it('the merge plan holds every kind of step', async () => {
    const preview = await applyRetention({ repo: c!.rig.repo, vmId: vm(), ...MERGE, dryRun: true });
    expect(new Set(preview.plan.steps.map((s) => s.op))).toEqual(new Set(['drop', 'rebase', 'fold']));
  });

  async function crashAndRecover(options: object, how: { killAt?: string; groupKillOn?: string; recoverWhileHelperRuns?: boolean }): Promise<void> {
    const repo = copyRepo(c!.rig.repo, path.join(c!.rig.root, `crash-${n++}`));
    const extra = how.killAt ? ['--kill-at', how.killAt] : how.groupKillOn ? ['--announce', how.groupKillOn] : [];
    const run = await runChild(repo, vm(), options, extra, how.groupKillOn?.split('#')[0]);
    expect(run.signal, `the child should have been killed (${run.err || run.out})`).toBe('SIGKILL');
    const journal = readJournal(repo, vm());
    expect(journal, 'an interrupted run leaves its journal').toBeDefined();
    const keptIds = kept.get(options)!;
    if (!how.recoverWhileHelperRuns) {
      // A qemu-img the killed process started runs on as an orphan; stock tools see the files once it has exited.
      await waitDead(journal!.helper?.pid, journal!.helper?.startTicks);
      expect(chainsMatchOracle(c!, repo, keptIds), 'right after the kill, through the backing files').toEqual([]);
    }
    const again = await runChild(repo, vm(), options);
    expect(again.code, again.err).toBe(0);
    expect(JSON.parse(again.out.trim().split('\n').pop()!).kept).toEqual(keptIds);
    if (journal!.helper) expect(isProcessAlive(journal!.helper.pid, journal!.helper.startTicks)).toBe(false);
    expect(fs.existsSync(journalPath(repo, vm()))).toBe(false);
    expect(fs.existsSync(lockPath(repo, vm()))).toBe(false);
    expect(repo.list(vm()).map((m) => m.id).sort()).toEqual([...keptIds].sort());
    const report = await verifyBackups(repo);
    expect(describeFailures(report)).toEqual([]);
    expect(chainsMatchOracle(c!, repo, keptIds)).toEqual([]);
    fs.rmSync(repo.root, { recursive: true, force: true });
  }

  const points: [string, object, Parameters<typeof crashAndRecover>[1]][] = [
    ['before the first step', MERGE, { killAt: 'drop:start#1' }],
    ['after a drop took its manifest entry out', MERGE, { killAt: 'drop:detached#2' }],
    ['after copying a layer to rebase it', MERGE, { killAt: 'rebase:copied#1' }],
    ['while qemu-img rebase runs (it runs on as an orphan)', MERGE, { killAt: 'rebase:helper-running#1' }],
    ['after the rebase, before the rename', MERGE, { killAt: 'rebase:rebased#1' }],
    ['after the rename, before the manifest', MERGE, { killAt: 'rebase:renamed#1' }],
    ['before a fold', MERGE, { killAt: 'fold:start#1' }],
    ['after a fold took the run out of the manifests', MERGE, { killAt: 'fold:detached#1' }],
    ['while qemu-img commit runs; the next run starts while it still runs', MERGE, { killAt: 'fold:helper-running#1', recoverWhileHelperRuns: true }],
    ['after the commit, before the rename', MERGE, { killAt: 'fold:committed#1' }],
    ['between the rename and the manifest', MERGE, { killAt: 'fold:renamed#1' }],
    ['after the manifest, before the folded files are deleted', MERGE, { killAt: 'fold:recorded#1' }],
    ['between two steps', MERGE, { killAt: 'step:done#3' }],
    ['process group (qemu-img too) in the middle of a commit', MERGE, { groupKillOn: 'fold:helper-running#2' }],
    ['a prune, while qemu-img commit runs', PRUNE, { killAt: 'fold:helper-running#1' }],
    ['a prune, between the rename and the manifest', PRUNE, { killAt: 'fold:renamed#2' }],
  ];
  for (const [name, options, how] of points) {
    it(`kill -9 ${name}`, () => crashAndRecover(options, how), 180_000);
  }
});
