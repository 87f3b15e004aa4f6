// The qcow2 format as Tidemark writes it (backup/qemuimg.ts: empty images; pull/qcow2-layer.ts: a
// pull's layer). An empty qcow2 v3 image written by Node, byte for byte what `qemu-img create -f qcow2 -o compat=1.1
// [-b BACKING -F qcow2]` (QEMU 7.2) writes, so a backup's target costs a few syscalls instead of a
// process (~60 ms here). Hand-written: no maintained Node library writes qcow2. It lays out only the
// geometries the byte-for-byte test compares with qemu-img; for any other, `emptyQcow2Layout` answers
// undefined and the caller runs qemu-img. QEMU's own `blockdev-create` is not an option: QEMU 7.2 aborts
// when a client queries the block nodes while it creates an image (bench/README.md, #9).
// Format: QEMU's docs/interop/qcow2.txt.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { PRIVATE_FILE_MODE } from '../../os/atomic-file';

const QCOW2_MAGIC = 0x514649fb;
const HEADER_LENGTH = 112; // v3 with the compression type byte
const EXT_BACKING_FORMAT = 0xe2792aca;
const EXT_FEATURE_TABLE = 0x6803f857;
/** QEMU's limits: a backing name of at most 1023 bytes, an L1 table of at most 32 MiB. */
const MAX_BACKING_NAME = 1023;
const MAX_L1_BYTES = 32 * 1024 * 1024;

/** The feature names qemu-img writes into every v3 header it creates (type, bit, name). */
const FEATURES: [number, number, string][] = [
  [0, 0, 'dirty bit'],
  [0, 1, 'corrupt bit'],
  [0, 2, 'external data file'],
  [0, 3, 'compression type'],
  [0, 4, 'extended L2 entries'],
  [1, 0, 'lazy refcounts'],
  [2, 0, 'bitmaps'],
  [2, 1, 'raw external data'],
];

/** QEMU's L1 and L2 entry flag: the cluster's refcount is exactly one, so it is written in place. */
export const QCOW_OFLAG_COPIED = 1n << 63n;

export interface EmptyQcow2 {
  /** Non-zero bytes to write, each at its offset; everything else in the file is zero. */
  pieces: { offset: number; bytes: Buffer }[];
  /** The file's length (it ends with the zeroed L1 table). */
  length: number;
}

/**
 * The layout qemu-img gives an empty image: header (cluster 0), refcount table (1), one refcount block
 * (2), the L1 table from cluster 3. Undefined for what this does not lay out (then run qemu-img):
 * clusters under 64 KiB (qemu-img leaves the feature table out there), sizes not a multiple of 512,
 * and images whose metadata would need a second refcount block.
 *
 * `l2Tables` (L1 indexes, from `l2TablesOf`): empty L2 tables allocated after the L1 table for the parts
 * of the disk a backup job is about to write, as qemu-img's preallocation=metadata does for all of
 * them. Zeroed, so they cost no write (a hole). QEMU would otherwise allocate each one in the middle
 * of the job, with several synchronous metadata writes each: 256 changes spread over 1 TiB made
 * QEMU's job ~5 times slower than the same changes on 1 GiB (bench/README.md, "Phase 7").
 */
export function emptyQcow2Layout(sizeBytes: number, options: { clusterSize?: number; backing?: string; l2Tables?: readonly number[] } = {}): EmptyQcow2 | undefined {
  const cs = options.clusterSize ?? 65536;
  const clusterBits = Math.log2(cs);
  if (!Number.isInteger(clusterBits) || clusterBits < 16 || clusterBits > 21) return undefined;
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % 512 !== 0) return undefined;
  const backing = options.backing === undefined ? undefined : Buffer.from(options.backing, 'utf8');
  if (backing && (backing.length === 0 || backing.length > MAX_BACKING_NAME || backing.includes(0))) return undefined;

  const l1Size = l1Entries(sizeBytes, cs);
  const l1Bytes = l1Size * 8;
  const l1Clusters = Math.max(1, Math.ceil(l1Bytes / cs));
  const l2Tables = options.l2Tables ?? [];
  if (l2Tables.some((t, i) => !Number.isInteger(t) || t < 0 || t >= l1Size || (i > 0 && t <= l2Tables[i - 1]!))) {
    throw new RangeError(`L2 tables must be distinct L1 indexes below ${l1Size}, in increasing order`);
  }
  const firstL2 = 3 + l1Clusters;
  const usedClusters = firstL2 + l2Tables.length;
  if (l1Bytes > MAX_L1_BYTES || usedClusters > cs / 2) return undefined; // 16-bit refcounts: cs/2 per block

  const header = qcow2Header({ sizeBytes, clusterBits, backing, l1Size, l1Offset: 3 * cs, refcountTableOffset: cs, refcountTableClusters: 1 });
  const refcountTable = Buffer.alloc(8);
  refcountTable.writeBigUInt64BE(BigInt(2 * cs));
  const refcountBlock = refcountsOfOne(usedClusters);

  const pieces = [
    { offset: 0, bytes: header },
    { offset: cs, bytes: refcountTable },
    { offset: 2 * cs, bytes: refcountBlock },
  ];
  if (l2Tables.length === 0) return { pieces, length: 3 * cs + l1Bytes };
  const l1 = Buffer.alloc(l1Bytes);
  l2Tables.forEach((index, i) => l1.writeBigUInt64BE(BigInt((firstL2 + i) * cs) | QCOW_OFLAG_COPIED, index * 8));
  return { pieces: [...pieces, { offset: 3 * cs, bytes: l1 }], length: usedClusters * cs };
}

/** The guest bytes one L2 table maps: clusterSize / 8 entries of a cluster each (512 MiB for 64 KiB clusters). */
export function l2TableSpan(clusterSize: number): number {
  return clusterSize * (clusterSize / 8);
}

/**
 * The L1 indexes of the L2 tables that map `ranges` (bytes of the virtual disk), in increasing order.
 * Each L2 table maps clusterSize / 8 clusters.
 */
export function l2TablesOf(ranges: Iterable<{ offset: number; length: number }>, clusterSize: number): number[] {
  const span = l2TableSpan(clusterSize);
  const tables = new Set<number>();
  for (const r of ranges) {
    if (r.length <= 0) continue;
    const last = Math.floor((r.offset + r.length - 1) / span);
    for (let t = Math.floor(r.offset / span); t <= last; t++) tables.add(t);
  }
  return [...tables].sort((a, b) => a - b);
}

/** Entries in the L1 table of a `sizeBytes` image: one per L2 table, which maps clusterSize / 8 clusters. */
export function l1Entries(sizeBytes: number, clusterSize: number): number {
  return Math.ceil(sizeBytes / l2TableSpan(clusterSize));
}

/** The used start of refcount blocks (16-bit entries) where clusters 0 … clusters - 1 each have refcount 1. */
export function refcountsOfOne(clusters: number): Buffer {
  const b = Buffer.alloc(clusters * 2);
  for (let i = 0; i < clusters; i++) b.writeUInt16BE(1, i * 2);
  return b;
}

export interface Qcow2HeaderFields {
  sizeBytes: number;
  clusterBits: number;
  /** The backing file's name (a qcow2 image), as it is to be written. */
  backing?: Buffer;
  l1Size: number;
  l1Offset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
}

/**
 * Cluster 0's bytes as QEMU 7.2 writes them for a v3 image with 16-bit refcounts and no features:
 * the header, the backing format (qcow2), the feature names, the end of the extensions, the backing name.
 */
export function qcow2Header(f: Qcow2HeaderFields): Buffer {
  const extensions = [
    ...(f.backing ? [extension(EXT_BACKING_FORMAT, Buffer.from('qcow2'))] : []),
    extension(EXT_FEATURE_TABLE, featureTable()),
    Buffer.alloc(8), // end of the extensions
  ];
  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt32BE(QCOW2_MAGIC, 0);
  header.writeUInt32BE(3, 4);
  if (f.backing) {
    header.writeBigUInt64BE(BigInt(HEADER_LENGTH + extensions.reduce((n, e) => n + e.length, 0)), 8);
    header.writeUInt32BE(f.backing.length, 16);
  }
  header.writeUInt32BE(f.clusterBits, 20);
  header.writeBigUInt64BE(BigInt(f.sizeBytes), 24);
  header.writeUInt32BE(f.l1Size, 36);
  header.writeBigUInt64BE(BigInt(f.l1Offset), 40);
  header.writeBigUInt64BE(BigInt(f.refcountTableOffset), 48);
  header.writeUInt32BE(f.refcountTableClusters, 56);
  header.writeUInt32BE(4, 96); // refcount order: 16-bit refcounts
  header.writeUInt32BE(HEADER_LENGTH, 100);
  return Buffer.concat([header, ...extensions, ...(f.backing ? [f.backing] : [])]);
}

/** The virtual size in a qcow2 header, or undefined if `head` (its first 32 bytes at least) is not one. */
export function qcow2VirtualSize(head: Buffer): number | undefined {
  if (head.length < 32 || head.readUInt32BE(0) !== QCOW2_MAGIC) return undefined;
  return Number(head.readBigUInt64BE(24));
}

function extension(magic: number, data: Buffer): Buffer {
  const b = Buffer.alloc(8 + Math.ceil(data.length / 8) * 8);
  b.writeUInt32BE(magic, 0);
  b.writeUInt32BE(data.length, 4);
  data.copy(b, 8);
  return b;
}

function featureTable(): Buffer {
  const b = Buffer.alloc(FEATURES.length * 48);
  FEATURES.forEach(([type, bit, name], i) => {
    b[i * 48] = type;
    b[i * 48 + 1] = bit;
    b.write(name, i * 48 + 2, 46, 'latin1');
  });
  return b;
}

/**
 * Writes `layout` to `file` (created 0600, or truncated and made 0600), as qemu-img would. With a
 * backing name, first checks as qemu-img does that the backing (relative to the file's folder) opens
 * and is a qcow2 image. Not synced: the backup's record step syncs the layer before any manifest.
 */
export async function writeEmptyQcow2(file: string, layout: EmptyQcow2, backing?: string): Promise<void> {
  if (backing !== undefined) await checkBacking(path.resolve(path.dirname(file), backing), backing);
  const fh = await fs.promises.open(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, PRIVATE_FILE_MODE);
  try {
    await fh.chmod(PRIVATE_FILE_MODE);
    for (const p of layout.pieces) await writeAll(fh, p.bytes, p.offset);
    await fh.truncate(layout.length);
  } finally {
    await fh.close();
  }
}

/** One pwrite until every byte is written (a write may take fewer bytes than asked). */
export async function writeAll(fh: fs.promises.FileHandle, bytes: Buffer, offset: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, offset + done);
    done += bytesWritten;
  }
}

async function checkBacking(resolved: string, name: string): Promise<void> {
  let head: Buffer;
  try {
    head = await readHead(resolved, 4);
  } catch (e) {
    throw new Error(`Could not open backing image '${name}': ${(e as Error).message}`);
  }
  if (head.readUInt32BE(0) !== QCOW2_MAGIC) throw new Error(`backing image '${name}' is not a qcow2 image`);
}

/**
 * The virtual size and backing name a qcow2 file's header holds, read by Node (what `qemu-img info`
 * reports as virtual-size and backing-filename, without a process per layer). Throws, naming the
 * file, when it is not a qcow2 image or its backing name lies outside its first cluster.
 */
export async function qcow2HeadFacts(file: string): Promise<{ virtualSize: number; backingFile?: string }> {
  const head = await readHead(file, 64 * 1024);
  const virtualSize = qcow2VirtualSize(head);
  const version = head.readUInt32BE(4);
  if (virtualSize === undefined || (version !== 2 && version !== 3)) throw new Error(`${file} is not a qcow2 image (no version 2 or 3 qcow2 header)`);
  const at = Number(head.readBigUInt64BE(8));
  const length = head.readUInt32BE(16);
  if (at === 0 || length === 0) return { virtualSize };
  if (length > MAX_BACKING_NAME || at + length > head.length) throw new Error(`${file}: its header's backing name (${length} bytes at ${at}) is not where qemu-img writes one`);
  return { virtualSize, backingFile: head.subarray(at, at + length).toString('utf8') };
}

/** The first `n` bytes of `file` (zeroes past its end). */
export async function readHead(file: string, n: number): Promise<Buffer> {
  const head = Buffer.alloc(n);
  const fh = await fs.promises.open(file, 'r');
  try {
    await fh.read(head, 0, n, 0);
  } finally {
    await fh.close();
  }
  return head;
}
