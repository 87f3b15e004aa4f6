// Pull-mode backups: plan (the same per-disk decisions as push: kind, base, temporary bitmaps) →
// execute (ONE transaction: temporary bitmaps + new checkpoint + a sync=none fleecing job per disk,
// see plan.ts for why this fleecing method) → export each fleece node read-only over QEMU's NBD
// server with its temporary bitmap → Tidemark copies only the dirty extents over NBD into the same
// qcow2-chain repository as push (written through qemu-nbd serving the new layer), or, with
// `exportOnly`, an outside tool reads the exports until backup-end says how it went → record.
// The new checkpoint is committed only after the copy succeeded; any failure rolls everything back.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { JobInfo } from '../../../shared/contract';
import { NbdClient } from '../../nbd/client';
import { BASE_ALLOCATION, dirtyBitmapContext } from '../../nbd/protocol';
import { ExportManager, nbdSocketPath, type QemuExport } from '../../nbd/qemu-exports';
import { startQemuNbd, type QemuNbdServer } from '../../nbd/qemu-nbd';
import type { QmpClient } from '../../qmp/client';
import { QmpError } from '../../qmp/errors';
import type { CheckpointEngineApi, PreparedCheckpoint } from '../checkpoints/api';
import { validateCheckpointName } from '../names';
import { writeFileAtomic } from '../../os/atomic-file';
import type { QmpJob } from '../backup/jobs';
import { JobLog } from '../backup/joblog';
import { BackupLock, readLock, type BackupJournal, type JournalDisk } from '../backup/lock';
import { MANIFEST_FORMAT, MANIFEST_VERSION, newBackupId, type BackupManifest, type BackupManifestDisk } from '../backup/manifest';
import { backupNames, planBackup, type BackupRequest, type DiskPlan } from '../backup/plan';
import { acquireBackupLock, BackupFailedError, recordLayer, TOOL } from '../backup/push';
import { createQcow2 } from '../backup/qemuimg';
import { BackupRepository } from '../backup/repository';
import { keepSourceGranularity } from '../dirtymap/dirtymap';
import { copyExtents } from './copy';
import { checkFleeceRoom, FleeceWatch, mib, type FleeceLimits } from './fleece';
import type { PullJournal } from './leftovers';
import { copyOps, fleeceNodeArgs, pullActions } from './plan';

export interface PullOptions {
  repo: BackupRepository;
  /** Tidemark's state directory (NBD socket and qemu-nbd files under run/). */
  stateDir: string;
  full?: boolean;
  since?: string;
  /** Name of the checkpoint created with the backup; false: none; default: the backup id. */
  checkpoint?: string | false;
  disks?: string[];
  /** Where the fleece images go (default STATE/run/fleece). */
  fleeceDir?: string;
  fleece?: FleeceLimits;
  /** Largest single read/write and pieces in flight while copying (defaults 4 MiB × 4). */
  pieceBytes?: number;
  parallel?: number;
  signal?: AbortSignal;
  onUpdate?: (job: JobInfo) => void;
  /** Copy nothing: publish the exports and wait until backup-end (requestPullEnd) reports the outcome. */
  exportOnly?: {
    onReady(exports: PullExport[]): void;
    /** Listen on TCP instead of the unix socket; needs TLS (QEMU tls-creds-x509 from a directory). */
    tcp?: { host: string; port: number; tlsDir: string };
  };
}

export interface PullExport {
  disk: string;
  kind: BackupManifestDisk['kind'];
  since?: string;
  uri: string;
  exportName: string;
  /** The metadata context of the changes since `since` (incremental/differential). */
  dirtyContext?: string;
  size: number;
}

export type PullResult =
  | { mode: 'repository'; backupId: string; manifest: BackupManifest; fleecePeakBytes: number }
  | { mode: 'export-only'; backupId: string; outcome: 'success'; checkpoint?: string; fleecePeakBytes: number };

const RUN = 'run';

function endMarker(repo: BackupRepository, vmId: string): string {
  return path.join(repo.vmDir(vmId), 'pull.end');
}

/** Runs one pull-mode backup of `engine`'s VM. */
export async function runPull(engine: CheckpointEngineApi, client: QmpClient, options: PullOptions): Promise<PullResult> {
  if (options.full && options.since !== undefined) throw new Error('--full and --since cannot be combined');
  if (typeof options.checkpoint === 'string') validateCheckpointName(options.checkpoint);
  const tcp = options.exportOnly?.tcp;
  if (tcp && !tcp.tlsDir) throw new Error('a TCP NBD export needs TLS: give the directory of the server certificates (tls-creds-x509)');
  const repo = options.repo;
  const vmId = engine.vmId;
  const id = newBackupId();
  const request: BackupRequest = options.full ? { mode: 'full' } : options.since !== undefined ? { mode: 'since', checkpoint: options.since } : { mode: 'auto' };
  const log = new JobLog({ id, kind: 'pull', vmId, title: `Pull backup ${id}${options.exportOnly ? ' (export only)' : ''}` }, options.onUpdate);
  const init: Omit<BackupJournal, 'pid' | 'startTicks' | 'host' | 'updatedAt'> = {
    backupId: id, vmId, endpoint: '', startedAt: Date.now(), phase: 'preparing', kind: 'full', executed: false, disks: [], progress: [], log: [],
    pull: { exports: [], qemuNbdPids: [], fleeceFiles: [] },
  };
  const lock = await acquireBackupLock(engine, client, repo, init, log);
  fs.rmSync(endMarker(repo, vmId), { force: true });
  try {
    await refuseIfQemuBusy(client);
    return await engine.withLock(() => execute(engine, client, options, request, id, lock, log), `pull backup ${id}`);
  } finally {
    lock.release();
    fs.rmSync(endMarker(repo, vmId), { force: true });
  }
}

/** The VM ids whose pull backups are running in `repo` (found from their journals; no QMP needed). */
export function runningPulls(repo: BackupRepository): { vmId: string; backupId: string }[] {
  const vmsDir = path.join(repo.root, 'vms');
  const found: { vmId: string; backupId: string }[] = [];
  for (const entry of fs.existsSync(vmsDir) ? fs.readdirSync(vmsDir) : []) {
    let vmId: string;
    try {
      vmId = (JSON.parse(fs.readFileSync(path.join(vmsDir, entry, 'backup.lock'), 'utf8')) as { vmId: string }).vmId;
    } catch {
      continue;
    }
    const held = readLock(repo, vmId);
    if (held?.alive && held.journal.pull) found.push({ vmId, backupId: held.journal.backupId });
  }
  return found;
}

/**
 * backup-end for an export-only pull: tells the running pull whether the outside copy succeeded
 * (its checkpoint is then recorded) or failed (everything is rolled back), and waits for it.
 */
export async function requestPullEnd(repo: BackupRepository, vmId: string, outcome: 'success' | 'failure', options: { timeoutMs?: number } = {}): Promise<{ backupId: string }> {
  const held = readLock(repo, vmId);
  if (!held) throw new Error(`no pull backup of VM ${JSON.stringify(vmId)} is running in ${repo.root}`);
  const j = held.journal;
  if (!j.pull) throw new Error(`the backup running for VM ${JSON.stringify(vmId)} (${j.backupId}) is a push backup; stop it with backup-cancel`);
  if (!held.alive) throw new Error(`the process of pull ${j.backupId} is gone; clean up with backup-cancel`);
  writeFileAtomic(endMarker(repo, vmId), outcome);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    const now = readLock(repo, vmId);
    if (!now || now.journal.backupId !== j.backupId) return { backupId: j.backupId };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`pull ${j.backupId} was told to end (${outcome}) but is still running after ${Math.round((options.timeoutMs ?? 60_000) / 1000)} s`);
}

interface DiskState {
  plan: DiskPlan;
  fleeceFile: string;
  fleeceAttached: boolean;
  exp?: QemuExport;
  partial: string;
  final: string;
  writer?: QemuNbdServer;
  clients: NbdClient[];
  /** Bytes handled so far (progress), and bytes read and written as data. */
  copied: number;
  dataBytes: number;
}

async function execute(engine: CheckpointEngineApi, client: QmpClient, o: PullOptions, request: BackupRequest, id: string, lock: BackupLock, log: JobLog): Promise<PullResult> {
  const repo = o.repo;
  const vmId = engine.vmId;
  const tag = randomBytes(3).toString('hex');
  const abort = new AbortController();
  const onAbort = () => abort.abort(new Error('cancelled'));
  o.signal?.addEventListener('abort', onAbort);
  if (o.signal?.aborted) onAbort();

  if (!o.exportOnly) {
    for (const f of repo.orphanImages(vmId)) {
      fs.rmSync(f, { force: true });
      log.add(`removed ${f}: no manifest refers to it (left by an interrupted backup)`);
    }
  }
  await engine.health();
  const vm = await engine.vm();
  const plan = planBackup({
    vm, request, disks: o.disks, checkpoints: engine.list(), current: engine.current()?.name, backups: repo.list(vmId),
    branchPoints: repo.branchPoints(vmId), needsFull: repo.needsFull(vmId),
    layerExists: (bid, disk) => fs.existsSync(repo.imagePath(vmId, disk, bid)),
    tempBitmapActions: (since, disk, tmp) => engine.tempBitmapActions(since, disk, tmp),
    names: backupNames(tag),
  });
  for (const n of plan.notes) log.add(n);
  // Temporary bitmaps at the checkpoints' granularity (not QEMU's default), so a 4 KiB-granularity
  // checkpoint is copied in 4 KiB units; the layer then gets clusters of that size (below).
  const granularity = new Map<string, number>();
  for (const d of plan.disks) {
    if (!d.tmpBitmap) continue;
    const kept = keepSourceGranularity(d.bitmapActions, d.disk);
    d.bitmapActions = kept.actions;
    granularity.set(d.disk.name, kept.granularity);
  }
  const checkpointName = o.checkpoint === false ? undefined : (o.checkpoint ?? id);
  if (checkpointName !== undefined && engine.list().some((c) => c.name === checkpointName)) {
    throw new Error(`checkpoint ${JSON.stringify(checkpointName)} already exists; choose another name with --checkpoint`);
  }
  const wantsCheckpoint = checkpointName !== undefined && plan.checkpointDisks.some((d) => d.checkpoint === 'bitmap');
  log.add(`pull ${plan.kind} backup of ${plan.disks.map((d) => `${d.disk.name} (${d.kind}${d.since ? ` since ${d.since}` : ''})`).join(', ')}${wantsCheckpoint ? `, new checkpoint ${checkpointName}` : ''}`);

  const fleeceDir = o.fleeceDir ?? path.join(o.stateDir, RUN, 'fleece');
  fs.mkdirSync(fleeceDir, { recursive: true });
  checkFleeceRoom(fleeceDir, o.fleece ?? {});
  const disks: DiskState[] = plan.disks.map((d) => {
    const final = repo.imagePath(vmId, d.disk.name, id);
    return { plan: d, fleeceFile: path.join(fleeceDir, `${id}-${d.disk.name}.fleece.qcow2`), fleeceAttached: false, partial: `${final}.partial`, final, clients: [], copied: 0, dataBytes: 0 };
  });
  const pullJ: PullJournal = { exports: [], qemuNbdPids: [], fleeceFiles: [] };
  const journalDisks: JournalDisk[] = disks.map((s) => ({
    disk: s.plan.disk.name, kind: s.plan.kind, jobId: s.plan.jobId, targetNode: s.plan.targetNode, tmpBitmap: s.plan.tmpBitmap,
    sourceNode: s.plan.disk.nodeName, partialImage: o.exportOnly ? s.fleeceFile : s.partial,
  }));
  const journal = (patch: Partial<BackupJournal>) => {
    try {
      lock.update({ ...patch, pull: pullJ });
    } catch (e) {
      log.add(`cannot update the backup journal: ${(e as Error).message}`);
    }
  };
  journal({ endpoint: vm.endpoint, kind: plan.kind, since: plan.since, checkpoint: wantsCheckpoint ? checkpointName : undefined, disks: journalDisks, log: log.lines });

  const exports = ExportManager.for(client, nbdSocketPath(o.stateDir, vmId));
  let prepared: PreparedCheckpoint | undefined;
  let executed = false;
  let tlsObject: string | undefined;
  let watch: FleeceWatch | undefined;
  let stopJobWatch = () => undefined as void;
  const totals = new Map<string, number>();
  const progress = () => log.progress(disks.map((s) => ({ disk: s.plan.disk.name, done: s.copied, total: totals.get(s.plan.disk.name) ?? 0 })));
  try {
    for (const s of disks) {
      await createQcow2(s.fleeceFile, s.plan.disk.virtualSize);
      pullJ.fleeceFiles.push(s.fleeceFile);
      journal({});
      await qmpStep(client, 'blockdev-add', fleeceNodeArgs(s.plan.targetNode, s.fleeceFile, s.plan.disk.nodeName), `cannot open the fleecing image of ${s.plan.disk.name}`);
      s.fleeceAttached = true;
    }
    if (wantsCheckpoint) {
      prepared = await engine.prepareCreate({ name: checkpointName, description: `pull backup ${id}`, disks: plan.checkpointDisks });
      journal({ prepared });
    }
    stopJobWatch = watchFleeceJobs(client, disks, (why) => abort.abort(new Error(why)));
    throwIfAborted(abort.signal);
    try {
      await client.execute('transaction', { actions: pullActions(plan, prepared?.actions) });
    } catch (e) {
      throw e instanceof QmpError ? new Error(`the pull's transaction failed; QEMU changed nothing: ${e.desc}`, { cause: e }) : e;
    }
    executed = true;
    journal({ executed: true, phase: 'running' });
    log.add('transaction done: point in time fixed, fleecing started');
    watch = new FleeceWatch(disks.map((s) => s.fleeceFile), o.fleece ?? {}, (why) => {
      log.add(why);
      abort.abort(new Error(why));
    });
    watch.check(); // besides the timer: at fixed points, so a limit is never missed between ticks

    const tcp = o.exportOnly?.tcp;
    if (tcp) {
      tlsObject = `tidemark-tls-${tag}`;
      await qmpStep(client, 'object-add', { 'qom-type': 'tls-creds-x509', id: tlsObject, dir: tcp.tlsDir, endpoint: 'server', 'verify-peer': true }, 'cannot load the TLS certificates');
    }
    for (const s of disks) {
      s.exp = await exports.add(
        { nodeName: s.plan.targetNode, bitmaps: s.plan.tmpBitmap ? [s.plan.tmpBitmap] : undefined, prefix: 'tidemark-pull' },
        tcp ? { kind: 'tcp', host: tcp.host, port: tcp.port, tlsCreds: tlsObject! } : { kind: 'unix' },
      );
      pullJ.exports.push(s.exp.id);
      journal({});
    }

    if (o.exportOnly) {
      const list: PullExport[] = disks.map((s) => ({
        disk: s.plan.disk.name, kind: s.plan.kind, ...(s.plan.since ? { since: s.plan.since } : {}), uri: s.exp!.uri, exportName: s.exp!.name,
        ...(s.plan.tmpBitmap ? { dirtyContext: dirtyBitmapContext(s.plan.tmpBitmap) } : {}), size: s.plan.disk.virtualSize,
      }));
      for (const e of list) log.add(`${e.disk}: ${e.uri}${e.dirtyContext ? ` (changes since ${e.since}: ${e.dirtyContext})` : ''}`);
      log.add('waiting for backup-end');
      o.exportOnly.onReady(list);
      const outcome = await waitForEnd(endMarker(repo, vmId), abort.signal);
      if (outcome !== 'success') throw new Error('backup-end reported that the outside copy failed');
      watch.check();
      throwIfAborted(abort.signal);
      log.add('backup-end: the outside copy succeeded');
      journal({ phase: 'finalizing' });
      stopJobWatch();
      watch.stop();
      await teardown(client, exports, disks, executed, tlsObject, log);
      tlsObject = undefined;
      if (prepared) {
        await engine.commitCreate(prepared);
        log.add(`checkpoint ${prepared.checkpoint.name} recorded`);
      }
      prepared = undefined;
      log.add(`pull ${id} complete (fleecing peak ${mib(watch.peakBytes)})`);
      log.end('succeeded');
      return { mode: 'export-only', backupId: id, outcome: 'success', ...(wantsCheckpoint ? { checkpoint: checkpointName } : {}), fleecePeakBytes: watch.peakBytes };
    }

    // Copy: each disk's dirty (incremental) or allocated (full) extents into a new layer.
    for (const s of disks) {
      const d = s.plan;
      try {
        fs.mkdirSync(path.dirname(s.partial), { recursive: true });
        // Clusters no larger than the dirty granule: a 4 KiB change must not copy 64 KiB up from the base.
        const g = granularity.get(d.disk.name);
        const clusterSize = d.base && g !== undefined && g < 64 * 1024 ? Math.max(g, 4096) : undefined;
        await createQcow2(s.partial, d.disk.virtualSize, { backing: d.base ? `${d.base}.qcow2` : undefined, clusterSize });
        s.writer = await startQemuNbd({ image: s.partial, format: 'qcow2', runDir: path.join(o.stateDir, RUN), exportName: 'layer' });
        pullJ.qemuNbdPids.push(s.writer.pid);
        journal({});
        const ctx = d.tmpBitmap ? dirtyBitmapContext(d.tmpBitmap) : undefined;
        const src = await NbdClient.connect(s.exp!.address, { metaContexts: ctx ? [BASE_ALLOCATION, ctx] : [BASE_ALLOCATION] });
        s.clients.push(src);
        const dst = await NbdClient.connect(s.writer.address);
        s.clients.push(dst);
        const ops = copyOps(d.kind, await src.extents(BASE_ALLOCATION), ctx ? await src.extents(ctx) : undefined);
        totals.set(d.disk.name, ops.reduce((n, op) => n + op.length, 0));
        progress();
        const r = await copyExtents(src, dst, ops, {
          signal: abort.signal, pieceBytes: o.pieceBytes, parallel: o.parallel,
          onProgress: (done) => {
            s.copied = done;
            progress();
          },
        });
        await dst.flush();
        for (const c of s.clients.splice(0)) await c.close();
        const pid = s.writer.pid;
        await s.writer.stop();
        s.writer = undefined;
        pullJ.qemuNbdPids = pullJ.qemuNbdPids.filter((p) => p !== pid);
        journal({});
        log.add(`${d.disk.name}: ${d.kind}, ${r.dataBytes} bytes copied${r.zeroBytes ? `, ${r.zeroBytes} bytes written as zeroes` : ''}`);
        s.copied = r.dataBytes + r.zeroBytes;
        s.dataBytes = r.dataBytes;
        totals.set(d.disk.name, s.copied);
      } catch (e) {
        // Name the disk (an NBD error alone says only which socket closed); an abort keeps its own reason.
        throw abort.signal.aborted ? e : new Error(`copying ${d.disk.name}: ${(e as Error).message}`, { cause: e });
      }
    }
    watch.check();
    throwIfAborted(abort.signal);
    journal({ phase: 'finalizing' });
    stopJobWatch();
    watch.stop();
    await teardown(client, exports, disks, executed, tlsObject, log);
    tlsObject = undefined;

    // Record: layers into place and checksummed, then the manifest (the commit point), then the checkpoint.
    journal({ phase: 'recording' });
    const entries: BackupManifestDisk[] = [];
    for (const s of disks) {
      const d = s.plan;
      entries.push(await recordLayer(d, s.partial, s.final, id, s.dataBytes, wantsCheckpoint && plan.checkpointDisks.some((c) => c.name === d.disk.name && c.checkpoint === 'bitmap')));
    }
    const manifest: BackupManifest = {
      format: MANIFEST_FORMAT, version: MANIFEST_VERSION, id,
      vm: { id: vm.id, ...(vm.name ? { name: vm.name } : {}), ...(vm.uuid ? { uuid: vm.uuid } : {}) },
      kind: plan.kind, ...(plan.since !== undefined ? { since: plan.since } : {}), ...(wantsCheckpoint ? { checkpoint: checkpointName } : {}),
      ...(engine.layout() ? { layout: engine.layout() } : {}),
      startedAt: log.info.startedAt, completedAt: Date.now(), qemuVersion: vm.qemuVersion, tool: `${TOOL} (pull)`, disks: entries,
    };
    throwIfAborted(abort.signal);
    repo.writeManifest(manifest);
    try {
      if (prepared) {
        await engine.commitCreate(prepared);
        log.add(`checkpoint ${prepared.checkpoint.name} recorded`);
      }
    } catch (e) {
      // The manifest is the commit point of the data; a checkpoint that cannot be recorded is undone.
      fs.rmSync(path.join(repo.vmDir(vmId), 'manifests', `${id}.json`), { force: true });
      throw e;
    }
    prepared = undefined;
    const marks = repo.needsFull(vmId);
    for (const d of entries) if (d.kind === 'full') delete marks[d.name];
    repo.setNeedsFull(vmId, marks);
    log.add(`pull ${id} complete (fleecing peak ${mib(watch.peakBytes)})`);
    log.end('succeeded');
    writeLog(repo, vmId, id, log);
    return { mode: 'repository', backupId: id, manifest, fleecePeakBytes: watch.peakBytes };
  } catch (e) {
    const cancelled = abort.signal.aborted && (abort.signal.reason as Error)?.message === 'cancelled';
    const reason = abort.signal.aborted ? (abort.signal.reason as Error).message : (e as Error).message;
    log.add(cancelled ? 'cancelled: rolling back' : `failed: ${reason}; rolling back`);
    journal({ phase: 'rolling-back', log: log.lines.slice(-50) });
    stopJobWatch();
    watch?.stop();
    const notes: string[] = [];
    for (const s of disks) {
      for (const c of s.clients.splice(0)) c.destroy(new Error('pull rolled back'));
      await s.writer?.stop().catch(() => undefined);
    }
    if (client.isOpen) await teardown(client, exports, disks, executed, tlsObject, log).catch((err: Error) => log.add(`clean-up in QEMU incomplete: ${err.message}`));
    if (prepared && executed) {
      try {
        await engine.rollbackCreate(prepared);
        notes.push(`checkpoint ${prepared.checkpoint.name} rolled back`);
      } catch (err) {
        // With QEMU gone there is nothing to roll back: the bitmaps it created died with it, and the checkpoint was never recorded.
        notes.push(client.isOpen
          ? `checkpoint ${prepared.checkpoint.name} could not be rolled back (${(err as Error).message}); delete it with checkpoint-delete`
          : `checkpoint ${prepared.checkpoint.name} was never recorded (QEMU is gone, and with it the bitmaps it created)`);
      }
    } else if (prepared) notes.push(`checkpoint ${prepared.checkpoint.name} was not created`);
    for (const s of disks) {
      fs.rmSync(s.partial, { force: true });
      fs.rmSync(s.final, { force: true });
      fs.rmSync(s.fleeceFile, { force: true });
    }
    notes.push('partial images and fleecing images deleted; earlier backups and checkpoints untouched');
    for (const n of notes) log.add(n);
    // QEMU killed mid-copy first shows as a closed NBD socket; by now the QMP connection has closed too: say so.
    const why = !client.isOpen && !/QMP connection closed/.test(reason) ? `the QMP connection closed (QEMU stopped or was killed); ${reason}` : reason;
    const msg = `pull ${id} ${cancelled ? 'was cancelled' : `failed: ${why}`}; ${notes.join('; ')}`;
    log.end(cancelled ? 'cancelled' : 'failed', msg);
    if (!o.exportOnly) writeLog(repo, vmId, id, log);
    throw new BackupFailedError(msg, id, cancelled, log.lines);
  } finally {
    watch?.stop();
    stopJobWatch();
    o.signal?.removeEventListener('abort', onAbort);
  }
}

/** Removes what the pull put into QEMU: exports, fleecing jobs, fleece nodes, temporary bitmaps, TLS object; and the fleece files. */
async function teardown(client: QmpClient, exports: ExportManager, disks: DiskState[], executed: boolean, tlsObject: string | undefined, log: JobLog): Promise<void> {
  const problems: string[] = [];
  for (const s of disks) {
    if (s.exp) await s.exp.remove().then(() => (s.exp = undefined), (e: Error) => problems.push(`export of ${s.plan.disk.name}: ${e.message}`));
  }
  if (executed) {
    for (const s of disks) {
      const gone = client.waitForEvent((e) => e.event === 'JOB_STATUS_CHANGE' && e.data.id === s.plan.jobId && e.data.status === 'null', 10_000, `the end of job ${s.plan.jobId}`);
      gone.catch(() => undefined);
      // The sync=none job never ends on its own: cancelling it is how fleecing stops.
      const cancelled = await client.execute('job-cancel', { id: s.plan.jobId }).then(() => true, () => false);
      if (cancelled) await gone.catch((e: Error) => problems.push(`job ${s.plan.jobId}: ${e.message}`));
    }
  }
  for (const s of disks) {
    if (!s.fleeceAttached) continue;
    await client.execute('blockdev-del', { 'node-name': s.plan.targetNode }).then(() => (s.fleeceAttached = false), (e: Error) => problems.push(`fleece node of ${s.plan.disk.name}: ${e.message}`));
  }
  if (executed) {
    for (const s of disks) {
      if (s.plan.tmpBitmap) await client.execute('block-dirty-bitmap-remove', { node: s.plan.disk.nodeName, name: s.plan.tmpBitmap }).catch(() => undefined);
    }
  }
  if (tlsObject) await client.execute('object-del', { id: tlsObject }).catch(() => undefined);
  for (const s of disks) fs.rmSync(s.fleeceFile, { force: true });
  if (problems.length) throw new Error(problems.join('; '));
  log.add('exports removed, fleecing stopped, temporary bitmaps removed');
}

/** Trips when a fleecing job stops before Tidemark stops it: the point in time can no longer be trusted. */
function watchFleeceJobs(client: QmpClient, disks: DiskState[], trip: (why: string) => void): () => void {
  const ids = new Map(disks.map((s) => [s.plan.jobId, s.plan.disk.name]));
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

async function waitForEnd(marker: string, signal: AbortSignal): Promise<'success' | 'failure'> {
  for (;;) {
    throwIfAborted(signal);
    try {
      const text = fs.readFileSync(marker, 'utf8').trim();
      fs.rmSync(marker, { force: true });
      return text === 'success' ? 'success' : 'failure';
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new Error('cancelled');
}

async function qmpStep(client: QmpClient, command: string, args: Record<string, unknown>, what: string): Promise<void> {
  try {
    await client.execute(command, args);
  } catch (e) {
    throw e instanceof QmpError ? new Error(`${what}: ${e.desc}`, { cause: e }) : e;
  }
}

async function refuseIfQemuBusy(client: QmpClient): Promise<void> {
  const jobs = await client.execute<QmpJob[]>('query-jobs');
  const other = jobs.find((j) => j.id.startsWith('tidemark-bk-') && j.status !== 'concluded' && j.status !== 'null');
  if (other) throw new Error(`QEMU is already running a Tidemark backup job (${other.id}, ${other.status}), probably into another repository; wait for it to finish or cancel it`);
}

function writeLog(repo: BackupRepository, vmId: string, id: string, log: JobLog): void {
  try {
    const file = repo.logPath(vmId, id);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, log.text());
  } catch {
    // the log is a convenience; its failure must not change the backup's outcome
  }
}
