// Checkpoint metadata on disk, one directory per VM:
//   STATE/vms/<vm-key>/vm.json                    { id, name, uuid, endpoint, layout, current }
//   STATE/vms/<vm-key>/checkpoints/<file>.json    one Checkpoint per file (file name from names.ts)
//   STATE/vms/<vm-key>/lock                       held while an operation changes metadata
// Every write is atomic (temp file, fsync, rename, fsync of the directory), so a crash leaves
// either the old or the new file. A damaged file gives an error naming it, never a crash.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BitmapLayout, Checkpoint } from '../../../shared/domain';
import { v, type Validator } from '../../../shared/validate';
import { checkpointFileName, validateCheckpointName, vmKey } from '../names';
import { acquireLock } from './lock';

export interface VmRecord {
  id: string;
  name?: string;
  uuid?: string;
  endpoint: string;
  layout?: BitmapLayout;
  current?: string;
}

export interface StoredMetadata {
  vm: VmRecord | undefined;
  checkpoints: Map<string, Checkpoint>;
}

const layoutV = v.literal('independent', 'chained');
const vmRecordV: Validator<VmRecord> = v.object({
  id: v.string({ min: 1, max: 8192 }),
  name: v.optional(v.string({ max: 8192 })),
  uuid: v.optional(v.string({ max: 64 })),
  endpoint: v.string({ max: 8192 }),
  layout: v.optional(layoutV),
  current: v.optional(v.string({ max: 4096 })),
});
const checkpointV: Validator<Checkpoint> = v.object({
  name: v.string({ min: 1, max: 4096 }),
  description: v.optional(v.string({ max: 1024 * 1024 })),
  parent: v.optional(v.string({ max: 4096 })),
  creationTime: v.number({ integer: true, min: 0 }),
  createdAtMs: v.number({ integer: true, min: 0 }),
  disks: v.array(
    v.object({
      name: v.string({ min: 1, max: 4096 }),
      checkpoint: v.literal('bitmap', 'no'),
      bitmap: v.optional(v.string({ max: 4096 })),
      size: v.optional(v.number({ min: 0 })),
      incomplete: v.optional(v.string({ max: 8192 })),
    }),
    { max: 4096 },
  ),
  layout: layoutV,
  domainXml: v.optional(v.string({ max: 16 * 1024 * 1024 })),
});

/** Writes `data` to `file` atomically and durably. */
export function writeFileAtomic(file: string, data: string): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const fd = fs.openSync(tmp, 'wx', 0o644);
  try {
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
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
  readonly lockFile: string;

  constructor(stateDir: string, readonly vmId: string) {
    const vms = path.resolve(stateDir, 'vms');
    this.dir = path.join(vms, vmKey(vmId));
    // vmKey never yields "/" or a leading "."; this guards the invariant anyway.
    if (path.dirname(this.dir) !== vms) throw new Error(`VM id ${JSON.stringify(vmId)} does not map to a directory under ${vms}`);
    this.checkpointsDir = path.join(this.dir, 'checkpoints');
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
    fs.mkdirSync(this.dir, { recursive: true });
    writeFileAtomic(path.join(this.dir, 'vm.json'), JSON.stringify(rec, null, 2) + '\n');
  }

  writeCheckpoint(cp: Checkpoint): void {
    validateCheckpointName(cp.name);
    fs.mkdirSync(this.checkpointsDir, { recursive: true });
    writeFileAtomic(path.join(this.checkpointsDir, checkpointFileName(cp.name)), JSON.stringify(cp, null, 2) + '\n');
  }

  removeCheckpoint(name: string): void {
    fs.rmSync(path.join(this.checkpointsDir, checkpointFileName(name)), { force: true });
    if (fs.existsSync(this.checkpointsDir)) fsyncDir(this.checkpointsDir);
  }

  /** Takes the VM's metadata lock; resolves with its release function. */
  lock(command: string, waitMs?: number): Promise<() => void> {
    return acquireLock(this.lockFile, { command, waitMs, what: `metadata of VM ${this.vmId}` });
  }
}
