// An incremental backup's steps done by hand over QMP, each timed apart: what QEMU itself takes for a
// push or a pull of one bitmap's changes, with nothing of Tidemark's around it but the layer it writes
// and hashes at the end. push-floor.ts and pull-floor.ts run them on a bare QEMU; peers.ts runs them on
// its lab VM, in the same rounds as Tidemark and the peers. Figures, never pass/fail.
//
// push: tx (a temporary bitmap, add + merge of the changes' bitmap, and blockdev-backup sync=bitmap
//       into a target made with its L2 tables ahead, opened no-flush), job (to its end), close
//       (job-dismiss, blockdev-del of the target, the temporary bitmap removed);
// pull: tx (blockdev-add of the fleece overlay; the transaction: the temporary bitmap, a new bitmap
//       added and the changes' bitmap disabled as a checkpoint does, blockdev-backup sync=none), export
//       (block-export-add with the temporary bitmap), copy (the dirty map, block status in 4 GiB windows,
//       all asked at once, and each window's changes read as soon as it is answered, 16 in flight, into
//       reused buffers: a reader that keeps nothing), teardown (the export, the fleecing job, the overlay
//       and the bitmaps);
// then, for both, Tidemark's own share: layer (the pull's layer written by qcow2-layer.ts; a push's
//       layer is QEMU's), sync (fdatasync), hash (its checksum).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { checksumFile } from '../../electron/engine/backup/checksum';
import { Qcow2LayerFile } from '../../electron/engine/pull/qcow2-layer';
import { fleeceNodeArgs } from '../../electron/engine/qmp-driver/actions';
import type { QmpAction } from '../../electron/engine/checkpoints/api';
import { readDirtyExtents } from '../../electron/engine/dirtymap/dirtymap';
import { emptyQcow2Layout, l2TableSpan, l2TablesOf, writeEmptyQcow2 } from '../../electron/engine/qcow2/format';
import type { DiskInfo } from '../../shared/domain';
import { NbdClient, STATUS_WINDOW, type Extent } from '../../electron/nbd/client';
import { dirtyBitmapContext, NBD_STATE_DIRTY } from '../../electron/nbd/protocol';
import type { ExportManager } from '../../electron/nbd/qemu-exports';
import type { QmpClient } from '../../electron/qmp/client';
import { settle } from '../peers/proc';

export const PUSH_QEMU = ['tx', 'job', 'close'] as const;
export const PULL_QEMU = ['tx', 'export', 'copy', 'teardown'] as const;
const OWN = ['layer', 'sync', 'hash'] as const;
/** Every step each returns, in order (a push's layer is QEMU's: no layer step of Tidemark's). */
export const PUSH_STEPS = [...PUSH_QEMU, 'sync', 'hash'] as const;
export const PULL_STEPS = [...PULL_QEMU, ...OWN] as const;
export type PushStep = (typeof PUSH_STEPS)[number];
export type PullStep = (typeof PULL_STEPS)[number];

export interface FloorDisk {
  /** The disk's format node. */
  node: string;
  size: number;
}

/**
 * Where `bitmap`'s changes are on `disk`, read as push.ts reads them before its transaction (dirtymap.ts
 * readDirtyExtents: a disabled copy of the changes' bitmap at the L2 tables' granularity, exported
 * read-only, NBD block status): the L2 tables the target gets ahead, and the ms the read took. The export
 * and bitmap are then removed off the clock, as the push has QEMU remove them while it writes the target.
 * `stateDir`: where the NBD socket goes (run/ under it).
 */
export async function readChangeMap(client: QmpClient, stateDir: string, disk: FloorDisk, bitmap: string): Promise<{ tables: number[]; ms: number }> {
  // What the checkpoint engine gives readDirtyExtents on a VM: "changes since" is this one bitmap.
  const tempBitmapActions = (_since: string, _disk: string, tmp: string): QmpAction[] => [
    { type: 'block-dirty-bitmap-add', data: { node: disk.node, name: tmp, persistent: false, disabled: true } },
    { type: 'block-dirty-bitmap-merge', data: { node: disk.node, target: tmp, bitmaps: [bitmap] } },
  ];
  const info: DiskInfo = {
    name: disk.node, nodeName: disk.node, format: 'qcow2', virtualSize: disk.size, imageFile: `${disk.node}.qcow2`, granularity: 65536, bitmapCapable: true, readOnly: false,
    bitmaps: [{ name: bitmap, recording: true, persistent: false, busy: false, inconsistent: false, granularity: 65536 }],
  };
  const t = performance.now();
  const { extents, removed } = await readDirtyExtents({ qmp: client, stateDir, engine: { vmId: 'bench', tempBitmapActions } }, info, bitmap, { granularity: l2TableSpan(65536), removeLater: true });
  const ms = performance.now() - t;
  await removed;
  const tables = l2TablesOf(extents.filter((e) => e.dirty), 65536);
  if (tables.length === 0) throw new Error(`the map of ${disk.node} shows no change`);
  return { tables, ms };
}

export interface PushOptions {
  /** L2 tables the target gets ahead (format.ts l2TablesOf of the changes: the map, known for free). */
  tables: number[];
  /** The target's l2-cache-entry-size (default: QEMU's; 7.2 here reads and writes 4 KiB slices, strace). */
  l2Entry?: number;
  /** The target file's aio mode (default: QEMU's, threads). */
  aio?: 'threads' | 'io_uring';
  /** The temporary bitmap's granularity (default: the node's, the checkpoint's). */
  tmpGranularity?: number;
}

/**
 * Pushes `bitmap`'s changes on `disk` into a new layer in `dir` (removed after); returns each step's ms
 * and the bytes the layer held on disk (allocated blocks).
 */
export async function pushSteps(client: QmpClient, disk: FloorDisk, bitmap: string, dir: string, tag: string, o: PushOptions): Promise<{ ms: Record<PushStep, number>; onDiskBytes: number }> {
  const target = path.join(dir, `${tag}.qcow2`);
  const [node, job, tmp] = [`${tag}-t`, `${tag}-j`, `${tag}-tmp`];
  await writeEmptyQcow2(target, emptyQcow2Layout(disk.size, { l2Tables: o.tables })!);
  try {
    await client.execute('blockdev-add', { driver: 'qcow2', 'node-name': node, file: { driver: 'file', filename: target, ...(o.aio ? { aio: o.aio } : {}) }, cache: { 'no-flush': true }, ...(o.l2Entry ? { 'l2-cache-entry-size': o.l2Entry } : {}) });
    const concluded = client.waitForEvent((e) => e.event === 'JOB_STATUS_CHANGE' && e.data.id === job && e.data.status === 'concluded', 60_000, `job ${job}`);
    settle();
    const t = [performance.now()];
    await client.execute('transaction', { actions: [
      { type: 'block-dirty-bitmap-add', data: { node: disk.node, name: tmp, persistent: false, disabled: true, ...(o.tmpGranularity ? { granularity: o.tmpGranularity } : {}) } },
      { type: 'block-dirty-bitmap-merge', data: { node: disk.node, target: tmp, bitmaps: [bitmap] } },
      { type: 'blockdev-backup', data: { 'job-id': job, device: disk.node, target: node, sync: 'bitmap', bitmap: tmp, 'bitmap-mode': 'never', 'auto-dismiss': false, 'x-perf': { 'use-copy-range': true } } },
    ] });
    t.push(performance.now());
    await concluded;
    t.push(performance.now());
    await client.execute('job-dismiss', { id: job });
    await client.execute('blockdev-del', { 'node-name': node });
    await client.execute('block-dirty-bitmap-remove', { node: disk.node, name: tmp });
    t.push(performance.now());
    await syncFile(target);
    t.push(performance.now());
    await checksumFile(target);
    t.push(performance.now());
    return { ms: timesOf(PUSH_STEPS, t) as Record<PushStep, number>, onDiskBytes: fs.statSync(target).blocks * 512 };
  } finally {
    fs.rmSync(target, { force: true });
  }
}

const PIECE = 4 * 1024 * 1024;
/** What the layer step writes: its cost does not depend on the bytes. */
const DATA = Buffer.alloc(PIECE, 0x5a);

/**
 * Pulls `bitmap`'s changes on `disk` (a fleece overlay and a layer in `dir`, removed after); returns
 * each step's ms and the bytes read. `bitmap` is left disabled, as a checkpoint leaves its predecessor.
 */
export async function pullSteps(client: QmpClient, exportsOf: ExportManager, disk: FloorDisk, bitmap: string, dir: string, tag: string): Promise<{ ms: Record<PullStep, number>; bytes: number }> {
  const fleece = path.join(dir, `${tag}.fleece.qcow2`);
  const layer = path.join(dir, `${tag}.qcow2`);
  const [node, job, tmp, next] = [`${tag}-f`, `${tag}-j`, `${tag}-tmp`, `${tag}-next`];
  await writeEmptyQcow2(fleece, emptyQcow2Layout(disk.size)!);
  fs.writeFileSync(layer, '', { mode: 0o600 });
  try {
    settle();
    const t = [performance.now()];
    await client.execute('blockdev-add', fleeceNodeArgs(node, fleece, disk.node));
    await client.execute('transaction', { actions: [
      { type: 'block-dirty-bitmap-add', data: { node: disk.node, name: tmp, persistent: false, disabled: true } },
      { type: 'block-dirty-bitmap-merge', data: { node: disk.node, target: tmp, bitmaps: [bitmap] } },
      { type: 'block-dirty-bitmap-add', data: { node: disk.node, name: next, persistent: false } },
      { type: 'block-dirty-bitmap-disable', data: { node: disk.node, name: bitmap } },
      { type: 'blockdev-backup', data: { 'job-id': job, device: disk.node, target: node, sync: 'none' } },
    ] });
    t.push(performance.now());
    const exp = await exportsOf.add({ nodeName: node, bitmaps: [tmp], prefix: 'floor' });
    t.push(performance.now());
    // As the pull copies (layer-copy.ts, streamed-plan.ts): every window of the dirty map asked at once on
    // a connection of its own, each window's changes read as soon as its answer is in, 16 reads in flight.
    const ctx = dirtyBitmapContext(tmp);
    const [nbd, reader] = await Promise.all([NbdClient.connect(exp.address, { metaContexts: [ctx], maxInFlight: 64 }), NbdClient.connect(exp.address)]);
    const windows: Promise<Extent[]>[] = [];
    for (let at = 0; at < disk.size; at += STATUS_WINDOW) windows.push(nbd.extents(ctx, at, Math.min(STATUS_WINDOW, disk.size - at)));
    for (const w of windows) w.catch(() => undefined); // awaited in order below
    const pieces = (async function* () {
      for (const w of windows) {
        for (const e of await w) {
          if ((e.flags & NBD_STATE_DIRTY) === 0) continue;
          for (let at = e.offset; at < e.offset + e.length; at += PIECE) yield { offset: at, length: Math.min(PIECE, e.offset + e.length - at) };
        }
      }
    })();
    const written: { offset: number; length: number }[] = [];
    // Into reused buffers, as the copy reads (fresh memory faults in page by page here).
    await Promise.all(Array.from({ length: 16 }, async () => {
      const into = Buffer.allocUnsafe(PIECE);
      for (let p = await pieces.next(); !p.done; p = await pieces.next()) {
        await reader.read(p.value.offset, p.value.length, into);
        written.push(p.value);
      }
    }));
    t.push(performance.now());
    await reader.close();
    await nbd.close();
    await exp.remove();
    await cancelJob(client, job);
    await client.execute('blockdev-del', { 'node-name': node });
    await client.execute('block-dirty-bitmap-remove', { node: disk.node, name: tmp });
    await client.execute('block-dirty-bitmap-remove', { node: disk.node, name: next });
    t.push(performance.now());
    const w = await Qcow2LayerFile.open(layer, { sizeBytes: disk.size, clusterSize: 65536, backing: 'base.qcow2' });
    for (const p of written.sort((a, b) => a.offset - b.offset)) await w.write(p.offset, DATA.subarray(0, p.length));
    await w.close();
    t.push(performance.now());
    await syncFile(layer);
    t.push(performance.now());
    await checksumFile(layer);
    t.push(performance.now());
    return { ms: timesOf(PULL_STEPS, t) as Record<PullStep, number>, bytes: written.reduce((n, p) => n + p.length, 0) };
  } finally {
    fs.rmSync(fleece, { force: true });
    fs.rmSync(layer, { force: true });
  }
}

/**
 * Cancels job `id` (auto-dismissed) and waits until QEMU has removed it. A job that already ended and went
 * is fine; a cancel QEMU refuses for a job it still has is an error.
 */
export async function cancelJob(client: QmpClient, id: string): Promise<void> {
  const gone = client.waitForEvent((e) => e.event === 'JOB_STATUS_CHANGE' && e.data.id === id && e.data.status === 'null', 10_000, `the end of ${id}`);
  gone.catch(() => undefined); // awaited below, unless the job was already gone
  try {
    await client.execute('job-cancel', { id });
  } catch (e) {
    const jobs = await client.execute<{ id: string }[]>('query-jobs');
    if (jobs.some((j) => j.id === id)) throw e;
    return;
  }
  await gone;
}

/** The sum of `steps`' times. */
export function sumOf<S extends string>(ms: Record<S, number>, steps: readonly S[]): number {
  return steps.reduce((s, k) => s + ms[k], 0);
}

async function syncFile(file: string): Promise<void> {
  const fh = await fs.promises.open(file, 'r');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

function timesOf(steps: readonly string[], t: number[]): Record<string, number> {
  return Object.fromEntries(steps.map((s, k) => [s, t[k + 1]! - t[k]!]));
}
