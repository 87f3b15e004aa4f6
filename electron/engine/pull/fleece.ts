// The fleece images' space: checked before a pull starts and watched while it runs. In QEMU 7.2 a
// failed copy-before-write into the fleece image fails the *guest's* write, so the pull gives up
// (and rolls back) while there is still plenty of room.

import * as fs from 'node:fs';
import * as path from 'node:path';

export interface FleeceLimits {
  /** Stop when the fleece images' filesystem has less free space than this (default 512 MiB). */
  reserveBytes?: number;
  /** Stop when the fleece images together hold more than this (default: no limit besides the reserve). */
  maxBytes?: number;
}

export const DEFAULT_RESERVE = 512 * 1024 * 1024;

export function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

/** Bytes a file really occupies (allocated blocks). */
export function allocatedBytes(file: string): number {
  try {
    return fs.statSync(file).blocks * 512;
  } catch {
    return 0;
  }
}

/** Throws, naming the numbers, when the fleece directory has too little room to start. */
export function checkFleeceRoom(dir: string, limits: FleeceLimits): void {
  const reserve = limits.reserveBytes ?? DEFAULT_RESERVE;
  const free = freeBytes(dir);
  if (free < reserve * 2) {
    throw new Error(`not enough free space for fleecing in ${dir}: ${mib(free)} free, at least ${mib(reserve * 2)} needed (twice the ${mib(reserve)} reserve); free space or choose another fleece directory`);
  }
}

export class FleeceWatch {
  peakBytes = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly files: string[],
    private readonly limits: FleeceLimits,
    private readonly onTrip: (reason: string) => void,
    intervalMs = 200,
  ) {
    this.timer = setInterval(() => this.check(), intervalMs);
    this.timer.unref();
  }

  /** One check now; returns the reason it tripped, if it did. */
  check(): string | undefined {
    const used = this.files.reduce((s, f) => s + allocatedBytes(f), 0);
    this.peakBytes = Math.max(this.peakBytes, used);
    const reserve = this.limits.reserveBytes ?? DEFAULT_RESERVE;
    let reason: string | undefined;
    if (this.limits.maxBytes !== undefined && used > this.limits.maxBytes) {
      reason = `the fleecing images grew to ${mib(used)}, over the ${mib(this.limits.maxBytes)} limit (the guest overwrote that much during the pull)`;
    } else if (this.files.length > 0) {
      const free = freeBytes(path.dirname(this.files[0]!));
      if (free < reserve) reason = `only ${mib(free)} left for the fleecing images (reserve ${mib(reserve)}); stopping before the guest's writes could fail`;
    }
    if (reason) {
      this.stop();
      this.onTrip(reason);
    }
    return reason;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

export function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
