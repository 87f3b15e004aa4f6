// The libvirt peers: one long-lived helper (libvirt_peer.py, Debian's python3 with python3-libvirt
// and python3-libnbd) holds the libvirt connection, so injected guest writes cost no virsh start-up
// each. The XML for the guest-less TCG domain and the backup/checkpoint documents lives here too.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { domainXmlFor } from '../../test/libvirt/lab';

export interface DomainDisk {
  dev: string;
  file: string;
}

/** The same guest-less TCG domain the libvirt tests define (test/libvirt/lab.ts). */
export function domainXml(name: string, disks: DomainDisk[]): string {
  return domainXmlFor(name, disks.map((d) => ({ target: d.dev, file: d.file })));
}

/** A checkpoint with a bitmap on `disks` only (every other disk of `all` is listed as checkpoint='no': libvirt needs each disk named). */
export function checkpointXml(name: string, disks: string[], all: string[]): string {
  const rows = all.map((d) => `<disk name='${d}' checkpoint='${disks.includes(d) ? 'bitmap' : 'no'}'/>`).join('');
  return `<domaincheckpoint><name>${name}</name><disks>${rows}</disks></domaincheckpoint>`;
}

/** Push backup of `disk` into `target` (libvirt creates the qcow2), incremental since `since` when given. */
export function pushXml(disk: string, target: string, all: string[], since?: string): string {
  const rows = all.map((d) => (d === disk ? `<disk name='${d}' type='file'><target file='${target}'/><driver type='qcow2'/></disk>` : `<disk name='${d}' backup='no'/>`)).join('');
  return `<domainbackup>${since ? `<incremental>${since}</incremental>` : ''}<disks>${rows}</disks></domainbackup>`;
}

/** Pull backup of `disk` over a unix socket, incremental since `since`; the scratch file takes copy-before-write data. */
export function pullXml(disk: string, socket: string, scratch: string, all: string[], since: string): string {
  const rows = all.map((d) => (d === disk ? `<disk name='${d}' backup='yes' type='file'><scratch file='${scratch}'/></disk>` : `<disk name='${d}' backup='no'/>`)).join('');
  return `<domainbackup mode='pull'><incremental>${since}</incremental><server transport='unix' socket='${socket}'/><disks>${rows}</disks></domainbackup>`;
}

interface Reply {
  id: number;
  ok: boolean;
  error?: string;
  [k: string]: unknown;
}

export class LibvirtHelper {
  private next = 1;
  private readonly waiting = new Map<number, (r: Reply) => void>();
  private closed: Error | undefined;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const r = JSON.parse(line) as Reply;
      this.waiting.get(r.id)?.(r);
      this.waiting.delete(r.id);
    });
    child.stderr.on('data', (b: Buffer) => process.stderr.write(`[libvirt helper] ${b.toString()}`));
    child.on('exit', (code) => {
      this.closed = new Error(`the libvirt helper exited (${code})`);
      for (const w of this.waiting.values()) w({ id: 0, ok: false, error: this.closed.message });
      this.waiting.clear();
    });
  }

  static start(): LibvirtHelper {
    return new LibvirtHelper(spawn('/usr/bin/python3', [path.join(__dirname, 'libvirt_peer.py')], { stdio: ['pipe', 'pipe', 'pipe'] }));
  }

  async call<T = Record<string, unknown>>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.closed) throw this.closed;
    const id = this.next++;
    const reply = await new Promise<Reply>((resolve) => {
      this.waiting.set(id, resolve);
      this.child.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
    if (!reply.ok) throw new Error(`libvirt ${op}: ${reply.error}`);
    return reply as unknown as T;
  }

  /** Closes stdin: the helper then destroys and undefines its domain if stop was not called, and exits. */
  async close(): Promise<void> {
    if (this.closed) return;
    const gone = new Promise((r) => this.child.once('exit', r));
    this.child.stdin.end();
    await Promise.race([gone, new Promise((r) => setTimeout(r, 30_000))]);
  }
}
