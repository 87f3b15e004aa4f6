// The VM registry: every connection the host knows (the demo VM first, then the endpoints and libvirt
// URIs the user added, persisted in STATE/endpoints.json, then transient ones such as the CLI's --connect), and
// through them every VM. A VM is found by its id (the contract's), or by its durable identity
// (to find the VM a backup manifest names). Connections are created here; what they do is theirs.

import * as fs from 'node:fs';
import type { VmSummary } from '../../shared/contract';
import type { VmConnection, VmDriver } from '../engine/driver';
import { namesIdentity } from '../engine/identity';
import { LibvirtUriConnection } from '../engine/libvirt-driver/connection';
import { canonicalUri, libvirtConnectionId, looksLikeLibvirtUri } from '../engine/libvirt-driver/ids';
import { QmpEndpointConnection, endpointId } from '../engine/qmp-driver/connection';
import { mkdirPrivate, writeFileAtomic } from '../os/atomic-file';
import { formatEndpoint, parseEndpoint } from '../qmp/endpoint';

export { endpointId, libvirtConnectionId, looksLikeLibvirtUri };

/** An endpoint as endpoints.json keeps it: a QMP endpoint, or a libvirt URI (qemu:///system, qemu+ssh://…). */
export interface StoredEndpoint {
  endpoint: string;
  label: string;
  /** The durable identity key of the VM found there at the last connection (for its offline view). */
  vmId?: string;
}

/** Reads endpoints.json; throws, naming the file and the entry, when it is damaged. */
export function readEndpoints(file: string): StoredEndpoint[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file} is not valid JSON (${(e as Error).message}); fix or remove it`);
  }
  if (!Array.isArray(data)) throw new Error(`${file} must hold a JSON array of endpoints; fix or remove it`);
  return data.map((x: unknown, i) => {
    const r = x as Partial<StoredEndpoint> | null;
    if (!r || typeof r.endpoint !== 'string' || typeof r.label !== 'string') throw new Error(`${file}: entry ${i} needs "endpoint" and "label" strings; fix or remove it`);
    if (r.vmId !== undefined && (typeof r.vmId !== 'string' || r.vmId === '')) throw new Error(`${file}: entry ${i} has a "vmId" that is not a non-empty string; fix or remove it`);
    const endpoint = looksLikeLibvirtUri(r.endpoint) ? canonicalUri(r.endpoint) : formatEndpoint(parseEndpoint(r.endpoint));
    return { endpoint, label: r.label, ...(r.vmId !== undefined ? { vmId: r.vmId } : {}) };
  });
}

export interface RegistryOptions {
  /** STATE/endpoints.json */
  file: string;
  stateDir: string;
  mode: 'eager' | 'on-demand';
  offlineReads: boolean;
  /** The list of VMs or one's state changed ('vm:list'). */
  onListChanged(): void;
}

interface Entry {
  connection: VmConnection;
  /** Endpoints: written to endpoints.json unless transient. */
  endpoint?: QmpEndpointConnection;
  /** libvirt URIs: written to endpoints.json unless transient. */
  libvirt?: { connection: LibvirtUriConnection; label: string };
  transient: boolean;
}

export class VmRegistry {
  private readonly entries = new Map<string, Entry>();
  private readonly watched = new WeakSet<VmDriver>();

  constructor(private readonly o: RegistryOptions) {}

  /** Adds a connection (the demo VM, a libvirt URI…) that is not an endpoint of endpoints.json. */
  addConnection(connection: VmConnection): void {
    this.entries.set(connection.id, { connection, transient: true });
    this.watch(connection);
  }

  private watch(connection: VmConnection): void {
    // A libvirt connection's domains come and go: each driver is watched once.
    const watchNew = () => {
      for (const vm of connection.vms()) {
        if (this.watched.has(vm)) continue;
        this.watched.add(vm);
        vm.on('state', () => this.o.onListChanged());
      }
    };
    watchNew();
    connection.onVmsChanged(() => {
      watchNew();
      this.o.onListChanged();
    });
  }

  /**
   * Adds (or finds) the endpoint `text`. A transient entry becomes persistent when `persist`.
   * Returns the entry and whether it is new.
   */
  addEndpoint(text: string, opts: { label?: string; persist: boolean; rememberedKey?: string }): { connection: QmpEndpointConnection; added: boolean } {
    const endpoint = formatEndpoint(parseEndpoint(text));
    const id = endpointId(endpoint);
    const existing = this.entries.get(id);
    if (existing?.endpoint) {
      if (existing.transient && opts.persist) {
        existing.transient = false;
        if (opts.label?.trim()) existing.endpoint.label = opts.label.trim();
        this.save();
        this.o.onListChanged();
      }
      return { connection: existing.endpoint, added: false };
    }
    const connection = new QmpEndpointConnection(endpoint, {
      endpoint, label: opts.label?.trim() || endpoint, stateDir: this.o.stateDir, mode: this.o.mode, offlineReads: this.o.offlineReads,
      ...(opts.rememberedKey !== undefined ? { rememberedKey: opts.rememberedKey } : {}),
      onSeen: () => {
        if (this.entries.get(id)?.transient !== false) return;
        try {
          this.save();
        } catch {
          // only the offline view of this VM needs it; the next connection tries again
        }
      },
    });
    this.entries.set(id, { connection, endpoint: connection, transient: !opts.persist });
    this.watch(connection);
    return { connection, added: true };
  }

  /** Adds (or finds) the libvirt connection for URI `text` (checked: a malformed URI is refused, naming it). */
  addLibvirt(text: string, opts: { label?: string; persist: boolean }): { connection: LibvirtUriConnection; added: boolean } {
    const uri = canonicalUri(text);
    const id = libvirtConnectionId(uri);
    const existing = this.entries.get(id);
    if (existing?.libvirt) {
      if (existing.transient && opts.persist) {
        existing.transient = false;
        if (opts.label?.trim()) existing.libvirt.label = opts.label.trim();
        this.save();
        this.o.onListChanged();
      }
      return { connection: existing.libvirt.connection, added: false };
    }
    const connection = new LibvirtUriConnection(uri, { mode: this.o.mode });
    this.entries.set(id, { connection, libvirt: { connection, label: opts.label?.trim() || uri }, transient: !opts.persist });
    this.watch(connection);
    return { connection, added: true };
  }

  /** Forgets a connection (after it was closed). */
  remove(id: string): void {
    this.entries.delete(id);
  }

  /** Puts back an entry whose removal could not be saved. */
  reinstate(id: string, entry: Entry): void {
    this.entries.set(id, entry);
  }

  entry(id: string): Entry | undefined {
    return this.entries.get(id);
  }

  connections(): VmConnection[] {
    return [...this.entries.values()].map((e) => e.connection);
  }

  /** Every VM, in display order. */
  vms(): VmDriver[] {
    return this.connections().flatMap((c) => [...c.vms()]);
  }

  find(vmId: string): VmDriver | undefined {
    return this.vms().find((v) => v.id === vmId);
  }

  /** The VM with this id, or an error naming the id. */
  vm(vmId: string): VmDriver {
    const vm = this.find(vmId);
    if (!vm) throw new Error(`no VM with id ${JSON.stringify(vmId)} (see vm:list)`);
    return vm;
  }

  /** The VM whose durable identity (key, name or UUID) is `text` (as a manifest names it). */
  byIdentity(text: string): VmDriver | undefined {
    return this.vms().find((v) => {
      const identity = v.identity();
      return identity !== undefined && namesIdentity(identity, text);
    });
  }

  /** On-demand mode (the CLI): connects every libvirt connection and lists its domains now (eager
   *  connections poll by themselves). A transient one's failure (--connect) is thrown, naming the URI
   *  and why; a stored one's shows in its row. */
  async refreshLibvirt(): Promise<void> {
    for (const e of this.entries.values()) {
      if (!e.libvirt) continue;
      try {
        await e.libvirt.connection.refresh();
      } catch (err) {
        if (e.transient) throw err;
      }
    }
  }

  /** Every VM's row; a libvirt connection with no domain to list shows as one row of its own. */
  summaries(): VmSummary[] {
    return [...this.entries.values()].flatMap((e) => {
      const vms = e.connection.vms();
      if (e.libvirt && vms.length === 0) return [{ ...e.libvirt.connection.summary(), label: e.libvirt.label }];
      return vms.map((v) => v.summary());
    });
  }

  /** Writes the persistent endpoints to endpoints.json. */
  save(): void {
    const list: StoredEndpoint[] = [...this.entries.values()]
      .filter((e) => (e.endpoint || e.libvirt) && !e.transient)
      .map((e) => e.libvirt
        ? { endpoint: e.libvirt.connection.uri, label: e.libvirt.label }
        : { endpoint: e.endpoint!.endpoint, label: e.endpoint!.label, ...(e.endpoint!.rememberedKey !== undefined ? { vmId: e.endpoint!.rememberedKey } : {}) });
    mkdirPrivate(this.o.stateDir);
    writeFileAtomic(this.o.file, JSON.stringify(list, null, 2) + '\n');
  }
}
