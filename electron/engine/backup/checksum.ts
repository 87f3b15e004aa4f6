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
// Read with FileHandle.read into two reused 1 MiB buffers, the next read in flight (in the thread
// pool) while the current one is hashed, instead of a read stream: the stream's per-chunk
// allocations and copies cost more CPU than the hash itself. 1 MiB, not 8: two fresh 8 MiB buffers
// fault in page by page on every call and the hash re-reads them from memory, not from the cache:
// BLAKE3 of a 64 MiB layer cost 109-123 ms of CPU with them against 30-44 ms (bench/README.md,
// "Writeback during the copy"). Reading synchronously on the main thread costs less CPU still, but
// on a loaded machine one runnable thread gets half the share of two, and the push got slower.

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
  const fh = await fs.promises.open(file, 'r');
  try {
    const bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
    let size = 0;
    let turn = 0;
    let pending = fh.read(bufs[0]!, 0, CHUNK, 0);
    for (;;) {
      const { bytesRead } = await pending;
      options.signal?.throwIfAborted();
      if (bytesRead === 0) break;
      const current = bufs[turn]!;
      size += bytesRead;
      turn ^= 1;
      // The other buffer is free (its bytes were hashed last round): read ahead into it.
      pending = fh.read(bufs[turn]!, 0, CHUNK, size);
      hash.update(bytesRead === CHUNK ? current : current.subarray(0, bytesRead));
    }
    return { algorithm, digest: hash.digest('hex'), size };
  } finally {
    await fh.close();
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
