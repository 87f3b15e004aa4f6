// A VM's durable identity: what Tidemark writes to disk about it, so that it finds the VM's
// metadata (STATE/vms/<key>/) and backups (REPO/vms/<key>/, a manifest's `vm`) again after a
// restart, whatever the VM is called in the list. The key is the VM's UUID, else its name, else
// the endpoint it was found at (as discovery reports it in VmInfo.id).
//
// It is NOT the VM id of the contract ("demo", "ep-…"): that one names the VM in the host, the
// drivers and the jobs. Nothing translates results from one to the other: manifests carry the
// durable identity, everything the host reports carries the VM id.

export interface DurableIdentity {
  /** UUID, else name, else endpoint: the directory name under STATE/vms and REPO/vms. */
  key: string;
  name?: string;
  uuid?: string;
}

export function durableIdentityOf(vm: { id: string; name?: string; uuid?: string }): DurableIdentity {
  return { key: vm.id, ...(vm.name ? { name: vm.name } : {}), ...(vm.uuid ? { uuid: vm.uuid } : {}) };
}

/** True when `text` names the VM of `identity`: its key, name or UUID. */
export function namesIdentity(identity: DurableIdentity, text: string): boolean {
  return identity.key === text || identity.name === text || identity.uuid === text;
}
