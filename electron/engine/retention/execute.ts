// Runs a retention plan crash-safely. The journal (journal.ts) is written before the first step and
// after each one; every step finds out from the files themselves how far it got, so the next run
// after a kill -9 at any moment finishes it:
//
//   drop    manifest entry removed (no backup can choose the layer as a base any more) → file deleted.
//   rebase  copy the child → rebase the copy → rename it over the child (atomic) → record the new
//           checksum. The child's backing file tells whether the rename happened.
//   fold    remove the entries of the removed run (they can no longer be chosen as bases) → commit
//           the child into the run's oldest file → rename that file over the child's → record →
//           delete the run's other files. The child's backing file and whether the oldest file still
//           exists tell where it stopped; the commit itself may be repeated (same result).
//
// At every moment every kept point reads the same bytes through its chain (qemu-img convert), and
// at every step boundary the manifests and checksums match the files (backup-verify passes). Inside
// a fold or rebase, a kept layer's manifest may lag behind its file until the step is finished.
// A manifest that appears meanwhile and builds on a layer a step would change stops the plan
// ("abandoned"): files any manifest references are never deleted or rewritten.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FileChecksum } from '../backup/checksum';
import type { BackupRepository } from '../backup/repository';
import { fsyncDir, fsyncFile, PRIVATE_FILE_MODE, renameDurable } from '../../os/atomic-file';
import { isProcessAlive, processCommandLine, processStartTime } from '../../os/process-liveness';
import { newJournal, readJournal, removeJournal, writeJournal, type RetentionJournal } from './journal';
import { qemuImgLayerOps, type HelperHooks, type LayerOps } from './layer-ops';
import { ManifestView } from './manifests';
import type { DropStep, FoldStep, RebaseStep, RetentionPlan, RetentionStep } from './plan';

export interface ExecuteOptions {
  ops?: LayerOps;
  /** Called at each named phase ("fold:committed", …); tests stop the process there. */
  onPhase?: (phase: string) => void | Promise<void>;
  log?: (line: string) => void;
}

export interface ExecuteResult {
  what: string;
  stepsTotal: number;
  /** Steps this run carried out (the rest were done by an earlier, interrupted run). */
  stepsRun: number;
  kept: string[];
  removed: string[];
  /** Layers whose file changed, with their new checksum. */
  rewritten: { point: string; disk: string; checksum: FileChecksum }[];
}

/** A manifest made after the plan builds on a layer it would change: the plan was stopped at a step boundary. */
export class RetentionAbandonedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetentionAbandonedError';
  }
}

/** Stopped inside a step: the journal stays, and the next run finishes the plan. */
export class RetentionInterruptedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RetentionInterruptedError';
  }
}

class Abandon extends Error {}

export function describeStep(s: RetentionStep): string {
  if (s.op === 'drop') return `delete ${s.point}'s layer of ${s.disk}`;
  if (s.op === 'rebase') return `rebase ${s.child}'s layer of ${s.disk} from ${s.oldBase} onto ${s.newBase ?? 'nothing (a full)'}`;
  return `fold ${[s.into, ...s.through].join(', ')} into ${s.child}'s layer of ${s.disk}`;
}

/** Writes the journal for `plan`, then runs it. */
export async function runPlan(repo: BackupRepository, plan: RetentionPlan, what: string, options: ExecuteOptions = {}): Promise<ExecuteResult> {
  const j = newJournal(plan, what);
  writeJournal(repo, j);
  return continueJournal(repo, j, options);
}

/** Finishes the prune or merge a journal left unfinished; undefined when there is none. */
export async function finishJournal(repo: BackupRepository, vmId: string, options: ExecuteOptions = {}): Promise<ExecuteResult | undefined> {
  const j = readJournal(repo, vmId);
  if (!j) return undefined;
  options.log?.(`finishing an interrupted ${j.what} of VM ${vmId} (started ${new Date(j.startedAt).toISOString()} by process ${j.pid}): ${j.steps.length - j.done} of ${j.steps.length} steps left`);
  return continueJournal(repo, j, options);
}

/** Stops a qemu-img the interrupted run started, if it still runs (it could write a file we are about to use). */
async function stopHelper(j: RetentionJournal, log?: (line: string) => void): Promise<void> {
  const h = j.helper;
  if (!h || !isProcessAlive(h.pid, h.startTicks) || !/qemu-img/.test(processCommandLine(h.pid))) return;
  log?.(`stopping qemu-img (process ${h.pid}) left running by the interrupted run`);
  process.kill(h.pid, 'SIGKILL');
  const deadline = Date.now() + 10_000;
  while (isProcessAlive(h.pid, h.startTicks)) {
    if (Date.now() > deadline) throw new Error(`qemu-img process ${h.pid}, left by an interrupted prune, does not stop; stop it, then run again`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function continueJournal(repo: BackupRepository, j: RetentionJournal, options: ExecuteOptions): Promise<ExecuteResult> {
  const ops = options.ops ?? qemuImgLayerOps;
  await stopHelper(j, options.log);
  j.helper = undefined;
  const view = new ManifestView(repo, j.vmId);
  const ctx: StepContext = {
    repo, vmId: j.vmId, ops, view, atBoundary: true, op: 'drop',
    phase: async (p) => options.onPhase?.(p),
    hooks: {
      onSpawn: (pid) => {
        const start = processStartTime(pid);
        j.helper = { pid, ...(typeof start === 'string' && start !== 'zombie' ? { startTicks: start } : {}) };
        writeJournal(repo, j);
        void options.onPhase?.(`${ctx.op}:helper-running`);
      },
    },
  };
  const result: ExecuteResult = { what: j.what, stepsTotal: j.steps.length, stepsRun: 0, kept: j.kept, removed: j.removed, rewritten: [] };
  while (j.done < j.steps.length) {
    const s = j.steps[j.done]!;
    ctx.op = s.op;
    ctx.atBoundary = true;
    try {
      await ctx.phase(`${s.op}:start`);
      view.refreshIfChanged();
      const sum = await runStep(ctx, s);
      if (sum && s.op !== 'drop') result.rewritten.push({ point: s.child, disk: s.disk, checksum: sum });
    } catch (e) {
      const msg = (e as Error).message;
      const where = `${j.what} of VM ${j.vmId}`;
      if (ctx.atBoundary) {
        removeJournal(repo, j.vmId);
        const head = `${where} stopped after ${j.done} of ${j.steps.length} steps, before ${describeStep(s)}`;
        if (e instanceof Abandon) throw new RetentionAbandonedError(`${head}: ${msg}. Every backup point is consistent; run it again to plan anew`);
        throw new Error(`${head} (nothing is half-done; every backup point is consistent): ${msg}`, { cause: e });
      }
      throw new RetentionInterruptedError(
        `${where} stopped inside step ${j.done + 1} of ${j.steps.length} (${describeStep(s)}): ${msg}. ` +
          'Every kept point still reads the same bytes (qemu-img), but until the step is finished backup-verify and restore may refuse its chain; ' +
          'run the prune or merge again to finish it',
        { cause: e },
      );
    }
    j.done++;
    j.helper = undefined;
    result.stepsRun++;
    writeJournal(repo, j);
    await ctx.phase('step:done');
  }
  removeJournal(repo, j.vmId);
  return result;
}

interface StepContext {
  repo: BackupRepository;
  vmId: string;
  ops: LayerOps;
  view: ManifestView;
  /** The current step's kind (for phase names). */
  op: RetentionStep['op'];
  /** True while nothing of the current step has happened (a failure then leaves everything consistent). */
  atBoundary: boolean;
  phase(p: string): Promise<void>;
  hooks: HelperHooks;
}

function runStep(ctx: StepContext, s: RetentionStep): Promise<FileChecksum | undefined> {
  if (s.op === 'drop') return runDrop(ctx, s).then(() => undefined);
  if (s.op === 'rebase') return runRebase(ctx, s);
  return runFold(ctx, s);
}

const layerFile = (ctx: StepContext, disk: string, id: string) => ctx.repo.imagePath(ctx.vmId, disk, id);

function refuseDependents(ctx: StepContext, disk: string, layer: string, allowed: string | undefined, what: string): void {
  const deps = ctx.view.dependentsOn(disk, layer).filter((d) => d !== allowed);
  if (deps.length > 0) throw new Abandon(`backup ${deps.join(', ')} builds on ${layer}'s layer of ${disk}, which this step would ${what} (it was made after the plan)`);
}

async function runDrop(ctx: StepContext, s: DropStep): Promise<void> {
  const file = layerFile(ctx, s.disk, s.point);
  refuseDependents(ctx, s.disk, s.point, undefined, 'delete');
  ctx.atBoundary = ctx.view.entry(s.point, s.disk) !== undefined || fs.existsSync(file);
  ctx.view.removeEntry(s.point, s.disk);
  ctx.atBoundary = false;
  await ctx.phase('drop:detached');
  fs.rmSync(file, { force: true });
  fsyncDir(path.dirname(file));
  await ctx.phase('drop:deleted');
}

function unexpected(file: string, backing: string | undefined, expected: string[]): Error {
  return new Error(`${file} is in an unexpected state: its backing file is ${JSON.stringify(backing ?? null)}, expected ${expected.map((x) => JSON.stringify(x)).join(' or ')}; something else changed the repository (see backup-verify)`);
}

async function runRebase(ctx: StepContext, s: RebaseStep): Promise<FileChecksum> {
  const file = layerFile(ctx, s.disk, s.child);
  const tmp = path.join(path.dirname(file), `${s.child}.retention.partial`);
  const oldBacking = `${s.oldBase}.qcow2`;
  const newBacking = s.newBase !== undefined ? `${s.newBase}.qcow2` : undefined;
  const backing = await ctx.ops.backingOf(file);
  if (backing === oldBacking) {
    fs.rmSync(tmp, { force: true }); // a copy left by an interrupted attempt
    if (!ctx.view.entry(s.child, s.disk)) throw new Abandon(`backup ${s.child} no longer has a layer of ${s.disk}`);
    try {
      ctx.ops.copy(file, tmp);
      await ctx.phase('rebase:copied');
      await ctx.ops.rebase(tmp, newBacking, ctx.hooks);
      fsyncFile(tmp);
      await ctx.phase('rebase:rebased');
    } catch (e) {
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    renameDurable(tmp, file);
    ctx.atBoundary = false;
    await ctx.phase('rebase:renamed');
  } else if (backing === newBacking) {
    ctx.atBoundary = false;
  } else {
    throw unexpected(file, backing, [oldBacking, newBacking ?? '(none)']);
  }
  const sum = await ctx.ops.checksum(file);
  ctx.view.relink(s.child, s.disk, s, sum);
  await ctx.phase('rebase:recorded');
  fs.rmSync(tmp, { force: true });
  return sum;
}

async function runFold(ctx: StepContext, s: FoldStep): Promise<FileChecksum> {
  const into = layerFile(ctx, s.disk, s.into);
  const top = layerFile(ctx, s.disk, s.child);
  const run = [s.into, ...s.through];
  const oldBacking = `${run[run.length - 1]}.qcow2`;
  const newBacking = s.newBase !== undefined ? `${s.newBase}.qcow2` : undefined;
  const backing = await ctx.ops.backingOf(top);
  const intoExists = fs.existsSync(into);
  if (intoExists && backing === oldBacking) {
    ctx.atBoundary = run.every((r) => ctx.view.entry(r, s.disk) !== undefined);
    if (!ctx.view.entry(s.child, s.disk)) throw new Abandon(`backup ${s.child} no longer has a layer of ${s.disk}`);
    run.forEach((r, i) => refuseDependents(ctx, s.disk, r, i + 1 < run.length ? run[i + 1] : s.child, 'fold away'));
    for (const r of run) {
      if (!fs.existsSync(layerFile(ctx, s.disk, r))) throw new Error(`${layerFile(ctx, s.disk, r)} is missing; the fold cannot be done (see backup-verify)`);
    }
    for (const r of run) {
      ctx.view.removeEntry(r, s.disk);
      ctx.atBoundary = false;
    }
    await ctx.phase('fold:detached');
    await ctx.ops.commit(top, into, ctx.hooks);
    fsyncFile(into);
    fs.chmodSync(into, PRIVATE_FILE_MODE); // it becomes a kept layer: private, whatever mode it was made with
    await ctx.phase('fold:committed');
    renameDurable(into, top);
    await ctx.phase('fold:renamed');
  } else if (!intoExists && backing === newBacking) {
    ctx.atBoundary = false;
  } else {
    throw unexpected(top, backing, [`${oldBacking} (with ${into} present)`, `${newBacking ?? '(none)'} (with ${into} gone)`]);
  }
  const sum = await ctx.ops.checksum(top);
  ctx.view.relink(s.child, s.disk, s, sum);
  await ctx.phase('fold:recorded');
  for (const r of s.through) {
    ctx.view.removeEntry(r, s.disk);
    fs.rmSync(layerFile(ctx, s.disk, r), { force: true });
  }
  fsyncDir(path.dirname(top));
  return sum;
}
