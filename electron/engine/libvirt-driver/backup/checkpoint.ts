// A backup's checkpoint on a libvirt domain: created by backup-begin --checkpointxml (libvirt
// records it at once), deleted through libvirt when the backup is rolled back.

import type { CheckpointSpec } from '../../../libvirt/checkpoint-xml';
import { deleteCheckpoint } from '../../../libvirt/checkpoints';
import { domainState } from '../../../libvirt/domains';
import { LibvirtError } from '../../../libvirt/errors';
import type { PendingCheckpoint } from '../../backup/strategy';
import { imageInfo, runQemuImg } from '../../backup/qemuimg';
import type { OperationLog } from '../../operation';
import type { LibvirtDomainHandle } from './handle';
import { ensureConnected } from './link';

/** The checkpoint created by backup-begin --checkpointxml. */
export interface LibvirtPendingCheckpoint extends PendingCheckpoint {
  spec: CheckpointSpec;
  /** Image files of its bitmap disks (to remove a bitmap libvirt can no longer delete: domain stopped). */
  images: { disk: string; file: string }[];
}

/**
 * Deletes a backup's checkpoint through libvirt. With the domain stopped libvirt refuses to touch
 * bitmaps ("cannot delete checkpoint for inactive domain"): then only its metadata goes, and on
 * this machine the bitmap is removed from the images (no process holds them).
 */
export async function deleteBackupCheckpoint(h: LibvirtDomainHandle, cp: LibvirtPendingCheckpoint, log?: OperationLog): Promise<void> {
  await ensureConnected(h.conn);
  try {
    await deleteCheckpoint(h.conn, h.uuid, cp.checkpoint.name);
    return;
  } catch (e) {
    if (e instanceof LibvirtError && e.kind === 'no-checkpoint') return; // begin never ran, or it is gone already
    const state = await domainState(h.conn, h.uuid).catch(() => undefined);
    if (state?.state !== 'shutoff') throw e;
  }
  await deleteCheckpoint(h.conn, h.uuid, cp.checkpoint.name, { metadataOnly: true }).catch((e: unknown) => {
    if (!(e instanceof LibvirtError && e.kind === 'no-checkpoint')) throw e;
  });
  if (!h.local) {
    log?.add(`checkpoint ${cp.checkpoint.name}: libvirt's record deleted; its bitmaps may stay in the images on the remote host (the domain is not running)`);
    return;
  }
  for (const img of cp.images) {
    const info = await imageInfo(img.file).catch(() => undefined);
    if (!info?.bitmaps.some((b) => b.name === cp.checkpoint.name)) continue;
    const r = await runQemuImg(['bitmap', '--remove', img.file, cp.checkpoint.name]);
    log?.add(r.code === 0 ? `${img.disk}: bitmap ${cp.checkpoint.name} removed from ${img.file} (the domain is not running)` : `${img.disk}: bitmap ${cp.checkpoint.name} could not be removed from ${img.file}: ${r.stderr.trim()}`);
  }
}

