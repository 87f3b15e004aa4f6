// Guest-less TCG domains for libvirt integration tests (and, later, the driver's, model and e2e tests).
//
// * Names are `tm-test-<pid>-<start>-<random>`: the owning test process is in the name, so a sweep
//   removes only domains whose owner is dead (process-liveness.ts), never a parallel run's.
// * Every domain is removed on every path: close(), a process 'exit' (sync virsh calls), SIGINT/SIGTERM,
//   and the sweep at the next start for a SIGKILLed run.
// * Files: the lab folder is /tmp/tm-libvirt-<pid>-<start>-<random>, mode 0711. QEMU runs as another
//   user (libvirt-qemu on Debian) and must traverse it; libvirt chowns the disk images themselves
//   (DAC relabel) but never a folder. Folders QEMU must create files in (pull sockets, scratch,
//   push targets) come from qemuDir(): 0730, group = QEMU's gid from the live <seclabel model='dac'>.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LibvirtConnection } from '../../electron/libvirt/connection';
import { describeDomain, defineDomain, destroyDomain, listDomains, startDomain, undefineDomain } from '../../electron/libvirt/domains';
import { LibvirtError } from '../../electron/libvirt/errors';
import { isProcessAlive, ownStartTime } from '../../electron/os/process-liveness';
import { ensureLibvirtDaemons, useLibvirtd } from './daemons';

export const LOCAL_URI = 'qemu:///system';
/** libvirt's system daemon and the QEMU file ownership the harness sets up need root (CI runs as root);
 *  elsewhere the libvirt integration tests are skipped, and counted as skipped. */
export const runsAsRoot = process.getuid?.() === 0;
const NAME_RE = /^tm-test-(\d+)-(\d+)-[0-9a-f]+$/;
const DIR_RE = /^tm-libvirt-(\d+)-(\d+)-[0-9a-f]+$/;

export interface TestDisk {
  target: string;
  file: string;
  sizeBytes: number;
  /** The device alias in the live domain (e.g. virtio-disk0); set once the domain runs. */
  alias?: string;
}

export interface TestDomain {
  name: string;
  uuid: string;
  dir: string;
  disks: TestDisk[];
}

export interface DomainOptions {
  disks?: { target: string; sizeMiB: number }[];
  /** Start it after defining (default true). */
  start?: boolean;
}

const owner = `${process.pid}-${ownStartTime() ?? '0'}`;
/** Domains of this process not removed yet, for the exit handler: uuid → the URI they live at. */
const live = new Map<string, string>();
const liveDirs = new Set<string>();
let handlersInstalled = false;

/** Removes (synchronously) the live domains and folders of this process, or only those named. */
function syncCleanup(only?: { uuids: Set<string>; dir: string }): void {
  for (const [uuid, uri] of live) {
    if (only && !only.uuids.has(uuid)) continue;
    for (const args of [['destroy', uuid], ['undefine', uuid, '--checkpoints-metadata']]) {
      try {
        execFileSync('virsh', ['-q', '-c', uri, ...args], { stdio: 'ignore', timeout: 20_000 });
      } catch {
        // not running / already gone
      }
    }
    live.delete(uuid);
  }
  for (const dir of liveDirs) {
    if (only && dir !== only.dir) continue;
    fs.rmSync(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => syncCleanup());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      // A second signal (a wrapper relaying the first, an impatient Ctrl-C) must not cut the cleanup short.
      const ignore = () => undefined;
      process.on('SIGINT', ignore);
      process.on('SIGTERM', ignore);
      syncCleanup();
      process.removeAllListeners('SIGINT');
      process.removeAllListeners('SIGTERM');
      process.kill(process.pid, sig);
    });
  }
}

/** A guest-less TCG domain's XML (also used by bench/peers). */
export function domainXmlFor(name: string, disks: Pick<TestDisk, 'target' | 'file'>[]): string {
  const diskXml = disks
    .map((d) => `    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      <source file='${d.file}'/>\n      <target dev='${d.target}' bus='virtio'/>\n    </disk>`)
    .join('\n');
  // type='qemu' (TCG) and no OS: SeaBIOS finds nothing to boot and idles at about 1 % CPU.
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
${diskXml}
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** Removes test domains and lab folders whose owning process is gone (a killed earlier run). */
export async function sweepLeftovers(conn: LibvirtConnection): Promise<string[]> {
  const removed: string[] = [];
  for (const d of await listDomains(conn)) {
    const m = NAME_RE.exec(d.name);
    if (!m || isProcessAlive(Number(m[1]), m[2])) continue;
    // another test process may sweep the same leftover at the same moment
    const gone = (e: unknown) => {
      if (!(e instanceof LibvirtError && (e.kind === 'no-domain' || /not running/.test(e.message)))) throw e;
    };
    if (d.state !== 'shutoff') await destroyDomain(conn, d.uuid).catch(gone);
    if (d.persistent) await undefineDomain(conn, d.uuid, { checkpointsMetadata: true }).catch(gone);
    removed.push(d.name);
  }
  for (const entry of fs.readdirSync(os.tmpdir())) {
    const m = DIR_RE.exec(entry);
    if (m && !isProcessAlive(Number(m[1]), m[2])) fs.rmSync(path.join(os.tmpdir(), entry), { recursive: true, force: true });
  }
  return removed;
}

export class LibvirtTestLab {
  readonly conn: LibvirtConnection;
  readonly dir: string;
  private readonly domains = new Map<string, TestDomain>();
  private readonly releaseLock: () => Promise<void>;

  private constructor(conn: LibvirtConnection, dir: string, releaseLock: () => Promise<void>) {
    this.conn = conn;
    this.dir = dir;
    this.releaseLock = releaseLock;
  }

  /**
   * Daemons up, leftovers of dead runs swept, a lab folder, and one connection (HMP allowed: tests only).
   * `restartsLibvirtd`: the file calls restartLibvirtd (daemons.ts: no other such file runs meanwhile).
   */
  static async open(options: { restartsLibvirtd?: boolean } = {}): Promise<LibvirtTestLab> {
    await ensureLibvirtDaemons();
    const release = await useLibvirtd({ restarts: options.restartsLibvirtd === true });
    let conn: LibvirtConnection | undefined;
    try {
      conn = await LibvirtConnection.open(LOCAL_URI, { allowMonitorCommands: true });
      await sweepLeftovers(conn);
      const dir = path.join(os.tmpdir(), `tm-libvirt-${owner}-${randomBytes(4).toString('hex')}`);
      fs.mkdirSync(dir, { mode: 0o700 });
      fs.chmodSync(dir, 0o711);
      liveDirs.add(dir);
      installHandlers();
      return new LibvirtTestLab(conn, dir, release);
    } catch (e) {
      await conn?.close();
      await release();
      throw e;
    }
  }

  /** Defines (and by default starts) a guest-less domain with qcow2 disks (default vda 64 MiB, vdb 32 MiB). */
  async createDomain(options: DomainOptions = {}): Promise<TestDomain> {
    const name = `tm-test-${owner}-${randomBytes(3).toString('hex')}`;
    const dir = path.join(this.dir, name);
    fs.mkdirSync(dir, { mode: 0o711 });
    fs.chmodSync(dir, 0o711);
    const disks: TestDisk[] = (options.disks ?? [{ target: 'vda', sizeMiB: 64 }, { target: 'vdb', sizeMiB: 32 }]).map((d) => {
      const file = path.join(dir, `${d.target}.qcow2`);
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, `${d.sizeMiB}M`]);
      return { target: d.target, file, sizeBytes: d.sizeMiB * 1024 * 1024 };
    });
    const summary = await defineDomain(this.conn, domainXmlFor(name, disks));
    live.set(summary.uuid, this.conn.uri.text);
    const domain: TestDomain = { name, uuid: summary.uuid, dir, disks };
    this.domains.set(domain.uuid, domain);
    if (options.start ?? true) await this.start(domain);
    return domain;
  }

  /** Starts the domain and records the live device aliases. */
  async start(domain: TestDomain): Promise<void> {
    await startDomain(this.conn, domain.uuid);
    const live = await describeDomain(this.conn, domain.uuid);
    for (const d of domain.disks) d.alias = live.disks.find((x) => x.target === d.target)?.alias;
  }

  /**
   * A folder under the domain's folder that QEMU (as its own user) can create files in and we can
   * read: 0730, group = QEMU's gid from the running domain's DAC label.
   */
  async qemuDir(domain: TestDomain, name: string): Promise<string> {
    const desc = await describeDomain(this.conn, domain.uuid);
    if (!desc.dac) throw new Error(`domain ${domain.name} has no DAC label (is it running?)`);
    const dir = path.join(domain.dir, name);
    fs.mkdirSync(dir, { mode: 0o700 });
    fs.chownSync(dir, process.getuid!(), desc.dac.gid);
    fs.chmodSync(dir, 0o730);
    return dir;
  }

  /** Destroys and undefines one domain (checkpoint metadata included) and removes its folder. */
  async removeDomain(domain: TestDomain): Promise<void> {
    await destroyDomain(this.conn, domain.uuid).catch(() => undefined); // may be shut off already
    await undefineDomain(this.conn, domain.uuid, { checkpointsMetadata: true }).catch((e: unknown) => {
      if (!(e instanceof LibvirtError && e.kind === 'no-domain')) throw e; // a test undefined it itself
    });
    live.delete(domain.uuid);
    this.domains.delete(domain.uuid);
    fs.rmSync(domain.dir, { recursive: true, force: true });
  }

  /** Removes every domain of this lab and its folder; safe to call twice. */
  async close(): Promise<void> {
    const errors: string[] = [];
    const mine = { uuids: new Set(this.domains.keys()), dir: this.dir };
    if (this.conn.lost) await this.conn.reconnect().catch((e: Error) => errors.push(e.message));
    for (const d of [...this.domains.values()]) {
      await this.removeDomain(d).catch((e: Error) => errors.push(`${d.name}: ${e.message}`));
    }
    await this.conn.close();
    syncCleanup(mine); // whatever the async path could not remove, and the lab folder
    await this.releaseLock();
    if (errors.length > 0) throw new Error(`libvirt test lab cleanup: ${errors.join('; ')}`);
  }
}
