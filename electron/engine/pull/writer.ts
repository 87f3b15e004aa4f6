// Who writes a new layer during a pull: an NBD export of the layer file, writable, opened with its
// flushes off (qcow2 otherwise flushes around each metadata update: 8–770 fdatasyncs for 256 writes,
// bench/README.md). The copy syncs the file once after close(), before anything records it.
// Two writers: QEMU itself (the VM's own NBD server, QMP driver: engine/qmp-driver/pull-writer.ts)
// and a qemu-nbd process (below; libvirt's pull, where Tidemark may not add nodes to the domain).

import { startQemuNbd } from '../../nbd/qemu-nbd';
import type { NbdAddress } from '../../nbd/uri';

export interface LayerWriter {
  /** The writable export of the layer (a unix socket: no TLS needed, 0600). */
  address: NbdAddress;
  /** After a successful copy: closes the layer; everything written is then in the file (not yet synced). */
  close(): Promise<void>;
  /** After a failure: stops writing, best effort (the session deletes the partial file). */
  abort(): Promise<void>;
}

/** Opens `layer` (an existing qcow2 file, its backing file set) for writing. */
export type OpenLayerWriter = (layer: string) => Promise<LayerWriter>;

/** A qemu-nbd process per layer, `--cache=unsafe`; `onPid` hears its pid while it runs (journal it), then undefined. */
export function qemuNbdWriter(runDir: string, onPid: (pid: number | undefined) => void): OpenLayerWriter {
  return async (layer) => {
    const server = await startQemuNbd({ image: layer, format: 'qcow2', runDir, exportName: 'layer', cache: 'unsafe' });
    onPid(server.pid);
    return {
      address: server.address,
      close: async () => {
        await server.stop(); // qemu-nbd writes its cached qcow2 metadata to the file as it exits
        onPid(undefined);
      },
      abort: () => server.stop().catch(() => undefined),
    };
  };
}
