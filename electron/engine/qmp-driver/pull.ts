// The QMP pull strategy: a fleece overlay per disk (an empty qcow2 whose backing is the disk),
// then ONE transaction: temporary bitmaps + the new checkpoint + a sync=none fleecing job per disk
// (why this method: actions.ts). Each fleece node is exported read-only over QEMU's NBD server with
// its temporary bitmap; Tidemark copies only the dirty extents into the same qcow2-chain repository
// as push (engine/pull/layer-copy.ts; Tidemark writes the new layer file, pull/qcow2-layer.ts), or,
// export-only, an outside tool reads the exports until backup-end. The backup session
// (engine/backup/session.ts) does everything else.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mkdirPrivate } from '../../os/atomic-file';
import { dirtyBitmapContext } from '../../nbd/protocol';
import { ExportManager, nbdSocketPath, type QemuExport } from '../../nbd/qemu-exports';
import type { QmpClient } from '../../qmp/client';
import { QmpError } from '../../qmp/errors';
import type { AroundTransaction, CheckpointEngineApi, PreparedCheckpoint } from '../checkpoints/api';
import { keepSourceGranularity } from '../dirtymap/dirtymap';
import { silentReporter, type OperationReporter } from '../operation';
import type { BackupManifest } from '../backup/manifest';
import { createQcow2 } from '../backup/qemuimg';
import { runBackupSession, TOOL, type BackupSpec } from '../backup/session';
import { LayerWritebacks } from '../backup/layer-writeback';
import type { LayerFacts } from '../backup/record';
import type { BackupStrategy, CopiedBytes, PointExport, StrategyRun } from '../backup/strategy';
import { checkFleeceRoom, FleeceWatch, mib, type FleeceLimits } from '../pull/fleece';
import { LayerCopy } from '../pull/layer-copy';
import { backupNames, fleeceNodeArgs, pullActions, qmpDiskRuns, type QmpDiskRun } from './actions';
import { refuseIfQemuBusy, runTransaction, type PullJournal, type QmpBackupState } from './recovery';
import { readWrittenLayerFacts } from './layer-facts';
import { qcow2LayerWriter, type Qcow2LayerGeometry } from '../pull/qcow2-layer';
import { qmpBackupSource } from './source';
import { settleAll } from '../../os/settle-all';

export interface PullOptions {
  /** Tidemark's state directory (the NBD socket under run/). */
  stateDir: string;
  /** Where the fleece images go (default STATE/run/fleece). */
  fleeceDir?: string;
  fleece?: FleeceLimits;
  /** Largest single read/write and pieces in flight while copying (defaults 4 MiB × 16). */
  pieceBytes?: number;
  parallel?: number;
  /** Wraps only the one transaction (quiesce: the guest's file systems frozen for it). */
  aroundTransaction?: AroundTransaction;
  /** Copy nothing: publish the exports and wait until backup-end reports the outcome. */
  exportOnly?: {
    /** Listen on TCP instead of the unix socket; needs TLS (QEMU tls-creds-x509 from a directory). */
    tcp?: { host: string; port: number; tlsDir: string };
  };
}

type Run = StrategyRun<PreparedCheckpoint>;

interface DiskState {
  run: QmpDiskRun;
  fleeceFile: string;
  fleeceAttached: boolean;
  exp?: QemuExport;
  copy?: LayerCopy;
}

export class QmpPullStrategy implements BackupStrategy<PreparedCheckpoint> {
  readonly mode = 'pull';
  readonly name = 'qmp-pull';
  readonly tool = `${TOOL} (pull)`;
  readonly exportOnly: boolean;
  readonly rollbackNote = 'partial images and fleecing images deleted; earlier backups and checkpoints untouched';
  private disks: DiskState[] = [];
  private readonly granularity = new Map<string, number>();
  /** Each layer's facts, read from QEMU just before it closed the layer (no `qemu-img info` when recording). */
  private readonly facts = new Map<string, LayerFacts>();
  /** The layers written back to disk while the copy runs (backup/layer-writeback.ts). */
  private readonly writebacks = new LayerWritebacks();
  private readonly pullJ: PullJournal = { exports: [], qemuNbdPids: [], fleeceFiles: [], layerNodes: [] };
  private readonly fleeceDir: string;
  private readonly exportsOf: ExportManager;
  private executed = false;
  private tlsObject: string | undefined;
  private watch: FleeceWatch | undefined;
  private stopJobWatch: () => void = () => undefined;

  constructor(
    private readonly engine: CheckpointEngineApi,
    private readonly client: QmpClient,
    private readonly o: PullOptions,
  ) {
    const tcp = o.exportOnly?.tcp;
    if (tcp && !tcp.tlsDir) throw new Error('a TCP NBD export needs TLS: give the directory of the server certificates (tls-creds-x509)');
    this.exportOnly = o.exportOnly !== undefined;
    this.fleeceDir = o.fleeceDir ?? path.join(o.stateDir, 'run', 'fleece');
    this.exportsOf = ExportManager.for(client, nbdSocketPath(o.stateDir, engine.vmId));
  }

  async check(): Promise<void> {
    await refuseIfQemuBusy(this.client);
    mkdirPrivate(this.fleeceDir);
    checkFleeceRoom(this.fleeceDir, this.o.fleece ?? {});
  }

  private state(): QmpBackupState {
    return {
      disks: this.disks.map((s) => ({ disk: s.run.plan.disk.name, jobId: s.run.jobId, targetNode: s.run.targetNode, ...(s.run.tmpBitmap ? { tmpBitmap: s.run.tmpBitmap } : {}), sourceNode: s.run.plan.disk.nodeName })),
      pull: this.pullJ,
    };
  }

  async setup(run: Run): Promise<void> {
    const runs = qmpDiskRuns(run.plan, backupNames(randomBytes(3).toString('hex')), (since, disk, tmp) => this.engine.tempBitmapActions(since, disk, tmp));
    // Temporary bitmaps at the checkpoints' granularity (not QEMU's default), so a 4 KiB-granularity
    // checkpoint is copied in 4 KiB units; the layer then gets clusters of that size (transfer).
    for (const d of runs) {
      if (!d.tmpBitmap) continue;
      const kept = keepSourceGranularity(d.bitmapActions, d.plan.disk);
      d.bitmapActions = kept.actions;
      this.granularity.set(d.plan.disk.name, kept.granularity);
    }
    this.disks = runs.map((d) => ({ run: d, fleeceFile: path.join(this.fleeceDir, `${run.backupId}-${d.plan.disk.name}.fleece.qcow2`), fleeceAttached: false }));
    run.journal(this.state());
    // Every qemu-img create at once (by qemu-img: see push.ts on blockdev-create): the fleece images,
    // and the new layers too (the session journaled their paths already; it deletes them on rollback).
    await settleAll([
      ...this.disks.map((s) => createQcow2(s.fleeceFile, s.run.plan.disk.virtualSize)),
      ...(this.exportOnly ? [] : run.targets.map((t) => this.createLayer(t))),
    ]);
    this.pullJ.fleeceFiles.push(...this.disks.map((s) => s.fleeceFile));
    run.journal(this.state());
    for (const s of this.disks) {
      await qmpStep(this.client, 'blockdev-add', fleeceNodeArgs(s.run.targetNode, s.fleeceFile, s.run.plan.disk.nodeName), `cannot open the fleecing image of ${s.run.plan.disk.name}`);
      s.fleeceAttached = true;
    }
  }

  /** The new layer of one disk, empty, on its base (created in setup, so a missing base fails before the transaction). */
  private async createLayer(t: Run['targets'][number]): Promise<void> {
    const d = t.plan;
    mkdirPrivate(path.dirname(t.partial));
    const g = this.layerGeometry(d);
    await createQcow2(t.partial, g.sizeBytes, { backing: g.backing, clusterSize: g.clusterSize });
  }

  /** The new layer of a disk, as setup creates it and the copy writes it. */
  private layerGeometry(d: Run['targets'][number]['plan']): Qcow2LayerGeometry {
    // Clusters no larger than the dirty granule: a 4 KiB change must not copy 64 KiB up from the base.
    const g = this.granularity.get(d.disk.name);
    const clusterSize = d.base && g !== undefined && g < 64 * 1024 ? Math.max(g, 4096) : 64 * 1024;
    return { sizeBytes: d.disk.virtualSize, clusterSize, ...(d.base ? { backing: `${d.base}.qcow2` } : {}) };
  }

  async start(run: Run): Promise<void> {
    this.stopJobWatch = watchFleeceJobs(this.client, this.disks, (why) => run.abort(new Error(why)));
    if (run.signal.aborted) throw run.signal.reason;
    try {
      const around = this.o.aroundTransaction ?? ((t) => t());
      await around(() => runTransaction(this.client, pullActions(this.disks.map((s) => s.run), run.checkpoint?.actions), this.state().disks, (how) => {
        run.log.add(how);
        this.executed = true;
        run.markExecuted();
      }));
    } catch (e) {
      throw e instanceof QmpError ? new Error(`the pull's transaction failed; QEMU changed nothing: ${e.desc}`, { cause: e }) : e;
    }
    this.executed = true;
    run.markExecuted();
    run.log.add('transaction done: point in time fixed, fleecing started');
    this.watch = new FleeceWatch(this.disks.map((s) => s.fleeceFile), this.o.fleece ?? {}, (why) => {
      run.log.add(why);
      run.abort(new Error(why));
    });
    this.watch.check(); // besides the timer: at fixed points, so a limit is never missed between ticks

    const tcp = this.o.exportOnly?.tcp;
    if (tcp) {
      this.tlsObject = `tidemark-tls-${randomBytes(3).toString('hex')}`;
      await qmpStep(this.client, 'object-add', { 'qom-type': 'tls-creds-x509', id: this.tlsObject, dir: tcp.tlsDir, endpoint: 'server', 'verify-peer': true }, 'cannot load the TLS certificates');
    }
    for (const s of this.disks) {
      s.exp = await this.exportsOf.add(
        { nodeName: s.run.targetNode, bitmaps: s.run.tmpBitmap ? [s.run.tmpBitmap] : undefined, prefix: 'tidemark-pull' },
        tcp ? { kind: 'tcp', host: tcp.host, port: tcp.port, tlsCreds: this.tlsObject! } : { kind: 'unix' },
      );
      this.pullJ.exports.push(s.exp.id);
      run.journal(this.state());
    }
  }

  exports(): PointExport[] {
    return this.disks.map((s) => {
      const d = s.run.plan;
      return {
        disk: d.disk.name, kind: d.kind, ...(d.since ? { since: d.since } : {}), uri: s.exp!.uri, exportName: s.exp!.name,
        ...(s.run.tmpBitmap ? { dirtyContext: dirtyBitmapContext(s.run.tmpBitmap) } : {}), size: d.disk.virtualSize,
      };
    });
  }

  /** Copy: each disk's dirty (incremental) or allocated (full) extents into a new layer. */
  async transfer(run: Run): Promise<CopiedBytes> {
    const copied: CopiedBytes = new Map();
    // The layers go to disk while QEMU still writes them (no-flush puts them in the page cache), as push's do.
    this.writebacks.start(this.disks.map((s, i) => [s.run.plan.disk.name, run.targets[i]!.partial] as const));
    try {
      await this.copyAll(run, copied);
    } finally {
      this.writebacks.stop();
    }
    this.watch?.check();
    return copied;
  }

  earlyWriteback(disk: string): Promise<void> | undefined {
    return this.writebacks.of(disk);
  }

  private async copyAll(run: Run, copied: CopiedBytes): Promise<void> {
    const done = new Map<string, number>();
    const totals = new Map<string, number>();
    const progress = () => run.log.progress(this.disks.map((s) => ({ disk: s.run.plan.disk.name, done: done.get(s.run.plan.disk.name) ?? 0, total: totals.get(s.run.plan.disk.name) ?? 0 })));
    for (const [i, s] of this.disks.entries()) {
      const d = s.run.plan;
      const t = run.targets[i]!;
      try {
        s.copy = new LayerCopy({
          source: s.exp!.address, dirtyContext: s.run.tmpBitmap ? dirtyBitmapContext(s.run.tmpBitmap) : undefined, kind: d.kind, layer: t.partial,
          pieceBytes: this.o.pieceBytes, parallel: this.o.parallel, signal: run.signal,
          onProgress: (n, total) => {
            done.set(d.disk.name, n);
            totals.set(d.disk.name, total);
            progress();
          },
          // Tidemark writes the layer file itself (no second NBD hop, no writer process; qcow2-layer.ts).
          writer: qcow2LayerWriter(this.layerGeometry(d), async (size) => void this.facts.set(d.disk.name, await readWrittenLayerFacts(this.client, size, d.disk.nodeName))),
        });
        const r = await s.copy.run();
        s.copy = undefined;
        run.log.add(`${d.disk.name}: ${d.kind}, ${r.dataBytes} bytes copied${r.zeroBytes ? `, ${r.zeroBytes} bytes written as zeroes` : ''}`);
        done.set(d.disk.name, r.dataBytes + r.zeroBytes);
        totals.set(d.disk.name, r.dataBytes + r.zeroBytes);
        copied.set(d.disk.name, r.dataBytes);
      } catch (e) {
        // Name the disk (an NBD error alone says only which socket closed); an abort keeps its own reason.
        throw run.signal.aborted ? e : new Error(`copying ${d.disk.name}: ${(e as Error).message}`, { cause: e });
      }
    }
  }

  async finish(run: Run): Promise<void> {
    this.watch?.check();
    if (run.signal.aborted) throw run.signal.reason;
    this.stopJobWatch();
    this.watch?.stop();
    await this.teardown(run);
  }

  async rollback(run: Run): Promise<void> {
    this.stopJobWatch();
    this.watch?.stop();
    for (const s of this.disks) await s.copy?.abort(new Error('pull rolled back'));
    await this.writebacks.settle(); // no sync left running on a file the session deletes
    if (this.client.isOpen) await this.teardown(run).catch((err: Error) => run.log.add(`clean-up in QEMU incomplete: ${err.message}`));
    for (const s of this.disks) fs.rmSync(s.fleeceFile, { force: true });
  }

  /** QEMU killed mid-copy first shows as a closed NBD socket; by then the QMP connection has closed too: say so. */
  explain(reason: string): string {
    return !this.client.isOpen && !/QMP connection closed/.test(reason) ? `the QMP connection closed (QEMU stopped or was killed); ${reason}` : reason;
  }

  layerFacts(disk: string): LayerFacts | undefined {
    return this.facts.get(disk);
  }

  summary(): string {
    return `fleecing peak ${mib(this.watch?.peakBytes ?? 0)}`;
  }

  scratchPeakBytes(): number {
    return this.watch?.peakBytes ?? 0;
  }

  /** Removes what the pull put into QEMU: exports, fleecing jobs, fleece nodes, temporary bitmaps, TLS object; and the fleece files. */
  private async teardown(run: Run): Promise<void> {
    const client = this.client;
    const problems: string[] = [];
    for (const s of this.disks) {
      if (s.exp) await s.exp.remove().then(() => (s.exp = undefined), (e: Error) => problems.push(`export of ${s.run.plan.disk.name}: ${e.message}`));
    }
    if (this.executed) {
      for (const s of this.disks) {
        const gone = client.waitForEvent((e) => e.event === 'JOB_STATUS_CHANGE' && e.data.id === s.run.jobId && e.data.status === 'null', 10_000, `the end of job ${s.run.jobId}`);
        gone.catch(() => undefined);
        // The sync=none job never ends on its own: cancelling it is how fleecing stops.
        const cancelled = await client.execute('job-cancel', { id: s.run.jobId }).then(() => true, () => false);
        if (cancelled) await gone.catch((e: Error) => problems.push(`job ${s.run.jobId}: ${e.message}`));
      }
    }
    for (const s of this.disks) {
      if (!s.fleeceAttached) continue;
      await client.execute('blockdev-del', { 'node-name': s.run.targetNode }).then(() => (s.fleeceAttached = false), (e: Error) => problems.push(`fleece node of ${s.run.plan.disk.name}: ${e.message}`));
    }
    if (this.executed) {
      for (const s of this.disks) {
        if (s.run.tmpBitmap) await client.execute('block-dirty-bitmap-remove', { node: s.run.plan.disk.nodeName, name: s.run.tmpBitmap }).catch(() => undefined);
      }
    }
    if (this.tlsObject) await client.execute('object-del', { id: this.tlsObject }).catch(() => undefined);
    this.tlsObject = undefined;
    for (const s of this.disks) fs.rmSync(s.fleeceFile, { force: true });
    if (problems.length) throw new Error(problems.join('; '));
    run.log.add('exports removed, fleecing stopped, temporary bitmaps removed');
  }
}

/** Trips when a fleecing job stops before Tidemark stops it: the point in time can no longer be trusted. */
function watchFleeceJobs(client: QmpClient, disks: DiskState[], trip: (why: string) => void): () => void {
  const ids = new Map(disks.map((s) => [s.run.jobId, s.run.plan.disk.name]));
  let tearingDown = false;
  const off = client.onEvent((e) => {
    if (tearingDown || e.event !== 'JOB_STATUS_CHANGE') return;
    const disk = ids.get(String(e.data.id));
    if (disk && (e.data.status === 'aborting' || e.data.status === 'concluded')) {
      tearingDown = true;
      trip(`the fleecing job of ${disk} stopped on its own (${String(e.data.status)}): the point in time is lost`);
    }
  });
  const offClose = client.onClose((r) => trip(`the QMP connection closed: ${r.message}`));
  return () => {
    tearingDown = true;
    off();
    offClose();
  };
}

/** Like Promise.all, but waits for every promise before rejecting (no qemu-img left running). */
async function qmpStep(client: QmpClient, command: string, args: Record<string, unknown>, what: string): Promise<void> {
  try {
    await client.execute(command, args);
  } catch (e) {
    throw e instanceof QmpError ? new Error(`${what}: ${e.desc}`, { cause: e }) : e;
  }
}

export type PullExport = PointExport;

export interface RunPullOptions extends Omit<BackupSpec, 'onExports'>, Omit<PullOptions, 'exportOnly'> {
  reporter?: OperationReporter;
  /** Copy nothing: publish the exports (onReady) and wait until backup-end reports the outcome. */
  exportOnly?: { onReady(exports: PullExport[]): void; tcp?: { host: string; port: number; tlsDir: string } };
}

export type PullResult =
  | { mode: 'repository'; backupId: string; manifest: BackupManifest; fleecePeakBytes: number }
  | { mode: 'export-only'; backupId: string; outcome: 'success'; checkpoint?: string; fleecePeakBytes: number };

/** Runs one pull-mode backup of `engine`'s VM. */
export async function runPull(engine: CheckpointEngineApi, client: QmpClient, options: RunPullOptions): Promise<PullResult> {
  const strategy = new QmpPullStrategy(engine, client, { ...options, exportOnly: options.exportOnly && (options.exportOnly.tcp ? { tcp: options.exportOnly.tcp } : {}) });
  const spec: BackupSpec = { ...options, ...(options.exportOnly ? { onExports: options.exportOnly.onReady } : {}) };
  const r = await runBackupSession(qmpBackupSource(engine, client), strategy, spec, options.reporter ?? silentReporter());
  if (r.manifest) return { mode: 'repository', backupId: r.backupId, manifest: r.manifest, fleecePeakBytes: r.scratchPeakBytes };
  return { mode: 'export-only', backupId: r.backupId, outcome: 'success', ...(r.checkpoint ? { checkpoint: r.checkpoint } : {}), fleecePeakBytes: r.scratchPeakBytes };
}
