// A libvirt domain as the backup code sees it: the connection (shared with the driver), the
// domain's UUID and name, where it lives, and its durable identity (what the repository is keyed by).

import type { LibvirtConnection } from '../../../libvirt/connection';
import type { DurableIdentity } from '../../identity';

export interface LibvirtDomainHandle {
  conn: LibvirtConnection;
  uuid: string;
  name: string;
  /** The libvirt URI the domain was found at (qemu:///system, qemu+ssh://…). */
  uri: string;
  /** The domain runs on this machine: its image files and folders are ours to see. */
  local: boolean;
  identity: DurableIdentity;
}
