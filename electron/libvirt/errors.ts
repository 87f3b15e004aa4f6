// The libvirt error hierarchy. Every failure a caller sees is one of these, with one line that keeps
// libvirt's own text ("error: Domain checkpoint not found: …") so users can look it up.

/** What kind of failure libvirt reported, for callers that must react (the text stays libvirt's). */
export type LibvirtErrorKind =
  | 'no-domain'
  | 'no-checkpoint'
  | 'not-running'
  | 'checkpoint-inconsistent'
  | 'already-exists'
  | 'busy'
  | 'no-job'
  | 'agent-unavailable'
  | 'unsupported'
  | 'invalid-argument'
  | 'other';

/** libvirt's message prefixes (virErrorMsg in virerror.c, and a few virsh wordings) → kind. First match wins. */
const KINDS: [RegExp, LibvirtErrorKind][] = [
  [/Domain checkpoint not found|failed to get checkpoint/i, 'no-checkpoint'],
  [/Domain not found|failed to get domain/i, 'no-domain'],
  [/checkpoint inconsistent/i, 'checkpoint-inconsistent'],
  [/domain is not running|inactive domain/i, 'not-running'],
  [/already exists|is already active|already running/i, 'already-exists'],
  [/cannot acquire state change lock|another (backup )?job is already running|job already running/i, 'busy'],
  [/no (active )?(backup )?job|no job is active/i, 'no-job'],
  [/guest agent/i, 'agent-unavailable'],
  [/Operation not supported|unsupported configuration|argument unsupported/i, 'unsupported'],
  [/invalid argument|XML error|XML document failed to validate/i, 'invalid-argument'],
];

export function classifyLibvirtMessage(message: string): LibvirtErrorKind {
  for (const [re, kind] of KINDS) if (re.test(message)) return kind;
  return 'other';
}

/** libvirt (or virsh) refused or failed a command. The connection stays usable. */
export class LibvirtError extends Error {
  /** The virsh command that failed (e.g. "checkpoint-delete"). */
  readonly command: string;
  readonly kind: LibvirtErrorKind;
  constructor(command: string, message: string, kind: LibvirtErrorKind = classifyLibvirtMessage(message)) {
    super(message);
    this.name = 'LibvirtError';
    this.command = command;
    this.kind = kind;
  }
}

/** The connection is gone: never established, libvirtd restarted, the SSH link cut. Call reconnect(). */
export class LibvirtConnectionError extends Error {
  readonly uri: string;
  constructor(uri: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LibvirtConnectionError';
    this.uri = uri;
  }
}

/** A command got no answer in time. The connection was closed (virsh cannot cancel a call). */
export class LibvirtTimeoutError extends LibvirtConnectionError {
  readonly command: string;
  readonly timeoutMs: number;
  constructor(uri: string, command: string, timeoutMs: number) {
    super(uri, `libvirt at ${uri}: ${command} got no answer within ${timeoutMs} ms; the connection was closed`);
    this.name = 'LibvirtTimeoutError';
    this.command = command;
    this.timeoutMs = timeoutMs;
  }
}

/** XML from libvirt or from a caller that Tidemark refuses (hostile, malformed, or not the expected element). */
export class LibvirtXmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LibvirtXmlError';
  }
}
