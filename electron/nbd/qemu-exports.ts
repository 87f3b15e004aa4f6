// Exports of a running QEMU over its own NBD server (nbd-server-start + block-export-add), for the
// dirty map and pull-mode backups (read-only points in time; writable only for the new layer a pull
// writes, on the unix socket). QEMU runs at most one NBD server, so one ExportManager per QMP
// connection starts it on demand (unix socket in the state dir, or TCP with TLS only), and stops
// it when the last export is gone and nobody else has an export on it.

import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdirPrivate, PRIVATE_FILE_MODE } from '../os/atomic-file';
import * as path from 'node:path';
import type { QmpClient } from '../qmp/client';
import { QmpError } from '../qmp/errors';
import { formatNbdUri, NbdAddress } from './uri';

const UNIX_PATH_MAX = 107;

export type ExportListen =
  | { kind: 'unix' }
  /** TCP needs TLS: the id of a tls-creds-x509 object already added to QEMU (object-add). */
  | { kind: 'tcp'; host: string; port: number; tlsCreds: string };

export interface ExportSpec {
  /** Node to export (a disk's format node, or a fleecing node). */
  nodeName: string;
  /** Dirty bitmaps to expose: plain names on that node, or {node, name} through snapshot-access. */
  bitmaps?: (string | { node: string; name: string })[];
  /** Export name prefix; a random suffix keeps names unique. */
  prefix?: string;
  /** A writable export (a pull's new layer, written by Tidemark); default read-only. Never TCP. */
  writable?: boolean;
}

export interface QemuExport {
  id: string;
  name: string;
  address: NbdAddress;
  uri: string;
  /** block-export-del (hard: drops connected clients) and waits until QEMU reports it gone. */
  remove(): Promise<void>;
}

/** The unix socket of a VM's NBD server, in the state dir (short enough for sun_path). */
export function nbdSocketPath(stateDir: string, vmId: string): string {
  const p = path.join(stateDir, 'run', `nbd-${createHash('sha256').update(vmId).digest('hex').slice(0, 12)}.sock`);
  if (Buffer.byteLength(p) > UNIX_PATH_MAX) throw new Error(`the state directory path is too long for a unix socket (${p}); use a shorter --state-dir`);
  return p;
}

const managers = new WeakMap<QmpClient, ExportManager>();

export class ExportManager {
  private started: { listen: ExportListen; byUs: boolean } | undefined;
  private readonly live = new Set<string>();
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(private readonly qmp: QmpClient, private readonly socketPath: string) {}

  /** The manager for this QMP connection (one QEMU, one NBD server). */
  static for(qmp: QmpClient, socketPath: string): ExportManager {
    let m = managers.get(qmp);
    if (!m) {
      m = new ExportManager(qmp, socketPath);
      managers.set(qmp, m);
    }
    return m;
  }

  /** Serialises server start/stop with export add/remove of this process. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  async add(spec: ExportSpec, listen: ExportListen = { kind: 'unix' }): Promise<QemuExport> {
    if (spec.writable && listen.kind !== 'unix') throw new Error(`a writable export is served on the unix socket only, not on ${listen.kind}`);
    return this.serial(async () => {
      await this.ensureServer(listen);
      const name = `${spec.prefix ?? 'tidemark'}-${randomBytes(4).toString('hex')}`;
      const id = `tm-exp-${name}`;
      const args: Record<string, unknown> = { type: 'nbd', id, 'node-name': spec.nodeName, name, writable: spec.writable === true };
      if (spec.bitmaps?.length) args.bitmaps = spec.bitmaps;
      try {
        await this.qmp.execute('block-export-add', args);
      } catch (e) {
        await this.stopIfIdle();
        throw e instanceof QmpError ? new Error(`cannot export ${spec.nodeName} over NBD: ${e.desc}`, { cause: e }) : e;
      }
      this.live.add(id);
      const l = this.started!.listen;
      const address: NbdAddress = l.kind === 'unix'
        ? { transport: { kind: 'unix', path: this.socketPath }, exportName: name, tls: false }
        : { transport: { kind: 'tcp', host: l.host, port: l.port }, exportName: name, tls: true };
      let removed: Promise<void> | undefined;
      return { id, name, address, uri: formatNbdUri(address), remove: () => (removed ??= this.serial(() => this.del(id))) };
    });
  }

  private async ensureServer(listen: ExportListen): Promise<void> {
    if (this.started) {
      if (this.started.listen.kind !== listen.kind) throw new Error(`QEMU's NBD server already listens on ${this.started.listen.kind}; it cannot serve ${listen.kind} exports at the same time`);
      return;
    }
    mkdirPrivate(path.dirname(this.socketPath));
    const addr = listen.kind === 'unix'
      ? { type: 'unix', data: { path: this.socketPath } }
      : { type: 'inet', data: { host: listen.host, port: String(listen.port) } };
    const args: Record<string, unknown> = { addr };
    if (listen.kind === 'tcp') {
      if (!listen.tlsCreds) throw new Error('a TCP NBD export needs TLS credentials (tls-creds-x509 object id)');
      args['tls-creds'] = listen.tlsCreds;
    }
    if (listen.kind === 'unix') fs.rmSync(this.socketPath, { force: true });
    try {
      await this.qmp.execute('nbd-server-start', args);
      if (listen.kind === 'unix') fs.chmodSync(this.socketPath, PRIVATE_FILE_MODE); // whoever can connect can read the disk
      this.started = { listen, byUs: true };
    } catch (e) {
      if (!(e instanceof QmpError) || !/already running/i.test(e.desc)) throw e;
      // Another Tidemark process (or an earlier run) started it on our socket: share it. A server on
      // any other address belongs to someone else, and we must not take it over.
      if (listen.kind !== 'unix' || !fs.existsSync(this.socketPath)) {
        throw new Error(`QEMU already runs an NBD server that Tidemark did not start (on another address); stop it (nbd-server-stop) or use that tool's exports`, { cause: e });
      }
      this.started = { listen, byUs: false };
    }
  }

  private async del(id: string): Promise<void> {
    const gone = this.qmp.waitForEvent((ev) => ev.event === 'BLOCK_EXPORT_DELETED' && ev.data.id === id, 10_000, `BLOCK_EXPORT_DELETED ${id}`);
    gone.catch(() => undefined);
    try {
      await this.qmp.execute('block-export-del', { id, mode: 'hard' });
      await gone;
    } catch (e) {
      // Already gone (QEMU restarted, or deleted elsewhere) is fine; anything else is reported.
      if (!(e instanceof QmpError && /not found|No export/i.test(e.desc))) throw e;
    } finally {
      this.live.delete(id);
    }
    await this.stopIfIdle();
  }

  /** Stops the server when this process has no exports and QEMU lists none (another process's). */
  private async stopIfIdle(): Promise<void> {
    if (!this.started || this.live.size > 0) return;
    const exports = await this.qmp.execute<{ id: string }[]>('query-block-exports').catch(() => undefined);
    if (exports === undefined || exports.length > 0) return;
    await this.qmp.execute('nbd-server-stop').catch(() => undefined);
    this.serverStopped();
  }

  /**
   * QEMU's NBD server was stopped with no export left (here, or by stopIdleNbdServer): its socket file
   * (on our private path, whoever started the server) goes, and the next export starts the server again.
   */
  serverStopped(): void {
    if (this.started?.listen.kind === 'unix') fs.rmSync(this.socketPath, { force: true });
    this.started = undefined;
    this.live.clear();
  }
}

/**
 * Removes exports a dead process left in QEMU (recovery, not this process's ExportManager): each
 * block-export-del hard, then its BLOCK_EXPORT_DELETED awaited briefly; `removed` hears each one gone.
 * Then stops QEMU's NBD server if that left it with no export at all. Best effort: nothing throws.
 */
export async function removeLeftoverExports(qmp: QmpClient, ids: string[], removed: (id: string) => void): Promise<void> {
  for (const id of ids) {
    const gone = qmp.waitForEvent((e) => e.event === 'BLOCK_EXPORT_DELETED' && e.data.id === id, 3_000, `BLOCK_EXPORT_DELETED ${id}`);
    gone.catch(() => undefined);
    if (await qmp.execute('block-export-del', { id, mode: 'hard' }).then(() => true, () => false)) {
      await gone.catch(() => undefined);
      removed(id);
    }
  }
}

/**
 * Stops QEMU's NBD server when it serves no export (whoever started it). Best effort. This connection's
 * ExportManager hears of it: it would otherwise go on believing it runs the server, and its next export fail.
 */
export async function stopIdleNbdServer(qmp: QmpClient): Promise<void> {
  const left = await qmp.execute<unknown[]>('query-block-exports').catch(() => undefined);
  if (!left || left.length > 0) return;
  if (await qmp.execute('nbd-server-stop').then(() => true, () => false)) managers.get(qmp)?.serverStopped();
}
