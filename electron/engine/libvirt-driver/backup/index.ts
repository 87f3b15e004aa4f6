// Backups and restores of libvirt domains, into the same repository and manifests as QMP-mode
// backups: what the libvirt driver (engine/libvirt-driver/) plugs into the VM-driver seam's
// `backup` and `restore`. See DEVELOPERS.md, "How a libvirt backup flows".

import { describeDomain } from '../../../libvirt/domains';
import type { BackupOps, BackupOutcome } from '../../driver';
import type { RestoreHooks } from '../../backup/restore';
import { runBackupSession } from '../../backup/session';
import { libvirtBackupCancel, libvirtBackupStatus, libvirtExportEnd } from './control';
import type { QemuIds } from './folders';
import type { LibvirtDomainHandle } from './handle';
import { LibvirtPullStrategy } from './pull';
import { LibvirtPushStrategy } from './push';
import { libvirtRestoreHooks as restoreHooks } from './restore-hooks';
import { libvirtBackupSource } from './source';

export type { LibvirtDomainHandle } from './handle';
export { inPlaceTargets } from './restore-hooks';
/** The per-domain lock backups and restores hold; the driver's checkpoint operations should take it too. */
export { withDomainLock } from './source';

export interface LibvirtBackupTuning {
  /** Pull copies: largest read/write and pieces in flight (defaults 4 MiB × 4). */
  pieceBytes?: number;
  parallel?: number;
}

/** QEMU's uid:gid, from the running domain's DAC label (what the staging and run folders are opened to). */
function qemuIds(h: LibvirtDomainHandle): () => Promise<QemuIds> {
  return async () => (await describeDomain(h.conn, h.uuid)).dac;
}

export function libvirtBackupOps(h: LibvirtDomainHandle, tuning: LibvirtBackupTuning = {}): BackupOps {
  return {
    async begin(spec, reporter): Promise<BackupOutcome> {
      if (spec.exportOnly?.tcp) throw new Error('a libvirt pull exports on a unix socket only (TCP with TLS is not supported for libvirt domains yet)');
      if (spec.mode === 'push' && spec.speedMiBps !== undefined) throw new Error('libvirt 9.0 backups take no speed limit; leave out --speed for a libvirt domain');
      if (spec.quiesce?.agent !== undefined) throw new Error(`domain ${h.name}: --agent is for QMP VMs; libvirt freezes the guest through the domain's own guest agent channel`);
      const quiesce = spec.quiesce !== undefined;
      const strategy = spec.mode === 'push'
        ? new LibvirtPushStrategy(h, spec.repo, qemuIds(h), quiesce)
        : new LibvirtPullStrategy(h, qemuIds(h), { ...(spec.scratch?.dir !== undefined ? { scratchDir: spec.scratch.dir } : {}), exportOnly: spec.exportOnly !== undefined, quiesce, ...tuning });
      const r = await runBackupSession(libvirtBackupSource(h), strategy, {
        repo: spec.repo, ...(spec.full !== undefined ? { full: spec.full } : {}), ...(spec.since !== undefined ? { since: spec.since } : {}),
        ...(spec.checkpoint !== undefined ? { checkpoint: spec.checkpoint } : {}), ...(spec.disks !== undefined ? { disks: spec.disks } : {}),
        ...(spec.exportOnly ? { onExports: spec.exportOnly.onReady } : {}),
      }, reporter);
      return { backupId: r.backupId, ...(r.manifest ? { manifest: r.manifest } : {}), ...(r.checkpoint ? { checkpoint: r.checkpoint } : {}), scratchPeakBytes: r.scratchPeakBytes };
    },
    end: (repo, outcome) => libvirtExportEnd(h, repo, outcome),
    status: (repo) => libvirtBackupStatus(h, repo),
    cancel: (repo) => libvirtBackupCancel(h, repo),
  };
}

export function libvirtRestoreHooks(h: LibvirtDomainHandle): RestoreHooks {
  return restoreHooks(h);
}
