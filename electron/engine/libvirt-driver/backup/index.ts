// PLACEHOLDER until the libvirt backup branch (wip/lvbackup) lands: its real module replaces this
// file with the same exports. The driver calls only these two functions.

import type { LibvirtConnection } from '../../../libvirt/connection';
import type { BackupOps, DurableIdentity, RestoreHooks } from '../../driver';

/** One domain, as the driver hands it to the backup code. */
export interface LibvirtDomainHandle {
  conn: LibvirtConnection;
  uuid: string;
  name: string;
  uri: string;
  /** The URI is local (qemu:///…): the images and push targets are files on this machine. */
  local: boolean;
  identity: DurableIdentity;
}

const NOT_BUILT = 'libvirt backups are not built yet';

export function libvirtBackupOps(_h: LibvirtDomainHandle): BackupOps {
  const no = async (): Promise<never> => {
    throw new Error(NOT_BUILT);
  };
  return { begin: no, end: no, status: no, cancel: no };
}

export function libvirtRestoreHooks(_h: LibvirtDomainHandle): RestoreHooks {
  const no = async (): Promise<never> => {
    throw new Error(NOT_BUILT);
  };
  return { assertStopped: no, recordInPlace: no };
}
