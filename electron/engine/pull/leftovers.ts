// What a pull creates beyond a push backup (NBD exports, qemu-nbd writers, fleece files), kept in
// the backup journal, and its clean-up when the pull's process died. The backup engine's stale
// recovery calls this first: an export holds the fleece node and the temporary bitmap, so it must
// go before the node can be deleted and the bitmap removed.

import * as fs from 'node:fs';
import { stopProcess } from '../../nbd/qemu-nbd';
import type { QmpClient } from '../../qmp/client';

export interface PullJournal {
  /** QEMU block export ids (block-export-del). */
  exports: string[];
  /** qemu-nbd processes serving the layers being written. */
  qemuNbdPids: number[];
  /** Fleece image files. */
  fleeceFiles: string[];
}

export async function cleanupPullLeftovers(client: QmpClient, pull: PullJournal, log: { add(message: string): void }): Promise<void> {
  if (client.isOpen) {
    for (const id of pull.exports) {
      const gone = client.waitForEvent((e) => e.event === 'BLOCK_EXPORT_DELETED' && e.data.id === id, 3_000, `BLOCK_EXPORT_DELETED ${id}`);
      gone.catch(() => undefined);
      const ok = await client.execute('block-export-del', { id, mode: 'hard' }).then(() => true, () => false);
      if (ok) {
        await gone.catch(() => undefined);
        log.add(`export ${id} of the unfinished pull removed`);
      }
    }
    const left = await client.execute<unknown[]>('query-block-exports').catch(() => undefined);
    if (left && left.length === 0) await client.execute('nbd-server-stop').catch(() => undefined);
  }
  for (const pid of pull.qemuNbdPids) await stopProcess(pid, 'qemu-nbd');
  for (const f of pull.fleeceFiles) fs.rmSync(f, { force: true });
  if (pull.qemuNbdPids.length || pull.fleeceFiles.length) log.add('writers of the unfinished pull stopped, fleecing images deleted');
}
