// Restore in one pass: qemu-img convert of the chain runs while every layer is verified against its
// manifest (checksum, size, qemu-img info + check: verify.ts), instead of verify, then convert, then
// compare. Both read the same layers, so the page cache serves the second reader
// (bench/restore-verify.ts: ×6 → ×3 of a bare convert with SHA-256).
//
// The guarantee stays "no restored image before every layer is verified": the copy is only handed
// back when the verification passed and no layer changed while the two ran (size, inode, mtime and
// ctime stamped before and compared after), so the bytes converted are the bytes verified. The
// caller moves the copy into place only after this returns. `qemu-img compare` of the copy with the
// chain is gone: it re-read both from the page cache and checked qemu-img against itself.
//
// The copy is written back to disk while qemu-img still writes it (os/early-writeback.ts, as a push's
// layers are): qemu-img -t writeback leaves all of it in the page cache for one flush at its end.

import * as fs from 'node:fs';
import { startEarlyWriteback } from '../../os/early-writeback';
import { convertImage } from './qemuimg';

export interface OnePassOptions {
  format: 'qcow2' | 'raw';
  compat?: string;
  clusterSize?: number;
  signal?: AbortSignal;
  onProgress?: (percent: number) => void;
}

interface Stamp {
  size: bigint;
  ino: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

function stampOf(file: string): Stamp {
  const s = fs.statSync(file, { bigint: true });
  return { size: s.size, ino: s.ino, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs };
}

function sameStamp(a: Stamp, b: Stamp): boolean {
  return a.size === b.size && a.ino === b.ino && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/** Layers whose file changed (or vanished) since `before` was taken. */
export function changedLayers(files: string[], before: Stamp[]): string[] {
  return files.filter((f, i) => {
    try {
      return !sameStamp(stampOf(f), before[i]!);
    } catch {
      return true;
    }
  });
}

/**
 * Converts `layers[0]` (through its backing chain `layers`) into `tmp` while `verify()` checks every
 * layer; resolves only when both succeeded and no layer changed meanwhile. A failed verification
 * stops the convert and is the error reported. `tmp` is left for the caller (it removes it on failure).
 */
export async function convertWhileVerifying(layers: string[], tmp: string, verify: () => Promise<void>, o: OnePassOptions): Promise<void> {
  const before = layers.map(stampOf);
  const stop = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal;
  const converted = convertImage(layers[0]!, tmp, { format: o.format, compat: o.compat, clusterSize: o.clusterSize, signal, onProgress: o.onProgress });
  const writeback = startEarlyWriteback(tmp); // tmp exists: convertImage made it (0600) before qemu-img starts
  const convertOutcome = converted.then(() => undefined, (e: Error) => e).finally(() => writeback.stop());
  try {
    await verify();
  } catch (e) {
    stop.abort(e);
    await convertOutcome; // qemu-img is stopped (SIGTERM) before the caller removes tmp
    throw e;
  }
  const convertError = await convertOutcome;
  if (convertError) throw convertError;
  const writebackError = await writeback.stop(); // a write error seen only by an early sync still fails the restore
  if (writebackError) throw writebackError;
  const changed = changedLayers(layers, before);
  if (changed.length > 0) throw new Error(`layer ${changed.join(', ')} changed while it was being restored; nothing was restored (run the restore again)`);
}
