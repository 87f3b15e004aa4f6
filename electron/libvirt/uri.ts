// libvirt connection URIs as Tidemark accepts them. Only the QEMU driver, over the local socket,
// SSH or TLS; anything else is refused with one line naming the URI and the accepted shapes.
// URI parameters that make libvirt run other commands on the remote host (command=, netcat=,
// socket=) are refused: a URI typed into a dialog must not become a remote shell command.

export type LibvirtTransport = 'local' | 'ssh' | 'tls';

export interface LibvirtUri {
  /** The URI exactly as given (trimmed); this is what virsh -c receives. */
  text: string;
  transport: LibvirtTransport;
  /** 'system' (the privileged daemon) or 'session' (a per-user daemon). */
  instance: 'system' | 'session';
  user?: string;
  host?: string;
  port?: number;
  /** Query parameters, decoded. */
  params: Record<string, string>;
}

export const ACCEPTED_URI_SHAPES =
  'qemu:///system, qemu:///session, qemu+ssh://[user@]host[:port]/system[?keyfile=…&no_verify=1] or qemu+tls://host[:port]/system';

/** Parameters libvirt's remote driver understands that are safe to pass on (see libvirt's uri docs). */
const ALLOWED_PARAMS: Record<LibvirtTransport, readonly string[]> = {
  local: [],
  ssh: ['keyfile', 'no_verify', 'no_tty', 'sshauth', 'mode', 'proxy'],
  tls: ['pkipath', 'no_verify', 'tls_priority', 'mode', 'proxy'],
};

const SCHEMES: Record<string, LibvirtTransport> = { 'qemu:': 'local', 'qemu+ssh:': 'ssh', 'qemu+tls:': 'tls' };

export class LibvirtUriError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LibvirtUriError';
  }
}

function refuse(text: string, why: string): never {
  throw new LibvirtUriError(`libvirt URI ${JSON.stringify(text)} ${why}`);
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV6 = /^\[[0-9A-Fa-f:.]+\]$/;
const USER = /^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$/;

/** Parses and checks a libvirt URI; throws LibvirtUriError (one line, naming the URI) otherwise. */
export function parseLibvirtUri(input: string): LibvirtUri {
  if (typeof input !== 'string') throw new LibvirtUriError('libvirt URI must be a string');
  const text = input.trim();
  if (text === '') throw new LibvirtUriError(`libvirt URI is empty: use ${ACCEPTED_URI_SHAPES}`);
  if (CONTROL.test(text) || /\s/.test(text)) refuse(text, 'contains spaces or control characters');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    refuse(text, `is not a URI: use ${ACCEPTED_URI_SHAPES}`);
  }
  const transport = SCHEMES[url.protocol];
  if (!transport) refuse(text, `has an unsupported scheme "${url.protocol.replace(/:$/, '')}": use ${ACCEPTED_URI_SHAPES}`);
  if (url.hash !== '') refuse(text, 'must not have a #fragment');
  if (url.password !== '') refuse(text, 'must not carry a password (use an SSH key: keyfile=…)');

  const instance = url.pathname === '/system' ? 'system' : url.pathname === '/session' ? 'session' : undefined;
  if (!instance) refuse(text, `has path "${url.pathname}"; it must be /system or /session`);

  const out: LibvirtUri = { text, transport, instance, params: {} };
  if (transport === 'local') {
    if (url.host !== '' || url.username !== '') refuse(text, `names a host; a local URI is qemu:///${instance} (use qemu+ssh:// or qemu+tls:// for a remote host)`);
  } else {
    if (url.hostname === '') refuse(text, `has no host: use ${ACCEPTED_URI_SHAPES}`);
    if (!HOSTNAME.test(url.hostname) && !IPV6.test(url.hostname)) refuse(text, `has an invalid host "${url.hostname}"`);
    out.host = url.hostname.replace(/^\[|\]$/g, '');
    if (url.port !== '') out.port = Number(url.port);
    if (url.username !== '') {
      const user = decodeURIComponent(url.username);
      if (!USER.test(user)) refuse(text, `has an invalid user name "${user}"`);
      if (transport === 'tls') refuse(text, 'names a user; qemu+tls:// authenticates with certificates, not a user name');
      out.user = user;
    }
  }

  for (const [key, value] of url.searchParams) {
    if (!ALLOWED_PARAMS[transport].includes(key)) {
      const allowed = ALLOWED_PARAMS[transport];
      refuse(text, `has parameter "${key}", which Tidemark does not pass on${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ' (a local URI takes none)'}`);
    }
    if (key in out.params) refuse(text, `repeats parameter "${key}"`);
    if (CONTROL.test(value)) refuse(text, `has a control character in parameter "${key}"`);
    out.params[key] = value;
  }
  if (out.params.keyfile !== undefined && !out.params.keyfile.startsWith('/')) refuse(text, `has keyfile "${out.params.keyfile}"; it must be an absolute path`);
  return out;
}

export function isRemote(uri: LibvirtUri): boolean {
  return uri.transport !== 'local';
}

/** Where the SSH transport of a qemu+ssh:// URI goes, for tools that need the same SSH (socket forwarding). */
export interface SshTarget {
  host: string;
  port?: number;
  user?: string;
  keyfile?: string;
  /** no_verify=1: accept an unknown host key (libvirt passes StrictHostKeyChecking=no). */
  noVerify: boolean;
}

export function sshTarget(uri: LibvirtUri): SshTarget {
  if (uri.transport !== 'ssh' || uri.host === undefined) throw new LibvirtUriError(`libvirt URI ${JSON.stringify(uri.text)} does not use SSH`);
  const t: SshTarget = { host: uri.host, noVerify: uri.params.no_verify !== undefined && uri.params.no_verify !== '0' };
  if (uri.port !== undefined) t.port = uri.port;
  if (uri.user !== undefined) t.user = uri.user;
  if (uri.params.keyfile !== undefined) t.keyfile = uri.params.keyfile;
  return t;
}
