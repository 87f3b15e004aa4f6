// QEMU's own steps of each incremental row (floor/steps.ts), by hand over the bench's QMP connection
// to the lab VM, in the same rounds as Tidemark and the peers: what any tool that drives QEMU's backup
// job or its pull mode pays on that VM, with nothing of its own around it. On the 1 TiB disk their
// extra over the 1 GiB one is the floor of the "cost follows dirty bytes" goal.

import * as path from 'node:path';
import { l2TablesOf } from '../../electron/engine/qcow2/format';
import { readsChangeMap } from '../../electron/engine/qmp-driver/push';
import { ExportManager } from '../../electron/nbd/qemu-exports';
import { PULL_QEMU, PUSH_QEMU, pullSteps, pushSteps, readChangeMap, sumOf } from '../floor/steps';
import { DIRTY_BYTES, DIRTY_WRITES, dirtyOffset, SIZES, type Machines } from './machines';
import type { Timed } from './steps';

export type FloorKind = 'push' | 'pull';

/** The bitmap round `r`'s floor steps of `kind` take on `disk`. */
function floorBitmap(kind: FloorKind, disk: string, r: number): string {
  return `bench-floor-${kind}-${disk}-${r}`;
}

export class QemuFloor {
  constructor(private readonly m: Machines) {}

  private get lab() {
    if (!this.m.lab) throw new Error('internal: no lab VM');
    return this.m.lab;
  }

  /** Round `r`'s bitmaps on `disk`: added before the round's writes, so each holds exactly them. */
  async mark(disk: string, r: number): Promise<void> {
    for (const kind of ['push', 'pull'] as const) await this.lab.qmp.execute('block-dirty-bitmap-add', { node: `${disk}-fmt`, name: floorBitmap(kind, disk, r) });
  }

  /** QEMU's steps of round `r`'s push or pull of `disk`, timed together; each step's ms is the detail. */
  async steps(kind: FloorKind, disk: string, r: number): Promise<Timed> {
    const qmp = this.lab.qmp;
    const bitmap = floorBitmap(kind, disk, r);
    const d = { node: `${disk}-fmt`, size: SIZES[disk]! };
    const dir = this.m.p('out');
    const tag = `fl-${kind}-${disk}-${r}`;
    try {
      if (kind === 'push') {
        const changes = Array.from({ length: DIRTY_WRITES }, (_, k) => ({ offset: dirtyOffset(disk, k), length: DIRTY_BYTES }));
        const tables = l2TablesOf(changes, 65536);
        // Where a push of this disk reads its changes' map first (the 1 TiB disk), that read is timed too,
        // as push.ts does it (the detail `map`): not one of QEMU's own steps, so not in their sum.
        let map: number | undefined;
        if (readsChangeMap(d.size)) {
          const read = await readChangeMap(qmp, this.m.p('run'), d, bitmap);
          map = read.ms;
          if (read.tables.join() !== tables.join()) throw new Error(`the map of ${disk} shows ${read.tables.length} changed L2 tables, not the round's ${tables.length}`);
        }
        const { ms } = await pushSteps(qmp, d, bitmap, dir, tag, { tables });
        return { ms: sumOf(ms, PUSH_QEMU), detail: { ...ms, ...(map === undefined ? {} : { map }) } };
      }
      // The lab's QEMU has one NBD server; Tidemark's pulls start and stop their own between these steps.
      const exportsOf = ExportManager.for(qmp, path.join(this.m.p('run'), 'floor-nbd.sock'));
      const { ms, bytes } = await pullSteps(qmp, exportsOf, d, bitmap, dir, tag);
      if (bytes !== DIRTY_WRITES * DIRTY_BYTES) throw new Error(`QEMU's pull steps on ${disk} read ${bytes} bytes, not the round's ${DIRTY_WRITES * DIRTY_BYTES}`);
      return { ms: sumOf(ms, PULL_QEMU), detail: ms };
    } finally {
      await qmp.execute('block-dirty-bitmap-remove', { node: d.node, name: bitmap });
    }
  }
}
