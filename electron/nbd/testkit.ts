// Helpers for integration tests and benches: run nbdkit, read nbdinfo's map, pick a free port.
// Real servers only; nothing here fakes a result.

import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { readPidFile, stopProcess } from './qemu-nbd';
import type { Extent } from './client';

export interface RunningServer {
  uri: string;
  pid: number;
  stop(): Promise<void>;
}

let counter = 0;

/** Runs a program, its output as text (a failure throws with its stderr). */
export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.equals(b);
}

/** Starts nbdkit on a unix socket (or TCP with `tcpPort`); nbdkit forks once it listens. */
export async function startNbdkit(runDir: string, args: string[], opts: { tcpPort?: number; exportName?: string } = {}): Promise<RunningServer> {
  const id = `nbdkit-${process.pid}-${++counter}`;
  const sock = path.join(runDir, `${id}.sock`);
  const pidFile = path.join(runDir, `${id}.pid`);
  const listen = opts.tcpPort ? ['-i', '127.0.0.1', '-p', String(opts.tcpPort)] : ['-U', sock];
  await new Promise<void>((resolve, reject) => {
    execFile('nbdkit', ['-P', pidFile, ...listen, ...args], { timeout: 15_000 }, (err, _o, stderr) => (err ? reject(new Error(`nbdkit did not start: ${stderr || err.message}`)) : resolve()));
  });
  const pid = await readPidFile(pidFile);
  const name = encodeURIComponent(opts.exportName ?? '');
  return {
    uri: opts.tcpPort ? `nbd://127.0.0.1:${opts.tcpPort}/${name}` : `nbd+unix:///${name}?socket=${sock}`,
    pid,
    stop: async () => {
      await stopProcess(pid, 'nbdkit');
      fs.rmSync(sock, { force: true });
      fs.rmSync(pidFile, { force: true });
    },
  };
}

/** `nbdinfo --map[=CONTEXT] --json URI` as extents, adjacent equal types merged. */
export function nbdinfoMap(uri: string, context?: string): Extent[] {
  const out = execFileSync('nbdinfo', [context ? `--map=${context}` : '--map', '--json', uri], { encoding: 'utf8' });
  const rows = JSON.parse(out) as { offset: number; length: number; type: number }[];
  return mergeExtents(rows.map((r) => ({ offset: r.offset, length: r.length, flags: r.type })), 'flags');
}

/** Adjacent ranges with the same `key` (an extent's flags, a copy operation's kind) joined into one. */
export function mergeExtents<T extends { offset: number; length: number }>(extents: readonly T[], key: keyof T): T[] {
  const out: T[] = [];
  for (const e of extents) {
    const last = out[out.length - 1];
    if (last && last[key] === e[key] && last.offset + last.length === e.offset) last.length += e.length;
    else out.push({ ...e });
  }
  return out;
}

/** A loopback TCP port that was free a moment ago: nothing listens on it until a test starts a server there. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** A self-signed CA, a server certificate for "localhost"/127.0.0.1 and a client certificate, in
 *  the file names QEMU's tls-creds-x509 expects (it verifies client certificates by default). */
export function makeTlsCreds(dir: string): { dir: string; caPem: string; clientCert: string; clientKey: string } {
  fs.mkdirSync(dir, { recursive: true });
  const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  o(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-days', '2', '-subj', '/CN=Tidemark test CA']);
  const issue = (name: string, cn: string, ext: string) => {
    o(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    fs.writeFileSync(path.join(dir, `${name}.cnf`), ext);
    o(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-out', `${name}-cert.pem`, '-days', '2', '-extfile', `${name}.cnf`]);
  };
  issue('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  issue('client', 'tidemark', 'keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
  const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  return { dir, caPem: read('ca-cert.pem'), clientCert: read('client-cert.pem'), clientKey: read('client-key.pem') };
}
