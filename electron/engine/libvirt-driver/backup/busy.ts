// libvirt runs one job per domain: a second backup-begin blocks for 30 s and then fails with
// "cannot acquire state change lock". Refuse at once instead, naming the job that runs.

import { jobInfo } from '../../../libvirt/backups';
import type { LibvirtDomainHandle } from './handle';
import { ensureConnected } from './link';

export async function refuseIfBusy(h: LibvirtDomainHandle): Promise<void> {
  await ensureConnected(h.conn, 10_000);
  const info = await jobInfo(h.conn, h.uuid);
  if (info.type !== 'none') {
    throw new Error(`domain ${h.name} already runs a libvirt job (${info.operation ?? 'unknown operation'}${info.operation === 'backup' ? ', e.g. another backup or an export' : ''}); wait for it to end or stop it (virsh domjobabort)`);
  }
}
