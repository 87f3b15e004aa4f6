// The one rule for "is the process that wrote this lock still running": its pid exists (EPERM
// counts: it exists, owned by someone else), it is not a zombie, and, when its start time was
// recorded, it started then (a pid reused by another process is not the writer).

import * as fs from 'node:fs';

/** A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), 'zombie', or undefined where /proc cannot tell. */
export function processStartTime(pid: number): string | 'zombie' | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Field 2 (comm) may contain spaces and parentheses: count fields after its last ")".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return 'zombie';
  return fields[19];
}

/** Our own start time, to record next to our pid in lock files. */
export function ownStartTime(): string | undefined {
  const t = processStartTime(process.pid);
  return t === 'zombie' ? undefined : t;
}

/** True while the process runs: see the rule at the top of this file. `start` may be a number (older journals). */
export function isProcessAlive(pid: number, start?: string | number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = processStartTime(pid);
  if (now === 'zombie') return false;
  if (start === undefined || now === undefined) return true;
  return now === String(start);
}

/** The command line of a live process ('' when it cannot be read). */
export function processCommandLine(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}
