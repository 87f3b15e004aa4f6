// libvirt <domain> XML → what Tidemark needs: identity, the disks (target, source, format, the
// live alias and <source index>, backing chain depth), and the DAC label QEMU runs under (which
// decides what files and folders QEMU can reach). Unknown elements are ignored: libvirt adds many.

import { LibvirtXmlError } from './errors';
import { child, childrenNamed, parseXmlTree, unsignedValue, type XmlElement } from './xml-tree';

export interface DomainDisk {
  /** 'disk', 'cdrom', 'floppy' or 'lun'. */
  device: string;
  /** <disk type=…>: 'file', 'block', 'network', 'volume', … */
  type: string;
  /** <target dev>, e.g. 'vda': the name libvirt's checkpoint and backup XML use. */
  target: string;
  bus?: string;
  /** <driver type>, e.g. 'qcow2' or 'raw'. */
  format?: string;
  /** <source file> or <source dev> (for block), or the network source's name. */
  source?: string;
  /** <source index='N'> of the live domain: libvirt's node names are libvirt-N-format/-storage. */
  sourceIndex?: number;
  /** <alias name> of the live domain (e.g. 'virtio-disk0'). */
  alias?: string;
  readonly: boolean;
  /** Images below the top one, from <backingStore> (live XML only lists them). */
  backingChain: { format?: string; source?: string; index?: number }[];
}

export interface DomainDescription {
  name: string;
  uuid: string;
  /** <domain type>: 'kvm', 'qemu', … */
  hypervisor: string;
  /** <domain id> while it runs. */
  id?: number;
  disks: DomainDisk[];
  /** QEMU's uid:gid from the live <seclabel model='dac'> (e.g. { uid: 64055, gid: 64055 }). */
  dac?: { uid: number; gid: number };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(s: string): boolean {
  return UUID.test(s);
}

function sourceOf(el: XmlElement | undefined): string | undefined {
  if (!el) return undefined;
  return el.attrs.file ?? el.attrs.dev ?? el.attrs.name ?? el.attrs.volume ?? el.attrs.dir;
}

function backingChain(disk: XmlElement): DomainDisk['backingChain'] {
  const chain: DomainDisk['backingChain'] = [];
  let bs = child(disk, 'backingStore');
  // <backingStore/> (empty) ends the chain; the depth guard stops a pathological document.
  while (bs && bs.children.length > 0 && chain.length < 1000) {
    const src = child(bs, 'source');
    const entry: DomainDisk['backingChain'][number] = {};
    const format = child(bs, 'format')?.attrs.type;
    if (format !== undefined) entry.format = format;
    const source = sourceOf(src);
    if (source !== undefined) entry.source = source;
    const index = unsignedValue(bs.attrs.index ?? src?.attrs.index, 'backingStore index');
    if (index !== undefined) entry.index = index;
    chain.push(entry);
    bs = child(bs, 'backingStore');
  }
  return chain;
}

function parseDisk(el: XmlElement, domain: string): DomainDisk {
  const target = child(el, 'target');
  const dev = target?.attrs.dev;
  if (!dev) throw new LibvirtXmlError(`domain '${domain}': a <disk> (line ${el.line}) has no <target dev=…>`);
  const source = child(el, 'source');
  const disk: DomainDisk = {
    device: el.attrs.device ?? 'disk',
    type: el.attrs.type ?? 'file',
    target: dev,
    readonly: child(el, 'readonly') !== undefined,
    backingChain: backingChain(el),
  };
  if (target?.attrs.bus !== undefined) disk.bus = target.attrs.bus;
  const format = child(el, 'driver')?.attrs.type;
  if (format !== undefined) disk.format = format;
  const src = sourceOf(source);
  if (src !== undefined) disk.source = src;
  const index = unsignedValue(source?.attrs.index, `domain '${domain}' disk '${dev}' source index`);
  if (index !== undefined) disk.sourceIndex = index;
  const alias = child(el, 'alias')?.attrs.name;
  if (alias !== undefined) disk.alias = alias;
  return disk;
}

function parseDac(root: XmlElement): DomainDescription['dac'] {
  for (const sec of childrenNamed(root, 'seclabel')) {
    if (sec.attrs.model !== 'dac') continue;
    const label = child(sec, 'label')?.text.trim();
    const m = label ? /^\+?(\d+):\+?(\d+)$/.exec(label) : null;
    if (m) return { uid: Number(m[1]), gid: Number(m[2]) };
  }
  return undefined;
}

/** Parses `virsh dumpxml` output (live or --inactive). */
export function parseDomainXml(xml: string): DomainDescription {
  const root = parseXmlTree(xml, 'domain XML', 'domain');
  const name = child(root, 'name')?.text.trim();
  if (!name) throw new LibvirtXmlError('domain XML has no <name>');
  const uuid = child(root, 'uuid')?.text.trim().toLowerCase();
  if (!uuid || !isUuid(uuid)) throw new LibvirtXmlError(`domain '${name}' has no valid <uuid>`);
  const devices = child(root, 'devices');
  const disks = devices ? childrenNamed(devices, 'disk').map((d) => parseDisk(d, name)) : [];
  const seen = new Set<string>();
  for (const d of disks) {
    if (seen.has(d.target)) throw new LibvirtXmlError(`domain '${name}' lists disk '${d.target}' twice`);
    seen.add(d.target);
  }
  const out: DomainDescription = { name, uuid, hypervisor: root.attrs.type ?? '', disks };
  const id = root.attrs.id;
  if (id !== undefined && id !== '-1') out.id = unsignedValue(id, `domain '${name}' id`)!;
  const dac = parseDac(root);
  if (dac) out.dac = dac;
  return out;
}
