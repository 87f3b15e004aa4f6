// A libvirt URI in the VM registry: one connection (link.ts), many domains, each a LibvirtVmDriver
// with its own state. In eager mode (the app) it keeps connected and polls libvirt every few seconds
// (libvirt's events are not available through virsh): the domain list (defined, undefined, renamed,
// started, stopped) and each domain's checkpoint names (made or deleted by virsh or another tool).
// In on-demand mode (the CLI) it connects and lists when asked (refresh()).

import type { VmSummary } from '../../../shared/contract';
import { listCheckpointNames } from '../../libvirt/checkpoints';
import { listDomains, type DomainSummary } from '../../libvirt/domains';
import { isUuid } from '../../libvirt/domain-xml';
import { LibvirtError } from '../../libvirt/errors';
import type { VmConnection } from '../driver';
import { LibvirtVmDriver } from './driver';
import { canonicalUri, libvirtConnectionId } from './ids';
import { LibvirtLink, type LinkOptions } from './link';

export interface LibvirtUriOptions {
  mode: 'eager' | 'on-demand';
  /** How often the domain list is polled in eager mode (default 2 s). */
  pollMs?: number;
  backoffMs?: LinkOptions['backoffMs'];
  connection?: LinkOptions['connection'];
}

export class LibvirtUriConnection implements VmConnection {
  readonly id: string;
  readonly kind = 'libvirt' as const;
  readonly uri: string;
  readonly link: LibvirtLink;
  private drivers = new Map<string, LibvirtVmDriver>();
  /** uuid → its checkpoint names at the last poll. */
  private readonly seenCheckpoints = new Map<string, string>();
  private readonly listeners = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private closed = false;

  constructor(uri: string, private readonly o: LibvirtUriOptions) {
    this.uri = canonicalUri(uri);
    this.id = libvirtConnectionId(this.uri);
    this.link = new LibvirtLink(this.uri, {
      mode: o.mode,
      ...(o.backoffMs ? { backoffMs: o.backoffMs } : {}),
      ...(o.connection ? { connection: o.connection } : {}),
      onState: () => {
        for (const d of this.drivers.values()) d.emitState();
        if (this.drivers.size === 0) this.notify(); // the connection's own row changed
      },
      onOpen: () => void this.poll(),
    });
  }

  vms(): readonly LibvirtVmDriver[] {
    return [...this.drivers.values()];
  }

  /** The row the VM panel shows while no domain is known (never connected, or none defined). */
  summary(): VmSummary {
    const s: VmSummary = { id: this.id, label: this.uri, endpoint: this.uri, kind: 'libvirt', connection: this.link.state, connectionId: this.id };
    return this.link.detail !== undefined && this.link.state !== 'connected' ? { ...s, detail: this.link.detail } : s;
  }

  onVmsChanged(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }

  start(): void {
    if (this.closed) return;
    this.link.start();
    this.timer ??= setInterval(() => {
      if (this.link.live) void this.poll();
    }, this.o.pollMs ?? 2000);
    this.timer.unref?.();
  }

  /** Connects when needed and reads the domain list now. */
  async refresh(): Promise<void> {
    await this.link.ensure();
    await this.poll(true);
  }

  private poll(throwErrors = false): Promise<void> {
    const run = (this.polling ??= this.readAll().finally(() => {
      this.polling = undefined;
    }));
    return throwErrors ? run : run.catch(() => undefined);
  }

  private async readAll(): Promise<void> {
    if (this.closed) return;
    const conn = await this.link.ensure();
    let domains: DomainSummary[];
    try {
      domains = await listDomains(conn);
    } catch (e) {
      this.link.failed(e);
      throw e;
    }
    const next = new Map<string, LibvirtVmDriver>();
    let changed = false;
    for (const d of domains) {
      const known = this.drivers.get(d.uuid);
      if (known) known.update(d.name, d.state);
      else changed = true;
      next.set(d.uuid, known ?? new LibvirtVmDriver({ link: this.link, connectionId: this.id, uuid: d.uuid, name: d.name, state: d.state }));
    }
    for (const uuid of this.drivers.keys()) {
      if (!next.has(uuid)) {
        changed = true;
        this.seenCheckpoints.delete(uuid);
      }
    }
    this.drivers = next;
    // Checkpoint names first: a domain is announced with its baseline, so a checkpoint made right
    // after the announcement is seen as a change.
    if (this.o.mode === 'eager') await this.watchCheckpoints(conn);
    if (changed) this.notify();
  }

  /** Tells a domain's listeners when its checkpoint names changed since the last poll. */
  private async watchCheckpoints(conn: Awaited<ReturnType<LibvirtLink['ensure']>>): Promise<void> {
    for (const d of this.drivers.values()) {
      let names: string;
      try {
        names = (await listCheckpointNames(conn, d.uuid)).join('\n');
      } catch (e) {
        if (e instanceof LibvirtError) continue; // undefined meanwhile: the next poll drops it
        throw e;
      }
      const before = this.seenCheckpoints.get(d.uuid);
      this.seenCheckpoints.set(d.uuid, names);
      if (before !== undefined && before !== names) d.checkpointsChanged();
    }
  }

  /** The domain named `ref` (name or UUID) as last listed; refresh() first for a fresh answer. */
  find(ref: string): LibvirtVmDriver | undefined {
    const key = ref.trim();
    if (isUuid(key)) return this.drivers.get(key.toLowerCase());
    return this.vms().find((d) => d.name === key);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.polling?.catch(() => undefined);
    await this.link.close();
  }
}
