// The checkpoint engine and its QMP connection as a backup session sees a VM (BackupSource).

import type { QmpClient } from '../../qmp/client';
import type { CheckpointEngineApi, PreparedCheckpoint } from '../checkpoints/api';
import type { BackupSource } from '../backup/strategy';
import { TEMP_BITMAP_PREFIX } from '../names';
import { recoverQmpLeftovers } from './recovery';

export function qmpBackupSource(engine: CheckpointEngineApi, client: QmpClient): BackupSource<PreparedCheckpoint> {
  return {
    identity: { key: engine.vmId },
    withLock: (fn, command) => engine.withLock(fn, command),
    async inspect() {
      await engine.health();
      const vm = await engine.vm();
      return {
        vm,
        checkpoints: engine.list(),
        current: engine.current()?.name,
        layout: engine.layout(),
        changesUnusable(since, disk) {
          // The same check the backup's own temporary bitmap goes through (planTempBitmap).
          try {
            engine.tempBitmapActions(since, disk, `${TEMP_BITMAP_PREFIX}probe`);
            return undefined;
          } catch (e) {
            return (e as Error).message;
          }
        },
      };
    },
    prepareCheckpoint: (options) => engine.prepareCreate(options),
    commitCheckpoint: (prepared) => engine.commitCreate(prepared),
    rollbackCheckpoint: (prepared) => engine.rollbackCreate(prepared),
    checkpointNames: async () => new Set(engine.list().map((c) => c.name)),
    isAlive: () => client.isOpen,
    recover: (strategy, journal, log) => recoverQmpLeftovers(client, strategy, journal.backupId, log),
  };
}
