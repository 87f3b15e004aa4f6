// Checkpoints through libvirt's API (virsh checkpoint-*): create from XML, redefine (optionally
// validated against QEMU's bitmaps), delete (plain, --children, --children-only, --metadata),
// list with parents, dumpxml with --size / --no-domain, and the "current" checkpoint.

import type { LibvirtConnection } from './connection';
import { buildCheckpointXml, checkCheckpointName, parseLibvirtCheckpointXml, type CheckpointSpec, type LibvirtCheckpoint } from './checkpoint-xml';
import { LibvirtXmlError } from './errors';
import { domainArg } from './domains';
import { opt } from './virsh-protocol';

/** Creates a checkpoint (bitmaps on the listed disks, all in one QEMU transaction); returns its name. */
export async function createCheckpoint(conn: LibvirtConnection, domain: string, checkpoint: CheckpointSpec | string): Promise<string> {
  const xml = typeof checkpoint === 'string' ? checkpoint : buildCheckpointXml(checkpoint);
  const parsed = parseLibvirtCheckpointXml(xml);
  await conn.command(['checkpoint-create', domainArg(domain)], { xmlFiles: { xmlfile: xml } });
  return parsed.name;
}

/**
 * Re-creates libvirt's metadata for a checkpoint whose bitmaps exist (XML as checkpoint-dumpxml
 * printed it, with <creationTime>). `validate` makes libvirt check the bitmaps in QEMU first
 * ("checkpoint inconsistent: missing or broken bitmap …" when they are not usable).
 */
export async function redefineCheckpoint(conn: LibvirtConnection, domain: string, xml: string, options: { validate?: boolean } = {}): Promise<string> {
  const parsed = parseLibvirtCheckpointXml(xml);
  if (parsed.creationTime === undefined) throw new LibvirtXmlError(`checkpoint '${parsed.name}': a redefine needs the <creationTime> of the saved checkpoint`);
  await conn.command(['checkpoint-create', domainArg(domain), '--redefine', ...(options.validate ? ['--redefine-validate'] : [])], { xmlFiles: { xmlfile: xml } });
  return parsed.name;
}

export type CheckpointDeleteMode = 'only' | 'children' | 'children-only';

export interface DeleteCheckpointOptions {
  /** 'only' (default): this checkpoint; its children move to its parent. 'children': it and every
   *  descendant. 'children-only': its descendants, keeping it. */
  mode?: CheckpointDeleteMode;
  /** Only libvirt's metadata: the QEMU bitmaps stay and keep recording. */
  metadataOnly?: boolean;
}

export async function deleteCheckpoint(conn: LibvirtConnection, domain: string, name: string, options: DeleteCheckpointOptions = {}): Promise<void> {
  const flags: string[] = [];
  if (options.mode === 'children') flags.push('--children');
  else if (options.mode === 'children-only') flags.push('--children-only');
  else if (options.mode !== undefined && options.mode !== 'only') throw new Error(`checkpoint delete mode "${String(options.mode)}" is not only, children or children-only`);
  if (options.metadataOnly) flags.push('--metadata');
  await conn.command(['checkpoint-delete', domainArg(domain), opt('checkpointname', checkCheckpointName(name)), ...flags]);
}

/** Checkpoint names, parents before children. */
export async function listCheckpointNames(conn: LibvirtConnection, domain: string): Promise<string[]> {
  const out = await conn.command(['checkpoint-list', domainArg(domain), '--name', '--topological']);
  return out.split('\n').filter((l) => l.trim() !== '');
}

export interface CheckpointXmlOptions {
  /** Add size='…' (dirty bytes) per disk; needs a running domain; omitted for inconsistent bitmaps. */
  size?: boolean;
  /** Leave out the embedded <domain>. */
  noDomain?: boolean;
}

export async function checkpointXml(conn: LibvirtConnection, domain: string, name: string, options: CheckpointXmlOptions = {}): Promise<string> {
  const flags: string[] = [];
  if (options.size) flags.push('--size');
  if (options.noDomain) flags.push('--no-domain');
  return conn.command(['checkpoint-dumpxml', domainArg(domain), opt('checkpointname', checkCheckpointName(name)), ...flags]);
}

export async function getCheckpoint(conn: LibvirtConnection, domain: string, name: string, options: { size?: boolean } = {}): Promise<LibvirtCheckpoint> {
  const cp = parseLibvirtCheckpointXml(await checkpointXml(conn, domain, name, { size: options.size, noDomain: true }));
  if (cp.name !== name) throw new LibvirtXmlError(`checkpoint-dumpxml for '${name}' returned checkpoint '${cp.name}'`);
  return cp;
}

/** Every checkpoint with its parent, creation time and disks, parents before children. */
export async function listCheckpoints(conn: LibvirtConnection, domain: string, options: { size?: boolean } = {}): Promise<LibvirtCheckpoint[]> {
  const out: LibvirtCheckpoint[] = [];
  for (const name of await listCheckpointNames(conn, domain)) out.push(await getCheckpoint(conn, domain, name, options));
  return out;
}

/**
 * libvirt's "current" checkpoint (the parent it gives the next one). libvirt has no public API for
 * it: virDomainCheckpointCurrent was proposed in 2018 and never merged, and virsh has no
 * checkpoint-current. So it is inferred from the tree by libvirt's own rules: a new checkpoint, a
 * deletion (current moves to the parent) and a daemon restart (current = the only leaf) all leave
 * the current checkpoint as the only leaf of the tree. With several leaves (branches exist only
 * through redefine) libvirt's choice cannot be seen, and this returns `ambiguous: true`.
 */
export function inferCurrentCheckpoint(checkpoints: readonly Pick<LibvirtCheckpoint, 'name' | 'parent'>[]): { name?: string; ambiguous: boolean } {
  if (checkpoints.length === 0) return { ambiguous: false };
  const parents = new Set(checkpoints.map((c) => c.parent).filter((p): p is string => p !== undefined));
  const leaves = checkpoints.filter((c) => !parents.has(c.name));
  if (leaves.length === 1) return { name: leaves[0]!.name, ambiguous: false };
  return { ambiguous: true };
}

export async function currentCheckpoint(conn: LibvirtConnection, domain: string): Promise<{ name?: string; ambiguous: boolean }> {
  return inferCurrentCheckpoint(await listCheckpoints(conn, domain));
}
