// Who writes a new layer during a pull: Tidemark itself, into the file (qcow2-layer.ts; both drivers),
// or a writable NBD export of the file, opened with its flushes off (qcow2 otherwise flushes around
// each metadata update: 8–770 fdatasyncs for 256 writes, bench/README.md; bench/pull-writer.ts still
// compares QEMU writing it). The record step syncs the file once after close(), before anything records it.

import type { NbdAddress } from '../../nbd/uri';

/** What the copy writes into: a writable NBD export (NbdClient) or the layer file itself (qcow2-layer.ts). */
export interface CopyTarget {
  readonly size: number;
  write(offset: number, data: Buffer): Promise<void>;
  writeZeroes(offset: number, length: number): Promise<void>;
}

export interface LayerWriter {
  /**
   * The writable export of the layer (a unix socket: no TLS needed, 0600), or the layer written
   * directly, which takes only whole clusters of `clusterSize` (the copy aligns its plan to them).
   */
  target: { address: NbdAddress } | { direct: CopyTarget; clusterSize: number };
  /** After a successful copy: closes the layer; everything written is then in the file (not yet synced). */
  close(): Promise<void>;
  /** After a failure: stops writing, best effort (the session deletes the partial file). */
  abort(): Promise<void>;
}

/** Opens `layer` (an existing qcow2 file, its backing file set) for writing. */
export type OpenLayerWriter = (layer: string) => Promise<LayerWriter>;
