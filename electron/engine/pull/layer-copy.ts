// Copies one disk of a point-in-time NBD export into a new layer: only the dirty extents
// (incremental/differential: the export's dirty bitmap context) or the allocated ones (full). The
// layer, an existing qcow2 file, is written through a LayerWriter (writer.ts: Tidemark writes the
// file itself, qcow2-layer.ts; a writable NBD export of it also works, as bench/pull-writer.ts
// compares). Any driver that exports the point in time over NBD copies through this (QEMU's own NBD
// server, libvirt's pull mode).

import { NbdClient } from '../../nbd/client';
import { BASE_ALLOCATION } from '../../nbd/protocol';
import type { NbdAddress } from '../../nbd/uri';
import { copyExtents, type CopyResult } from './copy';
import { alignOps, copyOps, type CopyOp } from './plan';
import { streamIncrementalPlan } from './streamed-plan';
import type { LayerWriter, OpenLayerWriter } from './writer';
import { settleAll } from '../../os/settle-all';

export interface LayerCopyOptions {
  /** The export of the disk at the point in time. */
  source: NbdAddress;
  /** qemu:dirty-bitmap:… of the changes since the base (absent for a full layer). */
  dirtyContext?: string;
  kind: 'full' | 'incremental' | 'differential';
  /** The layer file (qcow2, already created with its backing file). */
  layer: string;
  pieceBytes?: number;
  parallel?: number;
  signal: AbortSignal;
  /** Bytes to copy, once known, then bytes done after every piece. */
  onProgress(done: number, total: number): void;
  /** Who writes the layer (writer.ts). */
  writer: OpenLayerWriter;
}


/**
 * Dirty extents closer than this share one allocation request: a request costs a round trip, while
 * the status of a gap is cheap for QEMU to give (measured: vda's 256 dirty extents 4 MiB apart asked
 * one by one took 204 ms at load 9, the whole 1 GiB in one request 15 ms).
 */
const JOIN_GAP = 64 * 1024 * 1024;

/**
 * A window of the dirty map whose changes add up to this little is read without asking QEMU their
 * allocation (streamed-plan.ts): a round trip saved per window, at the cost of reading, at worst,
 * this many bytes of allocated zeroes (unallocated ones come back as holes, without their bytes).
 */
const READ_WITHOUT_STATUS = 1024 * 1024;

/**
 * Block status requests of the dirty map in flight at once: a 1 TiB walk is 257 requests whose
 * replies are a few extents each (bench/pull-status.ts: 16 → 64 in flight, 12 → 7 ms warm).
 */
const STATUS_IN_FLIGHT = 64;

export class LayerCopy {
  private writer: LayerWriter | undefined;
  private readonly clients: NbdClient[] = [];

  constructor(private readonly o: LayerCopyOptions) {}

  /** Copies and closes the writer (the record step syncs the layer file). */
  async run(): Promise<CopyResult> {
    const o = this.o;
    this.writer = await o.writer(o.layer);
    const ctx = o.dirtyContext;
    // The dirty map on a connection of its own: a block status request answers for every context the
    // connection selected, so with base:allocation beside it QEMU would work out allocation over the
    // whole disk too (what dirtyRanges is there to avoid). The connections open side by side; all
    // settle before a failure is thrown, so abort() finds every one that opened.
    const target = this.writer.target;
    const [dirtyMap, src, dst] = await settleAll([
      ctx ? this.connect(o.source, { metaContexts: [ctx], maxInFlight: STATUS_IN_FLIGHT }) : Promise.resolve(undefined),
      this.connect(o.source, { metaContexts: [BASE_ALLOCATION] }),
      'address' in target ? this.connect(target.address) : Promise.resolve(target.direct),
    ] as const);
    let plan: CopyOp[] | AsyncIterable<CopyOp[]>;
    let total: () => number;
    if (dirtyMap && o.kind !== 'full') {
      // Incremental: the plan streams in while the copy runs (streamed-plan.ts); the total is the
      // dirty bytes, known once the whole dirty map has arrived (the bytes known so far until then).
      const streamed = streamIncrementalPlan(dirtyMap, ctx!, src, o.kind, JOIN_GAP, READ_WITHOUT_STATUS);
      let known: number | undefined;
      void streamed.total.then((t) => (known = t), () => undefined);
      [plan, total] = [streamed.batches, () => known ?? streamed.knownBytes()];
    } else {
      if (o.kind !== 'full') throw new Error(`a ${o.kind} pull needs the dirty bitmap's context`);
      const ops = copyOps('full', await src.extentsIn(BASE_ALLOCATION));
      const bytes = ops.reduce((n, op) => n + op.length, 0);
      [plan, total] = [ops, () => bytes];
    }
    if ('direct' in target) plan = inClusters(plan, target.clusterSize, src.size);
    o.onProgress(0, total());
    const r = await copyExtents(src, dst, plan, { signal: o.signal, pieceBytes: o.pieceBytes, parallel: o.parallel, onProgress: (done) => o.onProgress(done, Math.max(done, total())) });
    if (dst instanceof NbdClient) await dst.flush();
    for (const c of this.clients.splice(0)) await c.close();
    await this.writer.close();
    this.writer = undefined;
    // The writer ran without flushes: the record step (backup/record.ts) syncs the layer once, beside its hash.
    return r;
  }

  private async connect(...args: Parameters<typeof NbdClient.connect>): Promise<NbdClient> {
    const c = await NbdClient.connect(...args);
    this.clients.push(c);
    return c;
  }

  /** After a failure: drops the connections and stops the writer. */
  async abort(why: Error): Promise<void> {
    for (const c of this.clients.splice(0)) c.destroy(why);
    await this.writer?.abort();
    this.writer = undefined;
  }
}

/** The plan in whole clusters, batch by batch, for a writer that takes only those (alignOps). */
function inClusters(plan: CopyOp[] | AsyncIterable<CopyOp[]>, clusterSize: number, diskSize: number): CopyOp[] | AsyncIterable<CopyOp[]> {
  if (Array.isArray(plan)) return alignOps(plan, clusterSize, diskSize);
  return (async function* () {
    for await (const batch of plan) yield alignOps(batch, clusterSize, diskSize);
  })();
}
