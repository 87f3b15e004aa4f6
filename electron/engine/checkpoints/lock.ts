// A lock file that keeps two processes (the app and a CLI, two CLIs) from changing a VM's
// metadata at once. Created with O_EXCL and holding {pid, command, since}; a lock whose pid is
// dead is stale and taken over. A waiter retries for a short while, then gets a clear error.

import * as fs from 'node:fs';
import { mkdirPrivate } from '../../os/atomic-file';
import * as path from 'node:path';
import { describeFsError } from './fserror';
import { isProcessAlive, ownStartTime } from '../../os/process-liveness';

export interface LockInfo {
  pid: number;
  command: string;
  since: string;
  /** The holder's start time (/proc/PID/stat field 22), so a reused pid is not taken for the holder. */
  start?: string;
}

export interface LockOptions {
  /** What is being done, shown to whoever finds the lock held. */
  command: string;
  /** How long to wait for a held lock (default 5 s). */
  waitMs?: number;
  /** Describes the locked thing in the error ("metadata of VM X"). */
  what: string;
}

export class LockHeldError extends Error {
  constructor(message: string, readonly holder: LockInfo | undefined) {
    super(message);
    this.name = 'LockHeldError';
  }
}

function readHolder(file: string): { info?: LockInfo; raw: string } | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const v = JSON.parse(raw) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && Number.isInteger(v.pid) && v.pid > 0) {
      const info: LockInfo = { pid: v.pid, command: String(v.command ?? '?'), since: String(v.since ?? '?') };
      if (typeof v.start === 'string') info.start = v.start;
      return { raw, info };
    }
  } catch {
    // an empty or half-written lock file: its writer may still be finishing it
  }
  return { raw };
}

function tryCreate(file: string, info: LockInfo, what: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw cannotLock(what, file, e);
  }
  try {
    // No fsync: after a power loss the lock is stale anyway (its pid is gone), and an empty
    // file is broken after a second.
    const text = JSON.stringify(info);
    const n = fs.writeSync(fd, text);
    if (n !== Buffer.byteLength(text)) throw new Error(`short write (${n} of ${Buffer.byteLength(text)} bytes)`);
  } catch (e) {
    // e.g. a full disk: do not leave an empty lock behind for the next process to wait on
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
    throw cannotLock(what, file, e);
  }
  fs.closeSync(fd);
  return true;
}

function cannotLock(what: string, file: string, e: unknown): Error {
  return new Error(`cannot lock the ${what}: cannot write ${file}: ${describeFsError(e)}; nothing was changed`, { cause: e });
}

/**
 * Takes a stale lock away: renamed first (atomic), then checked to be the same stale content; if
 * another process replaced it in between, it is put back.
 */
function breakStale(file: string, raw: string): void {
  const aside = `${file}.stale-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    fs.renameSync(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  const got = fs.readFileSync(aside, 'utf8');
  if (got !== raw) {
    try {
      fs.linkSync(aside, file);
    } catch {
      // someone created a new lock meanwhile; theirs wins
    }
  }
  fs.rmSync(aside, { force: true });
}

/** Acquires the lock file; resolves with a release function. */
export async function acquireLock(file: string, opts: LockOptions): Promise<() => void> {
  try {
    mkdirPrivate(path.dirname(file));
  } catch (e) {
    throw cannotLock(opts.what, file, e);
  }
  const me: LockInfo = { pid: process.pid, command: opts.command, since: new Date().toISOString() };
  const start = ownStartTime();
  if (start !== undefined) me.start = start;
  const deadline = Date.now() + (opts.waitMs ?? 5_000);
  let unreadableSince: number | undefined;
  for (;;) {
    if (tryCreate(file, me, opts.what)) {
      let released = false;
      return () => {
        if (released) return;
        released = true;
        // Only remove it if it is still ours.
        const h = readHolder(file);
        if (h?.info?.pid === me.pid && h.info.since === me.since) fs.rmSync(file, { force: true });
      };
    }
    let holder: ReturnType<typeof readHolder>;
    try {
      holder = readHolder(file);
    } catch (e) {
      throw new Error(`cannot lock the ${opts.what}: cannot read ${file}: ${describeFsError(e)}; nothing was changed`, { cause: e });
    }
    if (holder?.info && !isProcessAlive(holder.info.pid, holder.info.start)) {
      breakStale(file, holder.raw);
      continue;
    }
    if (holder && !holder.info) {
      // Unparseable for more than a second: a writer died between create and write.
      unreadableSince ??= Date.now();
      if (Date.now() - unreadableSince > 1_000) {
        breakStale(file, holder.raw);
        continue;
      }
    }
    if (Date.now() >= deadline) {
      const h = holder?.info;
      const who = h ? `pid ${h.pid} (${h.command}, since ${h.since})` : 'another process';
      throw new LockHeldError(`${opts.what} is locked by ${who}; try again when it has finished (lock file ${file})`, h);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
