// Small durable-file helpers: atomic JSON writes (temp file, fsync, rename, fsync the directory).

import * as fs from 'node:fs';
import * as path from 'node:path';

export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // some file systems refuse fsync on directories; the rename is still atomic
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes `text` to `file` so that readers see either the old or the new content, never a mix. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    try {
      fs.writeSync(fd, text);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true }); // e.g. a full disk: leave nothing behind
    throw e;
  }
  fsyncDir(path.dirname(file));
}

/** Like writeFileAtomic, but fails with EEXIST when `file` already exists (hard link is atomic and exclusive). */
export function createFileExclusive(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  try {
    fs.writeFileSync(tmp, text, { mode: 0o644 });
    fs.linkSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDir(path.dirname(file));
}

/** True when `pid` is a live process; with `startTicks`, also that it is the same process (not a reused pid). */
export function processAlive(pid: number, startTicks?: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (startTicks === undefined) return true;
  const now = processStartTicks(pid);
  return now === undefined || now === startTicks;
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat); undefined if unknown. */
export function processStartTicks(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/\) Z /.test(stat)) return -1; // a zombie never matches
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}
