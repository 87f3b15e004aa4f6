// <domaincheckpoint> XML at the libvirt layer: read what `virsh checkpoint-dumpxml` prints (with or
// without --size / --no-domain) and build the XML `checkpoint-create` and `backup-begin
// --checkpointxml` take. The engine keeps its own strict parser/formatter (engine/checkpoints/xml.ts)
// for the checkpoints it records; this one only checks what libvirt hands over.

import { LibvirtXmlError } from './errors';
import { child, childText, childrenNamed, escapeXml, parseXmlTree, unsignedValue } from './xml-tree';

export interface LibvirtCheckpointDisk {
  name: string;
  checkpoint: 'bitmap' | 'no';
  bitmap?: string;
  /** Dirty bytes since the checkpoint (only with --size, only for consistent bitmaps). */
  size?: number;
}

export interface LibvirtCheckpoint {
  name: string;
  description?: string;
  parent?: string;
  /** Seconds since the epoch. */
  creationTime?: number;
  disks: LibvirtCheckpointDisk[];
  /** The XML carried an embedded <domain> (dumpxml without --no-domain). */
  hasDomain: boolean;
}

// eslint-disable-next-line no-control-regex
const BAD_NAME = /[\u0000-\u001f\u007f/]/;

/** libvirt's rule for checkpoint names (the RNG schema refuses '/' and the name is a file name). */
export function checkCheckpointName(name: string): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || BAD_NAME.test(name) || Buffer.byteLength(name) > 1023) {
    throw new LibvirtXmlError(`checkpoint name ${JSON.stringify(String(name).slice(0, 60))} is not valid for libvirt`);
  }
  return name;
}

/** Parses checkpoint XML as libvirt prints it (and as callers hand it back for a redefine). */
export function parseLibvirtCheckpointXml(xml: string): LibvirtCheckpoint {
  const root = parseXmlTree(xml, 'checkpoint XML', 'domaincheckpoint');
  const name = childText(root, 'name');
  if (!name) throw new LibvirtXmlError('checkpoint XML has no <name>');
  checkCheckpointName(name);
  const out: LibvirtCheckpoint = { name, disks: [], hasDomain: child(root, 'domain') !== undefined };
  const description = child(root, 'description')?.text;
  if (description !== undefined && description !== '') out.description = description;
  const parentEl = child(root, 'parent');
  if (parentEl) {
    const parent = childText(parentEl, 'name');
    if (!parent) throw new LibvirtXmlError(`checkpoint '${name}': <parent> has no <name>`);
    out.parent = checkCheckpointName(parent);
  }
  const creationTime = unsignedValue(childText(root, 'creationTime'), `checkpoint '${name}' creationTime`);
  if (creationTime !== undefined) out.creationTime = creationTime;
  const disks = child(root, 'disks');
  for (const d of disks ? childrenNamed(disks, 'disk') : []) {
    const diskName = d.attrs.name;
    if (!diskName) throw new LibvirtXmlError(`checkpoint '${name}': a <disk> (line ${d.line}) has no name`);
    const mode = d.attrs.checkpoint ?? 'bitmap';
    if (mode !== 'bitmap' && mode !== 'no') throw new LibvirtXmlError(`checkpoint '${name}' disk '${diskName}': checkpoint='${mode}' is not bitmap or no`);
    const disk: LibvirtCheckpointDisk = { name: diskName, checkpoint: mode };
    if (d.attrs.bitmap !== undefined) disk.bitmap = d.attrs.bitmap;
    const size = unsignedValue(d.attrs.size, `checkpoint '${name}' disk '${diskName}' size`);
    if (size !== undefined) disk.size = size;
    if (out.disks.some((x) => x.name === diskName)) throw new LibvirtXmlError(`checkpoint '${name}' lists disk '${diskName}' twice`);
    out.disks.push(disk);
  }
  return out;
}

export interface CheckpointSpec {
  name: string;
  description?: string;
  /** Every disk of the domain, each 'bitmap' or 'no': libvirt turns an unlisted disk into
   *  checkpoint='no' once any disk is listed, so Tidemark always lists all of them. */
  disks: { name: string; checkpoint: 'bitmap' | 'no' }[];
}

/** The XML for `checkpoint-create` / `backup-begin --checkpointxml`. Bitmap names are libvirt's (= the checkpoint name). */
export function buildCheckpointXml(spec: CheckpointSpec): string {
  checkCheckpointName(spec.name);
  if (spec.disks.length === 0) throw new LibvirtXmlError(`checkpoint '${spec.name}' lists no disks`);
  const seen = new Set<string>();
  const lines = ['<domaincheckpoint>', `  <name>${escapeXml(spec.name, 'checkpoint name')}</name>`];
  if (spec.description !== undefined) lines.push(`  <description>${escapeXml(spec.description, 'checkpoint description')}</description>`);
  lines.push('  <disks>');
  for (const d of spec.disks) {
    if (seen.has(d.name)) throw new LibvirtXmlError(`checkpoint '${spec.name}' lists disk '${d.name}' twice`);
    seen.add(d.name);
    if (d.checkpoint !== 'bitmap' && d.checkpoint !== 'no') throw new LibvirtXmlError(`checkpoint '${spec.name}' disk '${d.name}': checkpoint must be 'bitmap' or 'no'`);
    lines.push(`    <disk name='${escapeXml(d.name, 'disk name')}' checkpoint='${d.checkpoint}'/>`);
  }
  lines.push('  </disks>', '</domaincheckpoint>');
  return lines.join('\n') + '\n';
}
