// Whether a push job may ask QEMU to copy with copy_file_range (blockdev-backup x-perf
// use-copy-range): the kernel then copies between the disk image and the target instead of QEMU
// bouncing every cluster through its buffers (bench/push-knobs.ts: the full-backup job ×0.14,
// target identical to the source). Two conditions:
//  * QEMU has x-perf.use-copy-range (6.0 and later; an unstable x- member, so a version check);
//  * the repository's filesystem cannot share extents (reflink: XFS with reflink, btrfs). There,
//    copy_file_range may clone instead of copy, and a backup sharing its blocks with the live image
//    is no longer an independent copy against media errors. Probed once per folder by cloning a
//    one-byte file of our own (FICLONE through copyFile's COPYFILE_FICLONE_FORCE).

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const probed = new Map<string, boolean>();

/** True when a file in `dir` can be cloned (shares extents); probed once per folder and process. */
export function canReflink(dir: string): boolean {
  const known = probed.get(dir);
  if (known !== undefined) return known;
  const tag = `.tidemark-reflink-probe-${process.pid}-${randomBytes(4).toString('hex')}`;
  const a = path.join(dir, tag);
  const b = `${a}-clone`;
  let result: boolean;
  try {
    fs.writeFileSync(a, 'x', { flag: 'wx', mode: 0o600 });
    try {
      fs.copyFileSync(a, b, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE_FORCE);
      result = true;
    } catch {
      result = false;
    }
  } finally {
    // Both names are ours: made just now, exclusively, with a random tag.
    fs.rmSync(b, { force: true });
    fs.rmSync(a, { force: true });
  }
  probed.set(dir, result);
  return result;
}

/** QEMU 6.0 or later: blockdev-backup has x-perf.use-copy-range. */
export function hasCopyRange(version: { major: number; minor: number }): boolean {
  return version.major > 6 || (version.major === 6 && version.minor >= 0);
}

/** Whether this push may use copy_file_range for targets in `dir`; `qemuVersion` as discovery reports it ("7.2.0"; "unknown": no). */
export function useCopyRange(qemuVersion: string, dir: string): boolean {
  const m = /^(\d+)\.(\d+)\./.exec(qemuVersion);
  return m !== null && hasCopyRange({ major: Number(m[1]), minor: Number(m[2]) }) && !canReflink(dir);
}
