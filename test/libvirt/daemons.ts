// libvirtd for tests: make sure it runs (scripts/libvirt-daemons.sh), and restart it without pulling
// the daemon from under another test file. Every test process that uses libvirt holds a shared
// lock (flock(1) on a file in /run/lock, held by a `cat` child that exits when our pipe closes, so
// a killed test releases it); a restart takes the lock exclusively, so it waits until no other
// libvirt test file runs. Vitest runs files in parallel workers, other worktrees on this machine too.
// A file that restarts libvirtd also holds the restarters' lock, exclusively, from its first use to its
// end, taken before the shared one: two such files never run at once. Else one's restart landed in the
// middle of the other's (a restart mid-backup, then the other file's while the first rolled back), and
// the pair failed together about half the time.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

const SCRIPT = path.resolve(__dirname, '../../scripts/libvirt-daemons.sh');
const LOCK_FILE = '/run/lock/tidemark-libvirtd-tests.lock';
const RESTARTERS_LOCK_FILE = '/run/lock/tidemark-libvirtd-restarters.lock';

function runScript(arg: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('bash', [SCRIPT, arg], { timeout: timeoutMs }, (err, _out, stderr) => {
      if (err) reject(new Error(`scripts/libvirt-daemons.sh ${arg} failed: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

/** Starts virtlogd, virtlockd and libvirtd where they are not running; resolves once qemu:///system answers. */
export function ensureLibvirtDaemons(): Promise<void> {
  return runScript('start', 60_000);
}

type Holder = { child: ChildProcess; mode: 'shared' | 'exclusive' };
/** This process's shared lock, and its restarters' lock, while it uses libvirtd. */
let holder: Promise<Holder> | undefined;
let restarter: Promise<Holder> | undefined;
let users = 0;

function takeLock(mode: 'shared' | 'exclusive', waitS: number, file = LOCK_FILE): Promise<Holder> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', [mode === 'shared' ? '-s' : '-x', '-w', String(waitS), file, 'sh', '-c', 'echo locked; exec cat'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('locked')) resolve({ child, mode });
    });
    child.stderr!.on('data', (d) => (err += d));
    child.on('close', (code) => reject(new Error(`could not take the ${mode} libvirtd test lock ${file} (flock exit ${code}) ${err.trim()}`)));
    child.on('error', reject);
  });
}

function release(h: Holder): Promise<void> {
  return new Promise((resolve) => {
    if (h.child.exitCode !== null) return resolve();
    h.child.once('close', () => resolve());
    h.child.stdin!.end();
  });
}

/**
 * Marks this process as using libvirtd (a restart elsewhere waits for release). Counted: call the
 * returned function once. `restarts`: this process restarts libvirtd (restartLibvirtd); it must say so
 * in its first call, so the restarters' lock is taken before the shared one (never while holding it).
 */
export async function useLibvirtd(options: { restarts?: boolean } = {}): Promise<() => Promise<void>> {
  if (options.restarts && !restarter && holder) throw new Error('useLibvirtd({ restarts: true }) must come before any other useLibvirtd() of this process');
  users++;
  try {
    if (options.restarts) await (restarter ??= takeLock('exclusive', 1800, RESTARTERS_LOCK_FILE));
    // One shared lock per process, also when two callers ask at once.
    await (holder ??= takeLock('shared', 600));
  } catch (e) {
    await leave(); // a lock that failed is not kept for the next caller to await; one that was taken is given back
    throw e;
  }
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await leave();
  };
}

/** One user fewer; the last one gives back the shared lock, then the restarters' (those that were taken). */
async function leave(): Promise<void> {
  users--;
  if (users > 0) return;
  const locks = [holder, restarter];
  holder = undefined;
  restarter = undefined;
  for (const lock of locks) {
    const h = await lock?.catch(() => undefined);
    if (h) await release(h);
  }
}

/**
 * Restarts libvirtd (running domains keep running; every client connection drops). Waits for every
 * other process using libvirtd to finish first (up to `waitS` seconds).
 */
export async function restartLibvirtd(waitS = 900): Promise<void> {
  if (!restarter) throw new Error('restartLibvirtd: this test file must open its lab with LibvirtTestLab.open({ restartsLibvirtd: true }) (useLibvirtd({ restarts: true })), so no other file restarts libvirtd meanwhile');
  const hadShared = holder;
  holder = undefined;
  if (hadShared) await release(await hadShared);
  const exclusive = await takeLock('exclusive', waitS);
  try {
    await runScript('restart', 60_000);
  } finally {
    await release(exclusive);
    if (hadShared) await (holder = takeLock('shared', 600));
  }
}
