// A pull's new layer written by Tidemark itself, straight into the qcow2 file: every piece read from
// the point-in-time export goes to the file with one pwrite, with no second NBD hop into a writer and
// no qcow2 metadata update per write (in QEMU each far-apart write allocated its own L2 table under
// the image's lock: bench/README.md). Data clusters are appended in the order they arrive; the
// metadata (L2 tables, L1 table, refcounts) and the header are written once, at close, after the data.
// Until close the file has no valid header: a failed copy leaves only a partial file the session
// deletes. Hand-written: no maintained Node library writes qcow2. Format: QEMU's docs/interop/qcow2.txt.

import * as fs from 'node:fs';
import { l1Entries, QCOW_OFLAG_COPIED, qcow2Header, qcow2VirtualSize, readHead, refcountsOfOne, writeAll } from '../qcow2/format';
import type { CopyTarget, OpenLayerWriter } from './writer';

const ALL_ZEROES = 1n; // v3: reads as zeroes, whatever the backing holds
const ZEROES = -1; // in an L2Span: the cluster reads as zeroes

export interface Qcow2LayerGeometry {
  sizeBytes: number;
  clusterSize: number;
  /** The base's file name, relative to the layer's folder (absent for a full layer). */
  backing?: string;
}

export class Qcow2LayerFile implements CopyTarget {
  readonly size: number;
  private readonly cs: number;
  /**
   * Per touched L1 entry, its L2 entries from the first to the last one set, as host cluster numbers
   * (ZEROES: reads as zeroes; 0: not set). Only that span is held, not a 64 KiB table: fresh memory
   * is costly here (256 far-apart changes on a 1 TiB disk spent ~70 ms creating 256 zeroed tables).
   */
  private readonly l2 = new Map<number, L2Span>();
  /** Next free host cluster: cluster 0 is the header, data follows. */
  private nextCluster = 1;
  private closed = false;

  private constructor(
    private readonly fh: fs.promises.FileHandle,
    private readonly file: string,
    private readonly g: Qcow2LayerGeometry,
  ) {
    this.size = g.sizeBytes;
    this.cs = g.clusterSize;
  }

  /** Opens the layer file (it exists, 0600: made in setup) and empties it. */
  static async open(file: string, g: Qcow2LayerGeometry): Promise<Qcow2LayerFile> {
    const bits = Math.log2(g.clusterSize);
    if (!Number.isInteger(bits) || bits < 12 || bits > 21) throw new Error(`cannot write a qcow2 layer with ${g.clusterSize}-byte clusters`);
    if (!Number.isSafeInteger(g.sizeBytes) || g.sizeBytes <= 0) throw new Error(`cannot write a qcow2 layer of ${g.sizeBytes} bytes`);
    // Emptied through a handle of its own, closed before the writer's opens. ext4 (auto_da_alloc) and
    // XFS take a file truncated to nothing for one being replaced, and write it all back at the next
    // close: done by the writer's handle, that put the layer's writeback inside its close, 37 ms for a
    // 1 TiB disk's 256 far-apart changes against 4 ms on 1 GiB (bench/README.md, "Phase 20"); done by
    // a handle closed while the file is empty, it costs nothing, and the record step's sync does it
    // beside the checksum.
    await fs.promises.truncate(file, 0);
    const fh = await fs.promises.open(file, fs.constants.O_WRONLY);
    return new Qcow2LayerFile(fh, file, g);
  }

  /** Writes whole clusters (the last may end at the disk's end): the copy's plan is cluster-aligned (alignOps). */
  async write(offset: number, data: Buffer): Promise<void> {
    this.checkRange(offset, data.length);
    const first = offset / this.cs;
    const count = Math.ceil(data.length / this.cs);
    // Host offsets are taken now, before any await: writes in flight never share a cluster.
    const hosts = Array.from({ length: count }, (_, i) => this.hostCluster(first + i));
    for (let i = 0; i < count; ) {
      let j = i + 1;
      while (j < count && hosts[j] === hosts[j - 1]! + 1) j++;
      await writeAll(this.fh, data.subarray(i * this.cs, Math.min(data.length, j * this.cs)), hosts[i]! * this.cs);
      i = j;
    }
  }

  /** Makes whole clusters read as zeroes (no data written; a cluster already holding data gets zero bytes). */
  async writeZeroes(offset: number, length: number): Promise<void> {
    this.checkRange(offset, length);
    for (let c = offset / this.cs; c < Math.ceil((offset + length) / this.cs); c++) {
      const host = this.entry(c);
      if (host === 0) this.setEntry(c, ZEROES);
      else if (host !== ZEROES) await writeAll(this.fh, Buffer.alloc(this.cs), host * this.cs);
    }
  }

  /**
   * Writes the metadata after the data and the header last, then closes the file (not synced: the
   * record step syncs the layer). Returns the virtual size read back from the written header.
   */
  async close(): Promise<number> {
    this.closed = true;
    try {
      const l1Size = l1Entries(this.size, this.cs);
      const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / this.cs));
      const l1 = Buffer.alloc(l1Size * 8);
      const tables = [...this.l2.keys()].sort((a, b) => a - b);
      let at = this.nextCluster;
      for (const i of tables) l1.writeBigUInt64BE(BigInt((at++) * this.cs) | QCOW_OFLAG_COPIED, i * 8);
      const l1Offset = at * this.cs;
      at += l1Clusters;
      // Refcount blocks (16-bit, cs/2 per block) and their table must count themselves too.
      const perBlock = this.cs / 2;
      let blocks = 0;
      let tableClusters = 0;
      for (;;) {
        const total = at + blocks + tableClusters;
        const b = Math.ceil(total / perBlock);
        const t = Math.ceil((b * 8) / this.cs);
        if (b === blocks && t === tableClusters) break;
        [blocks, tableClusters] = [b, t];
      }
      const blocksAt = at;
      const tableAt = at + blocks;
      const total = tableAt + tableClusters;
      const table = Buffer.alloc(blocks * 8);
      for (let b = 0; b < blocks; b++) table.writeBigUInt64BE(BigInt((blocksAt + b) * this.cs), b * 8);

      // The metadata goes in small synchronous writes (one thread-pool round trip each would cost more
      // than the write; a 1 TiB disk's 256 far-apart changes make 256 tables). Only the used part of
      // each table, block and the L1 is written: the rest of a metadata cluster stays a hole (reads as zeroes).
      let l2At = this.nextCluster;
      for (const i of tables) {
        const t = this.l2.get(i)!;
        const bytes = Buffer.alloc(t.values.length * 8);
        t.values.forEach((host, k) => {
          if (host !== 0) bytes.writeBigUInt64BE(host === ZEROES ? ALL_ZEROES : BigInt(host * this.cs) | QCOW_OFLAG_COPIED, k * 8);
        });
        writeAllSync(this.fh.fd, bytes, (l2At++) * this.cs + t.from * 8);
      }
      writeNonZero(this.fh.fd, l1, l1Offset);
      writeAllSync(this.fh.fd, refcountsOfOne(total), blocksAt * this.cs);
      writeAllSync(this.fh.fd, table, tableAt * this.cs);
      await this.fh.truncate(total * this.cs); // every cluster the refcounts count lies inside the file
      const backing = this.g.backing === undefined ? undefined : Buffer.from(this.g.backing, 'utf8');
      const header = qcow2Header({ sizeBytes: this.size, clusterBits: Math.log2(this.cs), backing, l1Size, l1Offset, refcountTableOffset: tableAt * this.cs, refcountTableClusters: tableClusters });
      if (header.length > this.cs) throw new Error(`the backing name of ${this.file} does not fit in its header`);
      await writeAll(this.fh, header, 0);
    } finally {
      await this.fh.close();
    }
    const size = qcow2VirtualSize(await readHead(this.file, 32));
    if (size === undefined) throw new Error(`${this.file} has no qcow2 header after it was written`);
    return size;
  }

  /** After a failure: closes the file as it is (the session deletes it). */
  async abort(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => undefined);
  }

  private checkRange(offset: number, length: number): void {
    if (this.closed) throw new Error(`the layer ${this.file} is closed`);
    const end = offset + length;
    if (offset % this.cs !== 0 || (end % this.cs !== 0 && end !== this.size) || end > this.size || length <= 0) {
      throw new Error(`cannot write ${length} bytes at ${offset} into ${this.file}: not whole ${this.cs}-byte clusters inside its ${this.size} bytes`);
    }
  }

  /** The host cluster of guest cluster `c`, allocated now if it has none. */
  private hostCluster(c: number): number {
    const e = this.entry(c);
    if (e > 0) return e;
    const host = this.nextCluster++;
    this.setEntry(c, host);
    return host;
  }

  private entry(c: number): number {
    const t = this.l2.get(Math.floor(c / (this.cs / 8)));
    const at = c % (this.cs / 8);
    return t && at >= t.from && at < t.from + t.values.length ? t.values[at - t.from]! : 0;
  }

  private setEntry(c: number, host: number): void {
    const i = Math.floor(c / (this.cs / 8));
    const at = c % (this.cs / 8);
    const t = this.l2.get(i);
    if (!t) {
      this.l2.set(i, { from: at, values: [host] });
      return;
    }
    if (at < t.from) {
      t.values = [...new Array<number>(t.from - at).fill(0), ...t.values];
      t.from = at;
    }
    while (t.values.length <= at - t.from) t.values.push(0);
    t.values[at - t.from] = host;
  }
}

/** L2 entries `from` … `from + values.length - 1` of one table (host cluster numbers, see Qcow2LayerFile.l2). */
interface L2Span {
  from: number;
  values: number[];
}

/** A writer that writes the layer itself (Qcow2LayerFile); `onClosed` hears the virtual size its header holds. */
export function qcow2LayerWriter(g: Qcow2LayerGeometry, onClosed: (virtualSize: number) => Promise<void>): OpenLayerWriter {
  return async (layer) => {
    const file = await Qcow2LayerFile.open(layer, g);
    return {
      target: { direct: file, clusterSize: g.clusterSize },
      close: async () => onClosed(await file.close()),
      abort: () => file.abort(),
    };
  };
}

/** Writes the part of `bytes` from its first to its last non-zero byte (nothing if all are zero). */
function writeNonZero(fd: number, bytes: Buffer, offset: number): void {
  let first = 0;
  while (first < bytes.length && bytes[first] === 0) first++;
  if (first === bytes.length) return;
  let last = bytes.length - 1;
  while (bytes[last] === 0) last--;
  writeAllSync(fd, bytes.subarray(first, last + 1), offset + first);
}

function writeAllSync(fd: number, bytes: Buffer, offset: number): void {
  for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done, offset + done);
}
