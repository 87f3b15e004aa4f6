// The libvirt push strategy: Tidemark creates every target as a qcow2 overlay of the disk's previous
// layer (an incremental's backing file is "<base>.qcow2", as in QMP mode) in a staging folder QEMU
// can reach, then ONE backup-begin --reuse-external with the new checkpoint (--checkpointxml) for
// all disks. libvirt's job writes the targets; when it has completed they are renamed into the
// repository (same file system) and the session records them. Remote hosts are refused: a push
// target is a path on the host QEMU runs on, and the repository stays on this machine.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { beginBackup } from '../../../libvirt/backups';
import { frozen } from '../freeze';
import { domainState } from '../../../libvirt/domains';
import { renameDurable, mkdirPrivate } from '../../../os/atomic-file';
import { LayerWritebacks } from '../../backup/layer-writeback';
import { createQcow2, QemuImgError, runQemuImg } from '../../backup/qemuimg';
import type { BackupRepository } from '../../backup/repository';
import { TOOL } from '../../backup/session';
import type { BackupStrategy, CopiedBytes, StrategyRun } from '../../backup/strategy';
import type { LibvirtPendingCheckpoint } from './checkpoint';
import { pushStagingDir, type QemuIds } from './folders';
import type { LibvirtDomainHandle } from './handle';
import { waitForPush } from './job';
import { ensureConnected, isConnectionLoss } from './link';
import { abortOurJob, type LibvirtBackupState } from './recovery';
import { refuseIfBusy } from './busy';
import { pushDisks } from './xml-plan';

type Run = StrategyRun<LibvirtPendingCheckpoint>;

export class LibvirtPushStrategy implements BackupStrategy<LibvirtPendingCheckpoint> {
  readonly mode = 'push';
  readonly name = 'libvirt-push';
  readonly tool = `${TOOL} (libvirt)`;
  readonly exportOnly = false;
  readonly rollbackNote = 'partial images deleted; earlier backups and checkpoints untouched';
  private staging: string | undefined;
  private staged = new Map<string, string>();
  private began = false;
  private stopped: string | undefined;
  /** The targets written back to disk while libvirt's job runs. */
  private readonly writebacks = new LayerWritebacks();

  constructor(
    private readonly h: LibvirtDomainHandle,
    private readonly repo: BackupRepository,
    private readonly ids: () => Promise<QemuIds>,
    /** Freeze the guest's filesystems around the one backup-begin (libvirt's guest-agent calls). */
    private readonly quiesce = false,
  ) {}

  async check(): Promise<void> {
    if (!this.h.local) {
      throw new Error(`push mode writes the backup where QEMU runs; domain ${this.h.name} runs on a remote host (${this.h.uri}) and the repository stays on this machine: use --mode pull`);
    }
    await refuseIfBusy(this.h);
  }

  private state(): LibvirtBackupState {
    return { ownDirs: this.staging ? [this.staging] : [], jobPaths: [...this.staged.values()] };
  }

  async setup(run: Run): Promise<void> {
    this.staging = pushStagingDir(this.repo, await this.ids());
    run.journal(this.state());
    for (const [i, d] of run.plan.disks.entries()) {
      const file = path.join(this.staging, `${run.backupId}-${i}.qcow2`);
      this.staged.set(d.disk.name, file);
      run.journal(this.state());
      await createTarget(file, d.disk.virtualSize, d.base);
    }
  }

  async start(run: Run): Promise<void> {
    const all = run.vm.disks.map((d) => d.name);
    const disks = pushDisks(run.plan, all, (disk) => this.staged.get(disk)!);
    try {
      const begin = () => beginBackup(this.h.conn, this.h.uuid, { mode: 'push', disks }, { reuseExternal: true, ...(run.checkpoint ? { checkpoint: run.checkpoint.spec } : {}) });
      if (this.quiesce) await frozen(this.h.conn, this.h, `backup ${run.backupId}`, begin);
      else await begin();
    } catch (e) {
      // Lost in flight: libvirt may have begun (and recorded the checkpoint); the rollback finds out.
      if (isConnectionLoss(e)) run.markExecuted();
      throw e;
    }
    this.began = true;
    run.markExecuted();
    run.log.add(`backup-begin done: libvirt's job runs${run.checkpoint ? `, checkpoint ${run.checkpoint.checkpoint.name} created` : ''}`);
  }

  async transfer(run: Run): Promise<CopiedBytes> {
    this.writebacks.start(run.plan.disks.map((d) => [d.disk.name, this.staged.get(d.disk.name)!] as const));
    let done: Awaited<ReturnType<typeof waitForPush>>;
    try {
      done = await waitForPush(this.h, run, run.plan.disks.map((d) => d.disk.name));
    } finally {
      this.writebacks.stop();
    }
    const copied: CopiedBytes = new Map();
    if (!done) return copied; // aborted: the session throws the reason
    run.log.add(`libvirt's job completed: ${done.diskProcessed ?? 0} bytes over ${run.plan.disks.length} disk(s) in ${done.timeElapsedMs ?? 0} ms`);
    this.began = false;
    for (const d of run.plan.disks) copied.set(d.disk.name, await layerBytes(this.staged.get(d.disk.name)!));
    return copied;
  }

  earlyWriteback(disk: string): Promise<void> | undefined {
    return this.writebacks.of(disk);
  }

  /** The job has ended: the targets move into the repository as the session's partial layers. */
  async finish(run: Run): Promise<void> {
    for (const [i, d] of run.plan.disks.entries()) {
      const t = run.targets[i]!;
      mkdirPrivate(path.dirname(t.partial));
      fs.chmodSync(this.staged.get(d.disk.name)!, 0o600);
      renameDurable(this.staged.get(d.disk.name)!, t.partial);
    }
    this.removeStaging();
    run.log.add('targets moved into the repository');
  }

  async rollback(run: Run): Promise<void> {
    try {
      await ensureConnected(this.h.conn);
      const st = await domainState(this.h.conn, this.h.uuid).catch(() => undefined);
      if (st && st.state !== 'running' && st.state !== 'paused') this.stopped = `domain ${this.h.name} is ${st.state === 'shutoff' ? 'shut off' : st.state}${st.reason ? ` (${st.reason})` : ''}`;
      if (this.began || run.signal.aborted) await abortOurJob(this.h, [...this.staged.values()], run.log);
    } finally {
      await this.writebacks.settle(); // no sync left running on a file removed next
      this.removeStaging();
    }
  }

  explain(reason: string): string {
    return this.stopped && !reason.includes(this.stopped) ? `${this.stopped}: ${reason}` : reason;
  }

  private removeStaging(): void {
    if (this.staging) fs.rmSync(this.staging, { recursive: true, force: true });
    this.staging = undefined;
  }
}

/**
 * A target: a plain qcow2, or an overlay whose backing file is written as the repository will
 * resolve it ("<base>.qcow2" beside it), which does not exist in the staging folder: -u, and QEMU
 * never opens a push target's backing chain.
 */
async function createTarget(file: string, size: number, base: string | undefined): Promise<void> {
  if (!base) return createQcow2(file, size);
  const r = await runQemuImg(['create', '-q', '-u', '-f', 'qcow2', '-o', 'compat=1.1', '-b', `${base}.qcow2`, '-F', 'qcow2', file, String(size)]);
  if (r.code !== 0) throw new QemuImgError(`cannot create image ${file}: ${r.stderr.trim()}`, r.code, r.stderr);
}

/** Bytes this layer holds itself (not its backing file): qemu-img map, depth 0. */
async function layerBytes(file: string): Promise<number> {
  const spec = JSON.stringify({ driver: 'qcow2', file: { driver: 'file', filename: file }, backing: null });
  const r = await runQemuImg(['map', '--output=json', `json:${spec}`]);
  if (r.code !== 0) return 0;
  const extents = JSON.parse(r.stdout) as { length: number; depth: number; data: boolean }[];
  return extents.filter((e) => e.depth === 0 && e.data).reduce((n, e) => n + e.length, 0);
}
