// Push backups: plan → execute (one QMP transaction: temporary bitmaps, the new checkpoint and
// one blockdev-backup per disk) → finalize all jobs together → record (layer checksums, then the
// manifest, then the checkpoint). Any failure before the manifest is written rolls everything
// back: jobs cancelled, targets closed, temporary bitmaps removed, the new checkpoint undone,
// partial layers deleted. Earlier backups and checkpoints are never touched.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { JobInfo } from '../../../shared/contract';
import type { QmpClient } from '../../qmp/client';
import type { CheckpointEngineApi, PreparedCheckpoint } from '../checkpoints/api';
import { validateCheckpointName } from '../names';
import { sha256File } from './checksum';
import { writeFileAtomic } from '../../os/atomic-file';
import { JobGroup, type JobState, type QmpJob } from './jobs';
import { JobLog } from './joblog';
import { BackupLock, readLock, removeLock, StaleBackupError, type BackupJournal, type JournalDisk } from './lock';
import { MANIFEST_FORMAT, MANIFEST_VERSION, newBackupId, type BackupManifest, type BackupManifestDisk } from './manifest';
import { backupActions, backupNames, planBackup, type BackupPlan, type BackupRequest, type DiskPlan } from './plan';
import { createQcow2, imageInfo } from './qemuimg';
import { BackupRepository } from './repository';
import { cleanupPullLeftovers } from '../pull/leftovers';

export const TOOL = 'tidemark 0.1.0';
const MiB = 1024 * 1024;

export interface BackupOptions {
  repo: BackupRepository;
  /** Full backup of every disk. */
  full?: boolean;
  /** Changes since this checkpoint (incremental if it is the newest backed-up one, else differential). */
  since?: string;
  /** Name of the checkpoint created with the backup; false: none (--no-checkpoint); default: the backup id. */
  checkpoint?: string | false;
  /** Disks to back up (default: all). */
  disks?: string[];
  /** Speed limit per disk, MiB/s. */
  speedMiBps?: number;
  signal?: AbortSignal;
  onUpdate?: (job: JobInfo) => void;
  /** Fault tests only: open this disk's target through blkdebug failing every data write with `errno`. */
  injectTargetError?: { disk: string; errno: number };
}

/**
 * Takes the repository's backup lock for a new backup (push or pull). A lock left by a backup whose
 * process died is cleaned up first (its checkpoint rolled back, its partial files removed); a live
 * one is refused with BackupBusyError.
 */
export async function acquireBackupLock(
  engine: CheckpointEngineApi, client: QmpClient, repo: BackupRepository,
  init: Omit<BackupJournal, 'pid' | 'startTicks' | 'host' | 'updatedAt'>, log: JobLog,
): Promise<BackupLock> {
  try {
    return BackupLock.acquire(repo, init);
  } catch (e) {
    if (!(e instanceof StaleBackupError)) throw e;
    log.add(`cleaning up after an earlier backup that did not finish (${e.journal?.backupId ?? 'unknown'})`);
    await engine.withLock(() => recoverStale(engine, client, repo, e.journal, log), 'clean up an unfinished backup');
    return BackupLock.acquire(repo, init);
  }
}

export class BackupFailedError extends Error {
  constructor(message: string, readonly backupId: string, readonly cancelled: boolean, readonly log: string[]) {
    super(message);
    this.name = 'BackupFailedError';
  }
}

interface TargetState {
  disk: string;
  partial: string;
  final: string;
  created: boolean;
  attached: boolean;
}

function cancelMarker(repo: BackupRepository, vmId: string): string {
  return path.join(repo.vmDir(vmId), 'backup.cancel');
}

/** Runs one push backup of `engine`'s VM into `options.repo`. Resolves with the written manifest. */
export async function runBackup(engine: CheckpointEngineApi, client: QmpClient, options: BackupOptions): Promise<BackupManifest> {
  if (options.full && options.since !== undefined) throw new Error('--full and --since cannot be combined');
  if (options.speedMiBps !== undefined && !(options.speedMiBps > 0)) throw new Error(`speed limit must be a positive number of MiB/s, got ${options.speedMiBps}`);
  if (typeof options.checkpoint === 'string') validateCheckpointName(options.checkpoint);
  const repo = options.repo;
  const vmId = engine.vmId;
  const id = newBackupId();
  const request: BackupRequest = options.full ? { mode: 'full' } : options.since !== undefined ? { mode: 'since', checkpoint: options.since } : { mode: 'auto' };
  const log = new JobLog({ id, kind: 'backup', vmId, title: `Backup ${id}` }, options.onUpdate);

  const journalInit: Omit<BackupJournal, 'pid' | 'startTicks' | 'host' | 'updatedAt'> = {
    backupId: id, vmId, endpoint: '', startedAt: Date.now(), phase: 'preparing', kind: 'full', executed: false, disks: [], progress: [], log: [],
  };
  const lock = await acquireBackupLock(engine, client, repo, journalInit, log);
  fs.rmSync(cancelMarker(repo, vmId), { force: true });
  try {
    // Refuse at once (rather than wait for the metadata lock) while QEMU runs another Tidemark backup.
    await refuseIfQemuBusy(client);
    return await engine.withLock(() => execute(engine, client, options, request, id, lock, log), `backup ${id}`);
  } catch (e) {
    // Refusals before anything was created (bad request, busy QEMU) end the job log too.
    if (!(e instanceof BackupFailedError)) log.end('failed', (e as Error).message);
    throw e;
  } finally {
    lock.release();
    fs.rmSync(cancelMarker(repo, vmId), { force: true });
  }
}

async function execute(
  engine: CheckpointEngineApi, client: QmpClient, options: BackupOptions, request: BackupRequest, id: string, lock: BackupLock, log: JobLog,
): Promise<BackupManifest> {
  const repo = options.repo;
  const vmId = engine.vmId;
  const tag = randomBytes(3).toString('hex');
  const names = backupNames(tag);
  const internal = new AbortController();

  await refuseIfQemuBusy(client);

  for (const f of repo.orphanImages(vmId)) {
    fs.rmSync(f, { force: true });
    log.add(`removed ${f}: no manifest refers to it (left by an interrupted backup)`);
  }

  await engine.health();
  const vm = await engine.vm();
  const backups = repo.list(vmId);
  const current = engine.current()?.name;
  const plan = planBackup({
    vm, request, disks: options.disks, checkpoints: engine.list(), current, backups,
    branchPoints: repo.branchPoints(vmId),
    needsFull: repo.needsFull(vmId),
    layerExists: (bid, disk) => fs.existsSync(repo.imagePath(vmId, disk, bid)),
    tempBitmapActions: (since, disk, tmp) => engine.tempBitmapActions(since, disk, tmp),
    names,
  });
  for (const n of plan.notes) log.add(n);
  const checkpointName = options.checkpoint === false ? undefined : (options.checkpoint ?? id);
  if (checkpointName !== undefined && engine.list().some((c) => c.name === checkpointName)) {
    throw new Error(`checkpoint ${JSON.stringify(checkpointName)} already exists; choose another name with --checkpoint`);
  }
  const wantsCheckpoint = checkpointName !== undefined && plan.checkpointDisks.some((d) => d.checkpoint === 'bitmap');
  if (checkpointName !== undefined && !wantsCheckpoint) log.add('no checkpoint is created: none of the disks backed up can hold a bitmap');
  log.add(`${plan.kind} backup of ${plan.disks.map((d) => `${d.disk.name} (${d.kind}${d.since ? ` since ${d.since}` : ''})`).join(', ')}${wantsCheckpoint ? `, new checkpoint ${checkpointName}` : ''}`);

  const targets: TargetState[] = plan.disks.map((d) => {
    const final = repo.imagePath(vmId, d.disk.name, id);
    return { disk: d.disk.name, final, partial: `${final}.partial`, created: false, attached: false };
  });
  const journalDisks: JournalDisk[] = plan.disks.map((d, i) => ({
    disk: d.disk.name, kind: d.kind, jobId: d.jobId, targetNode: d.targetNode, tmpBitmap: d.tmpBitmap, sourceNode: d.disk.nodeName, partialImage: targets[i]!.partial,
  }));
  lock.update({ endpoint: vm.endpoint, kind: plan.kind, since: plan.since, checkpoint: wantsCheckpoint ? checkpointName : undefined, disks: journalDisks, log: log.lines });

  const onAbort = () => internal.abort();
  options.signal?.addEventListener('abort', onAbort);
  if (options.signal?.aborted) internal.abort();
  let prepared: PreparedCheckpoint | undefined;
  let group: JobGroup | undefined;
  let executed = false;
  let manifestWritten = false;
  try {
    // Targets: plain qcow2 files, an incremental's backing file being the base layer (relative), opened without it (G7).
    for (const [i, d] of plan.disks.entries()) {
      const t = targets[i]!;
      fs.mkdirSync(path.dirname(t.partial), { recursive: true });
      await createQcow2(t.partial, d.disk.virtualSize, { backing: d.base ? `${d.base}.qcow2` : undefined });
      t.created = true;
      const inject = options.injectTargetError?.disk === d.disk.name ? options.injectTargetError : undefined;
      const file = inject
        ? { driver: 'blkdebug', image: { driver: 'file', filename: t.partial }, 'inject-error': [{ event: 'write_aio', errno: inject.errno }] }
        : { driver: 'file', filename: t.partial };
      await client.execute('blockdev-add', { driver: 'qcow2', 'node-name': d.targetNode, file, backing: null });
      t.attached = true;
    }
    const fullSync = await fullSyncModes(client, plan);
    if (wantsCheckpoint) {
      prepared = await engine.prepareCreate({ name: checkpointName, description: `backup ${id}`, disks: plan.checkpointDisks });
      lock.update({ prepared }); // needed to roll the checkpoint back if this process dies: must be on disk first
    }
    const actions = backupActions(plan, { checkpointActions: prepared?.actions, speed: options.speedMiBps ? Math.round(options.speedMiBps * MiB) : undefined, fullSync: (disk) => fullSync.get(disk.name) ?? 'full' });
    if (internal.signal.aborted) throw new Cancelled();
    group = new JobGroup(client, plan.disks.map((d) => d.jobId));
    await client.execute('transaction', { actions });
    executed = true;
    journal(lock, log, { executed: true, phase: 'running' });
    log.add('transaction done: jobs started');

    let lastJournal = 0;
    const marker = cancelMarker(repo, vmId);
    await group.waitSettled({
      signal: internal.signal,
      onProgress: (states) => {
        log.progress(progressOf(plan, states));
        if (!internal.signal.aborted && fs.existsSync(marker)) {
          log.add('cancel requested (backup-cancel)');
          internal.abort();
        }
        if (Date.now() - lastJournal > 1000) {
          lastJournal = Date.now();
          journal(lock, log, { progress: log.info.progress, log: log.lines.slice(-50) });
        }
      },
    });
    const failed = group.jobs.filter((s) => s.failed);
    if (internal.signal.aborted) throw new Cancelled();
    if (failed.length > 0 || !group.jobs.every((s) => s.ready)) {
      // Name the job that failed first; the others were cancelled because of it.
      const f = failed.find((s) => group!.firstFailed.includes(s.id)) ?? failed[0];
      const disk = plan.disks.find((d) => d.jobId === f?.id)?.disk.name;
      throw new Error(f ? `the backup job of ${disk} failed: ${f.failed}` : 'a backup job did not finish');
    }
    journal(lock, log, { phase: 'finalizing' });
    const bad = await group.finalizeAll();
    if (bad.length > 0) throw new Error(`finalizing the backup jobs failed: ${bad.map((b) => b.failed).join('; ')}`);
    const totals = new Map(group.jobs.map((s) => [s.id, s.total]));
    await closeInQemu(client, plan, targets, group, executed, log);
    group = undefined;

    // Record: layers renamed into place and checksummed, then the manifest (the commit point), then the checkpoint.
    journal(lock, log, { phase: 'recording' });
    const disks: BackupManifestDisk[] = [];
    for (const [i, d] of plan.disks.entries()) {
      const t = targets[i]!;
      const entry = await recordLayer(d, t.partial, t.final, id, totals.get(d.jobId) ?? 0, wantsCheckpoint && plan.checkpointDisks.some((c) => c.name === d.disk.name && c.checkpoint === 'bitmap'));
      disks.push(entry);
      log.add(`${d.disk.name}: ${entry.kind}, ${entry.bytesCopied} bytes copied, layer ${entry.fileSize} bytes, sha256 ${entry.sha256.slice(0, 16)}…`);
    }
    const manifest: BackupManifest = {
      format: MANIFEST_FORMAT,
      version: MANIFEST_VERSION,
      id,
      vm: { id: vm.id, ...(vm.name ? { name: vm.name } : {}), ...(vm.uuid ? { uuid: vm.uuid } : {}) },
      kind: plan.kind,
      ...(plan.since !== undefined ? { since: plan.since } : {}),
      ...(wantsCheckpoint ? { checkpoint: checkpointName } : {}),
      ...(engine.layout() ? { layout: engine.layout() } : {}),
      startedAt: log.info.startedAt,
      completedAt: Date.now(),
      qemuVersion: vm.qemuVersion,
      tool: TOOL,
      disks,
    };
    if (internal.signal.aborted) throw new Cancelled();
    repo.writeManifest(manifest);
    manifestWritten = true;
    if (prepared) {
      await engine.commitCreate(prepared);
      log.add(`checkpoint ${prepared.checkpoint.name} recorded`);
    }
    prepared = undefined;
    const marks = repo.needsFull(vmId);
    for (const d of disks) if (d.kind === 'full') delete marks[d.name];
    repo.setNeedsFull(vmId, marks);
    log.add(`backup ${id} complete`);
    log.end('succeeded');
    writeLogFile(repo, vmId, id, log);
    return manifest;
  } catch (e) {
    const cancelled = e instanceof Cancelled;
    const reason = cancelled ? 'cancelled' : (e as Error).message;
    log.add(cancelled ? 'cancelled: rolling back' : `failed: ${reason}; rolling back`);
    journal(lock, log, { phase: 'rolling-back', log: log.lines.slice(-50) });
    const undone = await rollback(engine, client, plan, targets, group, executed, prepared, log);
    if (manifestWritten) fs.rmSync(path.join(repo.vmDir(vmId), 'manifests', `${id}.json`), { force: true });
    for (const t of targets) {
      fs.rmSync(t.partial, { force: true });
      fs.rmSync(t.final, { force: true });
    }
    log.add('partial images deleted');
    const msg = `backup ${id} ${cancelled ? 'was cancelled' : `failed: ${reason}`}; ${undone}`;
    log.end(cancelled ? 'cancelled' : 'failed', msg);
    writeLogFile(repo, vmId, id, log);
    throw new BackupFailedError(msg, id, cancelled, log.lines);
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    group?.dispose();
  }
}

async function refuseIfQemuBusy(client: QmpClient): Promise<void> {
  const jobs = await client.execute<QmpJob[]>('query-jobs');
  const other = jobs.find((j) => j.id.startsWith('tidemark-bk-') && j.status !== 'concluded' && j.status !== 'null');
  if (other) throw new Error(`QEMU is already running a Tidemark backup job (${other.id}, ${other.status}), probably into another repository; wait for it to finish or cancel it`);
}

class Cancelled extends Error {
  constructor() {
    super('cancelled');
  }
}

/**
 * Puts a finished layer into place (rename of the partial file), checksums it, checks its size, and
 * describes it for the manifest. Shared by push and pull: their layers are recorded alike.
 */
export async function recordLayer(d: DiskPlan, partial: string, final: string, id: string, bytesCopied: number, checkpointBitmap: boolean): Promise<BackupManifestDisk> {
  fs.renameSync(partial, final);
  const sum = await sha256File(final);
  const info = await imageInfo(final, { format: 'qcow2' });
  if (info.virtualSize !== d.disk.virtualSize) throw new Error(`layer ${final} has size ${info.virtualSize}, expected ${d.disk.virtualSize}`);
  const src = await imageInfo(d.disk.imageFile, { shared: true }).catch(() => undefined);
  const entry: BackupManifestDisk = {
    name: d.disk.name,
    kind: d.kind,
    image: BackupRepository.imageRel(d.disk.name, id),
    virtualSize: d.disk.virtualSize,
    bytesCopied,
    fileSize: sum.size,
    sha256: sum.sha256,
    sourceImage: d.disk.imageFile,
    sourceFormat: d.disk.format,
    checkpointBitmap,
  };
  if (d.since !== undefined) entry.since = d.since;
  if (d.base !== undefined) {
    entry.base = d.base;
    entry.backingFile = `${d.base}.qcow2`;
  }
  if (d.fallbackReason !== undefined) entry.fallbackReason = d.fallbackReason;
  if (src?.compat) entry.sourceCompat = src.compat;
  if (src?.clusterSize ?? d.disk.clusterSize) entry.sourceClusterSize = src?.clusterSize ?? d.disk.clusterSize;
  return entry;
}

/** Journal updates are for status and crash recovery; failing to write one (a full disk) must not mask the real outcome. */
function journal(lock: BackupLock, log: JobLog, patch: Partial<BackupJournal>): void {
  try {
    lock.update(patch);
  } catch (e) {
    if (!log.lines.some((l) => l.includes('cannot update the backup journal'))) log.add(`cannot update the backup journal: ${(e as Error).message}`);
  }
}

function progressOf(plan: BackupPlan, states: JobState[]): JobInfo['progress'] {
  return plan.disks.map((d) => {
    const s = states.find((x) => x.id === d.jobId);
    return { disk: d.disk.name, done: s?.done ?? 0, total: s?.total ?? 0 };
  });
}

/** sync=top copies only what the source holds itself; right for a full backup when the disk has no backing file (sparse disks stay cheap). */
async function fullSyncModes(client: QmpClient, plan: BackupPlan): Promise<Map<string, 'full' | 'top'>> {
  const nodes = await client.execute<{ 'node-name': string; backing_file?: string; image?: { 'backing-image'?: unknown; 'backing-filename'?: string } }[]>('query-named-block-nodes', { flat: true });
  const out = new Map<string, 'full' | 'top'>();
  for (const d of plan.disks) {
    const n = nodes.find((x) => x['node-name'] === d.disk.nodeName);
    const hasBacking = !n || Boolean(n.backing_file || n.image?.['backing-filename'] || n.image?.['backing-image']);
    out.set(d.disk.name, hasBacking ? 'full' : 'top');
  }
  return out;
}

/** After success: dismiss the jobs, close the targets (flushes them, G11), remove the temporary bitmaps. */
async function closeInQemu(client: QmpClient, plan: BackupPlan, targets: TargetState[], group: JobGroup, executed: boolean, log: JobLog): Promise<void> {
  await group.dismissAll();
  group.dispose();
  for (const [i, d] of plan.disks.entries()) {
    await client.execute('blockdev-del', { 'node-name': d.targetNode });
    targets[i]!.attached = false;
  }
  if (executed) {
    for (const d of plan.disks) {
      if (d.tmpBitmap) await client.execute('block-dirty-bitmap-remove', { node: d.disk.nodeName, name: d.tmpBitmap });
    }
  }
  log.add('jobs finalized, targets closed, temporary bitmaps removed');
}

/** Undoes whatever the backup did in QEMU (best effort, each step on its own). Returns a summary for the error message. */
async function rollback(
  engine: CheckpointEngineApi, client: QmpClient, plan: BackupPlan, targets: TargetState[], group: JobGroup | undefined,
  executed: boolean, prepared: PreparedCheckpoint | undefined, log: JobLog,
): Promise<string> {
  const alive = client.isOpen;
  const notes: string[] = [];
  if (alive && group) {
    await group.cancelAll().catch(() => undefined);
    await group.waitConcluded().catch(() => undefined);
    await group.dismissAll().catch(() => undefined);
  }
  if (alive) {
    for (const [i, d] of plan.disks.entries()) {
      if (!targets[i]!.attached) continue;
      await client.execute('blockdev-del', { 'node-name': d.targetNode }).then(
        () => (targets[i]!.attached = false),
        (e: Error) => log.add(`could not close target ${d.targetNode}: ${e.message}`),
      );
    }
    if (executed) {
      for (const d of plan.disks) {
        if (d.tmpBitmap) await client.execute('block-dirty-bitmap-remove', { node: d.disk.nodeName, name: d.tmpBitmap }).catch(() => undefined);
      }
    }
  }
  if (prepared && executed) {
    try {
      await engine.rollbackCreate(prepared);
      notes.push(`checkpoint ${prepared.checkpoint.name} rolled back`);
      log.add(`checkpoint ${prepared.checkpoint.name} rolled back`);
    } catch (e) {
      const msg = alive
        ? `checkpoint ${prepared.checkpoint.name} could not be rolled back (${(e as Error).message}); delete it with checkpoint-delete`
        : `checkpoint ${prepared.checkpoint.name} was never recorded (QEMU is gone, and with it the bitmaps it created)`;
      notes.push(msg);
      log.add(msg);
    }
  } else if (prepared) {
    notes.push(`checkpoint ${prepared.checkpoint.name} was not created`);
  }
  notes.push('partial images deleted; earlier backups and checkpoints untouched');
  return notes.join('; ');
}

function writeLogFile(repo: BackupRepository, vmId: string, id: string, log: JobLog): void {
  try {
    const file = repo.logPath(vmId, id);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, log.text());
  } catch {
    // the log is a convenience; its failure must not change the backup's outcome
  }
}

// ---------------------------------------------------------------- status, cancel, recovery

export interface BackupStatus {
  running: boolean;
  /** The lock is held by a process that is gone: the next backup (or backup-cancel) cleans up. */
  stale: boolean;
  journal?: BackupJournal;
  /** Live job states from QEMU, when a QMP client was given. */
  jobs?: { disk: string; jobId: string; status: string; done: number; total: number; error?: string }[];
}

export async function backupStatus(repo: BackupRepository, vmId: string, client?: QmpClient): Promise<BackupStatus> {
  const held = readLock(repo, vmId);
  if (!held) return { running: false, stale: false };
  const out: BackupStatus = { running: held.alive, stale: !held.alive, journal: held.journal };
  if (client && held.journal.executed) {
    const jobs = await client.execute<QmpJob[]>('query-jobs').catch(() => [] as QmpJob[]);
    out.jobs = held.journal.disks.flatMap((d) => {
      const j = jobs.find((x) => x.id === d.jobId);
      return j ? [{ disk: d.disk, jobId: d.jobId, status: j.status, done: j['current-progress'], total: j['total-progress'], ...(j.error ? { error: j.error } : {}) }] : [];
    });
  }
  return out;
}

/**
 * Cancels the running backup of a VM. A live backup is asked to stop (its jobs are cancelled and
 * its own process rolls back); a backup whose process died is rolled back here.
 */
export async function cancelBackup(engine: CheckpointEngineApi, client: QmpClient, repo: BackupRepository, options: { timeoutMs?: number } = {}): Promise<{ backupId: string; how: 'cancelled' | 'cleaned-up' }> {
  const vmId = engine.vmId;
  const held = readLock(repo, vmId);
  if (!held) throw new Error(`no backup of VM ${JSON.stringify(vmId)} is running in ${repo.root}`);
  const j = held.journal;
  if (!held.alive) {
    const log = new JobLog({ id: j.backupId, kind: 'backup', vmId, title: `Clean-up of backup ${j.backupId}` });
    await engine.withLock(() => recoverStale(engine, client, repo, j, log), `clean up backup ${j.backupId}`);
    return { backupId: j.backupId, how: 'cleaned-up' };
  }
  writeFileAtomic(cancelMarker(repo, vmId), j.backupId);
  for (const d of j.disks) await client.execute('job-cancel', { id: d.jobId }).catch(() => undefined);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  while (Date.now() < deadline) {
    const now = readLock(repo, vmId);
    if (!now || now.journal.backupId !== j.backupId) return { backupId: j.backupId, how: 'cancelled' };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`backup ${j.backupId} was asked to cancel but is still running after ${Math.round((options.timeoutMs ?? 60_000) / 1000)} s (process ${j.pid})`);
}

/** Rolls back a backup whose process died, from its journal; then removes its lock. */
export async function recoverStale(engine: CheckpointEngineApi, client: QmpClient, repo: BackupRepository, journal: BackupJournal | undefined, log: JobLog): Promise<void> {
  const vmId = engine.vmId;
  if (journal && journal.backupId !== '?') {
    const done = repo.list(vmId).some((m) => m.id === journal.backupId);
    const known = new Set(engine.list().map((c) => c.name));
    if (done) {
      // The manifest was written: the backup is complete; only its checkpoint may be unrecorded.
      if (journal.prepared && !known.has(journal.prepared.checkpoint.name)) {
        await engine.commitCreate(journal.prepared).then(
          () => log.add(`checkpoint ${journal.prepared!.checkpoint.name} of completed backup ${journal.backupId} recorded`),
          (e: Error) => log.add(`checkpoint ${journal.prepared!.checkpoint.name} could not be recorded: ${e.message}`),
        );
      }
    } else {
      // A pull's exports hold its fleece nodes and bitmaps: they go first (issue 5).
      if (journal.pull) await cleanupPullLeftovers(client, journal.pull, log);
      if (client.isOpen) {
        const jobs = await client.execute<QmpJob[]>('query-jobs').catch(() => [] as QmpJob[]);
        for (const d of journal.disks) {
          const job = jobs.find((x) => x.id === d.jobId);
          if (job && job.status !== 'concluded') await client.execute('job-cancel', { id: d.jobId }).catch(() => undefined);
        }
        if (journal.disks.some((d) => jobs.some((x) => x.id === d.jobId))) {
          const g = new JobGroup(client, journal.disks.filter((d) => jobs.some((x) => x.id === d.jobId)).map((d) => d.jobId));
          await g.waitConcluded(15_000);
          await g.dismissAll();
          g.dispose();
        }
        const nodes = await client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string }[] }[]>('query-named-block-nodes', { flat: true }).catch(() => []);
        for (const d of journal.disks) {
          if (nodes.some((n) => n['node-name'] === d.targetNode)) await client.execute('blockdev-del', { 'node-name': d.targetNode }).catch(() => undefined);
          const src = nodes.find((n) => n['node-name'] === d.sourceNode);
          if (d.tmpBitmap && src?.['dirty-bitmaps']?.some((b) => b.name === d.tmpBitmap)) {
            await client.execute('block-dirty-bitmap-remove', { node: d.sourceNode, name: d.tmpBitmap }).catch(() => undefined);
          }
        }
      }
      if (journal.prepared && journal.executed && !known.has(journal.prepared.checkpoint.name)) {
        await engine.rollbackCreate(journal.prepared).then(
          () => log.add(`checkpoint ${journal.prepared!.checkpoint.name} of unfinished backup ${journal.backupId} rolled back`),
          (e: Error) => log.add(`checkpoint ${journal.prepared!.checkpoint.name} of unfinished backup ${journal.backupId} not rolled back: ${e.message}`),
        );
      }
      for (const d of journal.disks) {
        fs.rmSync(d.partialImage, { force: true });
        fs.rmSync(d.partialImage.replace(/\.partial$/, ''), { force: true });
      }
      log.add(`unfinished backup ${journal.backupId}: partial images deleted`);
    }
  }
  removeLock(repo, vmId);
}
