// The QMP pull's layer writer: the VM's own QEMU opens the new layer (blockdev-add, flushes off)
// and serves it writable on the NBD server that already serves the point in time (a unix socket,
// 0600). No qemu-nbd process to start and stop. The node is journaled before it exists: recovery.ts
// removes a dead backup's node and any export of it. Closing = export removed, then blockdev-del
// (QEMU writes its cached qcow2 metadata to the file); the record step then syncs the file once.
// Just before closing, the layer's facts are read from QEMU (layer-facts.ts), so the record step runs
// no `qemu-img info` for a pulled layer.

import type { ExportManager, QemuExport } from '../../nbd/qemu-exports';
import type { QmpClient } from '../../qmp/client';
import { QmpError } from '../../qmp/errors';
import type { OpenLayerWriter } from '../pull/writer';

/**
 * `journalNode` is called before the node is added (and must have written the journal when it
 * returns); `beforeClose` runs after a successful copy while the layer is still open (not on abort).
 */
export function qemuLayerWriter(client: QmpClient, exportsOf: ExportManager, nodeName: string, journalNode: (name: string) => void, beforeClose?: () => Promise<void>): OpenLayerWriter {
  return async (layer) => {
    journalNode(nodeName);
    // The backing chain is opened too (no "backing": null): a write smaller than a cluster must
    // copy the rest of the cluster from the base, as with any qcow2 writer.
    try {
      await client.execute('blockdev-add', { driver: 'qcow2', 'node-name': nodeName, file: { driver: 'file', filename: layer }, cache: { 'no-flush': true } });
    } catch (e) {
      throw e instanceof QmpError ? new Error(`QEMU cannot open the new layer ${layer}: ${e.desc}`, { cause: e }) : e;
    }
    let exp: QemuExport | undefined;
    const detach = async () => {
      await exp?.remove();
      exp = undefined;
      await client.execute('blockdev-del', { 'node-name': nodeName });
    };
    try {
      exp = await exportsOf.add({ nodeName, writable: true, prefix: 'tidemark-layer' });
    } catch (e) {
      await detach().catch(() => undefined);
      throw e;
    }
    return {
      address: exp.address,
      close: async () => {
        await beforeClose?.();
        await detach();
      },
      abort: () => (client.isOpen ? detach().catch(() => undefined) : Promise.resolve()),
    };
  };
}
