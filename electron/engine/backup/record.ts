// The record step of every backup (push and pull, any driver): a finished layer renamed into place,
// checksummed, checked and described for the manifest; the manifest itself; the job log file.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { VmInfo } from '../../../shared/domain';
import { mkdirPrivate, PRIVATE_FILE_MODE, renameDurable, syncFileData, writeFileAtomic } from '../../os/atomic-file';
import type { OperationLog } from '../operation';
import { checksumFields, checksumFile } from './checksum';
import { MANIFEST_FORMAT, MANIFEST_VERSION, type BackupKind, type BackupManifest, type BackupManifestDisk } from './manifest';
import type { DiskPlan } from './plan';
import { imageInfo } from './qemuimg';
import { BackupRepository } from './repository';

export const TOOL = 'tidemark 0.1.0';

/** What a driver read from the hypervisor already (QMP), so that no `qemu-img info` runs for it. */
export interface LayerFacts {
  /** The layer's virtual size as the hypervisor had it open, before it closed it. */
  virtualSize: number;
  /** The source image's qcow2 compat level and cluster size. */
  sourceCompat?: string;
  sourceClusterSize?: number;
}

/**
 * Checksums a finished layer, checks its size, describes it, and puts it into place (synced,
 * renamed, the folder fsynced: durable before the manifest that names it is written). The size and
 * the source's compat come from `facts` when the driver has them, else from qemu-img. `earlySync` is
 * the writer's own writeback of the layer while it was written (os/early-writeback.ts), if any: its
 * error fails the layer like this step's own sync.
 */
export async function recordLayer(
  d: DiskPlan, partial: string, final: string, id: string, bytesCopied: number, checkpointBitmap: boolean, facts?: LayerFacts, earlySync?: Promise<void>,
): Promise<BackupManifestDisk> {
  fs.chmodSync(partial, PRIVATE_FILE_MODE);
  // Its writer has closed the layer, so its bytes are final. This is the one place a layer is synced
  // (every writer runs with flushes off): the disk writes it back (fdatasync, in the thread pool) while
  // this process hashes it from the page cache and (without facts) two qemu-img processes read
  // headers, side by side. All of it only reads or syncs the partial file; it is renamed after every step succeeded.
  const [sum, size, src] = await Promise.all([
    checksumFile(partial),
    facts ? facts.virtualSize : imageInfo(partial, { format: 'qcow2' }).then((i) => i.virtualSize),
    facts ? { compat: facts.sourceCompat, clusterSize: facts.sourceClusterSize } : imageInfo(d.disk.imageFile, { shared: true }).catch(() => undefined),
    syncFileData(partial),
    earlySync,
  ]);
  if (size !== d.disk.virtualSize) throw new Error(`layer ${final} has size ${size}, expected ${d.disk.virtualSize}`);
  renameDurable(partial, final);
  const entry: BackupManifestDisk = {
    name: d.disk.name,
    kind: d.kind,
    image: BackupRepository.imageRel(d.disk.name, id),
    virtualSize: d.disk.virtualSize,
    bytesCopied,
    fileSize: sum.size,
    ...checksumFields(sum),
    sourceImage: d.disk.imageFile,
    sourceFormat: d.disk.format,
    checkpointBitmap,
  };
  if (d.since !== undefined) entry.since = d.since;
  if (d.base !== undefined) {
    entry.base = d.base;
    entry.backingFile = `${d.base}.qcow2`;
  }
  if (d.fallbackReason !== undefined) entry.fallbackReason = d.fallbackReason;
  if (src?.compat) entry.sourceCompat = src.compat;
  if (src?.clusterSize ?? d.disk.clusterSize) entry.sourceClusterSize = src?.clusterSize ?? d.disk.clusterSize;
  return entry;
}

export interface ManifestFacts {
  id: string;
  vm: VmInfo;
  kind: BackupKind;
  since?: string;
  checkpoint?: string;
  layout?: BackupManifest['layout'];
  startedAt: number;
  tool: string;
  disks: BackupManifestDisk[];
}

/** The manifest of a finished backup; `vm` is the VM's durable identity (UUID, else name). */
export function buildManifest(f: ManifestFacts): BackupManifest {
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    id: f.id,
    vm: { id: f.vm.id, ...(f.vm.name ? { name: f.vm.name } : {}), ...(f.vm.uuid ? { uuid: f.vm.uuid } : {}) },
    kind: f.kind,
    ...(f.since !== undefined ? { since: f.since } : {}),
    ...(f.checkpoint !== undefined ? { checkpoint: f.checkpoint } : {}),
    ...(f.layout ? { layout: f.layout } : {}),
    startedAt: f.startedAt,
    completedAt: Date.now(),
    qemuVersion: f.vm.qemuVersion,
    tool: f.tool,
    disks: f.disks,
  };
}

/** The job log next to the manifest; a convenience whose failure never changes the backup's outcome. */
export function writeLogFile(repo: BackupRepository, vmKey: string, id: string, log: OperationLog): void {
  try {
    const file = repo.logPath(vmKey, id);
    mkdirPrivate(path.dirname(file));
    writeFileAtomic(file, log.text());
  } catch {
    // the log is a convenience; its failure must not change the backup's outcome
  }
}
