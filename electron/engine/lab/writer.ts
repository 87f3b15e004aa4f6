// The write simulator: guest-like writes without a guest, through the disk's BlockBackend with
// HMP `qemu-io`, so they dirty bitmaps exactly as guest writes do. Never through a bare node
// name: that creates a second BlockBackend, which hits permission conflicts while jobs insert
// filters (notes G2). qemu-io reports I/O errors only on QEMU's stdout (G1), so when the caller
// knows where stdout goes (the lab's qemu.log) it is scanned after every write.

import * as fs from 'node:fs';
import type { DiskInfo } from '../../../shared/domain';
import type { QmpClient } from '../../qmp/client';
import type { WritePattern } from '../../../shared/contract';

export type { WritePattern };

export interface Write {
  offset: number;
  len: number;
  /** The byte written (qemu-io -P), or 'zero' for write -z. */
  pattern: number | 'zero';
}

export interface SimulateOptions {
  pattern: WritePattern;
  /** How much to write, in MiB. */
  mib: number;
  /** Throttle to this rate; unthrottled when absent. */
  rateMibPerS?: number;
  /** Same seed, same disk size and options → the same writes. Default 1. */
  seed?: number;
  /** Size of one write. Default 64 KiB (random, hotspot) or 1 MiB (sequential). */
  blockBytes?: number;
  /** sequential: the byte offset the run starts at (rounded down to a block); default a seeded place. */
  start?: number;
  signal?: AbortSignal;
  onProgress?: (doneBytes: number, totalBytes: number, last: Write) => void;
  /** QEMU's stdout (line-buffered), scanned for qemu-io failures. */
  logFile?: string;
}

const MiB = 1024 * 1024;

export class WriteCancelledError extends Error {
  constructor(done: number) {
    super(`write simulation cancelled after ${done} bytes`);
    this.name = 'AbortError';
  }
}

/** How a qemu-io command addresses the disk: its drive id, else its device's QOM path. */
function target(disk: DiskInfo): string {
  const id = disk.drive ? disk.drive : disk.qdevPath ? `-d ${disk.qdevPath}` : undefined;
  if (!id) throw new Error(`disk ${disk.name} has neither a drive id nor a device path, so there is no BlockBackend to write through`);
  if (/[\s"\\]/.test(disk.drive ?? disk.qdevPath ?? '')) throw new Error(`disk ${disk.name}: its id ${JSON.stringify(disk.drive ?? disk.qdevPath)} cannot be quoted for HMP`);
  return id;
}

/** Reads what QEMU appended to its stdout log since the last call. */
class LogTail {
  private offset: number;
  constructor(private readonly file: string) {
    this.offset = fs.existsSync(file) ? fs.statSync(file).size : 0;
  }
  read(): string {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return '';
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size < this.offset) this.offset = 0; // truncated or replaced
      const buf = Buffer.alloc(size - this.offset);
      const n = buf.length > 0 ? fs.readSync(fd, buf, 0, buf.length, this.offset) : 0;
      this.offset += n;
      return buf.subarray(0, n).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  }
}

const FAILURE = /^.*(write failed|Pattern verification failed).*$/m;

async function runQemuIo(client: QmpClient, disk: DiskInfo, w: Write, tail?: LogTail): Promise<void> {
  const cmd = w.pattern === 'zero' ? `write -z ${w.offset} ${w.len}` : `write -P 0x${w.pattern.toString(16).padStart(2, '0')} ${w.offset} ${w.len}`;
  const reply = await client.hmp(`qemu-io ${target(disk)} "${cmd}"`);
  // The reply is empty on success; it carries lookup and permission errors.
  if (reply.trim() !== '') throw new Error(`write to ${disk.name} at offset ${w.offset} failed: ${reply.trim()}`);
  const out = tail?.read() ?? '';
  const m = FAILURE.exec(out);
  if (m) throw new Error(`write to ${disk.name} at offset ${w.offset} failed (QEMU reported: ${m[0].trim()})`);
}

function checkRange(disk: DiskInfo, offset: number, len: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new Error(`write offset ${offset} must be a non-negative integer`);
  if (!Number.isSafeInteger(len) || len <= 0) throw new Error(`write length ${len} must be a positive integer`);
  if (offset + len > disk.virtualSize) throw new Error(`write of ${len} bytes at offset ${offset} goes past the end of ${disk.name} (${disk.virtualSize} bytes)`);
  if (disk.readOnly) throw new Error(`disk ${disk.name} is read-only`);
}

/** One write (pattern byte 0..255, or 'zero' for write -z). For tests and exact scenarios. */
export async function writeAt(
  client: QmpClient, disk: DiskInfo, offset: number, len: number, pattern: number | 'zero', opts: { logFile?: string } = {},
): Promise<Write> {
  checkRange(disk, offset, len);
  if (pattern !== 'zero' && !(Number.isInteger(pattern) && pattern >= 0 && pattern <= 255)) throw new Error(`write pattern ${pattern} must be a byte (0..255) or 'zero'`);
  const w: Write = { offset, len, pattern };
  await runQemuIo(client, disk, w, opts.logFile ? new LogTail(opts.logFile) : undefined);
  return w;
}

/** mulberry32: a small, well-mixed PRNG; deterministic across platforms. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** PURE: the writes a simulation will do (offsets aligned to the block size). */
export function planWrites(virtualSize: number, opts: Pick<SimulateOptions, 'pattern' | 'mib' | 'seed' | 'blockBytes' | 'start'>): Write[] {
  if (!['random', 'sequential', 'hotspot'].includes(opts.pattern)) throw new Error(`write pattern "${opts.pattern}" is not one of random, sequential, hotspot`);
  if (!(Number.isFinite(opts.mib) && opts.mib > 0)) throw new Error(`amount to write must be a positive number of MiB, got ${opts.mib}`);
  const block = opts.blockBytes ?? (opts.pattern === 'sequential' ? MiB : 64 * 1024);
  if (!Number.isSafeInteger(block) || block < 512 || block % 512 !== 0) throw new Error(`block size ${block} must be a positive multiple of 512 bytes`);
  if (block > virtualSize) throw new Error(`block size ${block} is larger than the disk (${virtualSize} bytes)`);
  const total = Math.round(opts.mib * MiB);
  const slots = Math.floor(virtualSize / block);
  const rnd = prng(opts.seed ?? 1);
  const slot = (n: number) => Math.min(n - 1, Math.floor(rnd() * n));
  // hotspot: 90% of the writes land in 1/16 of the disk (at least 4 blocks), at a seeded place.
  const hotSlots = Math.max(1, Math.min(slots, Math.max(4, Math.floor(slots / 16))));
  const hotStart = slot(slots - hotSlots + 1);
  if (opts.start !== undefined && !(Number.isSafeInteger(opts.start) && opts.start >= 0)) throw new Error(`start offset must be a whole number of bytes from 0, got ${opts.start}`);
  let seq = opts.pattern !== 'sequential' ? 0 : opts.start !== undefined ? Math.floor(opts.start / block) % slots : slot(slots);
  const writes: Write[] = [];
  for (let done = 0; done < total; ) {
    let s: number;
    if (opts.pattern === 'sequential') s = seq++ % slots;
    else if (opts.pattern === 'hotspot' && rnd() < 0.9) s = hotStart + slot(hotSlots);
    else s = slot(slots);
    const len = Math.min(block, total - done, virtualSize - s * block);
    writes.push({ offset: s * block, len, pattern: 1 + Math.floor(rnd() * 255) });
    done += len;
  }
  return writes;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Writes `mib` MiB to the disk in the given pattern; returns the writes done, in order. */
export async function simulateWrites(client: QmpClient, disk: DiskInfo, opts: SimulateOptions): Promise<Write[]> {
  if (disk.readOnly) throw new Error(`disk ${disk.name} is read-only`);
  target(disk);
  if (opts.rateMibPerS !== undefined && !(Number.isFinite(opts.rateMibPerS) && opts.rateMibPerS > 0)) {
    throw new Error(`write rate must be a positive number of MiB/s, got ${opts.rateMibPerS}`);
  }
  const plan = planWrites(disk.virtualSize, opts);
  const total = plan.reduce((n, w) => n + w.len, 0);
  const tail = opts.logFile ? new LogTail(opts.logFile) : undefined;
  const started = Date.now();
  const done: Write[] = [];
  let bytes = 0;
  for (const w of plan) {
    if (opts.signal?.aborted) throw new WriteCancelledError(bytes);
    await runQemuIo(client, disk, w, tail);
    done.push(w);
    bytes += w.len;
    opts.onProgress?.(bytes, total, w);
    if (opts.rateMibPerS) {
      const due = started + (bytes / (opts.rateMibPerS * MiB)) * 1000;
      if (due > Date.now()) await sleep(due - Date.now(), opts.signal);
    }
  }
  return done;
}

/** Bytes a bitmap of `granularity` marks dirty after these writes (for checks and tests). */
export function dirtyBytes(writes: Write[], granularity: number, virtualSize: number): number {
  const clusters = new Set<number>();
  for (const w of writes) {
    for (let c = Math.floor(w.offset / granularity); c * granularity < w.offset + w.len; c++) clusters.add(c);
  }
  let bytes = 0;
  for (const c of clusters) bytes += Math.min(granularity, virtualSize - c * granularity);
  return bytes;
}
