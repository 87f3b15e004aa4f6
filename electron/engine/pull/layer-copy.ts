// Copies one disk of a point-in-time NBD export into a new layer: only the dirty extents
// (incremental/differential: the export's dirty bitmap context) or the allocated ones (full). The
// layer, an existing qcow2 file, is written through a qemu-nbd this copy starts and stops. Any
// driver that exports the point in time over NBD copies through this (QEMU's own NBD server now,
// libvirt's pull mode later).

import * as path from 'node:path';
import { NbdClient } from '../../nbd/client';
import { syncFileData } from '../../os/atomic-file';
import { BASE_ALLOCATION } from '../../nbd/protocol';
import { startQemuNbd, type QemuNbdServer } from '../../nbd/qemu-nbd';
import type { NbdAddress } from '../../nbd/uri';
import { copyExtents, type CopyResult } from './copy';
import { copyOps } from './plan';

export interface LayerCopyOptions {
  /** The export of the disk at the point in time. */
  source: NbdAddress;
  /** qemu:dirty-bitmap:… of the changes since the base (absent for a full layer). */
  dirtyContext?: string;
  kind: 'full' | 'incremental' | 'differential';
  /** The layer file (qcow2, already created with its backing file). */
  layer: string;
  /** Where qemu-nbd's socket and pid file go (short path). */
  runDir: string;
  pieceBytes?: number;
  parallel?: number;
  signal: AbortSignal;
  /** Bytes to copy, once known, then bytes done after every piece. */
  onProgress(done: number, total: number): void;
  /** The writer's pid while it runs (journal it: a dead process leaves it behind), then undefined. */
  onWriter(pid: number | undefined): void;
}

export class LayerCopy {
  private writer: QemuNbdServer | undefined;
  private readonly clients: NbdClient[] = [];

  constructor(private readonly o: LayerCopyOptions) {}

  /** Copies, flushes the layer and stops the writer. */
  async run(): Promise<CopyResult> {
    const o = this.o;
    // cache=unsafe: qcow2 orders its metadata updates with a flush each when the image is writeback
    // (256 scattered writes cost 8–770 fdatasyncs, bench/README.md); the layer is made durable once,
    // by syncFileData() below, before anything records it.
    this.writer = await startQemuNbd({ image: o.layer, format: 'qcow2', runDir: o.runDir, exportName: 'layer', cache: 'unsafe' });
    o.onWriter(this.writer.pid);
    const ctx = o.dirtyContext;
    const src = await NbdClient.connect(o.source, { metaContexts: ctx ? [BASE_ALLOCATION, ctx] : [BASE_ALLOCATION] });
    this.clients.push(src);
    const dst = await NbdClient.connect(this.writer.address);
    this.clients.push(dst);
    const ops = copyOps(o.kind, await src.extents(BASE_ALLOCATION), ctx ? await src.extents(ctx) : undefined);
    const total = ops.reduce((n, op) => n + op.length, 0);
    o.onProgress(0, total);
    const r = await copyExtents(src, dst, ops, { signal: o.signal, pieceBytes: o.pieceBytes, parallel: o.parallel, onProgress: (done) => o.onProgress(done, total) });
    await dst.flush();
    for (const c of this.clients.splice(0)) await c.close();
    await this.writer.stop(); // qemu-nbd writes its cached qcow2 metadata to the file as it exits
    this.writer = undefined;
    o.onWriter(undefined);
    await syncFileData(o.layer);
    return r;
  }

  /** After a failure: drops the connections and stops the writer. */
  async abort(why: Error): Promise<void> {
    for (const c of this.clients.splice(0)) c.destroy(why);
    await this.writer?.stop().catch(() => undefined);
    this.writer = undefined;
  }
}

/** The run directory of qemu-nbd writers in a state directory. */
export function writerRunDir(stateDir: string): string {
  return path.join(stateDir, 'run');
}
