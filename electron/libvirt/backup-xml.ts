// <domainbackup> XML: build what `virsh backup-begin --backupxml` takes (push into target files, or
// pull through an NBD server on a unix socket or TCP with scratch files), and read what
// `virsh backup-dumpxml` returns (libvirt adds backupmode, exportname, exportbitmap, index).
// Whether a push target already exists (--reuse-external) is the caller's business.

import { LibvirtXmlError } from './errors';
import { checkCheckpointName } from './checkpoint-xml';
import { child, childText, childrenNamed, escapeXml, parseXmlTree, unsignedValue } from './xml-tree';

export type BackupMode = 'full' | 'incremental';

interface DiskCommon {
  /** The disk's target dev ('vda'). */
  name: string;
  /** Per-disk override of the backup-wide <incremental> (libvirt's backupmode/incremental attributes). */
  backupmode?: BackupMode;
  incremental?: string;
}

export type PushDisk = { name: string; backup: false } | (DiskCommon & { backup?: true; target: string; format?: 'qcow2' | 'raw' });
export type PullDisk = { name: string; backup: false } | (DiskCommon & { backup?: true; scratch: string; exportName?: string; exportBitmap?: string });

export type PullServer = { transport: 'unix'; socket: string } | { transport: 'tcp'; host: string; port: number; tls?: boolean };

export interface PushBackupSpec {
  mode: 'push';
  /** The checkpoint the whole backup is incremental from; absent = full. */
  incremental?: string;
  disks: PushDisk[];
}

export interface PullBackupSpec {
  mode: 'pull';
  incremental?: string;
  server: PullServer;
  disks: PullDisk[];
}

export type BackupSpec = PushBackupSpec | PullBackupSpec;

function absolutePath(p: string, what: string): string {
  if (typeof p !== 'string' || !p.startsWith('/')) throw new LibvirtXmlError(`${what} ${JSON.stringify(String(p))} must be an absolute path`);
  return escapeXml(p, what);
}

function commonAttrs(d: DiskCommon): string {
  let s = '';
  if (d.backupmode !== undefined) {
    if (d.backupmode !== 'full' && d.backupmode !== 'incremental') throw new LibvirtXmlError(`disk '${d.name}': backupmode must be full or incremental`);
    s += ` backupmode='${d.backupmode}'`;
  }
  if (d.incremental !== undefined) s += ` incremental='${escapeXml(checkCheckpointName(d.incremental), 'checkpoint name')}'`;
  return s;
}

/** The XML for `backup-begin --backupxml`. Every disk of the domain should be listed (backup: false to skip one). */
export function buildBackupXml(spec: BackupSpec): string {
  if (spec.mode !== 'push' && spec.mode !== 'pull') throw new LibvirtXmlError(`backup mode must be push or pull`);
  if (spec.disks.length === 0) throw new LibvirtXmlError('a backup must list at least one disk');
  const lines = [`<domainbackup mode='${spec.mode}'>`];
  if (spec.incremental !== undefined) lines.push(`  <incremental>${escapeXml(checkCheckpointName(spec.incremental), 'checkpoint name')}</incremental>`);
  if (spec.mode === 'pull') {
    const s = spec.server;
    if (s.transport === 'unix') lines.push(`  <server transport='unix' socket='${absolutePath(s.socket, 'NBD socket')}'/>`);
    else if (s.transport === 'tcp') {
      if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) throw new LibvirtXmlError(`NBD port ${s.port} is not a TCP port (libvirt needs an explicit one)`);
      lines.push(`  <server transport='tcp' name='${escapeXml(s.host, 'NBD host')}' port='${s.port}'${s.tls ? " tls='yes'" : ''}/>`);
    } else throw new LibvirtXmlError('NBD server transport must be unix or tcp');
  }
  lines.push('  <disks>');
  const seen = new Set<string>();
  for (const d of spec.disks) {
    const name = escapeXml(d.name, 'disk name');
    if (seen.has(d.name)) throw new LibvirtXmlError(`backup lists disk '${d.name}' twice`);
    seen.add(d.name);
    if (d.backup === false) {
      lines.push(`    <disk name='${name}' backup='no'/>`);
    } else if ('target' in d) {
      if (spec.mode !== 'push') throw new LibvirtXmlError(`disk '${d.name}' has a push target in a pull backup`);
      const format = d.format ?? 'qcow2';
      if (format !== 'qcow2' && format !== 'raw') throw new LibvirtXmlError(`disk '${d.name}': target format must be qcow2 or raw`);
      lines.push(`    <disk name='${name}' backup='yes' type='file'${commonAttrs(d)}>`, `      <driver type='${format}'/>`, `      <target file='${absolutePath(d.target, `disk '${d.name}' target`)}'/>`, '    </disk>');
    } else if ('scratch' in d) {
      if (spec.mode !== 'pull') throw new LibvirtXmlError(`disk '${d.name}' has a scratch file in a push backup`);
      let attrs = commonAttrs(d);
      if (d.exportName !== undefined) attrs += ` exportname='${escapeXml(d.exportName, 'export name')}'`;
      if (d.exportBitmap !== undefined) attrs += ` exportbitmap='${escapeXml(d.exportBitmap, 'export bitmap')}'`;
      // libvirt needs a qcow2 scratch for pull mode ("pull mode backup for disk … requires qcow2 driver").
      lines.push(`    <disk name='${name}' backup='yes' type='file'${attrs}>`, "      <driver type='qcow2'/>", `      <scratch file='${absolutePath(d.scratch, `disk '${d.name}' scratch`)}'/>`, '    </disk>');
    } else {
      throw new LibvirtXmlError(`disk '${(d as { name: string }).name}' needs a ${spec.mode === 'push' ? 'target' : 'scratch'} file or backup: false`);
    }
  }
  lines.push('  </disks>', '</domainbackup>');
  return lines.join('\n') + '\n';
}

export interface BackupDiskDescription {
  name: string;
  backup: boolean;
  type?: string;
  backupmode?: BackupMode;
  incremental?: string;
  exportName?: string;
  exportBitmap?: string;
  /** libvirt's storage index of the target/scratch node (libvirt-N-format). */
  index?: number;
  format?: string;
  target?: string;
  scratch?: string;
}

export interface BackupDescription {
  mode: 'push' | 'pull';
  incremental?: string;
  server?: { transport: string; socket?: string; host?: string; port?: number; tls?: boolean };
  disks: BackupDiskDescription[];
}

/** Parses `virsh backup-dumpxml` output (or a backup XML given to backup-begin). */
export function parseBackupXml(xml: string): BackupDescription {
  const root = parseXmlTree(xml, 'backup XML', 'domainbackup');
  const mode = root.attrs.mode ?? 'push';
  if (mode !== 'push' && mode !== 'pull') throw new LibvirtXmlError(`backup XML has mode='${mode}'; expected push or pull`);
  const out: BackupDescription = { mode, disks: [] };
  const inc = childText(root, 'incremental');
  if (inc) out.incremental = inc;
  const server = child(root, 'server');
  if (server) {
    const s: NonNullable<BackupDescription['server']> = { transport: server.attrs.transport ?? 'tcp' };
    if (server.attrs.socket !== undefined) s.socket = server.attrs.socket;
    if (server.attrs.name !== undefined) s.host = server.attrs.name;
    const port = unsignedValue(server.attrs.port, 'backup server port');
    if (port !== undefined) s.port = port;
    if (server.attrs.tls === 'yes') s.tls = true;
    out.server = s;
  }
  const disks = child(root, 'disks');
  for (const d of disks ? childrenNamed(disks, 'disk') : []) {
    if (!d.attrs.name) throw new LibvirtXmlError(`backup XML: a <disk> (line ${d.line}) has no name`);
    const disk: BackupDiskDescription = { name: d.attrs.name, backup: d.attrs.backup !== 'no' };
    if (d.attrs.type !== undefined) disk.type = d.attrs.type;
    const bm = d.attrs.backupmode;
    if (bm !== undefined) {
      if (bm !== 'full' && bm !== 'incremental') throw new LibvirtXmlError(`backup XML disk '${disk.name}': backupmode='${bm}' is not full or incremental`);
      disk.backupmode = bm;
    }
    if (d.attrs.incremental !== undefined) disk.incremental = d.attrs.incremental;
    if (d.attrs.exportname !== undefined) disk.exportName = d.attrs.exportname;
    if (d.attrs.exportbitmap !== undefined) disk.exportBitmap = d.attrs.exportbitmap;
    const index = unsignedValue(d.attrs.index, `backup XML disk '${disk.name}' index`);
    if (index !== undefined) disk.index = index;
    const format = child(d, 'driver')?.attrs.type;
    if (format !== undefined) disk.format = format;
    const target = child(d, 'target');
    if (target) disk.target = target.attrs.file ?? target.attrs.dev;
    const scratch = child(d, 'scratch');
    if (scratch) disk.scratch = scratch.attrs.file ?? scratch.attrs.dev;
    out.disks.push(disk);
  }
  return out;
}
