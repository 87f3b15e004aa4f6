// Shared setup for the backup integration tests: a real lab VM, a checkpoint engine, a repository,
// and a "shadow" raw file per disk that receives the same writes as the VM's disk, so that what a
// disk held at any backup point is known independently of Tidemark (the oracle).

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { QmpClient } from '../../qmp/client';
import { CheckpointEngine } from '../checkpoints/engine';
import { startLab, stopLab, type LabDiskSpec, type LabStatus } from '../lab/labvm';
import { BackupRepository } from './repository';

export const KiB = 1024;
export const MiB = 1024 * 1024;

export interface BackupRig {
  root: string;
  labDir: string;
  stateDir: string;
  lab: LabStatus;
  client: QmpClient;
  engine: CheckpointEngine;
  repo: BackupRepository;
  shadow: Shadow;
}

export async function startBackupRig(disks: LabDiskSpec[], opts: { root?: string } = {}): Promise<BackupRig> {
  const root = opts.root ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tmbk-'));
  const labDir = path.join(root, 'lab');
  const stateDir = path.join(root, 'state');
  const lab = await startLab({ dir: labDir, disks });
  const client = await QmpClient.connect(lab.qmp);
  const engine = await CheckpointEngine.open(client, { endpoint: lab.qmp, stateDir });
  const repo = BackupRepository.open(path.join(root, 'repo'), { create: true });
  const shadow = new Shadow(path.join(root, 'shadow'), client, lab.log, disks);
  return { root, labDir, stateDir, lab, client, engine, repo, shadow };
}

/**
 * A rig for the tests of one describe block: started before them (`timeoutMs` for a slow start),
 * stopped after them, also when one fails. Returns the rig's getter, for use inside the tests.
 */
export function backupRigPerSuite(disks: LabDiskSpec[], timeoutMs?: number): () => BackupRig {
  let rig: BackupRig | undefined;
  beforeAll(async () => {
    rig = await startBackupRig(disks);
  }, timeoutMs);
  afterAll(() => stopBackupRig(rig));
  return () => {
    if (!rig) throw new Error('the backup rig did not start (see the failure before this test)');
    return rig;
  };
}

/** Closes the shadow files, the engine and QMP, stops the lab VM, and removes the rig's folder unless `keepRoot`. */
export async function stopBackupRig(rig: BackupRig | undefined, opts: { keepRoot?: boolean } = {}): Promise<void> {
  if (!rig) return;
  rig.shadow.close();
  await rig.engine.close().catch(() => undefined);
  await rig.client.close().catch(() => undefined);
  await stopLab(rig.labDir);
  if (!opts.keepRoot) fs.rmSync(rig.root, { recursive: true, force: true });
}

/** Raw files mirroring the VM's disks: every write goes to both. Snapshots keep the content at backup points. */
export class Shadow {
  private readonly fds = new Map<string, number>();
  readonly sizes = new Map<string, number>();
  private logOffset = 0;

  constructor(readonly dir: string, private client: QmpClient, private readonly qemuLog: string, disks: LabDiskSpec[]) {
    fs.mkdirSync(path.join(dir, 'snap'), { recursive: true });
    for (const d of disks) {
      const f = this.file(d.name);
      fs.writeFileSync(f, '');
      fs.truncateSync(f, d.sizeBytes);
      this.fds.set(d.name, fs.openSync(f, 'r+'));
      this.sizes.set(d.name, d.sizeBytes);
    }
    this.logOffset = fs.existsSync(qemuLog) ? fs.statSync(qemuLog).size : 0;
  }

  /** After a QEMU restart the client changes. */
  reconnect(client: QmpClient): void {
    this.client = client;
  }

  file(disk: string): string {
    return path.join(this.dir, `${disk}.raw`);
  }

  snapFile(label: string, disk: string): string {
    return path.join(this.dir, 'snap', `${label}-${disk}.raw`);
  }

  /** A guest write through the drive (dirties bitmaps like a guest), mirrored into the shadow. */
  async write(disk: string, offset: number, len: number, pattern: number | 'zero'): Promise<void> {
    const cmd = pattern === 'zero' ? `write -z ${offset} ${len}` : `write -P 0x${pattern.toString(16)} ${offset} ${len}`;
    const out = await this.client.hmp(`qemu-io drive-${disk} "${cmd}"`);
    if (out.trim() !== '') throw new Error(`qemu-io on ${disk}: ${out}`);
    const log = this.readLog();
    if (/write failed|Pattern verification failed/.test(log)) throw new Error(`qemu-io write failed on ${disk}: ${log.trim().slice(-200)}`);
    fs.writeSync(this.fds.get(disk)!, Buffer.alloc(len, pattern === 'zero' ? 0 : pattern), 0, len, offset);
  }

  private readLog(): string {
    const fd = fs.openSync(this.qemuLog, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      if (size < this.logOffset) this.logOffset = 0;
      const buf = Buffer.alloc(size - this.logOffset);
      fs.readSync(fd, buf, 0, buf.length, this.logOffset);
      this.logOffset = size;
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Keeps the current content of every disk under `label` (sparse copies). */
  snapshot(label: string, disks: string[] = [...this.fds.keys()]): void {
    for (const d of disks) execFileSync('cp', ['--sparse=always', this.file(d), this.snapFile(label, d)]);
  }

  dropSnapshot(label: string): void {
    for (const d of this.fds.keys()) fs.rmSync(this.snapFile(label, d), { force: true });
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}

/** qemu-img compare (non-strict) of an image with a raw oracle: "" when identical, else qemu-img's message. */
export function compareWith(image: string, format: string, raw: string): string {
  try {
    execFileSync('qemu-img', ['compare', '-f', format, '-F', 'raw', image, raw], { stdio: 'pipe' });
    return '';
  } catch (e) {
    const err = e as { status?: number; stdout?: Buffer; stderr?: Buffer };
    if (err.status === 1) return String(err.stdout ?? '').trim() || 'differ';
    throw new Error(`qemu-img compare failed: ${String(err.stderr ?? '')}`);
  }
}
