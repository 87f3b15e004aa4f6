// A connection to one libvirt daemon, by URI: one long-lived virsh process (virsh-session.ts),
// commands in, stdout or a LibvirtError out, XML handed over in private temp files, and a dead
// connection (libvirtd restarted, SSH link cut, keepalive timeout) reported once as a
// LibvirtConnectionError on the next call, after which reconnect() opens a fresh one.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createFileExclusive } from '../os/atomic-file';
import { LibvirtConnectionError, LibvirtError, LibvirtTimeoutError } from './errors';
import { parseLibvirtUri, type LibvirtUri } from './uri';
import { errorLine, opt, type NoticeKind } from './virsh-protocol';
import { VirshSession, type VirshSessionOptions } from './virsh-session';

export interface LibvirtConnectionOptions extends VirshSessionOptions {
  /** Per-command limit (default 120 s; libvirt itself gives up on a busy domain after 30 s). */
  commandTimeoutMs?: number;
  /** Limit for connecting, SSH handshake included (default 60 s). */
  connectTimeoutMs?: number;
  /** Test harness only (HMP qemu-io to fake guest writes). Product code never sets this: libvirt's
   *  metadata must not be bypassed, and qemu-monitor-command taints the domain. */
  allowMonitorCommands?: boolean;
}

export interface CommandOptions {
  /** XML documents to hand over as files: option name → XML (e.g. { xmlfile: '<domaincheckpoint>…' }). */
  xmlFiles?: Record<string, string>;
  timeoutMs?: number;
}

/** virsh commands that talk to QEMU or the guest agent behind libvirt's back. */
const MONITOR_COMMANDS = new Set(['qemu-monitor-command', 'qemu-agent-command', 'qemu-monitor-event', 'qemu-attach']);

const DEFAULTS = { commandTimeoutMs: 120_000, connectTimeoutMs: 60_000 };

export class LibvirtConnection {
  readonly uri: LibvirtUri;
  private readonly options: LibvirtConnectionOptions;
  private session: VirshSession | undefined;
  private lostReason: LibvirtConnectionError | undefined;
  private inFlight = 0;
  private readonly lostListeners = new Set<(reason: LibvirtConnectionError) => void>();
  private closed = false;
  private reconnecting: Promise<void> | undefined;

  private constructor(uri: LibvirtUri, options: LibvirtConnectionOptions) {
    this.uri = uri;
    this.options = options;
  }

  /** Connects (the URI is checked first: a malformed one is refused before anything runs). */
  static async open(uri: string, options: LibvirtConnectionOptions = {}): Promise<LibvirtConnection> {
    const conn = new LibvirtConnection(parseLibvirtUri(uri), options);
    await conn.connect();
    return conn;
  }

  /** Why the connection is unusable (then call reconnect()), or undefined while it works. */
  get lost(): LibvirtConnectionError | undefined {
    return this.lostReason;
  }

  /** Called once per loss, as soon as it is noticed (even between commands). */
  onLost(listener: (reason: LibvirtConnectionError) => void): () => void {
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  private async connect(): Promise<void> {
    const session = new VirshSession(this.uri.text, this.options);
    this.session = session;
    this.lostReason = undefined;
    session.onNotice((kind, line) => this.onNotice(session, kind, line));
    session.onExit((e) => this.markLost(session, e));
    try {
      // virsh connects before it reads its first line: this answers once the connection is up.
      const reply = await session.run(['uri'], this.options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs);
      const err = errorLine(reply.stderrLines);
      if (err) throw new Error(err);
    } catch (e) {
      session.kill();
      await session.close();
      const detail = e instanceof LibvirtTimeoutError ? `no answer within ${e.timeoutMs} ms` : (session.exitDetail ?? (e as Error).message);
      throw new LibvirtConnectionError(this.uri.text, `cannot connect to libvirt at ${this.uri.text}: ${detail}`, { cause: e });
    }
  }

  private onNotice(session: VirshSession, kind: NoticeKind, line: string): void {
    if (session !== this.session) return;
    const what = line.replace(/^error: /, '');
    const reason = new LibvirtConnectionError(
      this.uri.text,
      kind === 'reconnected'
        ? `libvirt connection to ${this.uri.text} was lost and virsh reconnected on its own; call reconnect() to continue`
        : `libvirt connection to ${this.uri.text} was lost (${what}); call reconnect() to continue`,
    );
    // A notice inside a command: let that command's reply arrive first (it may have run), then stop.
    this.markLost(session, reason, this.inFlight === 0);
  }

  private markLost(session: VirshSession, reason: LibvirtConnectionError, killNow = true): void {
    if (session !== this.session) return;
    if (!this.lostReason) {
      this.lostReason = reason;
      for (const l of this.lostListeners) l(reason);
    }
    if (killNow) session.kill();
  }

  /** Runs one virsh command; returns its stdout, or throws LibvirtError with libvirt's text. */
  async command(argv: readonly string[], options: CommandOptions = {}): Promise<string> {
    const name = argv[0];
    if (name === undefined) throw new Error('virsh command is empty');
    if (MONITOR_COMMANDS.has(name) && !this.options.allowMonitorCommands) {
      throw new Error(`virsh ${name} is not allowed: Tidemark changes VMs only through libvirt's API`);
    }
    if (this.closed) throw new LibvirtConnectionError(this.uri.text, `libvirt connection to ${this.uri.text} is closed`);
    if (this.lostReason) throw this.lostReason;
    const session = this.session!;
    const { dir, files } = writeXmlFiles(options.xmlFiles ?? {});
    this.inFlight++;
    try {
      const reply = await session.run([...argv, ...files.map((f) => opt(f.option, f.path))], options.timeoutMs ?? this.options.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs);
      const err = errorLine(reply.stderrLines);
      const lost = this.lost; // may have been set while the command ran
      if (lost) {
        // The link went down during this command: if it failed, that is why; if it worked, the
        // result stands and the loss is reported on the next call.
        if (err) throw new LibvirtConnectionError(this.uri.text, `${lost.message.replace(/; call reconnect\(\) to continue$/, '')} during ${name}: ${err}`);
        session.kill();
      }
      if (err) throw new LibvirtError(name, err);
      return reply.stdout;
    } finally {
      this.inFlight--;
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Drops the current virsh (whatever its state) and connects again. */
  /** Callers reconnecting at the same moment (the driver's link, a backup's rollback) share one attempt: two would leave a virsh behind. */
  reconnect(): Promise<void> {
    this.reconnecting ??= this.replaceSession().finally(() => {
      this.reconnecting = undefined;
    });
    return this.reconnecting;
  }

  private async replaceSession(): Promise<void> {
    if (this.closed) throw new LibvirtConnectionError(this.uri.text, `libvirt connection to ${this.uri.text} is closed`);
    const old = this.session;
    this.session = undefined;
    if (old) {
      old.kill();
      await old.close();
    }
    await this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    const s = this.session;
    this.session = undefined;
    if (s) await s.close();
  }
}

/**
 * XML for one command as files virsh reads itself (on this machine, also for a remote URI): 0600 in a
 * fresh 0700 folder that the caller removes right after the command, so nothing outlives it.
 */
function writeXmlFiles(xmlFiles: Record<string, string>): { dir?: string; files: { option: string; path: string }[] } {
  const entries = Object.entries(xmlFiles);
  if (entries.length === 0) return { files: [] };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tidemark-virsh-'));
  try {
    return { dir, files: entries.map(([option, xml]) => {
      const file = path.join(dir, `${option}.xml`);
      createFileExclusive(file, xml);
      return { option, path: file };
    }) };
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
