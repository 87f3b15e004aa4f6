// The libvirt pull strategy: ONE backup-begin in pull mode (all disks, the new checkpoint in the
// same call) exports the point in time on a unix socket, with a scratch file per disk for
// copy-before-write; Tidemark's NBD client copies only the dirty (incremental/differential) or
// allocated (full) extents into the same qcow2-chain repository as push (engine/pull/layer-copy.ts).
// Ending the job (domjobabort) is how a pull ends; libvirt then removes the scratch files and the
// socket. On a remote host (qemu+ssh://) the socket is on that host: it is reached through an
// SSH-forwarded unix socket on this machine, and the repository stays here.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { abortJob, beginBackup, describeBackup, waitForJobEnd } from '../../../libvirt/backups';
import { frozen } from '../freeze';
import { domainState } from '../../../libvirt/domains';
import { forwardUnixSocket, type SocketForward } from '../../../libvirt/ssh-forward';
import { dirtyBitmapContext } from '../../../nbd/protocol';
import { formatNbdUri, type NbdAddress } from '../../../nbd/uri';
import { mkdirPrivate } from '../../../os/atomic-file';
import { createQcow2 } from '../../backup/qemuimg';
import { TOOL } from '../../backup/session';
import type { BackupStrategy, CopiedBytes, PointExport, StrategyRun } from '../../backup/strategy';
import { LayerCopy } from '../../pull/layer-copy';
import { qcow2LayerWriter, type Qcow2LayerGeometry } from '../../pull/qcow2-layer';
import { safeFileStem } from '../../names';
import { refuseIfBusy } from './busy';
import type { LibvirtPendingCheckpoint } from './checkpoint';
import { fileTag, privateRunDir, pullRunDir, REMOTE_RUN_DIR, type QemuIds } from './folders';
import type { LibvirtDomainHandle } from './handle';
import { jobProgress, watchPullJob } from './job';
import { ensureConnected, isConnectionLoss } from './link';
import { abortOurJob, type LibvirtBackupState } from './recovery';
import { pullDisks } from './xml-plan';

/** The pulled layer's clusters: qcow2's default (the base's are the repository's own layers). */
const LAYER_CLUSTER = 64 * 1024;

type Run = StrategyRun<LibvirtPendingCheckpoint>;

export interface LibvirtPullOptions {
  /** Where the run folder goes (local) or which folder on the remote host holds socket and scratch. */
  scratchDir?: string;
  exportOnly: boolean;
  /** Freeze the guest's filesystems around the one backup-begin (libvirt's guest-agent calls). */
  quiesce?: boolean;
  pieceBytes?: number;
  parallel?: number;
}

interface DiskExport {
  disk: string;
  exportName: string;
  /** qemu:dirty-bitmap:… of the changes since the base (incremental/differential). */
  dirtyContext?: string;
}

export class LibvirtPullStrategy implements BackupStrategy<LibvirtPendingCheckpoint> {
  readonly mode = 'pull';
  readonly name = 'libvirt-pull';
  readonly tool = `${TOOL} (libvirt pull)`;
  readonly exportOnly: boolean;
  readonly rollbackNote = 'partial images deleted; libvirt removed its scratch files; earlier backups and checkpoints untouched';
  private runDir: string | undefined;
  /** This machine's folder for the forwarded socket and the qemu-nbd writers. */
  private localDir: string | undefined;
  private socket = '';
  private scratch = new Map<string, string>();
  private forward: SocketForward | undefined;
  private exportsOf: DiskExport[] = [];
  private began = false;
  private copies: LayerCopy[] = [];
  private stopWatch: () => void = () => undefined;
  private stopped: string | undefined;
  private peak = 0;

  constructor(
    private readonly h: LibvirtDomainHandle,
    private readonly ids: () => Promise<QemuIds>,
    private readonly o: LibvirtPullOptions,
  ) {
    this.exportOnly = o.exportOnly;
  }

  check(): Promise<void> {
    return refuseIfBusy(this.h);
  }

  private state(): LibvirtBackupState {
    return { ownDirs: [this.runDir, this.localDir].filter((d): d is string => d !== undefined && d !== REMOTE_RUN_DIR && d !== this.o.scratchDir), jobPaths: [this.socket, ...this.scratch.values()].filter(Boolean) };
  }

  async setup(run: Run): Promise<void> {
    this.localDir = privateRunDir('tidemark-lvpull-');
    const tag = fileTag();
    if (this.h.local) {
      this.runDir = pullRunDir(await this.ids(), this.o.scratchDir);
      this.socket = path.join(this.runDir, 'nbd.sock');
    } else {
      // No agent on the remote host: its folder must exist there already, QEMU-writable (libvirt's own by default).
      this.runDir = this.o.scratchDir ?? REMOTE_RUN_DIR;
      this.socket = path.posix.join(this.runDir, `tidemark-${tag}.sock`);
    }
    for (const d of run.plan.disks) this.scratch.set(d.disk.name, path.posix.join(this.runDir, `tidemark-${tag}-${safeFileStem(d.disk.name)}.scratch.qcow2`));
    run.journal(this.state());
  }

  async start(run: Run): Promise<void> {
    const all = run.vm.disks.map((d) => d.name);
    const disks = pullDisks(run.plan, all, (disk) => this.scratch.get(disk)!);
    try {
      const begin = () => beginBackup(this.h.conn, this.h.uuid, { mode: 'pull', server: { transport: 'unix', socket: this.socket }, disks }, run.checkpoint ? { checkpoint: run.checkpoint.spec } : {});
      if (this.o.quiesce) await frozen(this.h.conn, this.h, `backup ${run.backupId}`, begin);
      else await begin();
    } catch (e) {
      if (isConnectionLoss(e)) run.markExecuted();
      throw e;
    }
    this.began = true;
    run.markExecuted();
    this.stopWatch = watchPullJob(this.h, (why) => run.abort(new Error(why)));
    const desc = await describeBackup(this.h.conn, this.h.uuid);
    this.exportsOf = run.plan.disks.map((d) => {
      const x = desc.disks.find((y) => y.name === d.disk.name);
      if (!x?.exportName) throw new Error(`libvirt's backup of ${this.h.name} exports no ${d.disk.name}`);
      return { disk: d.disk.name, exportName: x.exportName, ...(d.since !== undefined && x.exportBitmap ? { dirtyContext: dirtyBitmapContext(x.exportBitmap) } : {}) };
    });
    if (!this.h.local) {
      this.forward = await forwardUnixSocket(this.h.uri, this.socket, path.join(this.localDir!, 'nbd.sock'));
      run.log.add(`export ${this.socket} on the remote host forwarded over SSH to ${this.forward.localPath}`);
    }
    run.log.add(`backup-begin done: point in time fixed, ${this.exportsOf.length} export(s) ready${run.checkpoint ? `, checkpoint ${run.checkpoint.checkpoint.name} created` : ''}`);
  }

  private address(e: DiskExport): NbdAddress {
    return { transport: { kind: 'unix', path: this.forward?.localPath ?? this.socket }, exportName: e.exportName, tls: false };
  }

  exports(run: Run): PointExport[] {
    return this.exportsOf.map((e) => {
      const d = run.plan.disks.find((x) => x.disk.name === e.disk)!;
      return { disk: e.disk, kind: d.kind, ...(d.since ? { since: d.since } : {}), uri: formatNbdUri(this.address(e)), exportName: e.exportName, ...(e.dirtyContext ? { dirtyContext: e.dirtyContext } : {}), size: d.disk.virtualSize };
    });
  }

  async transfer(run: Run): Promise<CopiedBytes> {
    const copied: CopiedBytes = new Map();
    const done = new Map<string, { done: number; total: number }>();
    const progress = () => run.log.progress(run.plan.disks.map((d) => ({ disk: d.disk.name, ...(done.get(d.disk.name) ?? { done: 0, total: 0 }) })));
    for (const [i, d] of run.plan.disks.entries()) {
      const t = run.targets[i]!;
      const e = this.exportsOf.find((x) => x.disk === d.disk.name)!;
      try {
        mkdirPrivate(path.dirname(t.partial));
        const g: Qcow2LayerGeometry = { sizeBytes: d.disk.virtualSize, clusterSize: LAYER_CLUSTER, ...(d.base ? { backing: `${d.base}.qcow2` } : {}) };
        await createQcow2(t.partial, g.sizeBytes, { backing: g.backing, clusterSize: g.clusterSize });
        const copy = new LayerCopy({
          source: this.address(e), ...(e.dirtyContext ? { dirtyContext: e.dirtyContext } : {}), kind: d.kind, layer: t.partial,
          pieceBytes: this.o.pieceBytes, parallel: this.o.parallel, signal: run.signal,
          onProgress: (n, total) => {
            done.set(d.disk.name, { done: n, total });
            progress();
          },
          // Tidemark writes the layer file itself (pull/qcow2-layer.ts): no qemu-nbd process to start and stop.
          writer: qcow2LayerWriter(g, async () => undefined),
        });
        this.copies.push(copy);
        const r = await copy.run();
        run.log.add(`${d.disk.name}: ${d.kind}, ${r.dataBytes} bytes copied${r.zeroBytes ? `, ${r.zeroBytes} bytes written as zeroes` : ''}`);
        copied.set(d.disk.name, r.dataBytes);
      } catch (err) {
        throw run.signal.aborted ? err : new Error(`copying ${d.disk.name}: ${(err as Error).message}`, { cause: err });
      }
    }
    return copied;
  }

  async finish(run: Run): Promise<void> {
    this.stopWatch();
    if (run.signal.aborted) throw run.signal.reason;
    await abortJob(this.h.conn, this.h.uuid); // a pull ends this way
    const end = await waitForJobEnd(this.h.conn, this.h.uuid, { timeoutMs: 60_000 });
    this.began = false;
    this.peak = end.diskTempUsed ?? 0;
    if (end.diskTotal !== undefined) run.log.progress(jobProgress(run.plan.disks.map((d) => d.disk.name), end));
    await this.closeLocal();
    run.log.add('libvirt job ended: exports closed, scratch files removed by libvirt');
  }

  async rollback(run: Run): Promise<void> {
    this.stopWatch();
    for (const c of this.copies) await c.abort(new Error('pull rolled back'));
    try {
      await ensureConnected(this.h.conn);
      const st = await domainState(this.h.conn, this.h.uuid).catch(() => undefined);
      if (st && st.state !== 'running' && st.state !== 'paused') this.stopped = `domain ${this.h.name} is ${st.state === 'shutoff' ? 'shut off' : st.state}${st.reason ? ` (${st.reason})` : ''}`;
      if (this.began) await abortOurJob(this.h, [this.socket, ...this.scratch.values()], run.log);
    } finally {
      await this.closeLocal();
    }
  }

  explain(reason: string): string {
    return this.stopped && !reason.includes(this.stopped) ? `${this.stopped}: ${reason}` : reason;
  }

  summary(): string {
    return `scratch peak ${(this.peak / 1024 / 1024).toFixed(1)} MiB`;
  }

  scratchPeakBytes(): number {
    return this.peak;
  }

  private async closeLocal(): Promise<void> {
    await this.forward?.close().catch(() => undefined);
    this.forward = undefined;
    for (const d of [this.localDir, this.h.local ? this.runDir : undefined]) if (d) fs.rmSync(d, { recursive: true, force: true });
    this.localDir = undefined;
    if (this.h.local) this.runDir = undefined;
  }
}
