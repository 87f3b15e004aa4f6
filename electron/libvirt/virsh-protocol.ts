// How Tidemark talks to one interactive `virsh -q -c URI` process (see DEVELOPERS.md, "Talking to
// libvirt"): pure functions for quoting, framing a command between markers, cutting the replies out
// of virsh's stdout/stderr, and reading its error lines. virsh has no machine protocol, so this is
// hand-written; every rule below was measured against virsh 9.0.
//
// Framing: a command goes out as one line `echo B ; echo --err B ; CMD ; echo E ; echo --err E`
// followed by a sentinel line `echo S ; echo --err S`. virsh runs the rest of a line after a
// command fails, but a line it cannot parse runs nothing: then B/E never appear and the sentinel
// alone ends the reply. Markers go out quoted ('@@'tm…) so readline's echo of the typed line never
// contains the marker as printed. In -q mode `echo` prints no newline, and `echo --err` prints
// "error: " + text + newline.

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Quotes one argument for virsh's line parser: single quotes, with ' written as '\''. */
export function quoteVirshArg(arg: string): string {
  if (CONTROL.test(arg)) throw new Error(`virsh argument ${JSON.stringify(arg.slice(0, 60))} contains a control character`);
  return `'${arg.replace(/'/g, "'\\''")}'`;
}

/** `--name=value` as one token. virsh treats any token starting with -- as an option, quoted or not,
 *  so values are always attached to their option name and never passed positionally. */
export function opt(name: string, value: string | number): string {
  return `--${name}=${value}`;
}

export interface Markers {
  begin: string;
  end: string;
  sentinel: string;
}

export function markersFor(nonce: string, seq: number): Markers {
  const m = (k: string) => `@@tm${nonce}:${seq}:${k}@@`;
  return { begin: m('B'), end: m('E'), sentinel: m('S') };
}

/** As typed: the leading @@ quoted apart, so the echoed input line never equals the printed marker. */
function typed(marker: string): string {
  return `'@@'${marker.slice(2)}`;
}

/** The two lines sent for one command (argv[0] is the virsh command name). */
export function frameCommand(nonce: string, seq: number, argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('virsh command is empty');
  const { begin, end, sentinel } = markersFor(nonce, seq);
  const both = (m: string) => `echo ${typed(m)} ; echo --err ${typed(m)}`;
  const cmd = argv.map(quoteVirshArg).join(' ');
  return `${both(begin)} ; ${cmd} ; ${both(end)}\n${both(sentinel)}\n`;
}

export interface VirshReply {
  /** What the command printed on stdout (virsh's trailing newline kept). */
  stdout: string;
  /** The command's stderr lines, notices removed. */
  stderrLines: string[];
  /** virsh could not parse the line, so nothing ran. */
  parseError: boolean;
}

/** Lines virsh prints on its own when the connection drops or it reconnects by itself. */
export type NoticeKind = 'disconnected' | 'reconnected' | 'reconnect-failed';

export function connectionNotice(line: string): NoticeKind | undefined {
  if (/^error: Disconnected from \S+ due to /.test(line)) return 'disconnected';
  if (/^error: Reconnected to the hypervisor\s*$/.test(line)) return 'reconnected';
  if (/^error: Failed to reconnect to the hypervisor\s*$/.test(line)) return 'reconnect-failed';
  return undefined;
}

/**
 * Cuts the reply of the one command in flight out of virsh's two output streams. Feed it every chunk;
 * `take()` returns the reply once the sentinel arrived on both streams. Notices go to `onNotice`
 * wherever they appear; stderr outside a command goes to `onStray`.
 */
export class ReplyScanner {
  private stdout = '';
  private stderrPartial = '';
  private current: { markers: Markers; state: 'before' | 'inside' | 'after'; pre: string[]; lines: string[]; errDone: boolean } | undefined;

  constructor(
    private readonly onNotice: (kind: NoticeKind, line: string) => void,
    private readonly onStray: (line: string) => void,
  ) {}

  expect(markers: Markers): void {
    this.current = { markers, state: 'before', pre: [], lines: [], errDone: false };
  }

  pushStdout(chunk: string): void {
    this.stdout += chunk;
    // Nothing waits for output outside a command: keep only a tail long enough to hold a split marker.
    if (!this.current && this.stdout.length > 4096) this.stdout = this.stdout.slice(-256);
  }

  pushStderr(chunk: string): void {
    const text = this.stderrPartial + chunk;
    const lines = text.split('\n');
    this.stderrPartial = lines.pop()!;
    for (const line of lines) this.stderrLine(line);
  }

  private stderrLine(line: string): void {
    const kind = connectionNotice(line);
    if (kind) {
      this.onNotice(kind, line);
      return;
    }
    const c = this.current;
    if (!c) {
      if (line.trim() !== '') this.onStray(line);
      return;
    }
    const cut = (marker: string): string | undefined => {
      const i = line.indexOf(`error: ${marker}`);
      return i < 0 ? undefined : line.slice(0, i);
    };
    const beforeBegin = cut(c.markers.begin);
    if (beforeBegin !== undefined) {
      if (beforeBegin !== '') c.pre.push(beforeBegin);
      c.state = 'inside';
      return;
    }
    const beforeEnd = cut(c.markers.end);
    if (beforeEnd !== undefined) {
      if (beforeEnd !== '') c.lines.push(beforeEnd);
      c.state = 'after';
      return;
    }
    const beforeSentinel = cut(c.markers.sentinel);
    if (beforeSentinel !== undefined) {
      if (beforeSentinel !== '') (c.state === 'inside' ? c.lines : c.pre).push(beforeSentinel);
      c.errDone = true;
      return;
    }
    if (c.state === 'inside') c.lines.push(line);
    else if (line.trim() !== '') c.pre.push(line);
  }

  /** stderr lines of the command in flight so far (for a virsh that exits before answering). */
  unfinishedLines(): string[] {
    const c = this.current;
    const partial = this.stderrPartial.trim() === '' ? [] : [this.stderrPartial];
    return c ? [...c.pre, ...c.lines, ...partial] : partial;
  }

  /** The finished reply, or undefined while the sentinel has not arrived on both streams. */
  take(): VirshReply | undefined {
    const c = this.current;
    if (!c || !c.errDone) return undefined;
    const s = this.stdout.indexOf(c.markers.sentinel);
    if (s < 0) return undefined;
    const b = this.stdout.indexOf(c.markers.begin);
    const e = this.stdout.indexOf(c.markers.end);
    let reply: VirshReply;
    if (b >= 0 && e > b && c.state === 'after') {
      reply = { stdout: this.stdout.slice(b + c.markers.begin.length, e), stderrLines: c.lines, parseError: false };
    } else {
      // The line did not parse: virsh ran nothing and printed why before the sentinel.
      reply = { stdout: '', stderrLines: c.pre, parseError: true };
    }
    this.stdout = this.stdout.slice(s + c.markers.sentinel.length);
    this.current = undefined;
    return reply;
  }
}

/**
 * virsh's error lines as one line that keeps libvirt's text: each "error: …" line starts a part,
 * other lines continue it; parts are joined with ": " under one leading "error: ".
 * Undefined when no line is an error (virsh printed only warnings or nothing).
 */
export function errorLine(stderrLines: readonly string[]): string | undefined {
  const parts: string[] = [];
  for (const raw of stderrLines) {
    const line = raw.trim();
    if (line === '') continue;
    const m = /^error: ?(.*)$/.exec(line);
    if (m) parts.push(m[1]!.trim());
    else if (parts.length > 0) parts[parts.length - 1] += ` ${line}`;
  }
  const kept = parts.filter((p) => p !== '');
  if (kept.length === 0) return parts.length > 0 ? 'error: virsh reported an error without a message' : undefined;
  // virsh sometimes repeats libvirt's message; say it once.
  const unique = kept.filter((p, i) => kept.indexOf(p) === i);
  return `error: ${unique.join(': ')}`;
}
