// Domains through libvirt: list with state, find by name or UUID, XML (live or inactive), define,
// undefine, start, destroy, and filesystem freeze/thaw through libvirt's guest-agent API.
// Commands name a domain with --domain=…; virsh looks a numeric string up as an ID first, so
// callers should pass the UUID that listDomains/findDomain return.

import type { LibvirtConnection } from './connection';
import { LibvirtError, LibvirtXmlError } from './errors';
import { isUuid, parseDomainXml, type DomainDescription } from './domain-xml';
import { opt } from './virsh-protocol';
import { child, parseXmlTree } from './xml-tree';

/** virDomainState, in order. */
const STATES = ['nostate', 'running', 'blocked', 'paused', 'shutdown', 'shutoff', 'crashed', 'pmsuspended'] as const;
export type DomainState = (typeof STATES)[number] | 'unknown';

export interface DomainSummary {
  name: string;
  uuid: string;
  state: DomainState;
  persistent: boolean;
}

/** A domain name or UUID as virsh's --domain takes it; refuses strings virsh would read as an ID. */
export function domainArg(ref: string): string {
  if (typeof ref !== 'string' || ref === '') throw new Error('domain name or UUID is empty');
  if (/^[0-9]+$/.test(ref)) throw new Error(`domain "${ref}" looks like a numeric domain ID; name it by its UUID`);
  return opt('domain', ref);
}

function lines(text: string): string[] {
  return text.split('\n').map((l) => l.trimEnd()).filter((l) => l.trim() !== '');
}

/** Parses `virsh domstats --state`: "Domain: 'NAME'" then "  state.state=N" lines. */
export function parseDomstatsStates(text: string): Map<string, DomainState> {
  const out = new Map<string, DomainState>();
  let current: string | undefined;
  for (const line of lines(text)) {
    const dom = /^Domain: '(.*)'$/.exec(line);
    if (dom) {
      current = dom[1]!;
      continue;
    }
    const st = /^\s+state\.state=(\d+)$/.exec(line);
    if (st && current !== undefined) out.set(current, STATES[Number(st[1])] ?? 'unknown');
  }
  return out;
}

/** Every domain of the connection (`virsh list --all`), with state and persistence. */
export async function listDomains(conn: LibvirtConnection): Promise<DomainSummary[]> {
  // Three calls because virsh prints no single listing with UUID, name, state and persistence that
  // parses safely (names may contain spaces); each call costs about 2 ms on an open connection.
  const all = lines(await conn.command(['list', '--all', '--uuid', '--name']));
  const persistent = new Set(lines(await conn.command(['list', '--all', '--persistent', '--uuid'])).map((l) => l.trim().toLowerCase()));
  const states = parseDomstatsStates(await conn.command(['domstats', '--state']));
  return all.map((line) => {
    const m = /^([0-9a-fA-F-]{36}) (.+)$/.exec(line.trim());
    if (!m || !isUuid(m[1]!)) throw new LibvirtError('list', `virsh list printed ${JSON.stringify(line.slice(0, 80))}; expected "UUID NAME"`, 'other');
    const uuid = m[1]!.toLowerCase();
    const name = m[2]!;
    return { name, uuid, state: states.get(name) ?? 'unknown', persistent: persistent.has(uuid) };
  });
}

/** The domain with this exact name or UUID; LibvirtError kind 'no-domain' when there is none. */
export async function findDomain(conn: LibvirtConnection, nameOrUuid: string): Promise<DomainSummary> {
  const all = await listDomains(conn);
  const key = nameOrUuid.trim();
  const found = isUuid(key) ? all.find((d) => d.uuid === key.toLowerCase()) : all.find((d) => d.name === key);
  if (!found) {
    throw new LibvirtError('find-domain', `error: Domain not found: no domain ${isUuid(key) ? 'with UUID' : 'named'} '${key}' at ${conn.uri.text}`, 'no-domain');
  }
  return found;
}

/** The domain's XML: live (what runs, with aliases and source indexes) or --inactive (the definition). */
export async function domainXml(conn: LibvirtConnection, domain: string, options: { inactive?: boolean } = {}): Promise<string> {
  return conn.command(['dumpxml', domainArg(domain), ...(options.inactive ? ['--inactive'] : [])]);
}

export async function describeDomain(conn: LibvirtConnection, domain: string, options: { inactive?: boolean } = {}): Promise<DomainDescription> {
  return parseDomainXml(await domainXml(conn, domain, options));
}

/** Defines (or redefines) a persistent domain from XML; returns it as listed afterwards. */
export async function defineDomain(conn: LibvirtConnection, xml: string): Promise<DomainSummary> {
  const root = parseXmlTree(xml, 'domain XML', 'domain');
  const name = child(root, 'name')?.text.trim();
  if (!name) throw new LibvirtXmlError('domain XML has no <name>');
  await conn.command(['define'], { xmlFiles: { file: xml } });
  return findDomain(conn, name);
}

export interface UndefineOptions {
  /** Also drop libvirt's checkpoint metadata (needed when the domain has checkpoints; bitmaps stay in the images). */
  checkpointsMetadata?: boolean;
  snapshotsMetadata?: boolean;
}

export async function undefineDomain(conn: LibvirtConnection, domain: string, options: UndefineOptions = {}): Promise<void> {
  const flags: string[] = [];
  if (options.checkpointsMetadata) flags.push('--checkpoints-metadata');
  if (options.snapshotsMetadata) flags.push('--snapshots-metadata');
  await conn.command(['undefine', domainArg(domain), ...flags]);
}

export async function startDomain(conn: LibvirtConnection, domain: string, options: { paused?: boolean } = {}): Promise<void> {
  await conn.command(['start', domainArg(domain), ...(options.paused ? ['--paused'] : [])]);
}

/** Stops the domain at once (--graceful: SIGTERM only, so QEMU can write persistent bitmaps). */
export async function destroyDomain(conn: LibvirtConnection, domain: string, options: { graceful?: boolean } = {}): Promise<void> {
  await conn.command(['destroy', domainArg(domain), ...(options.graceful ? ['--graceful'] : [])]);
}

export async function domainState(conn: LibvirtConnection, domain: string): Promise<{ state: DomainState; reason: string }> {
  const out = (await conn.command(['domstate', domainArg(domain), '--reason'])).trim();
  // "running (booted)", "shut off (destroyed)"
  const m = /^(.+?)(?: \((.*)\))?$/.exec(out);
  const words: Record<string, DomainState> = {
    'no state': 'nostate', running: 'running', idle: 'blocked', paused: 'paused', 'in shutdown': 'shutdown',
    'shut off': 'shutoff', crashed: 'crashed', pmsuspended: 'pmsuspended',
  };
  return { state: words[m?.[1] ?? ''] ?? 'unknown', reason: m?.[2] ?? '' };
}

function frozenCount(out: string): number {
  const m = /(\d+) filesystem/.exec(out);
  return m ? Number(m[1]) : 0;
}

/** Freezes guest filesystems through libvirt (the guest agent); returns how many were frozen. */
export async function fsFreeze(conn: LibvirtConnection, domain: string, mountpoints: string[] = []): Promise<number> {
  return frozenCount(await conn.command(['domfsfreeze', domainArg(domain), ...mountpoints.map((m) => opt('mountpoint', m))]));
}

export async function fsThaw(conn: LibvirtConnection, domain: string, mountpoints: string[] = []): Promise<number> {
  return frozenCount(await conn.command(['domfsthaw', domainArg(domain), ...mountpoints.map((m) => opt('mountpoint', m))]));
}
