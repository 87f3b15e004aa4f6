// Runs `qemu-nbd` on a unix socket (or TCP) for one image, and stops it. `--fork` makes the parent
// exit only once the server listens, so "started" means ready; we then own the child by its pid.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdirPrivate, PRIVATE_FILE_MODE } from '../os/atomic-file';
import * as path from 'node:path';
import { formatNbdUri, NbdAddress } from './uri';

export interface QemuNbdOptions {
  image: string;
  format: 'qcow2' | 'raw';
  /** Directory for the socket and pid file (short: unix socket paths are limited to 107 bytes). */
  runDir: string;
  exportName?: string;
  /** Listen on TCP instead of a unix socket. TLS is then required (tlsCredsDir). */
  tcp?: { host: string; port: number };
  /** Directory holding ca-cert.pem, server-cert.pem, server-key.pem (tls-creds-x509). */
  tlsCredsDir?: string;
  readOnly?: boolean;
  /** Dirty bitmaps to expose as qemu:dirty-bitmap:NAME. */
  bitmaps?: string[];
  /** "unmap" lets trims and zero writes punch holes in the image. */
  discard?: 'ignore' | 'unmap';
  /** Default writeback. */
  cache?: 'none' | 'writeback' | 'writethrough' | 'unsafe' | 'directsync';
}

export interface QemuNbdServer {
  address: NbdAddress;
  uri: string;
  pid: number;
  /** Stops the server (SIGTERM, then SIGKILL) and removes its socket and pid file. */
  stop(): Promise<void>;
}

const UNIX_PATH_MAX = 107;
let counter = 0;

export async function startQemuNbd(o: QemuNbdOptions): Promise<QemuNbdServer> {
  if (o.tcp && !o.tlsCredsDir) throw new Error('a TCP NBD export needs TLS: give tlsCredsDir (unix sockets need none)');
  const id = `qnbd-${process.pid}-${++counter}`;
  const socketPath = path.join(o.runDir, `${id}.sock`);
  const pidFile = path.join(o.runDir, `${id}.pid`);
  if (!o.tcp && Buffer.byteLength(socketPath) > UNIX_PATH_MAX) throw new Error(`socket path too long for a unix socket (${socketPath}); use a shorter directory`);
  mkdirPrivate(o.runDir);
  const exportName = o.exportName ?? path.basename(o.image);
  const args = ['--fork', '--pid-file', pidFile, '-f', o.format, '-x', exportName, '--persistent', '--shared', '4'];
  if (o.tcp) args.push('-b', o.tcp.host, '-p', String(o.tcp.port));
  else args.push('-k', socketPath);
  if (o.tlsCredsDir) args.push('--object', `tls-creds-x509,id=tls0,endpoint=server,dir=${o.tlsCredsDir}`, '--tls-creds', 'tls0');
  if (o.readOnly) args.push('-r');
  for (const b of o.bitmaps ?? []) args.push('-B', b);
  if (o.discard) args.push(`--discard=${o.discard}`);
  args.push(`--cache=${o.cache ?? 'writeback'}`);
  args.push(o.image);
  await new Promise<void>((resolve, reject) => {
    execFile('qemu-nbd', args, { timeout: 15_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`qemu-nbd did not start for ${o.image}: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
  const pid = await readPidFile(pidFile);
  if (!o.tcp) fs.chmodSync(socketPath, PRIVATE_FILE_MODE); // whoever can connect can read and write the disk
  const address: NbdAddress = { transport: o.tcp ? { kind: 'tcp', ...o.tcp } : { kind: 'unix', path: socketPath }, exportName, tls: Boolean(o.tlsCredsDir) };
  return {
    address,
    uri: formatNbdUri(address),
    pid,
    stop: async () => {
      await stopProcess(pid, 'qemu-nbd');
      fs.rmSync(socketPath, { force: true });
      fs.rmSync(pidFile, { force: true });
    },
  };
}

function alive(pid: number, name: string): boolean {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/\) Z /.test(stat)) return false;
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(name);
  } catch {
    return false;
  }
}

/** Stops a process we started (checking it is still `name`, not a recycled pid). */
export async function stopProcess(pid: number, name: string, timeoutMs = 5_000): Promise<void> {
  if (!alive(pid, name)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive(pid, name)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  if (alive(pid, name)) process.kill(pid, 'SIGKILL');
}

/** Reads a pid file, waiting briefly: nbdkit writes it only after its parent has exited. */
export async function readPidFile(file: string, timeoutMs = 5_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0) return pid;
    } catch {
      // not written yet
    }
    if (Date.now() > deadline) throw new Error(`no pid in ${file} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
