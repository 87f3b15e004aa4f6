// The QMP push strategy: plain qcow2 targets opened in QEMU (an incremental's backing file being
// its base layer, opened without it), then ONE transaction: temporary bitmaps, the new checkpoint
// and one blockdev-backup per disk with manual finalize, so that all jobs are finalized together
// or cancelled together. The backup session (engine/backup/session.ts) does everything else.

import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { mkdirPrivate } from '../../os/atomic-file';
import type { QmpClient } from '../../qmp/client';
import type { AroundTransaction, CheckpointEngineApi, PreparedCheckpoint } from '../checkpoints/api';
import { silentReporter, type OperationReporter } from '../operation';
import type { BackupManifest } from '../backup/manifest';
import { LayerWritebacks } from '../backup/layer-writeback';
import { createQcow2 } from '../backup/qemuimg';
import { readDirtyExtents } from '../dirtymap/dirtymap';
import { l1Entries, l2TableSpan, l2TablesOf } from '../qcow2/format';
import { runBackupSession, TOOL, type BackupSpec } from '../backup/session';
import type { LayerFacts } from '../backup/record';
import type { BackupStrategy, CopiedBytes, StrategyRun } from '../backup/strategy';
import { backupActions, backupNames, qmpDiskRuns, type QmpDiskRun } from './actions';
import { changeMapBitmap, removeChangeMaps } from './change-map';
import { useCopyRange } from './copy-range';
import { JobGroup, type JobState } from './jobs';
import { layerFactsOf } from './layer-facts';
import { refuseIfQemuBusy, runTransaction, type QmpBackupState } from './recovery';
import { qmpBackupSource } from './source';

const MiB = 1024 * 1024;
/** The push targets' cluster size (createQcow2's default). */
const TARGET_CLUSTER = 64 * 1024;
/** Disks of up to this many L2 tables (8 GiB at 64 KiB clusters) are not worth reading the changes' map for. */
const TABLES_AHEAD_FROM = 16;

/** Whether an incremental push of a disk this large reads where its changes are first (tablesAhead). */
export function readsChangeMap(virtualSize: number): boolean {
  return l1Entries(virtualSize, TARGET_CLUSTER) > TABLES_AHEAD_FROM;
}
/** Progress in the journal (for backup-status only): first after this long, then every PROGRESS_EVERY_MS. */
const PROGRESS_FIRST_MS = 1_000;
const PROGRESS_EVERY_MS = 5_000;

export interface PushOptions {
  /** Speed limit per disk, MiB/s. */
  speedMiBps?: number;
  /** Wraps only the one transaction (quiesce: the guest's file systems frozen for it). */
  aroundTransaction?: AroundTransaction;
  /**
   * Tidemark's state directory (the NBD socket under run/). With it, an incremental of a large disk
   * reads where the changes are first and allocates the target's L2 tables for them (tablesAhead).
   */
  stateDir?: string;
  /** Fault tests only: open this disk's target through blkdebug failing every data write with `errno`. */
  injectTargetError?: { disk: string; errno: number };
}

type Run = StrategyRun<PreparedCheckpoint>;

export class QmpPushStrategy implements BackupStrategy<PreparedCheckpoint> {
  readonly mode = 'push';
  readonly name = 'qmp-push';
  readonly tool = TOOL;
  readonly exportOnly = false;
  readonly rollbackNote = 'partial images deleted; earlier backups and checkpoints untouched';
  private disks: QmpDiskRun[] = [];
  private readonly attached = new Set<string>();
  /** The change maps' exports and bitmaps QEMU is removing while the setup goes on (tablesAhead). */
  private mapsRemoved: Promise<void>[] = [];
  private fullSync = new Map<string, 'full' | 'top'>();
  /** Per disk, what recordLayer checks and records, read from QEMU (no qemu-img info). */
  private readonly facts = new Map<string, LayerFacts>();
  private sources = new Map<string, SourceNode>();
  private copyRange = false;
  private group: JobGroup | undefined;
  private executed = false;
  private readonly copied: CopiedBytes = new Map();
  /** The targets written back to disk while the jobs run. */
  private readonly writebacks = new LayerWritebacks();

  constructor(
    private readonly engine: CheckpointEngineApi,
    private readonly client: QmpClient,
    private readonly options: PushOptions = {},
  ) {
    if (options.speedMiBps !== undefined && !(options.speedMiBps > 0)) throw new Error(`speed limit must be a positive number of MiB/s, got ${options.speedMiBps}`);
  }

  check(): Promise<void> {
    return refuseIfQemuBusy(this.client);
  }

  private state(): QmpBackupState {
    return { disks: this.disks.map((d) => ({ disk: d.plan.disk.name, jobId: d.jobId, targetNode: d.targetNode, ...(d.tmpBitmap ? { tmpBitmap: d.tmpBitmap } : {}), sourceNode: d.plan.disk.nodeName })) };
  }

  async setup(run: Run): Promise<void> {
    this.disks = qmpDiskRuns(run.plan, backupNames(randomBytes(3).toString('hex')), (since, disk, tmp) => this.engine.tempBitmapActions(since, disk, tmp));
    run.journal(this.state());
    // Targets: plain qcow2 files, an incremental's backing file being the base layer (relative), opened
    // without it (G7). Made by qemu-img, not by QEMU's blockdev-create: QEMU 7.2 aborts (qcow2.c:5222,
    // qcow2_get_specific_info) when any client queries the block nodes while a qcow2 image is being
    // created in it, which the app's poller does every few seconds.
    for (const [i, d] of this.disks.entries()) {
      const t = run.targets[i]!;
      mkdirPrivate(path.dirname(t.partial));
      const l2Tables = await this.tablesAhead(run, d);
      await createQcow2(t.partial, d.plan.disk.virtualSize, { backing: d.plan.base ? `${d.plan.base}.qcow2` : undefined, ...(l2Tables ? { l2Tables } : {}) });
      const inject = this.options.injectTargetError?.disk === d.plan.disk.name ? this.options.injectTargetError : undefined;
      const file = inject
        ? { driver: 'blkdebug', image: { driver: 'file', filename: t.partial }, 'inject-error': [{ event: 'write_aio', errno: inject.errno }] }
        : { driver: 'file', filename: t.partial };
      // no-flush: qcow2 orders its metadata updates with a flush each (770 fdatasyncs for 256 writes
      // spread over 1 TiB, bench/README.md); the target is synced once, by the record step (backup/record.ts).
      await this.client.execute('blockdev-add', { driver: 'qcow2', 'node-name': d.targetNode, file, backing: null, cache: { 'no-flush': true } });
      this.attached.add(d.targetNode);
    }
    this.sources = await sourceNodes(this.client, this.disks);
    this.fullSync = fullSyncModes(this.disks, this.sources);
    // Not under a speed limit: copy_file_range moves up to 16 MiB per request, so the limit would come in bursts.
    const dirs = [...new Set(run.targets.map((t) => path.dirname(t.partial)))];
    this.copyRange = this.options.speedMiBps === undefined && dirs.every((dir) => useCopyRange(run.vm.qemuVersion, dir));
    if (this.copyRange) run.log.add('QEMU copies with copy_file_range (the repository\'s filesystem cannot share extents)');
  }

  /**
   * The L2 tables an incremental's job is about to fill, for a disk with more than TABLES_AHEAD_FROM
   * of them: where the changes are, read over NBD (15–35 ms for 1 TiB). QEMU allocates a table with
   * several synchronous metadata writes in the middle of the job; allocated ahead by Tidemark, 256 changes
   * spread over 1 TiB cost QEMU's job ~100 instead of ~340 ms (bench/README.md, "Phase 7"). A change
   * made after this read is still copied: QEMU allocates its table itself. Any failure: none ahead.
   */
  private async tablesAhead(run: Run, d: QmpDiskRun): Promise<number[] | undefined> {
    const stateDir = this.options.stateDir;
    const disk = d.plan.disk;
    if (stateDir === undefined || d.tmpBitmap === undefined || d.plan.since === undefined) return undefined;
    if (!readsChangeMap(disk.virtualSize)) return undefined;
    try {
      // Named after the journaled temporary bitmap, so a failure here or a dead process leaves nothing behind (change-map.ts).
      // Read at the tables' own granularity: which tables changed is all it needs.
      const { extents, removed } = await readDirtyExtents({ qmp: this.client, engine: this.engine, stateDir }, disk, d.plan.since, { tmpBitmap: changeMapBitmap(d.tmpBitmap), granularity: l2TableSpan(TARGET_CLUSTER), removeLater: true });
      // QEMU removes the map's export and bitmap while Node writes the target; the transaction waits for it.
      this.mapsRemoved.push(removed.catch(async (e: Error) => {
        run.log.add(`${disk.name}: the map of the changes was not removed at once (${e.message}); removing what is left`);
        await removeChangeMaps(this.client, [{ tmpBitmap: d.tmpBitmap!, sourceNode: disk.nodeName }], run.log).catch(() => undefined);
      }));
      const tables = l2TablesOf(extents.filter((e) => e.dirty), TARGET_CLUSTER);
      run.log.add(`${disk.name}: ${tables.length} L2 table${tables.length === 1 ? '' : 's'} of the target allocated ahead, where the changes are`);
      return tables;
    } catch (e) {
      run.log.add(`${disk.name}: where the changes are could not be read (${(e as Error).message}); QEMU allocates the target's L2 tables itself`);
      await removeChangeMaps(this.client, [{ tmpBitmap: d.tmpBitmap, sourceNode: disk.nodeName }], run.log);
      return undefined;
    }
  }

  /** Every change map's export and bitmap gone from QEMU (removed while the setup went on). */
  private async mapsGone(): Promise<void> {
    const pending = this.mapsRemoved.splice(0);
    await Promise.all(pending);
  }

  async start(run: Run): Promise<void> {
    await this.mapsGone();
    const speed = this.options.speedMiBps ? Math.round(this.options.speedMiBps * MiB) : undefined;
    const actions = backupActions(this.disks, { checkpointActions: run.checkpoint?.actions, speed, fullSync: (disk) => this.fullSync.get(disk.name) ?? 'full', copyRange: this.copyRange });
    this.group = new JobGroup(this.client, this.disks.map((d) => d.jobId));
    const around = this.options.aroundTransaction ?? ((t) => t());
    await around(() => runTransaction(this.client, actions, this.state().disks, (how) => {
      run.log.add(how);
      this.executed = true;
      run.markExecuted();
    }));
    this.executed = true;
    run.markExecuted();
    run.log.add('transaction done: jobs started');
  }

  async transfer(run: Run): Promise<CopiedBytes> {
    const group = this.group!;
    // The targets go to disk while QEMU still writes them (no-flush puts them in the page cache).
    this.writebacks.start(this.disks.map((d, i) => [d.plan.disk.name, run.targets[i]!.partial] as const));
    try {
      await this.waitForJobs(run, group);
    } finally {
      this.writebacks.stop();
    }
    if (run.signal.aborted) return this.copied; // the session throws the reason
    const failed = group.jobs.filter((s) => s.failed);
    if (failed.length > 0 || !group.jobs.every((s) => s.ready)) {
      // Name the job that failed first; the others were cancelled because of it.
      const f = failed.find((s) => group.firstFailed.includes(s.id)) ?? failed[0];
      const disk = this.disks.find((d) => d.jobId === f?.id)?.plan.disk.name;
      throw new Error(f ? `the backup job of ${disk} failed: ${f.failed}` : 'a backup job did not finish');
    }
    this.countCopied(group);
    return this.copied;
  }

  earlyWriteback(disk: string): Promise<void> | undefined {
    return this.writebacks.of(disk);
  }

  private async waitForJobs(run: Run, group: JobGroup): Promise<void> {
    // Progress goes to the journal for backup-status only (recovery never reads it): not in the
    // first second, then every few seconds, so a short backup writes none.
    let nextJournal = Date.now() + PROGRESS_FIRST_MS;
    await group.waitSettled({
      signal: run.signal,
      onProgress: (states) => {
        run.log.progress(this.progressOf(states));
        run.cancelRequested();
        if (Date.now() >= nextJournal) {
          nextJournal = Date.now() + PROGRESS_EVERY_MS;
          run.journal(this.state(), { progress: run.log.progressState, log: run.log.lines.slice(-50) });
        }
      },
    });
  }

  /** Finalizes every job together, then dismisses them, closes the targets (flushes them, G11) and removes the temporary bitmaps. */
  async finish(run: Run): Promise<void> {
    const group = this.group!;
    const bad = await group.finalizeAll();
    if (bad.length > 0) throw new Error(`finalizing the backup jobs failed: ${bad.map((b) => b.failed).join('; ')}`);
    this.countCopied(group);
    await group.dismissAll();
    group.dispose();
    this.group = undefined;
    await this.readFacts();
    for (const d of this.disks) {
      await this.client.execute('blockdev-del', { 'node-name': d.targetNode }); // writes qcow2's cached metadata
      this.attached.delete(d.targetNode);
    }
    for (const d of this.disks) {
      if (d.tmpBitmap) await this.client.execute('block-dirty-bitmap-remove', { node: d.plan.disk.nodeName, name: d.tmpBitmap });
    }
    run.log.add('jobs finalized, targets closed, temporary bitmaps removed');
  }

  /** Undoes whatever the backup did in QEMU (best effort, each step on its own). */
  async rollback(run: Run): Promise<void> {
    const alive = this.client.isOpen;
    const group = this.group;
    this.group = undefined;
    try {
      if (alive && group) {
        await group.cancelAll().catch(() => undefined);
        await group.waitConcluded().catch(() => undefined);
        await group.dismissAll().catch(() => undefined);
      }
    } finally {
      group?.dispose();
    }
    await this.writebacks.settle(); // no sync left running on a file the session deletes
    await this.mapsGone(); // settles whether or not QEMU is still there
    if (!alive) return;
    for (const d of this.disks) {
      if (!this.attached.has(d.targetNode)) continue;
      await this.client.execute('blockdev-del', { 'node-name': d.targetNode }).then(
        () => this.attached.delete(d.targetNode),
        (e: Error) => run.log.add(`could not close target ${d.targetNode}: ${e.message}`),
      );
    }
    if (this.executed) {
      for (const d of this.disks) {
        if (d.tmpBitmap) await this.client.execute('block-dirty-bitmap-remove', { node: d.plan.disk.nodeName, name: d.tmpBitmap }).catch(() => undefined);
      }
    }
    await removeChangeMaps(this.client, this.state().disks, run.log);
  }

  /** The targets' virtual sizes as QEMU opened them (before they are closed) and the sources' compat and cluster size. */
  private async readFacts(): Promise<void> {
    const nodes = await this.client.execute<QmpNode[]>('query-named-block-nodes', { flat: true });
    for (const d of this.disks) {
      this.facts.set(d.plan.disk.name, layerFactsOf(nodes, d.targetNode, d.plan.disk.nodeName, `the target of ${d.plan.disk.name} (${d.targetNode})`));
    }
  }

  layerFacts(disk: string): LayerFacts | undefined {
    return this.facts.get(disk);
  }

  private countCopied(group: JobGroup): void {
    for (const s of group.jobs) {
      const disk = this.disks.find((d) => d.jobId === s.id)?.plan.disk.name;
      if (disk !== undefined) this.copied.set(disk, s.total);
    }
  }

  private progressOf(states: JobState[]): { disk: string; done: number; total: number }[] {
    return this.disks.map((d) => {
      const s = states.find((x) => x.id === d.jobId);
      return { disk: d.plan.disk.name, done: s?.done ?? 0, total: s?.total ?? 0 };
    });
  }
}

interface QmpNode {
  'node-name': string;
  backing_file?: string;
  image: { 'virtual-size': number; 'cluster-size'?: number; 'backing-image'?: unknown; 'backing-filename'?: string; 'format-specific'?: { data?: { compat?: string } } };
}
type SourceNode = QmpNode | undefined;

/** Each disk's source (format) node as QEMU reports it now, by disk name. */
async function sourceNodes(client: QmpClient, disks: QmpDiskRun[]): Promise<Map<string, SourceNode>> {
  const nodes = await client.execute<QmpNode[]>('query-named-block-nodes', { flat: true });
  return new Map(disks.map((d) => [d.plan.disk.name, nodes.find((x) => x['node-name'] === d.plan.disk.nodeName)]));
}

/** sync=top copies only what the source holds itself; right for a full backup when the disk has no backing file (sparse disks stay cheap). */
function fullSyncModes(disks: QmpDiskRun[], sources: Map<string, SourceNode>): Map<string, 'full' | 'top'> {
  const out = new Map<string, 'full' | 'top'>();
  for (const d of disks) {
    const n = sources.get(d.plan.disk.name);
    const hasBacking = !n || Boolean(n.backing_file || n.image?.['backing-filename'] || n.image?.['backing-image']);
    out.set(d.plan.disk.name, hasBacking ? 'full' : 'top');
  }
  return out;
}

export interface BackupOptions extends Omit<BackupSpec, 'onExports'>, PushOptions {
  /** Progress, log lines and cancel (default: none). */
  reporter?: OperationReporter;
}

/** Runs one push backup of `engine`'s VM into `options.repo`. Resolves with the written manifest. */
export async function runBackup(engine: CheckpointEngineApi, client: QmpClient, options: BackupOptions): Promise<BackupManifest> {
  const strategy = new QmpPushStrategy(engine, client, options);
  const r = await runBackupSession(qmpBackupSource(engine, client), strategy, options, options.reporter ?? silentReporter());
  return r.manifest!;
}
