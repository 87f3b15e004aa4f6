// Copies planned extents from the fleece export (NBD) into the new layer (the file itself, or NBD), a few
// pieces at a time so memory stays bounded, reporting progress after every piece. The plan is a
// list, or batches that arrive while the copy runs (streamed-plan.ts), taken in order.

import type { NbdClient } from '../../nbd/client';
import type { CopyTarget } from './writer';
import { splitOps, type CopyOp } from './plan';

export interface CopyOptions {
  /** Largest read/write (default 4 MiB). */
  pieceBytes?: number;
  /** Pieces in flight (default 16: dirty extents are often far smaller than a piece). */
  parallel?: number;
  signal?: AbortSignal;
  onProgress?: (doneBytes: number) => void;
}

export interface CopyResult {
  dataBytes: number;
  zeroBytes: number;
}

export async function copyExtents(src: NbdClient, dst: CopyTarget, plan: CopyOp[] | AsyncIterable<CopyOp[]>, options: CopyOptions = {}): Promise<CopyResult> {
  if (src.size !== dst.size) throw new Error(`cannot copy a ${src.size}-byte export into a ${dst.size}-byte layer`);
  const nextPiece = pieceSource(Array.isArray(plan) ? once(plan) : plan, options.pieceBytes ?? 4 * 1024 * 1024);
  const result: CopyResult = { dataBytes: 0, zeroBytes: 0 };
  let done = 0;
  let failed: Error | undefined;
  const worker = async () => {
    // One buffer per worker, reused: each piece is written before the next is read into it.
    let buf: Buffer | undefined;
    while (!failed) {
      if (options.signal?.aborted) throw options.signal.reason instanceof Error ? options.signal.reason : new Error('the copy was cancelled');
      const p = await nextPiece();
      if (!p || failed) return;
      if (p.op === 'data') {
        if (!buf || buf.length < p.length) buf = Buffer.allocUnsafe(p.length);
        const data = await src.read(p.offset, p.length, buf);
        // A piece that reads as zeroes (planned without its allocation, or zeroes the guest wrote) is
        // written as zeroes: same content, no data clusters.
        if (isZeroes(data)) {
          await dst.writeZeroes(p.offset, p.length);
          result.zeroBytes += p.length;
        } else {
          await dst.write(p.offset, data);
          result.dataBytes += p.length;
        }
      } else {
        await dst.writeZeroes(p.offset, p.length);
        result.zeroBytes += p.length;
      }
      done += p.length;
      options.onProgress?.(done);
    }
  };
  const workers = Array.from({ length: Math.max(1, options.parallel ?? 16) }, () => worker().catch((e: Error) => {
    failed ??= e;
  }));
  await Promise.all(workers);
  if (failed) throw failed;
  return result;
}

const ZEROES = Buffer.alloc(64 * 1024);

/** Whether every byte is zero (memcmp in 64 KiB steps: data that is not stops at its first step). */
export function isZeroes(b: Buffer): boolean {
  for (let pos = 0; pos < b.length; pos += ZEROES.length) {
    const n = Math.min(ZEROES.length, b.length - pos);
    if (!b.subarray(pos, pos + n).equals(n === ZEROES.length ? ZEROES : ZEROES.subarray(0, n))) return false;
  }
  return true;
}

/** Pieces of at most `max` bytes, in plan order; undefined once the plan is exhausted. Workers share one batch fetch. */
function pieceSource(batches: AsyncIterable<CopyOp[]>, max: number): () => Promise<CopyOp | undefined> {
  const it = batches[Symbol.asyncIterator]();
  let pieces: CopyOp[] = [];
  let at = 0;
  let ended = false;
  let refill: Promise<void> | undefined;
  return async () => {
    while (at >= pieces.length) {
      if (ended) return undefined;
      refill ??= it.next().then((r) => {
        if (r.done) ended = true;
        else [pieces, at] = [splitOps(r.value, max), 0];
      }).finally(() => (refill = undefined));
      await refill;
    }
    return pieces[at++];
  };
}

async function* once(ops: CopyOp[]): AsyncGenerator<CopyOp[]> {
  yield ops;
}
