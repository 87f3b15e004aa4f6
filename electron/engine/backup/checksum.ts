// SHA-256 of a whole file, streamed. Each backup layer's checksum covers every byte of its qcow2
// file (data and metadata), so any changed byte in any layer is caught by verify.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

export async function sha256File(file: string, options: { signal?: AbortSignal } = {}): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const stream = fs.createReadStream(file, { highWaterMark: 4 * 1024 * 1024, signal: options.signal });
  for await (const chunk of stream) {
    const buf = chunk as Buffer;
    size += buf.length;
    hash.update(buf);
  }
  return { sha256: hash.digest('hex'), size };
}
