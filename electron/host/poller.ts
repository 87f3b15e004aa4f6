// The bitmap poller: while anyone listens to 'vm:bitmaps', asks every connected VM whose driver
// has live counts for its bitmap state (through the driver: one query per VM), and pushes it when
// it changed. Counts a driver pushes by itself go through the same change detection.

import type { DiskBitmaps, VmDriver } from '../engine/driver';

/** What identifies one state of a VM's bitmaps (compared between polls). */
export function bitmapsKey(disks: DiskBitmaps[]): string {
  return JSON.stringify(disks);
}

export interface PollerOptions {
  vms(): VmDriver[];
  intervalMs: number;
  /** True while someone listens to 'vm:bitmaps'. */
  listening(): boolean;
  emit(vmId: string, disks: DiskBitmaps[]): void;
}

export class BitmapPoller {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopped = false;
  private readonly last = new Map<string, string>();

  constructor(private readonly o: PollerOptions) {}

  /** Starts or stops the timer as listeners come and go. */
  update(): void {
    const want = !this.stopped && this.o.listening();
    if (want && !this.timer) {
      this.timer = setInterval(() => void this.pollAll(), this.o.intervalMs);
      void this.pollAll();
    } else if (!want && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  async pollAll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      await Promise.all(this.o.vms().map((vm) => this.poll(vm)));
    } finally {
      this.polling = false;
    }
  }

  /** Polls one VM now (after a change we made, rather than at the next tick). */
  async poll(vm: VmDriver): Promise<void> {
    if (this.stopped || !this.o.listening() || vm.capabilities.bitmapCounts !== 'live' || vm.summary().connection !== 'connected') return;
    let disks: DiskBitmaps[];
    try {
      disks = await vm.liveBitmaps();
    } catch {
      return; // the connection's own state reports the problem
    }
    this.offer(vm.id, disks);
  }

  /** Pushes `disks` when they differ from what was last pushed for the VM. */
  offer(vmId: string, disks: DiskBitmaps[]): boolean {
    const key = bitmapsKey(disks);
    if (this.last.get(vmId) === key) return false;
    this.last.set(vmId, key);
    this.o.emit(vmId, disks);
    return true;
  }

  /** After a reconnect the next state is pushed whatever it is. */
  forget(vmId: string): void {
    this.last.delete(vmId);
  }

  stop(): void {
    this.stopped = true;
    this.update();
  }
}
