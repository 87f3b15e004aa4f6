// The demo VM in the VM registry: a QMP connection (one VM, id "demo") to the lab's QEMU on one of
// its two sockets (the app holds the primary, tools take the secondary), plus what only the demo
// VM has: starting and stopping it, and the write simulator.

import type { LabInfo, WriteSimOptions } from '../../../shared/contract';
import type { DiskInfo } from '../../../shared/domain';
import type { VmConnection } from '../driver';
import type { OperationReporter } from '../operation';
import { QmpVmDriver } from '../qmp-driver/driver';
import { connectLab, isQemuAlive, labStatus, startLab, stopLab } from './labvm';
import { simulateWrites } from './writer';

export const DEMO_VM_ID = 'demo';
export const DEMO_NOT_RUNNING = 'the demo VM is not running (start it with: tidemark lab start)';

export interface DemoOptions {
  stateDir: string;
  labDir: string;
  /** Which lab socket: the app holds the primary; tools take the secondary. */
  socket: 'primary' | 'secondary';
  mode: 'eager' | 'on-demand';
  offlineReads: boolean;
}

/** The demo VM as lab:status reports it. */
export function labInfo(labDir: string): LabInfo {
  const st = labStatus(labDir);
  const info: LabInfo = {
    running: st.running,
    qmp: st.qmp,
    qmpSecondary: st.qmpSecondary,
    disks: st.disks.map((d) => ({ name: d.name, image: d.image, sizeBytes: d.sizeBytes, legacy: d.legacy })),
  };
  if (st.running) info.vmId = DEMO_VM_ID;
  return info;
}

export class DemoConnection implements VmConnection {
  readonly id = DEMO_VM_ID;
  readonly kind = 'demo' as const;
  readonly driver: QmpVmDriver;
  private watch: NodeJS.Timeout | undefined;
  /** Per disk, where the last sequential simulation ended: the next one goes on from there, as a log writer would. */
  private readonly sequentialEnd = new Map<string, number>();

  constructor(private readonly o: DemoOptions) {
    const lab = () => labStatus(o.labDir);
    this.driver = new QmpVmDriver({
      id: DEMO_VM_ID,
      stateDir: o.stateDir,
      mode: o.mode,
      offlineReads: o.offlineReads,
      target: {
        kind: 'demo',
        label: () => `Demo VM (${lab().name})`,
        recordedName: () => lab().name,
        endpoint: () => (o.socket === 'primary' ? lab().qmp : lab().qmpSecondary),
        connect: () => connectLab(o.labDir, o.socket),
        absent: () => (lab().running ? undefined : DEMO_NOT_RUNNING),
        nothingRuns: () => !lab().running,
        remembered: () => {
          const st = lab();
          return st.uuid ? { key: st.uuid, name: st.name, uuid: st.uuid } : undefined;
        },
        seen: () => undefined, // lab.json records the demo VM's identity
      },
    });
  }

  vms(): readonly QmpVmDriver[] {
    return [this.driver];
  }

  onVmsChanged(): () => void {
    return () => undefined;
  }

  /** Eager mode: connect while it runs; another process (the CLI) may start it at any time. */
  start(): void {
    const link = this.driver.link;
    if (labStatus(this.o.labDir).running) link.start();
    if (this.watch) return;
    this.watch = setInterval(() => {
      if (!link.reconnecting && !link.client?.isOpen && labStatus(this.o.labDir).running) link.start();
    }, 2_000);
    this.watch.unref();
  }

  async close(): Promise<void> {
    if (this.watch) clearInterval(this.watch);
    this.watch = undefined;
    await this.driver.close();
  }

  /** lab:start: starts QEMU, then (eager) connects at once rather than after the reconnect backoff. */
  async startLab(): Promise<void> {
    await startLab({ dir: this.o.labDir });
    const link = this.driver.link;
    link.setState('disconnected');
    if (link.eager) {
      await link.stopReconnecting();
      link.start();
    }
  }

  /** lab:stop: quits QEMU through our own connection (the sockets may both be taken), waits for its exit. */
  async stopLab(): Promise<void> {
    const st = labStatus(this.o.labDir);
    const link = this.driver.link;
    const client = link.client;
    await link.stopReconnecting();
    if (client?.isOpen && st.pid) {
      await client.execute('quit').catch(() => undefined);
      const deadline = Date.now() + 10_000;
      while (isQemuAlive(st.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    }
    await link.disconnect(DEMO_NOT_RUNNING);
    await stopLab(this.o.labDir);
  }

  /** The disk a write simulation goes to, or an error naming the disks there are. */
  async writableDisk(name: string): Promise<DiskInfo> {
    const vm = await this.driver.info();
    const disk = vm.disks.find((d) => d.name === name);
    if (!disk) throw new Error(`the demo VM has no disk ${JSON.stringify(name)} (it has ${vm.disks.map((d) => d.name).join(', ')})`);
    return disk;
  }

  /** Guest-like writes to `disk` (see writer.ts); resolves with the number of writes. */
  async simulateWrites(disk: DiskInfo, opts: WriteSimOptions, reporter: OperationReporter): Promise<number> {
    let end: number | undefined;
    try {
      const writes = await simulateWrites(this.driver.link.liveClient(), disk, {
        pattern: opts.pattern, mib: opts.mib, rateMibPerS: opts.rateMibPerS, seed: Date.now() % 2 ** 31, signal: reporter.signal,
        start: opts.pattern === 'sequential' ? this.sequentialEnd.get(disk.name) : undefined,
        logFile: labStatus(this.o.labDir).log,
        onProgress: (done, _total, last) => {
          end = last.offset + last.len;
          reporter.progress(disk.name, done);
        },
      });
      return writes.length;
    } finally {
      // Also after a cancelled or failed run: the next goes on after what was written.
      if (opts.pattern === 'sequential' && end !== undefined) this.sequentialEnd.set(disk.name, end % disk.virtualSize);
    }
  }
}
