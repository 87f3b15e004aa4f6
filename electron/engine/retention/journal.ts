// The retention journal: REPO/vms/<vm-key>/retention-journal.json, written atomically (0600)
// before the first step of a prune or merge and after every finished step. It holds the plan's
// steps and how many are done, and the pid of a qemu-img helper while one runs, so that after a
// kill -9 the next run finishes the plan (and stops a helper left running). Its steps drive file
// deletions, so it is checked field by field when read back: ids must be backup ids, and layer
// paths are derived from them (never read from the journal).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v from 'valibot';
import { check, list, matching, num, oneOf, optionalArg, record, size as sizeSchema, text } from '../../../shared/schema';
import { BACKUP_ID_RE } from '../backup/manifest';
import type { BackupRepository } from '../backup/repository';
import { fsyncDir, mkdirPrivate, writeFileAtomic } from '../../os/atomic-file';
import { ownStartTime } from '../../os/process-liveness';
import type { RetentionPlan, RetentionStep } from './plan';

export const JOURNAL_FILE = 'retention-journal.json';

export interface RetentionJournal {
  format: 'tidemark-retention-journal';
  version: 1;
  /** What the run does, for messages ("prune", "merge --max-chain 7"). */
  what: string;
  vmId: string;
  pid: number;
  startTicks?: string;
  host: string;
  startedAt: number;
  updatedAt: number;
  /** Manifest ids the plan was made from. */
  basis: string[];
  kept: string[];
  removed: string[];
  steps: RetentionStep[];
  /** Steps finished. */
  done: number;
  /** A qemu-img process running for step `done` (stopped by the next run if still alive). */
  helper?: { pid: number; startTicks?: string };
}

export function journalPath(repo: BackupRepository, vmId: string): string {
  return path.join(repo.vmDir(vmId), JOURNAL_FILE);
}

const id = matching(BACKUP_ID_RE, 'a backup id', 64);
const disk = text({ min: 1, max: 256 });
const kind = oneOf('full', 'incremental', 'differential');
const size = sizeSchema();
const link = { newBase: optionalArg(id), since: optionalArg(text({ min: 1, max: 4096 })), kind };
const dropV = v.strictObject({ op: v.literal('drop'), disk, point: id, bytes: size });
const rebaseV = v.strictObject({ op: v.literal('rebase'), disk, child: id, oldBase: id, growthMax: size, ...link });
const foldV = v.strictObject({ op: v.literal('fold'), disk, into: id, through: list(id), child: id, bytesMax: size, ...link });
// variant() picks the step's schema by its op, so an error names the field of that kind of step.
const step = v.variant('op', [dropV, rebaseV, foldV], (issue) => `expected "op" to be "drop", "rebase" or "fold", got ${JSON.stringify((issue.input as { op?: unknown } | null)?.op)}`);
const journalV = record({
  format: v.literal('tidemark-retention-journal'),
  version: v.literal(1, (issue) => `journal version ${JSON.stringify(issue.input)} is not supported`),
  what: text({ max: 200 }),
  vmId: text({ min: 1, max: 512 }),
  pid: num({ integer: true }),
  startTicks: optionalArg(text({ max: 32 })),
  host: text({ max: 256 }),
  startedAt: size,
  updatedAt: size,
  basis: list(id, { max: 1_000_000 }),
  kept: list(id, { max: 1_000_000 }),
  removed: list(id, { max: 1_000_000 }),
  steps: list(step, { max: 1_000_000 }),
  done: num({ integer: true, min: 0 }),
  helper: optionalArg(record({ pid: num({ integer: true, min: 1 }), startTicks: optionalArg(text({ max: 32 })) })),
});

/** The journal of an unfinished prune or merge of `vmId`; undefined when there is none. Throws naming the file when it cannot be read. */
export function readJournal(repo: BackupRepository, vmId: string): RetentionJournal | undefined {
  const file = journalPath(repo, vmId);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read the retention journal ${file}: ${(e as Error).message}`);
  }
  let j: RetentionJournal;
  try {
    j = check(journalV, JSON.parse(text), 'journal') as RetentionJournal;
  } catch (e) {
    throw new Error(`the retention journal ${file} is damaged (${(e as Error).message}); an interrupted prune cannot be finished from it — check the VM's backups with backup-verify, then move the file away`);
  }
  if (j.vmId !== vmId) throw new Error(`the retention journal ${file} belongs to VM ${JSON.stringify(j.vmId)}, not ${JSON.stringify(vmId)}`);
  if (j.done > j.steps.length) throw new Error(`the retention journal ${file} is damaged: ${j.done} of ${j.steps.length} steps done`);
  return j;
}

export function newJournal(plan: RetentionPlan, what: string): RetentionJournal {
  const now = Date.now();
  const start = ownStartTime();
  return {
    format: 'tidemark-retention-journal', version: 1, what, vmId: plan.vmId, pid: process.pid, ...(start !== undefined ? { startTicks: start } : {}),
    host: os.hostname(), startedAt: now, updatedAt: now, basis: plan.basis, kept: plan.kept, removed: plan.removed, steps: plan.steps, done: 0,
  };
}

export function writeJournal(repo: BackupRepository, j: RetentionJournal): void {
  const file = journalPath(repo, j.vmId);
  mkdirPrivate(path.dirname(file));
  j.updatedAt = Date.now();
  writeFileAtomic(file, JSON.stringify(j) + '\n');
}

export function removeJournal(repo: BackupRepository, vmId: string): void {
  const file = journalPath(repo, vmId);
  fs.rmSync(file, { force: true });
  fsyncDir(path.dirname(file));
}
