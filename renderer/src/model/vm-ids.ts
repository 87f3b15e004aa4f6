// Which VM an id names: the host's VM list uses its own ids ("demo"), while backups and some jobs
// carry the engine's identity (the UUID, else the name).

import type { VmInfo } from '../../../shared/domain';

/** True when `id` names the VM `summaryId` (whose engine identity is `info`, once loaded). */
export function isSameVm(id: string, summaryId: string, info: VmInfo | undefined): boolean {
  return id === summaryId || (info !== undefined && (id === info.id || (info.uuid !== undefined && id === info.uuid)));
}
