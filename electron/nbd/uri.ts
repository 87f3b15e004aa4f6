// NBD URIs (NetworkBlockDevice/nbd doc/uri.md): nbd://HOST[:PORT]/EXPORT, nbds://… (TLS required),
// nbd+unix:///EXPORT?socket=PATH and nbds+unix:///EXPORT?socket=PATH. The export name is the path
// without its leading "/", percent-decoded.

export const NBD_DEFAULT_PORT = 10809;

export type NbdTransport = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export interface NbdAddress {
  transport: NbdTransport;
  exportName: string;
  /** The URI asked for TLS (nbds, nbds+unix): connecting without it must fail. */
  tls: boolean;
  /** tls-hostname, when given. */
  tlsHostname?: string;
}

const KNOWN_QUERY = new Set(['socket', 'tls-type', 'tls-hostname', 'tls-verify-peer']);

export function parseNbdUri(text: string): NbdAddress {
  const m = /^(nbd|nbds|nbd\+unix|nbds\+unix):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?$/.exec(text.trim());
  if (!m) throw new Error(`NBD URI ${JSON.stringify(text)} is not nbd://HOST[:PORT]/EXPORT or nbd+unix:///EXPORT?socket=PATH`);
  const scheme = m[1]!;
  const authority = m[2]!;
  const pathPart = m[3]!;
  const query = new URLSearchParams((m[4] ?? '').slice(1));
  for (const key of query.keys()) {
    if (!KNOWN_QUERY.has(key) && !key.startsWith('x-')) throw new Error(`NBD URI ${JSON.stringify(text)} has an unknown query parameter "${key}"`);
  }
  let exportName: string;
  try {
    exportName = decodeURIComponent(pathPart.startsWith('/') ? pathPart.slice(1) : pathPart);
  } catch {
    throw new Error(`NBD URI ${JSON.stringify(text)} has a badly percent-encoded export name`);
  }
  const tls = scheme.startsWith('nbds');
  const tlsHostname = query.get('tls-hostname') ?? undefined;
  if (scheme.endsWith('+unix')) {
    const socket = query.get('socket');
    if (!socket) throw new Error(`NBD URI ${JSON.stringify(text)} needs ?socket=PATH for a unix socket`);
    if (authority !== '') throw new Error(`NBD URI ${JSON.stringify(text)}: a unix-socket URI must not name a host ("${authority}")`);
    return { transport: { kind: 'unix', path: socket }, exportName, tls, tlsHostname };
  }
  const hp = /^(?:[^@]*@)?(\[[^\]]+\]|[^:]*)(?::(\d*))?$/.exec(authority);
  if (!hp || hp[1] === '') throw new Error(`NBD URI ${JSON.stringify(text)} has no host`);
  const port = hp[2] ? Number(hp[2]) : NBD_DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`NBD URI ${JSON.stringify(text)} has an invalid port "${hp[2]}"`);
  return { transport: { kind: 'tcp', host: hp[1]!.replace(/^\[|\]$/g, ''), port }, exportName, tls, tlsHostname };
}

/** Formats an address as a URI that nbdinfo, nbdcopy and qemu-img accept. */
export function formatNbdUri(addr: NbdAddress): string {
  const name = encodeURIComponent(addr.exportName);
  const t = addr.transport;
  if (t.kind === 'unix') {
    // Keep "/" readable in the socket path: nbdinfo and qemu decode %2F too, but humans read this.
    const socket = encodeURIComponent(t.path).replace(/%2F/g, '/');
    return `${addr.tls ? 'nbds' : 'nbd'}+unix:///${name}?socket=${socket}`;
  }
  const host = t.host.includes(':') ? `[${t.host}]` : t.host;
  const port = t.port === NBD_DEFAULT_PORT ? '' : `:${t.port}`;
  return `${addr.tls ? 'nbds' : 'nbd'}://${host}${port}/${name}`;
}

export function describeTransport(t: NbdTransport): string {
  return t.kind === 'unix' ? `unix:${t.path}` : `tcp:${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`;
}
