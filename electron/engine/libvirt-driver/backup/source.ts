// A libvirt domain as a backup session sees it (BackupSource). libvirt keeps the checkpoint
// metadata and records a backup's checkpoint when backup-begin runs (not when the backup
// succeeds), so: "prepare" only builds the checkpoint XML, "commit" checks libvirt has it, and
// "rollback" deletes it through libvirt. Recovery of a dead backup deletes it too, because the
// session would take a checkpoint libvirt lists for a recorded one.

import type { Checkpoint } from '../../../../shared/domain';
import type { CheckpointSpec } from '../../../libvirt/checkpoint-xml';
import { listCheckpointNames } from '../../../libvirt/checkpoints';
import type { BackupJournal, StrategyJournal } from '../../backup/lock';
import type { BackupSource } from '../../backup/strategy';
import { deleteBackupCheckpoint, type LibvirtPendingCheckpoint } from './checkpoint';
import type { OperationLog } from '../../operation';
import type { LibvirtDomainHandle } from './handle';
import { withDomainLock } from '../domain-lock';
import { ensureConnected } from './link';
import { recoverLibvirtLeftovers } from './recovery';
import { changesUnusable, readDomainView } from './vm-view';

export function libvirtBackupSource(h: LibvirtDomainHandle): BackupSource<LibvirtPendingCheckpoint> {
  let images: { disk: string; file: string }[] = [];
  let current: string | undefined;
  return {
    identity: h.identity,
    withLock: (fn) => withDomainLock(h.identity.key, fn),
    async inspect() {
      await ensureConnected(h.conn, 10_000);
      const view = await readDomainView(h);
      if (view.currentAmbiguous) {
        throw new Error(`domain ${h.name} has several leaf checkpoints and libvirt does not say which is current; a backup would give its checkpoint an unknown parent (delete or redefine the extra branch first)`);
      }
      images = view.vm.disks.map((d) => ({ disk: d.name, file: d.imageFile }));
      current = view.current;
      return {
        vm: view.vm, checkpoints: view.checkpoints, ...(view.current !== undefined ? { current: view.current } : {}), layout: 'independent',
        changesUnusable: (since, disk) => changesUnusable(view.sized, since, disk),
      };
    },
    async prepareCheckpoint(options) {
      const now = Date.now();
      const disks = options.disks ?? [];
      const checkpoint: Checkpoint = {
        name: options.name!, ...(options.description ? { description: options.description } : {}), ...(current !== undefined ? { parent: current } : {}),
        creationTime: Math.floor(now / 1000), createdAtMs: now,
        disks: disks.map((d) => ({ name: d.name, checkpoint: d.checkpoint, ...(d.checkpoint === 'bitmap' ? { bitmap: options.name! } : {}) })),
        layout: 'independent',
      };
      const spec: CheckpointSpec = { name: options.name!, ...(options.description ? { description: options.description } : {}), disks: disks.map((d) => ({ name: d.name, checkpoint: d.checkpoint })) };
      return { checkpoint, spec, images: images.filter((i) => disks.some((d) => d.name === i.disk && d.checkpoint === 'bitmap')) };
    },
    async commitCheckpoint(prepared) {
      // libvirt recorded it when the backup began; make sure it is still there.
      await ensureConnected(h.conn);
      const names = await listCheckpointNames(h.conn, h.uuid);
      if (!names.includes(prepared.checkpoint.name)) throw new Error(`checkpoint ${prepared.checkpoint.name} is no longer in libvirt's metadata of ${h.name}`);
    },
    rollbackCheckpoint: (prepared) => deleteBackupCheckpoint(h, prepared),
    async checkpointNames() {
      await ensureConnected(h.conn);
      return new Set(await listCheckpointNames(h.conn, h.uuid));
    },
    isAlive: () => true,
    recover: (strategy: StrategyJournal | undefined, journal: BackupJournal, log: OperationLog) => recoverLibvirtLeftovers(h, strategy, journal, log),
  };
}

export { withDomainLock };
