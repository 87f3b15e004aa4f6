// The live dirty map of one disk since a checkpoint. QMP can only count dirty bytes; to see *where*
// they are we build a temporary, disabled copy of "changes since X" (the checkpoint engine's
// tempBitmapActions, one transaction), export the disk read-only over QEMU's NBD server with that
// bitmap, and read NBD_CMD_BLOCK_STATUS for qemu:dirty-bitmap:TMP. Everything is torn down after the
// read (client, export, bitmap), also when it fails, so nothing is left behind.

import { randomBytes } from 'node:crypto';
import type { DirtyExtent, DirtyMap } from '../../../shared/contract';
import type { DiskInfo } from '../../../shared/domain';
import { NbdClient } from '../../nbd/client';
import { dirtyBitmapContext } from '../../nbd/protocol';
import { ExportManager, nbdSocketPath, type QemuExport } from '../../nbd/qemu-exports';
import type { QmpClient } from '../../qmp/client';
import { QmpError } from '../../qmp/errors';
import type { CheckpointEngineApi, QmpAction } from '../checkpoints/api';
import { TEMP_BITMAP_PREFIX } from '../names';
import { bucketize, dirtyBytes, toDirtyExtents } from './heatmap';

export interface DirtyMapDeps {
  qmp: QmpClient;
  engine: Pick<CheckpointEngineApi, 'vmId' | 'vm' | 'tempBitmapActions'>;
  stateDir: string;
  /** The VM id the map is reported under (the driver's; default: the VM's durable identity). */
  vmId?: string;
}

export interface DirtyMapOptions {
  disk: string;
  /** Baseline checkpoint name. */
  since: string;
  /** Heatmap size (default 256, at most 4096). */
  buckets?: number;
}

export const DEFAULT_BUCKETS = 256;
const MAX_BUCKETS = 4096;
/** QEMU's largest bitmap granularity (a uint32 power of two). */
const MAX_GRANULARITY = 0x8000_0000;

export async function readDirtyMap(deps: DirtyMapDeps, opts: DirtyMapOptions): Promise<DirtyMap> {
  const count = opts.buckets ?? DEFAULT_BUCKETS;
  if (!Number.isInteger(count) || count < 1 || count > MAX_BUCKETS) throw new RangeError(`buckets must be an integer from 1 to ${MAX_BUCKETS}, got ${count}`);
  const started = performance.now();
  const at = Date.now();
  const vm = await deps.engine.vm();
  const disk = vm.disks.find((d) => d.name === opts.disk);
  if (!disk) throw new Error(`disk ${opts.disk} is not attached to VM ${vm.id} (disks: ${vm.disks.map((d) => d.name).join(', ')})`);

  const { extents, granularity } = await readDirtyExtents(deps, disk, opts.since);
  const { buckets, bucketBytes } = bucketize(extents, disk.virtualSize, count);
  return {
    vmId: deps.vmId ?? vm.id, disk: disk.name, since: opts.since, granularity, virtualSize: disk.virtualSize,
    extents, dirtyBytes: dirtyBytes(extents), buckets, bucketBytes, at, elapsedMs: performance.now() - started,
  };
}

/**
 * Where `disk` changed since checkpoint `since`, as sorted dirty/clean extents, and the granularity
 * they were read at. Removes its bitmap and export, also on failure (unless QEMU refuses).
 * `tmpBitmap`: the temporary bitmap's name (TEMP_BITMAP_PREFIX…), when the caller must be able to find
 * both later; the export's name then starts with it (qmp-driver/change-map.ts). `granularity`: read the
 * map this coarse (never finer than the bitmaps record), for a caller that only needs which large
 * regions changed: QEMU merges the fine bitmaps into a coarse one by walking their dirty areas, so a
 * 1 TiB disk's map is a few hundred bytes to build instead of 2 MiB (bench/README.md, "Phase 14").
 * `removeLater`: return as soon as the map is read; `removed` settles once the export and the bitmap are
 * gone (QEMU removes them while the caller goes on), or rejects when QEMU kept one; the caller awaits it.
 * Otherwise it has settled.
 */
export async function readDirtyExtents(
  deps: Pick<DirtyMapDeps, 'qmp' | 'stateDir'> & { engine: Pick<CheckpointEngineApi, 'vmId' | 'tempBitmapActions'> },
  disk: DiskInfo,
  since: string,
  options: { tmpBitmap?: string; granularity?: number; removeLater?: boolean } = {},
): Promise<{ extents: DirtyExtent[]; granularity: number; removed: Promise<void> }> {
  const { tmpBitmap } = options;
  const tmp = tmpBitmap ?? `${TEMP_BITMAP_PREFIX}map-${randomBytes(6).toString('hex')}`;
  const { actions, granularity } = keepSourceGranularity(deps.engine.tempBitmapActions(since, disk.name, tmp), disk, options.granularity);
  // Unless QEMU refused the transaction, its bitmap may exist (a lost reply too): it is removed at the end.
  let made = true;
  let exp: QemuExport | undefined;
  // The bitmap's removal is tried even when the export's failed; the first failure is the one reported.
  const remove = async () => {
    let failure: unknown;
    await exp?.remove().catch((e: unknown) => (failure = e));
    if (made) await deps.qmp.execute('block-dirty-bitmap-remove', { node: disk.nodeName, name: tmp }).catch((e: unknown) => (failure ??= e));
    if (failure !== undefined) throw failure;
  };
  let extents: DirtyExtent[];
  try {
    try {
      await deps.qmp.execute('transaction', { actions });
    } catch (e) {
      if (e instanceof QmpError) made = false;
      throw e instanceof QmpError ? new Error(`cannot build the map of changes since ${since} on ${disk.name}: ${e.desc}`, { cause: e }) : e;
    }
    const exports = ExportManager.for(deps.qmp, nbdSocketPath(deps.stateDir, deps.engine.vmId));
    exp = await exports.add({ nodeName: disk.nodeName, bitmaps: [tmp], prefix: tmpBitmap ?? 'tidemark-map' });
    const ctx = dirtyBitmapContext(tmp);
    const client = await NbdClient.connect(exp.address, { metaContexts: [ctx] });
    try {
      extents = toDirtyExtents(await client.extentsIn(ctx));
    } finally {
      await client.close();
    }
  } catch (e) {
    await remove().catch(() => undefined); // the read's own failure is the one to report
    throw e;
  }
  const removed = remove();
  // The map was read: a bitmap or export QEMU kept is not this read's failure. A caller that removes
  // later learns of it from `removed` (and removes what is left); here it goes as before.
  if (!options.removeLater) await removed.catch(() => undefined);
  return { extents, granularity, removed };
}

/**
 * The temporary bitmap gets the granularity of the bitmaps merged into it. Left to QEMU it would
 * take the disk's default (the cluster size, 64 KiB), and a 4 KiB-granularity checkpoint would be
 * mapped 16 times coarser than it records. `coarsest`: a coarser granularity the caller asks for
 * (a power of two), used where it is coarser than the sources'.
 */
export function keepSourceGranularity(actions: QmpAction[], disk: DiskInfo, coarsest?: number): { actions: QmpAction[]; granularity: number } {
  if (coarsest !== undefined && !(Number.isInteger(coarsest) && coarsest >= 512 && coarsest <= MAX_GRANULARITY && (coarsest & (coarsest - 1)) === 0)) {
    throw new RangeError(`a dirty map's granularity must be a power of two from 512 bytes to 2 GiB, got ${coarsest}`);
  }
  const merge = actions.find((a) => a.type === 'block-dirty-bitmap-merge');
  const sources = ((merge?.data.bitmaps as unknown[] | undefined) ?? []).filter((b): b is string => typeof b === 'string');
  const grans = sources.map((s) => disk.bitmaps.find((b) => b.name === s)?.granularity).filter((g): g is number => g !== undefined);
  const granularity = Math.max(grans.length ? Math.min(...grans) : disk.granularity, coarsest ?? 0);
  return {
    granularity,
    actions: actions.map((a) => (a.type === 'block-dirty-bitmap-add' ? { ...a, data: { ...a.data, granularity } } : a)),
  };
}
