// What a backup needs to know about a libvirt domain, read through libvirt only: its disks (target,
// image, format, size) from the live XML and `domstats --block`, its checkpoints (libvirt's
// metadata) as the engine's Checkpoint records, the current one by libvirt's rule, and which
// bitmaps are usable (`checkpoint-dumpxml --size` omits the size of an inconsistent bitmap).

import type { Checkpoint, DiskInfo, VmInfo } from '../../../../shared/domain';
import type { LibvirtCheckpoint } from '../../../libvirt/checkpoint-xml';
import { inferCurrentCheckpoint, listCheckpoints } from '../../../libvirt/checkpoints';
import type { LibvirtConnection } from '../../../libvirt/connection';
import { describeDomain, domainArg } from '../../../libvirt/domains';
import type { DomainDescription } from '../../../libvirt/domain-xml';
import { imageInfo } from '../../backup/qemuimg';
import type { LibvirtDomainHandle } from './handle';

/** libvirt's checkpoint bitmaps: 64 KiB granularity (what libvirt 9.0 creates). */
const LIBVIRT_GRANULARITY = 64 * 1024;

export interface DomainView {
  vm: VmInfo;
  domain: DomainDescription;
  checkpoints: Checkpoint[];
  /** With --size: which (checkpoint, disk) pairs have a usable bitmap. */
  sized: LibvirtCheckpoint[];
  current?: string;
  currentAmbiguous: boolean;
}

/** `virsh domstats --block` → capacity per disk target. */
export function parseBlockCapacities(text: string): Map<string, number> {
  const names = new Map<string, string>();
  const caps = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^\s*block\.(\d+)\.(name|capacity)=(.*)$/.exec(line);
    if (!m) continue;
    if (m[2] === 'name') names.set(m[1]!, m[3]!.trim());
    else if (/^\d+$/.test(m[3]!.trim())) caps.set(m[1]!, Number(m[3]!.trim()));
  }
  const out = new Map<string, number>();
  for (const [i, name] of names) {
    const c = caps.get(i);
    if (c !== undefined) out.set(name, c);
  }
  return out;
}

const versions = new WeakMap<LibvirtConnection, string>();

/** QEMU's version as libvirt reports it ("Running hypervisor: QEMU 7.2.22"), once per connection. */
export async function qemuVersion(conn: LibvirtConnection): Promise<string> {
  const known = versions.get(conn);
  if (known) return known;
  const out = await conn.command(['version']);
  const v = /Running hypervisor:\s*QEMU\s+(\S+)/.exec(out)?.[1] ?? 'unknown';
  versions.set(conn, v);
  return v;
}

export function toCheckpoint(c: LibvirtCheckpoint): Checkpoint {
  const t = c.creationTime ?? 0;
  return {
    name: c.name,
    ...(c.description !== undefined ? { description: c.description } : {}),
    ...(c.parent !== undefined ? { parent: c.parent } : {}),
    creationTime: t,
    createdAtMs: t * 1000,
    disks: c.disks.map((d) => ({ name: d.name, checkpoint: d.checkpoint, ...(d.checkpoint === 'bitmap' ? { bitmap: d.bitmap ?? c.name } : {}), ...(d.size !== undefined ? { size: d.size } : {}) })),
    layout: 'independent',
  };
}

async function diskInfo(h: LibvirtDomainHandle, d: DomainDescription['disks'][number], capacity: number | undefined): Promise<DiskInfo> {
  let virtualSize = capacity;
  let clusterSize: number | undefined;
  let compat: string | undefined;
  if (h.local && d.source && d.type === 'file') {
    // The image is on this machine: qemu-img reads it with a shared lock (QEMU holds it).
    const info = await imageInfo(d.source, { shared: true }).catch(() => undefined);
    virtualSize ??= info?.virtualSize;
    clusterSize = info?.clusterSize;
    compat = info?.compat;
  }
  if (virtualSize === undefined) throw new Error(`libvirt reports no size for disk ${d.target} of domain ${h.name}`);
  const isQcow2 = d.format === 'qcow2';
  const reason = !isQcow2 ? `a ${d.format ?? 'raw'} image (libvirt checkpoints need qcow2)` : compat === '0.10' ? 'a qcow2 v2 image (compat 0.10)' : d.readonly ? 'a read-only disk' : undefined;
  return {
    name: d.target,
    ...(d.alias !== undefined ? { device: d.alias } : {}),
    nodeName: d.sourceIndex !== undefined ? `libvirt-${d.sourceIndex}-format` : d.target,
    format: d.format ?? 'raw',
    virtualSize,
    imageFile: d.source ?? '',
    ...(clusterSize !== undefined ? { clusterSize } : {}),
    granularity: LIBVIRT_GRANULARITY,
    bitmapCapable: reason === undefined,
    ...(reason !== undefined ? { bitmapIncapableReason: reason } : {}),
    readOnly: d.readonly,
    bitmaps: [],
  };
}

/** Reads the running domain: disks, checkpoints (with sizes: which bitmaps are usable), current. */
export async function readDomainView(h: LibvirtDomainHandle, options: { sizes?: boolean } = {}): Promise<DomainView> {
  const domain = await describeDomain(h.conn, h.uuid);
  if (domain.id === undefined) throw new Error(`domain ${h.name} is not running; libvirt backs up running domains only (start it first)`);
  const caps = parseBlockCapacities(await h.conn.command(['domstats', '--block', domainArg(h.uuid)]));
  const disks: DiskInfo[] = [];
  for (const d of domain.disks) {
    if (d.device !== 'disk') continue; // cdroms and floppies are not backed up
    disks.push(await diskInfo(h, d, caps.get(d.target)));
  }
  const sized = await listCheckpoints(h.conn, h.uuid, { size: options.sizes ?? true });
  const current = inferCurrentCheckpoint(sized);
  const vm: VmInfo = {
    id: h.identity.key, name: domain.name, uuid: domain.uuid, endpoint: `${h.uri}#${domain.name}`,
    status: 'running', qemuVersion: await qemuVersion(h.conn), disks,
  };
  return { vm, domain, checkpoints: sized.map(toCheckpoint), sized, ...(current.name !== undefined ? { current: current.name } : {}), currentAmbiguous: current.ambiguous };
}

/** Why the changes on `disk` since `since` cannot be read, from the sized checkpoint list; undefined when they can. */
export function changesUnusable(sized: LibvirtCheckpoint[], since: string, disk: string): string | undefined {
  const cp = sized.find((c) => c.name === since);
  if (!cp) return `checkpoint ${since} is not in libvirt's metadata`;
  const d = cp.disks.find((x) => x.name === disk);
  if (!d || d.checkpoint !== 'bitmap') return `checkpoint ${since} has no bitmap on ${disk}`;
  if (d.size === undefined) return `libvirt reports the bitmap of checkpoint ${since} on ${disk} as inconsistent or missing (checkpoint-dumpxml --size gives no size)`;
  return undefined;
}
