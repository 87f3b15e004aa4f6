// The live VM as the checkpoint engine last read it from QEMU. One operation reads it once: inside
// a lock hold the first full read (discovery: identity, disks, nodes, bitmaps) is kept, and the
// hold's later reads (health, the plan, prepare) reuse it — health is still computed on what QEMU
// reported inside the same hold. After a transaction (the engine's own, or a caller's before
// commit/rollback) only the bitmaps are read again (one query-named-block-nodes): a transaction of
// bitmap and job actions changes bitmaps, never the disks or their nodes.

import type { DiskInfo, VmInfo } from '../../../shared/domain';
import { readLiveBitmaps, type QmpExecutor } from '../vm/discovery';
import { rediscoverVm } from './execute';
import { QmpConnectionError } from '../../qmp/errors';

export class LiveVm {
  /** The read taken in the current lock hold (cleared when a hold begins and ends). */
  private held: VmInfo | undefined;

  constructor(
    private readonly client: QmpExecutor,
    private readonly endpoint: string,
    private readonly vmId: string,
    /** The last read, in or out of a hold. */
    public last: VmInfo,
  ) {}

  /** The VM now: a full read, except inside a hold that has read it already. */
  async read(inHold: boolean): Promise<VmInfo> {
    if (inHold && this.held) return this.held;
    const vm = await rediscoverVm(this.client, this.endpoint, this.vmId);
    this.last = vm;
    if (inHold) this.held = vm;
    return vm;
  }

  /** After a transaction: the hold's read with every disk's bitmaps read again (a full read when the hold has none). */
  async rereadBitmaps(inHold: boolean): Promise<VmInfo> {
    const base = inHold ? this.held : undefined;
    if (!base) return this.read(inHold);
    let live: Awaited<ReturnType<typeof readLiveBitmaps>>;
    try {
      live = await readLiveBitmaps(this.client, new Map(base.disks.map((d) => [d.name, d.nodeName])));
    } catch (e) {
      if (e instanceof QmpConnectionError) throw new Error(`QEMU at ${this.endpoint} is gone (${e.message})`, { cause: e });
      throw e;
    }
    const byDisk = new Map(live.map((l) => [l.disk, l.bitmaps]));
    const disks: DiskInfo[] = base.disks.map((d) => ({ ...d, bitmaps: byDisk.get(d.name) ?? [] }));
    const vm = { ...base, disks };
    this.last = vm;
    if (inHold) this.held = vm;
    return vm;
  }

  /** A hold begins or ends: its read is not reused beyond it. */
  forgetHeld(): void {
    this.held = undefined;
  }
}
