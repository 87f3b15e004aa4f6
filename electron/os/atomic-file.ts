// The one way Tidemark writes a file: a create-exclusive temp file beside the target, every byte
// written (writeSync may write less than asked under a full disk or a file-size limit without
// throwing, so we loop until the next call reports the error), fsync, rename over the target,
// fsync the folder. Readers see the old content or the new, never a mix or a truncated file.
// Files are private to their owner by default (0600): they hold VM metadata and backup state.

import * as fs from 'node:fs';
import * as path from 'node:path';

export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

export interface WriteOptions {
  /** Permission bits of the new file (default 0600; the umask can only make them stricter). */
  mode?: number;
}

/** fsync a folder so that a rename or unlink inside it survives a power cut. */
export function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch (e) {
    throw new Error(`cannot open folder ${dir} to make a change in it durable: ${(e as Error).message}`, { cause: e });
  }
  try {
    fs.fsyncSync(fd);
  } catch (e) {
    // A few file systems refuse fsync on a folder (EINVAL): the rename is atomic there all the same.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EISDIR') throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes all of `buf` to `fd`, or throws. */
export function writeAll(fd: number, buf: Uint8Array, what: string): void {
  for (let off = 0; off < buf.length; ) {
    const n = fs.writeSync(fd, buf, off, buf.length - off);
    if (n <= 0) throw Object.assign(new Error(`short write to ${what} (${off} of ${buf.length} bytes)`), { code: 'EIO' });
    off += n;
  }
}

function tempNameFor(file: string): string {
  return path.join(path.dirname(file), `.tmp-${path.basename(file).slice(0, 64)}-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}

/**
 * Writes `data` into a new temp file beside `file` and fsyncs it, without touching `file`. Returns
 * the temp file's path. Fails, leaving nothing behind, when the folder cannot take the data.
 */
export function stageFile(file: string, data: string | Uint8Array, options: WriteOptions = {}): string {
  const tmp = tempNameFor(file);
  const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, options.mode ?? PRIVATE_FILE_MODE);
  try {
    writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, tmp);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  return tmp;
}

/** Puts a staged temp file in place of `file` (rename, then fsync the folder). */
export function commitStaged(tmp: string, file: string): void {
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(path.dirname(file));
}

/** Writes `data` to `file` atomically and durably. */
export function writeFileAtomic(file: string, data: string | Uint8Array, options: WriteOptions = {}): void {
  commitStaged(stageFile(file, data, options), file);
}

/** Like writeFileAtomic, but fails with EEXIST when `file` already exists (a hard link is atomic and exclusive). */
export function createFileExclusive(file: string, data: string | Uint8Array, options: WriteOptions = {}): void {
  const tmp = stageFile(file, data, options);
  try {
    fs.linkSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDir(path.dirname(file));
}

/** Renames `from` to `to` and makes the rename durable (both folders fsynced). */
export function renameDurable(from: string, to: string): void {
  fs.renameSync(from, to);
  fsyncDir(path.dirname(to));
  if (path.dirname(from) !== path.dirname(to)) fsyncDir(path.dirname(from));
}

/** Creates `dir` (and missing parents) private to its owner; an existing folder keeps its mode. */
export function mkdirPrivate(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/** fsync of a whole file, data and metadata (a restored or merged image before it is linked or renamed into place). */
export function fsyncFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Puts a file written by another program with flushes off (qemu-nbd cache=unsafe, a QEMU target
 * with no-flush) on disk: its data and the metadata needed to read it (fdatasync). Async: a layer
 * can be gigabytes of dirty pages.
 */
export async function syncFileData(file: string): Promise<void> {
  const fh = await fs.promises.open(file, 'r+');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
