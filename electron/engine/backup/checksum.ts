// SHA-256 of a whole file. Each backup layer's checksum covers every byte of its qcow2 file (data
// and metadata), so any changed byte in any layer is caught by verify.
//
// Read with FileHandle.read into two reused 8 MiB buffers, the next read in flight while the current
// one is hashed, instead of a read stream: the stream's per-chunk allocations and copies doubled the
// CPU of the hash (bench/hash.ts: 1.94 → ~1.0 CPU-seconds per GiB). SHA-256 stays: node:crypto uses
// the CPU's SHA extensions, and the BLAKE3 builds that install without a native package (wasm) cost
// more CPU per GiB than this (bench/README.md, hashing).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

const CHUNK = 8 * 1024 * 1024;

export async function sha256File(file: string, options: { signal?: AbortSignal } = {}): Promise<{ sha256: string; size: number }> {
  options.signal?.throwIfAborted();
  const hash = createHash('sha256');
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
    return { sha256: hash.digest('hex'), size };
  } finally {
    await fh.close();
  }
}
