// The checksum of a whole layer file. It covers every byte of the qcow2 file (data and metadata),
// so any changed byte in any layer is caught by verify and by every restore.
//
// New layers get BLAKE3 (a cryptographic hash like SHA-256, about half its CPU per GiB here:
// bench/hash.ts and bench/README.md "Hashing"), from @napi-rs/blake-hash (Rust's blake3 crate, the
// binary ships inside a per-platform npm package). Where that binary does not load (another
// platform; the packaged app, which carries no node_modules), new layers get SHA-256 instead, which
// node:crypto computes faster than any BLAKE3 without the binary, and BLAKE3 layers are still
// verified, by hash-wasm (same digest, slower). The manifest names the algorithm of each layer.
//
// Read with readSync into one 1 MiB buffer that stays in the CPU's cache between the read and the
// hash, in slices of 16 MiB with a turn of the event loop between slices (a slice takes a few ms).
// Measured here (bench/README.md, "Writeback during the copy"): BLAKE3 of 64 MiB from the page cache
// 25-30 ms of CPU against 109-123 ms for the earlier two 8 MiB buffers read ahead in the thread pool
// (fresh 8 MiB buffers fault in page by page, and the hash re-reads them from memory), 1 GiB
// 276-367 ms against 314-483 ms. A read stream costs more than either (its per-chunk allocations).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import type { ChecksumAlgorithm, RecordedChecksum } from '../../../shared/contract';

export { recordedChecksum, shortChecksum, type ChecksumAlgorithm } from '../../../shared/contract';


export interface FileChecksum {
  algorithm: ChecksumAlgorithm;
  /** Lower-case hex. */
  digest: string;
  size: number;
}

interface Hasher {
  update(data: Uint8Array): unknown;
  digest(encoding: 'hex'): string;
}

const CHUNK = 1024 * 1024;
const SLICE = 16 * CHUNK;

type NativeBlake3 = new () => Hasher;
let native: NativeBlake3 | null | undefined;

/** The native BLAKE3 hasher, or null where its binary does not load (checked once). */
function nativeBlake3(): NativeBlake3 | null {
  if (native === undefined) {
    try {
      // A plain require so the CLI bundle leaves the native package to node_modules.
      native = (createRequire(__filename)('@napi-rs/blake-hash') as { Blake3Hasher: NativeBlake3 }).Blake3Hasher;
    } catch {
      native = null;
    }
  }
  return native;
}

async function hasherFor(algorithm: ChecksumAlgorithm, implementation?: 'native' | 'wasm'): Promise<Hasher> {
  if (algorithm === 'sha256') return createHash('sha256');
  const Native = implementation === 'wasm' ? null : nativeBlake3();
  if (Native) return new Native();
  const { createBLAKE3 } = await import('hash-wasm');
  const h = await createBLAKE3();
  return { update: (d) => h.update(d), digest: () => h.digest('hex') };
}

/** Which BLAKE3 this process uses: "native" or "wasm" (for logs and the bench). */
export function blake3Implementation(): 'native' | 'wasm' {
  return nativeBlake3() ? 'native' : 'wasm';
}

/** The algorithm new layers are hashed with: BLAKE3 where its native binary loads, else SHA-256. */
export function layerChecksumAlgorithm(): ChecksumAlgorithm {
  return nativeBlake3() ? 'blake3' : 'sha256';
}

/** Hashes every byte of `file`. */
export async function checksumFile(
  file: string,
  algorithm: ChecksumAlgorithm = layerChecksumAlgorithm(),
  options: { signal?: AbortSignal; /** BLAKE3 only; the default takes native when it loads. */ implementation?: 'native' | 'wasm' } = {},
): Promise<FileChecksum> {
  options.signal?.throwIfAborted();
  const hash = await hasherFor(algorithm, options.implementation);
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let size = 0;
    for (;;) {
      const sliceEnd = size + SLICE;
      let bytesRead = 0;
      while (size < sliceEnd && (bytesRead = fs.readSync(fd, buf, 0, CHUNK, size)) > 0) {
        hash.update(bytesRead === CHUNK ? buf : buf.subarray(0, bytesRead));
        size += bytesRead;
      }
      if (bytesRead === 0) break;
      await new Promise<void>((resolve) => setImmediate(resolve)); // let other work (events, another disk's hash) run
      options.signal?.throwIfAborted();
    }
    return { algorithm, digest: hash.digest('hex'), size };
  } finally {
    fs.closeSync(fd);
  }
}

/** The manifest fields for a checksum just taken. */
export function checksumFields(sum: Pick<FileChecksum, 'algorithm' | 'digest'>): { sha256: string } | { blake3: string } {
  return sum.algorithm === 'blake3' ? { blake3: sum.digest } : { sha256: sum.digest };
}

/** A manifest entry with its checksum replaced by `sum` (the other algorithm's field removed). */
export function withChecksum<T extends RecordedChecksum>(d: T, sum: Pick<FileChecksum, 'algorithm' | 'digest'>): T {
  const { sha256: _s, blake3: _b, ...rest } = d;
  return { ...rest, ...checksumFields(sum) } as T;
}
