// The map of a push's changes, read before its transaction (push.ts tablesAhead) through a temporary
// bitmap and a read-only export of the disk. Both are named after the job's journaled temporary bitmap
// (the bitmap "<tmp>-map", the export "tm-exp-<tmp>-map-<random>"), so that whoever finds them left
// over (the push after a failed read or a rollback, recovery after a dead process) removes them, and
// only them: a journal whose names are not a push's is left alone.

import { removeLeftoverExports, stopIdleNbdServer } from '../../nbd/qemu-exports';
import type { QmpClient } from '../../qmp/client';

/** A backup's temporary bitmap as `backupNames` names it: "tidemark-tmp-bk-<6 hex digits>-<disk index>". */
export const BACKUP_TEMP_BITMAP = /^tidemark-tmp-bk-[0-9a-f]{6}-\d+$/;

/** The change map's bitmap (and export name prefix) of the job whose temporary bitmap is `tmpBitmap`. */
export function changeMapBitmap(tmpBitmap: string): string {
  return `${tmpBitmap}-map`;
}

type Log = { add(message: string): void };

/**
 * Removes what reading the change maps of these disks may have left in QEMU: each export first (it
 * holds the bitmap), QEMU's NBD server if that left it without exports, then each bitmap. Best effort.
 */
export async function removeChangeMaps(client: QmpClient, disks: { tmpBitmap?: string; sourceNode: string }[], log: Log): Promise<void> {
  const maps = disks.flatMap((d) => (d.tmpBitmap && BACKUP_TEMP_BITMAP.test(d.tmpBitmap) ? [{ node: d.sourceNode, name: changeMapBitmap(d.tmpBitmap) }] : []));
  if (maps.length === 0 || !client.isOpen) return;
  const all = await client.execute<{ id: string }[]>('query-block-exports').catch(() => []);
  const ours = all.filter((e) => maps.some((m) => e.id.startsWith(`tm-exp-${m.name}-`)));
  await removeLeftoverExports(client, ours.map((e) => e.id), (id) => log.add(`export ${id} of a change map removed`));
  if (ours.length > 0) await stopIdleNbdServer(client);
  const nodes = await client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string }[] }[]>('query-named-block-nodes', { flat: true }).catch(() => []);
  for (const m of maps) {
    if (!nodes.some((n) => n['node-name'] === m.node && n['dirty-bitmaps']?.some((b) => b.name === m.name))) continue;
    if (await client.execute('block-dirty-bitmap-remove', { node: m.node, name: m.name }).then(() => true, () => false)) log.add(`bitmap ${m.name} of a change map removed`);
  }
}
