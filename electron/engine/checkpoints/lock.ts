// A lock file that keeps two processes (the app and a CLI, two CLIs) from changing a VM's
// metadata at once. Created with O_EXCL and holding {pid, command, since}; a lock whose pid is
// dead is stale and taken over. A waiter retries for a short while, then gets a clear error.

import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LockInfo {
  pid: number;
  command: string;
  since: string;
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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
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
      return { raw, info: { pid: v.pid, command: String(v.command ?? '?'), since: String(v.since ?? '?') } };
    }
  } catch {
    // an empty or half-written lock file: its writer may still be finishing it
  }
  return { raw };
}

function tryCreate(file: string, info: LockInfo): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    // No fsync: after a power loss the lock is stale anyway (its pid is gone), and an empty
    // file is broken after a second.
    fs.writeSync(fd, JSON.stringify(info));
  } finally {
    fs.closeSync(fd);
  }
  return true;
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
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const me: LockInfo = { pid: process.pid, command: opts.command, since: new Date().toISOString() };
  const deadline = Date.now() + (opts.waitMs ?? 5_000);
  let unreadableSince: number | undefined;
  for (;;) {
    if (tryCreate(file, me)) {
      let released = false;
      return () => {
        if (released) return;
        released = true;
        // Only remove it if it is still ours.
        const h = readHolder(file);
        if (h?.info?.pid === me.pid && h.info.since === me.since) fs.rmSync(file, { force: true });
      };
    }
    const holder = readHolder(file);
    if (holder?.info && !isAlive(holder.info.pid)) {
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
