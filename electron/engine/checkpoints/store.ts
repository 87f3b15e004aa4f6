// Checkpoint metadata on disk, one directory per VM:
//   STATE/vms/<vm-key>/vm.json                    { id, name, uuid, endpoint, layout, current }
//   STATE/vms/<vm-key>/checkpoints/<file>.json    one Checkpoint per file (file name from names.ts)
//   STATE/vms/<vm-key>/lock                       held while an operation changes metadata
//   STATE/vms/<vm-key>/pending/<file>.json        a checkpoint prepared for a caller's transaction
//                                                 (backups), until it is committed or rolled back
// Every write is atomic (temp file, fsync, rename, fsync of the directory), so a crash leaves
// either the old or the new file. A damaged file gives an error naming it, never a crash.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v from 'valibot';
import { bitmapLayoutSchema, checkpointSchema, type BitmapLayout, type Checkpoint } from '../../../shared/domain';
import { num, record, text, validator, type Validator } from '../../../shared/schema';
import { checkpointFileName, validateCheckpointName, vmKey } from '../names';
import { describeFsError } from './fserror';
import { acquireLock } from './lock';
import { fsyncDir, mkdirPrivate, stageFile, writeFileAtomic } from '../../os/atomic-file';

export interface VmRecord {
  id: string;
  name?: string;
  uuid?: string;
  endpoint: string;
  layout?: BitmapLayout;
  current?: string;
}

/** Who prepared a pending checkpoint: its process (and start time, so a reused pid is not taken for it). */
export interface PendingOwner {
  pid: number;
  start?: string;
  /** The operation, e.g. "backup 20260101-120000-ab12": shown to whoever finds its bitmaps. */
  command: string;
  since: string;
}

/** A checkpoint whose bitmaps are created in a caller's transaction and whose metadata is not written yet. */
export interface PendingCheckpoint {
  checkpoint: Checkpoint;
  owner: PendingOwner;
  /** Set when the owner's operation ended without committing or rolling it back (its bitmaps stayed). */
  abandoned?: boolean;
}

export interface StoredMetadata {
  vm: VmRecord | undefined;
  checkpoints: Map<string, Checkpoint>;
}

const vmRecordV: Validator<VmRecord> = validator(record({
  id: text({ min: 1, max: 8192 }),
  name: v.optional(text({ max: 8192 })),
  uuid: v.optional(text({ max: 64 })),
  endpoint: text({ max: 8192 }),
  layout: v.optional(bitmapLayoutSchema),
  current: v.optional(text({ max: 4096 })),
}));
const checkpointV: Validator<Checkpoint> = validator(checkpointSchema);

const pendingV: Validator<PendingCheckpoint> = validator(record({
  checkpoint: checkpointSchema,
  owner: record({
    pid: num({ integer: true, min: 1 }),
    start: v.optional(text({ max: 64 })),
    command: text({ max: 8192 }),
    since: text({ max: 64 }),
  }),
  abandoned: v.optional(v.boolean()),
}));

/** Metadata changes written aside (staged) before QEMU is touched, then put in place by commit(). */
export interface StagedChanges {
  /** Renames the staged files into place and removes the deleted ones (no new space needed). */
  commit(): void;
  /** Drops the staged files: the metadata stays as it was. */
  abort(): void;
}

function readJson<T>(file: string, validator: Validator<T>, what: string): T {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${what} ${file}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} ${file} is damaged (not valid JSON: ${(e as Error).message}); fix or remove that file`);
  }
  try {
    return validator(value, path.basename(file));
  } catch (e) {
    throw new Error(`${what} ${file} is damaged (${(e as Error).message}); fix or remove that file`);
  }
}

export class MetadataStore {
  /** STATE/vms/<vm-key> */
  readonly dir: string;
  readonly checkpointsDir: string;
  /** STATE/vms/<vm-key>/pending: checkpoints prepared for a caller's transaction, not yet recorded. */
  readonly pendingDir: string;
  readonly lockFile: string;

  /** How messages name the VM: its name and id when it has both, else its id. */
  readonly label: string;

  constructor(stateDir: string, readonly vmId: string, vmName?: string) {
    this.label = vmName && vmName !== vmId ? `${vmName} (${vmId})` : vmId;
    const vms = path.resolve(stateDir, 'vms');
    this.dir = path.join(vms, vmKey(vmId));
    // vmKey never yields "/" or a leading "."; this guards the invariant anyway.
    if (path.dirname(this.dir) !== vms) throw new Error(`VM id ${JSON.stringify(vmId)} does not map to a directory under ${vms}`);
    this.checkpointsDir = path.join(this.dir, 'checkpoints');
    this.pendingDir = path.join(this.dir, 'pending');
    this.lockFile = path.join(this.dir, 'lock');
  }

  /** Reads vm.json and every checkpoint file. Throws, naming the file, on damage. */
  load(): StoredMetadata {
    const vmFile = path.join(this.dir, 'vm.json');
    const vm = fs.existsSync(vmFile) ? readJson(vmFile, vmRecordV, 'VM metadata') : undefined;
    const checkpoints = new Map<string, Checkpoint>();
    let files: string[] = [];
    try {
      files = fs.readdirSync(this.checkpointsDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${this.checkpointsDir}: ${(e as Error).message}`);
    }
    for (const f of files.sort()) {
      if (f.startsWith('.') || !f.endsWith('.json')) continue; // temp files of an interrupted write
      const file = path.join(this.checkpointsDir, f);
      const cp = readJson(file, checkpointV, 'checkpoint metadata');
      try {
        validateCheckpointName(cp.name);
      } catch (e) {
        throw new Error(`checkpoint metadata ${file} is damaged (${(e as Error).message})`);
      }
      if (checkpointFileName(cp.name) !== f) {
        throw new Error(`checkpoint metadata ${file} holds checkpoint ${JSON.stringify(cp.name)}, whose file should be ${checkpointFileName(cp.name)}; fix or remove that file`);
      }
      checkpoints.set(cp.name, cp);
    }
    return { vm, checkpoints };
  }

  writeVm(rec: VmRecord): void {
    mkdirPrivate(this.dir);
    writeFileAtomic(path.join(this.dir, 'vm.json'), JSON.stringify(rec, null, 2) + '\n');
  }

  writeCheckpoint(cp: Checkpoint): void {
    validateCheckpointName(cp.name);
    mkdirPrivate(this.checkpointsDir);
    writeFileAtomic(path.join(this.checkpointsDir, checkpointFileName(cp.name)), JSON.stringify(cp, null, 2) + '\n');
  }

  removeCheckpoint(name: string): void {
    fs.rmSync(path.join(this.checkpointsDir, checkpointFileName(name)), { force: true });
    if (fs.existsSync(this.checkpointsDir)) fsyncDir(this.checkpointsDir);
  }

  /**
   * Stages a change of the metadata: the new vm.json and checkpoint files are written and fsynced
   * beside the old ones, so a full or read-only state directory fails here, before any bitmap is
   * touched. Throws a clear error (the metadata unchanged, no file left behind).
   */
  stage(changes: { vm?: VmRecord; write?: Checkpoint[]; remove?: string[] }): StagedChanges {
    const staged: { tmp: string; file: string }[] = [];
    const abort = () => {
      for (const s of staged) fs.rmSync(s.tmp, { force: true });
    };
    try {
      mkdirPrivate(this.checkpointsDir);
      for (const cp of changes.write ?? []) {
        validateCheckpointName(cp.name);
        const file = path.join(this.checkpointsDir, checkpointFileName(cp.name));
        staged.push({ tmp: stageFile(file, JSON.stringify(cp, null, 2) + '\n'), file });
      }
      if (changes.vm) {
        const file = path.join(this.dir, 'vm.json');
        staged.push({ tmp: stageFile(file, JSON.stringify(changes.vm, null, 2) + '\n'), file });
      }
    } catch (e) {
      abort();
      throw new Error(`cannot write the metadata of VM ${this.label} under ${this.dir}: ${describeFsError(e)}`, { cause: e });
    }
    return {
      abort,
      commit: () => {
        // Checkpoint files first and vm.json last, so a crash in between leaves a valid tree.
        for (const s of staged) fs.renameSync(s.tmp, s.file);
        for (const name of changes.remove ?? []) fs.rmSync(path.join(this.checkpointsDir, checkpointFileName(name)), { force: true });
        fsyncDir(this.checkpointsDir);
        fsyncDir(this.dir);
      },
    };
  }

  /** The pending checkpoints (prepared, not yet committed or rolled back). Throws, naming the file, on damage. */
  loadPending(): PendingCheckpoint[] {
    let files: string[];
    try {
      files = fs.readdirSync(this.pendingDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new Error(`cannot read ${this.pendingDir}: ${(e as Error).message}`);
    }
    const out: PendingCheckpoint[] = [];
    for (const f of files.sort()) {
      if (f.startsWith('.') || !f.endsWith('.json')) continue;
      const file = path.join(this.pendingDir, f);
      const p = readJson(file, pendingV, 'pending checkpoint');
      if (checkpointFileName(p.checkpoint.name) !== f) {
        throw new Error(`pending checkpoint ${file} holds checkpoint ${JSON.stringify(p.checkpoint.name)}, whose file should be ${checkpointFileName(p.checkpoint.name)}; fix or remove that file`);
      }
      out.push(p);
    }
    return out;
  }

  /** Records (atomically) that `p.checkpoint` is being created. */
  writePending(p: PendingCheckpoint): void {
    validateCheckpointName(p.checkpoint.name);
    try {
      mkdirPrivate(this.pendingDir);
      writeFileAtomic(path.join(this.pendingDir, checkpointFileName(p.checkpoint.name)), JSON.stringify(p, null, 2) + '\n');
    } catch (e) {
      throw new Error(`cannot write the metadata of VM ${this.label} under ${this.dir}: ${describeFsError(e)}`, { cause: e });
    }
  }

  /** Forgets a pending checkpoint (committed, rolled back, or cleaned up); no error if there is none. */
  removePending(name: string): void {
    const file = path.join(this.pendingDir, checkpointFileName(name));
    if (!fs.existsSync(file)) return;
    fs.rmSync(file, { force: true });
    fsyncDir(this.pendingDir);
  }

  /** Takes the VM's metadata lock; resolves with its release function. */
  lock(command: string, waitMs?: number): Promise<() => void> {
    return acquireLock(this.lockFile, { command, waitMs, what: `metadata of VM ${this.label}` });
  }
}

/** Stages metadata before QEMU is touched: if the state directory cannot take it, nothing changed. */
export function stageBefore(stage: () => StagedChanges): StagedChanges {
  try {
    return stage();
  } catch (e) {
    throw new Error(`${(e as Error).message}; nothing was changed`, { cause: e });
  }
}
