// One long-lived interactive `virsh -q -c URI` process: one libvirt connection (one SSH session for
// qemu+ssh://) that serves every command, one at a time, in order. It spawns virsh, writes framed
// commands (virsh-protocol.ts), hands back replies, enforces a per-command timeout, and reports
// when the connection drops (virsh prints "Disconnected from … due to …", or exits).

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { LibvirtConnectionError, LibvirtTimeoutError } from './errors';
import { errorLine, frameCommand, markersFor, ReplyScanner, type NoticeKind, type VirshReply } from './virsh-protocol';

export interface VirshSessionOptions {
  /** The virsh binary (default: `virsh` on PATH). */
  virsh?: string;
  /** libvirt keepalive: a probe every `intervalS` seconds, the link declared dead after `count` unanswered ones. */
  keepaliveIntervalS?: number;
  keepaliveCount?: number;
}

type Waiter = { resolve: (r: VirshReply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout | undefined; command: string };

export class VirshSession {
  readonly uri: string;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly nonce = randomBytes(6).toString('hex');
  private readonly scanner: ReplyScanner;
  private seq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private waiter: Waiter | undefined;
  private readonly stray: string[] = [];
  private readonly noticeListeners = new Set<(kind: NoticeKind, line: string) => void>();
  private readonly exitListeners = new Set<(error: LibvirtConnectionError) => void>();
  private exitError: LibvirtConnectionError | undefined;
  /** Why virsh ended, in virsh's words when it printed any ("failed to connect to the hypervisor: …"). */
  exitDetail: string | undefined;
  private readonly exited: Promise<void>;

  constructor(uri: string, options: VirshSessionOptions = {}) {
    this.uri = uri;
    const args = ['-q', '-k', String(options.keepaliveIntervalS ?? 5), '-K', String(options.keepaliveCount ?? 3), '-c', uri];
    this.child = spawn(options.virsh ?? 'virsh', args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      // Own session: no controlling terminal, so ssh fails instead of prompting for a password,
      // and a Ctrl-C in our terminal does not hit virsh in the middle of a command.
      detached: true,
      env: {
        ...process.env,
        // libvirt translates its messages: keep them in English (parsed and shown as-is), but UTF-8
        // so that readline passes non-ASCII names through untouched.
        LC_ALL: 'C.UTF-8',
        LANGUAGE: '',
        TERM: 'dumb',
        SSH_ASKPASS_REQUIRE: 'never',
        DISPLAY: '',
      },
    });
    this.scanner = new ReplyScanner(
      (kind, line) => {
        for (const l of this.noticeListeners) l(kind, line);
      },
      (line) => {
        this.stray.push(line);
        if (this.stray.length > 20) this.stray.shift();
      },
    );
    this.child.stdout.setEncoding('utf8');
    this.child.stderr.setEncoding('utf8');
    this.child.stdout.on('data', (d: string) => {
      this.scanner.pushStdout(d);
      this.settle();
    });
    this.child.stderr.on('data', (d: string) => {
      this.scanner.pushStderr(d);
      this.settle();
    });
    // A closed stdin (virsh gone) surfaces as EPIPE here; the exit handler reports it.
    this.child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => {
        this.markExited(`cannot run virsh: ${e.message}`);
        resolve();
      });
      this.child.on('close', (code, signal) => {
        const why = errorLine([...this.stray, ...this.scanner.unfinishedLines()]);
        this.markExited(why ?? (signal ? `virsh was killed (${signal})` : `virsh exited with status ${code}`));
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Set once virsh has gone (its reason), else undefined. */
  get exitReason(): LibvirtConnectionError | undefined {
    return this.exitError;
  }

  onNotice(listener: (kind: NoticeKind, line: string) => void): () => void {
    this.noticeListeners.add(listener);
    return () => this.noticeListeners.delete(listener);
  }

  onExit(listener: (error: LibvirtConnectionError) => void): () => void {
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /** Runs one virsh command (argv[0] = command name) after every earlier one has finished. */
  run(argv: readonly string[], timeoutMs: number): Promise<VirshReply> {
    const result = this.queue.then(() => this.runNow(argv, timeoutMs));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private runNow(argv: readonly string[], timeoutMs: number): Promise<VirshReply> {
    if (this.exitError) return Promise.reject(this.exitError);
    const seq = ++this.seq;
    const line = frameCommand(this.nonce, seq, argv);
    return new Promise<VirshReply>((resolve, reject) => {
      const command = argv[0]!;
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new LibvirtTimeoutError(this.uri, command, timeoutMs));
        this.kill();
      }, timeoutMs);
      this.waiter = { resolve, reject, timer, command };
      this.scanner.expect(markersFor(this.nonce, seq));
      this.child.stdin.write(line);
    });
  }

  private settle(): void {
    const w = this.waiter;
    if (!w) return;
    const reply = this.scanner.take();
    if (!reply) return;
    this.waiter = undefined;
    clearTimeout(w.timer);
    w.resolve(reply);
  }

  private markExited(detail: string): void {
    if (this.exitError) return;
    this.exitDetail = detail;
    const error = new LibvirtConnectionError(this.uri, `libvirt at ${this.uri}: ${detail}`);
    this.exitError = error;
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      clearTimeout(w.timer);
      w.reject(new LibvirtConnectionError(this.uri, `${error.message} (during ${w.command})`));
    }
    for (const l of this.exitListeners) l(error);
  }

  /** Ends virsh at once (SIGKILL to it; its ssh child sees the pipe close and exits). */
  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      try {
        this.child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  /** Asks virsh to quit; kills it when it has not exited within `graceMs`. */
  async close(graceMs = 3000): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.stdin.end('quit\n');
      const timer = setTimeout(() => this.kill(), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    await this.exited;
  }
}
