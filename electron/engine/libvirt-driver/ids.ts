// Ids of libvirt connections and domains in the host. A connection's registry id is "lv-" and a hash
// of its URI (stable across restarts, as endpointId for QMP). A domain's VM id (THE id of the
// contract, the jobs and the events) is "<uri>#<uuid>": it names the connection, and the UUID stays
// the same when a domain is renamed, so two hosts' domains never collide and a rename changes nothing.

import { createHash } from 'node:crypto';
import { parseLibvirtUri } from '../../libvirt/uri';
import { isUuid } from '../../libvirt/domain-xml';

/** True for strings that are meant as libvirt URIs (qemu:, qemu+ssh:, qemu+tls:, …), malformed or not. */
export function looksLikeLibvirtUri(text: string): boolean {
  return /^\s*qemu(\+[a-z]+)?:\/\//i.test(text);
}

/** The URI as Tidemark keeps it (checked; what virsh -c receives). */
export function canonicalUri(text: string): string {
  return parseLibvirtUri(text).text;
}

export function libvirtConnectionId(uri: string): string {
  return `lv-${createHash('sha256').update(canonicalUri(uri)).digest('hex').slice(0, 12)}`;
}

export function libvirtVmId(uri: string, uuid: string): string {
  return `${uri}#${uuid.toLowerCase()}`;
}

/** Splits a VM id made by libvirtVmId; undefined for any other id. */
export function parseLibvirtVmId(id: string): { uri: string; uuid: string } | undefined {
  const at = id.lastIndexOf('#');
  if (at < 0 || !looksLikeLibvirtUri(id)) return undefined;
  const uuid = id.slice(at + 1);
  return isUuid(uuid) ? { uri: id.slice(0, at), uuid } : undefined;
}
