// The libvirt driver: one VmDriver per domain of a libvirt connection (connection.ts holds the
// link and the domain list). Everything goes through libvirt (electron/libvirt/), never QMP:
// checkpoints (checkpoints.ts), health (health.ts), and backups and restore (./backup, built on
// their own branch). libvirt offers less than QMP mode: no live bitmap counts (sizes are computed
// on demand by checkpoint-dumpxml --size), only the independent layout, no dirty map here.

import type { VmSummary } from '../../../shared/contract';
import type { DiskInfo, HealthReport, VmInfo } from '../../../shared/domain';
import type { LibvirtConnection } from '../../libvirt/connection';
import { listCheckpoints } from '../../libvirt/checkpoints';
import { describeDomain, type DomainState } from '../../libvirt/domains';
import { isRemote, parseLibvirtUri } from '../../libvirt/uri';
import type { BackupOps, CheckpointOps, DiskBitmaps, DriverCapabilities, DriverEvent, DriverEvents, RestoreHooks, VmDriver } from '../driver';
import { TypedEmitter } from '../emitter';
import type { DurableIdentity } from '../identity';
import type { LibvirtDomainHandle } from './backup';
import { withDomainLock } from './domain-lock';
import { loadLater } from '../lazy';
import { capacity, LibvirtCheckpoints } from './checkpoints';
import { checkLibvirtHealth, readImageBitmaps } from './health';
import { libvirtVmId } from './ids';
import type { LibvirtLink } from './link';
import { toCheckpoint, whyNoBitmap } from './plan';

export function libvirtCapabilities(local: boolean): DriverCapabilities {
  return {
    layouts: ['independent'],
    bitmapCounts: 'on-demand',
    dirtyMap: false,
    localImages: local,
    metadata: 'hypervisor',
    backupModes: local ? ['push', 'pull'] : ['pull'], // a remote push would write where QEMU runs: backup/ refuses it
    exportOnly: true, // a pull that an outside tool reads until backup-end (unix socket; backup/ runs it)
  };
}

/** Running states: QEMU exists, so libvirt can compute sizes and talk to the bitmaps. */
export function qemuRuns(state: DomainState): boolean {
  return state === 'running' || state === 'paused' || state === 'blocked' || state === 'pmsuspended';
}

export interface LibvirtDomainOptions {
  link: LibvirtLink;
  /** The registry id of the connection. */
  connectionId: string;
  uuid: string;
  name: string;
  state: DomainState;
}

// The backup and restore code loads on first use (a checkpoint command never needs it; see loadLater).
const BACKUP = './backup';
function backupModule(): Promise<typeof import('./backup')> {
  return loadLater<typeof import('./backup')>(() => require('./backup'), () => import(BACKUP));
}

export class LibvirtVmDriver implements VmDriver {
  readonly id: string;
  readonly capabilities: DriverCapabilities;
  readonly checkpoints: CheckpointOps;
  readonly backup: BackupOps;
  readonly restore: RestoreHooks;
  readonly uuid: string;
  name: string;
  domainState: DomainState;
  private readonly link: LibvirtLink;
  private readonly local: boolean;
  private readonly events = new TypedEmitter<DriverEvents>();

  constructor(private readonly o: LibvirtDomainOptions) {
    this.link = o.link;
    this.uuid = o.uuid.toLowerCase();
    this.name = o.name;
    this.domainState = o.state;
    this.id = libvirtVmId(o.link.uri, this.uuid);
    this.local = !isRemote(parseLibvirtUri(o.link.uri));
    this.capabilities = libvirtCapabilities(this.local);
    this.checkpoints = new LibvirtCheckpoints({
      conn: () => this.conn(), uuid: this.uuid, name: () => this.name,
      exclusive: (fn) => withDomainLock(this.identity().key, fn),
    });
    // Backups and restore are the backup module's; each call gets a handle on the live connection.
    this.backup = {
      begin: async (spec, reporter) => (await backupModule()).libvirtBackupOps(await this.handle()).begin(spec, reporter),
      end: async (repo, outcome) => (await backupModule()).libvirtBackupOps(await this.handle()).end(repo, outcome),
      status: async (repo) => (await backupModule()).libvirtBackupOps(await this.handle()).status(repo),
      cancel: async (repo) => (await backupModule()).libvirtBackupOps(await this.handle()).cancel(repo),
    };
    this.restore = {
      assertStopped: async (images) => (await backupModule()).libvirtRestoreHooks(await this.handle()).assertStopped(images),
      recordInPlace: async (r) => (await backupModule()).libvirtRestoreHooks(await this.handle()).recordInPlace(r),
    };
  }

  private async conn(): Promise<LibvirtConnection> {
    try {
      return await this.link.ensure();
    } catch (e) {
      this.link.failed(e);
      throw e;
    }
  }

  private async handle(): Promise<LibvirtDomainHandle> {
    return { conn: await this.conn(), uuid: this.uuid, name: this.name, uri: this.link.uri, local: this.local, identity: this.identity() };
  }

  /** The connection saw the domain again (name and state may have changed); tells listeners when something did. */
  update(name: string, state: DomainState): void {
    if (name === this.name && state === this.domainState) return;
    this.name = name;
    this.domainState = state;
    this.emitState();
  }

  emitState(): void {
    this.events.emit('state', { connection: this.link.state, ...(this.link.detail !== undefined ? { detail: this.link.detail } : {}) });
  }

  /** libvirt's checkpoints changed (seen by the connection's poll: virsh or another tool). */
  checkpointsChanged(): void {
    this.events.emit('checkpoints', {});
  }

  summary(): VmSummary {
    const s: VmSummary = {
      id: this.id, label: this.name, endpoint: this.link.uri, kind: 'libvirt', connection: this.link.state,
      connectionId: this.o.connectionId, domainState: this.domainState,
    };
    return this.link.detail !== undefined && this.link.state !== 'connected' ? { ...s, detail: this.link.detail } : s;
  }

  identity(): DurableIdentity {
    return { key: this.uuid, name: this.name, uuid: this.uuid };
  }

  async ready(): Promise<void> {
    await this.conn();
  }

  async info(): Promise<VmInfo> {
    const conn = await this.conn();
    const dom = await describeDomain(conn, this.uuid);
    this.name = dom.name;
    const running = dom.id !== undefined;
    // A running QEMU writes new bitmaps into the image only when it closes it: the image shows them
    // only while the domain is shut off; while it runs, libvirt's --size is the truth.
    const images = this.local && !running ? await readImageBitmaps(dom.disks) : undefined;
    // Counts only where libvirt computed them (--size, running domains); otherwise absent (never 0):
    // the capabilities say counts are 'on-demand', and the UI shows "—".
    const sized = running ? await listCheckpoints(conn, this.uuid, { size: true }).catch(() => []) : [];
    const sizes = new Map<string, number>();
    for (const d of dom.disks) {
      const bytes = d.device === 'disk' ? await capacity(conn, this.uuid, d.target) : undefined;
      if (bytes !== undefined) sizes.set(d.target, bytes);
    }
    const disks: DiskInfo[] = dom.disks.filter((d) => d.device === 'disk').map((d) => {
      const why = whyNoBitmap(d);
      const image = images?.get(d.target);
      const names = image && 'bitmaps' in image ? image.bitmaps : sized.flatMap((c) => c.disks.filter((x) => x.name === d.target && x.checkpoint === 'bitmap').map((x) => ({ name: x.bitmap ?? c.name, flags: ['auto'] })));
      return {
        name: d.target,
        ...(d.alias !== undefined ? { device: d.alias } : {}),
        nodeName: d.sourceIndex !== undefined ? `libvirt-${d.sourceIndex}-format` : '',
        format: d.format ?? 'unknown',
        virtualSize: sizes.get(d.target) ?? 0,
        imageFile: d.source ?? '',
        granularity: 65536,
        bitmapCapable: why === undefined,
        ...(why !== undefined ? { bitmapIncapableReason: why } : {}),
        readOnly: d.readonly,
        bitmaps: names.map((b) => {
          const size = sized.find((c) => c.name === b.name)?.disks.find((x) => x.name === d.target)?.size;
          return {
            name: b.name, recording: b.flags.includes('auto'), persistent: true, busy: false,
            inconsistent: !running && b.flags.includes('in-use'), ...(size !== undefined ? { count: size } : {}), granularity: 65536,
          };
        }),
      };
    });
    return { id: this.uuid, name: dom.name, uuid: this.uuid, endpoint: this.link.uri, status: this.domainState, qemuVersion: `libvirt (${dom.hypervisor})`, disks };
  }

  async health(): Promise<HealthReport> {
    const conn = await this.conn();
    const dom = await describeDomain(conn, this.uuid);
    const running = dom.id !== undefined;
    let sizesComputed = running;
    let cps = await listCheckpoints(conn, this.uuid, { size: running }).catch((e: unknown) => {
      sizesComputed = false;
      if (!running) throw e;
      return undefined;
    });
    cps ??= await listCheckpoints(conn, this.uuid);
    const host = parseLibvirtUri(this.link.uri).host;
    const issues = checkLibvirtHealth({
      checkpoints: cps.map(toCheckpoint), sizesComputed, disks: dom.disks, running,
      ...(this.local && !running ? { images: await readImageBitmaps(dom.disks) } : {}),
      ...(!this.local ? { remoteHost: host ?? this.link.uri } : {}),
    });
    return { vmId: this.id, checkedAt: Date.now(), issues };
  }

  /** libvirt has no cheap live counts (capabilities.bitmapCounts is 'on-demand'): the poller never asks. */
  async liveBitmaps(): Promise<DiskBitmaps[]> {
    if (!this.link.live) return [];
    return (await this.info()).disks.map((d) => ({ disk: d.name, bitmaps: d.bitmaps }));
  }

  invalidate(): void {
    // libvirt keeps the metadata and nothing is cached here: every read asks libvirt.
  }

  async dirtyMap(): Promise<never> {
    throw new Error(`domain ${this.name}: the dirty map is not available for libvirt domains (libvirt shows where a disk changed only through a pull backup's export)`);
  }

  on<E extends DriverEvent>(event: E, listener: (payload: DriverEvents[E]) => void): () => void {
    return this.events.on(event, listener);
  }

  async close(): Promise<void> {
    // The connection (shared by every domain of the URI) is closed by its LibvirtUriConnection.
  }
}
