// What the QMP strategies put into QEMU, as they journal it, and its clean-up when the backup's
// process died: NBD exports first (an export holds the fleece node and the temporary bitmap), then
// qemu-nbd writers and fleece files, then jobs, target/fleece nodes and temporary bitmaps.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as v from 'valibot';
import { check, list, record, size, text } from '../../../shared/schema';
import { removeLeftoverExports, stopIdleNbdServer } from '../../nbd/qemu-exports';
import { stopProcess } from '../../nbd/qemu-nbd';
import type { QmpClient } from '../../qmp/client';
import { QmpError } from '../../qmp/errors';
import type { StrategyJournal } from '../backup/lock';
import { removeChangeMaps } from './change-map';
import { JobGroup, type QmpJob } from './jobs';

const qmpName = text({ min: 1, max: 128 });
/** The journal's `strategy.state` of a QMP backup, checked before recovery acts on it. */
const qmpBackupStateSchema = record({
  disks: list(record({ disk: text({ min: 1, max: 256 }), jobId: qmpName, targetNode: qmpName, tmpBitmap: v.optional(qmpName), sourceNode: qmpName }), { max: 256 }),
  pull: v.optional(record({
    exports: list(qmpName, { max: 256 }),
    qemuNbdPids: list(v.pipe(size(), v.minValue(2)), { max: 256 }),
    fleeceFiles: list(text({ min: 1 }), { max: 256 }),
    layerNodes: v.optional(list(qmpName, { max: 256 })),
  })),
});

/** One disk's QEMU objects. */
export interface QmpDiskJournal {
  disk: string;
  jobId: string;
  /** Node name of the target qcow2 (push) or the fleece overlay (pull). */
  targetNode: string;
  /** Temporary merged bitmap (incremental/differential). */
  tmpBitmap?: string;
  /** Node name of the source disk (where the temporary bitmap lives). */
  sourceNode: string;
}

/** What a pull creates beyond a push backup. */
export interface PullJournal {
  /** QEMU block export ids (block-export-del). */
  exports: string[];
  /** qemu-nbd processes serving the layers being written. */
  qemuNbdPids: number[];
  /** Fleece image files. */
  fleeceFiles: string[];
  /** Nodes of new layers QEMU writes (the pull's writer, pull-writer.ts); absent in older journals. */
  layerNodes?: string[];
}

/** How pull.ts names the node of a layer QEMU writes: the fleece node's name + "-layer". */
const LAYER_NODE = /^tidemark-bkt-[0-9a-f]+-\d+-layer$/;

/** The `strategy.state` of a QMP backup's journal. */
export interface QmpBackupState {
  disks: QmpDiskJournal[];
  pull?: PullJournal;
}

type Log = { add(message: string): void };

/** The QMP state of a journal, validated; undefined when there is none or it is not valid (the reason goes to `log`). */
export function qmpStateOf(strategy: StrategyJournal | undefined, log?: Log): QmpBackupState | undefined {
  if (strategy?.state === undefined) return undefined;
  try {
    return check(qmpBackupStateSchema, strategy.state, 'journal.strategy.state');
  } catch (e) {
    log?.add(`the backup journal's QEMU state is not valid, nothing is done from it: ${(e as Error).message}`);
    return undefined;
  }
}

/** Undoes what a dead QMP backup left in QEMU and beside it (best effort, each step on its own). */
export async function recoverQmpLeftovers(client: QmpClient, strategy: StrategyJournal | undefined, backupId: string, log: Log): Promise<void> {
  const state = qmpStateOf(strategy, log);
  if (!state) return;
  if (state.pull) await cleanupPullLeftovers(client, state.pull, backupId, log);
  if (!client.isOpen) return;
  const jobs = await client.execute<QmpJob[]>('query-jobs').catch(() => [] as QmpJob[]);
  for (const d of state.disks) {
    const job = jobs.find((x) => x.id === d.jobId);
    if (job && job.status !== 'concluded') await client.execute('job-cancel', { id: d.jobId }).catch(() => undefined);
  }
  const ours = state.disks.filter((d) => jobs.some((x) => x.id === d.jobId)).map((d) => d.jobId);
  if (ours.length > 0) {
    const g = new JobGroup(client, ours);
    await g.waitConcluded(15_000);
    await g.dismissAll();
    g.dispose();
  }
  await removeChangeMaps(client, state.disks, log);
  const nodes = await client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string }[] }[]>('query-named-block-nodes', { flat: true }).catch(() => []);
  for (const d of state.disks) {
    if (nodes.some((n) => n['node-name'] === d.targetNode)) await client.execute('blockdev-del', { 'node-name': d.targetNode }).catch(() => undefined);
    const src = nodes.find((n) => n['node-name'] === d.sourceNode);
    if (d.tmpBitmap && src?.['dirty-bitmaps']?.some((b) => b.name === d.tmpBitmap)) {
      await client.execute('block-dirty-bitmap-remove', { node: d.sourceNode, name: d.tmpBitmap }).catch(() => undefined);
    }
  }
}

async function cleanupPullLeftovers(client: QmpClient, pull: PullJournal, backupId: string, log: Log): Promise<void> {
  if (client.isOpen) {
    // A layer's export is not journaled by id: it is found by its node (added after the node was journaled).
    // Only nodes named as pull.ts names them (a journal cannot make recovery close someone else's node).
    const layers = new Set((pull.layerNodes ?? []).filter((n) => {
      const ours = LAYER_NODE.test(n);
      if (!ours) log.add(`the journal names ${JSON.stringify(n)} as a layer node of the unfinished pull; it is not one: left alone`);
      return ours;
    }));
    const all = layers.size ? await client.execute<{ id: string; 'node-name': string }[]>('query-block-exports').catch(() => []) : [];
    const ids = [...pull.exports, ...all.filter((e) => layers.has(e['node-name'])).map((e) => e.id)];
    await removeLeftoverExports(client, ids, (id) => log.add(`export ${id} of the unfinished pull removed`));
    for (const node of layers) {
      // After its export is gone; QEMU then writes the layer's metadata, and the session deletes the partial file.
      if (await client.execute('blockdev-del', { 'node-name': node }).then(() => true, () => false)) log.add(`layer node ${node} of the unfinished pull closed`);
    }
    await stopIdleNbdServer(client);
  }
  for (const pid of pull.qemuNbdPids) await stopProcess(pid, 'qemu-nbd');
  for (const f of pull.fleeceFiles) {
    // Only this backup's own fleecing images (pull.ts names them "<backup id>-<disk>.fleece.qcow2"), plain files.
    if (!isOwnFleeceFile(f, backupId)) {
      log.add(`the journal names ${JSON.stringify(f)} as a fleecing image of backup ${backupId}; it is not one: left alone`);
      continue;
    }
    fs.rmSync(f, { force: true });
  }
  if (pull.qemuNbdPids.length || pull.fleeceFiles.length) log.add('writers of the unfinished pull stopped, fleecing images deleted');
}

/** Refuses while QEMU runs another Tidemark backup job (probably into another repository). */
export async function refuseIfQemuBusy(client: QmpClient): Promise<void> {
  const jobs = await client.execute<QmpJob[]>('query-jobs');
  const other = jobs.find((j) => j.id.startsWith('tidemark-bk-') && j.status !== 'concluded' && j.status !== 'null');
  if (other) throw new Error(`QEMU is already running a Tidemark backup job (${other.id}, ${other.status}), probably into another repository; wait for it to finish or cancel it`);
}

function isOwnFleeceFile(file: string, backupId: string): boolean {
  const base = path.basename(file);
  if (!path.isAbsolute(file) || !base.startsWith(`${backupId}-`) || !base.endsWith('.fleece.qcow2')) return false;
  try {
    return fs.lstatSync(file).isFile();
  } catch {
    return false;
  }
}

/**
 * Whether a `transaction` whose reply never came (timeout, dropped connection) ran in QEMU: its
 * jobs exist, or its temporary bitmaps do. undefined when QEMU cannot be asked (then it must be
 * treated as having run: recovery checks each object before removing it).
 */
export async function transactionRan(client: QmpClient, disks: { jobId: string; tmpBitmap?: string; sourceNode: string }[]): Promise<boolean | undefined> {
  try {
    const jobs = await client.execute<QmpJob[]>('query-jobs', undefined, { timeoutMs: 10_000 });
    if (disks.some((d) => jobs.some((j) => j.id === d.jobId))) return true;
    const nodes = await client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string }[] }[]>('query-named-block-nodes', { flat: true }, { timeoutMs: 10_000 });
    return disks.some((d) => d.tmpBitmap !== undefined && nodes.some((n) => n['node-name'] === d.sourceNode && n['dirty-bitmaps']?.some((b) => b.name === d.tmpBitmap)));
  } catch {
    return undefined;
  }
}

/**
 * Runs a backup's `transaction`. QEMU's own refusal means nothing changed; a missing reply is
 * answered by asking QEMU what happened, and `onRan` is called when it ran or cannot be ruled out.
 */
export async function runTransaction(client: QmpClient, actions: unknown[], disks: { jobId: string; tmpBitmap?: string; sourceNode: string }[], onRan: (how: string) => void): Promise<void> {
  try {
    await client.execute('transaction', { actions });
  } catch (e) {
    if (e instanceof QmpError) throw e;
    const ran = await transactionRan(client, disks);
    if (ran !== false) onRan(ran ? 'the transaction ran although its reply was lost' : 'QEMU could not be asked whether the transaction ran');
    throw e;
  }
}
