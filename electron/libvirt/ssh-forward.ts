// Reaching a unix socket on a qemu+ssh:// host (a pull backup's NBD export binds where QEMU runs):
// OpenSSH forwards it to a local socket (`ssh -N -L LOCAL:REMOTE`), using the user, port, key and
// host-key policy of the libvirt URI. The local socket is 0600 (StreamLocalBindMask) and is only
// removed by us if we can see it is a socket that this forward created.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { parseLibvirtUri, sshTarget, type LibvirtUri } from './uri';

export interface SocketForward {
  localPath: string;
  remotePath: string;
  pid: number;
  /** Ends ssh and removes the local socket. */
  close(): Promise<void>;
}

export interface ForwardOptions {
  /** Limit for the SSH handshake and the forward to be listening (default 30 s). */
  timeoutMs?: number;
  ssh?: string;
}

function isSocket(p: string): boolean {
  try {
    return fs.lstatSync(p).isSocket();
  } catch {
    return false;
  }
}

export function sshForwardArgs(uri: LibvirtUri, localPath: string, remotePath: string): string[] {
  const t = sshTarget(uri);
  const args = ['-N', '-T', '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes', '-o', 'StreamLocalBindUnlink=yes', '-o', 'StreamLocalBindMask=0177'];
  if (t.noVerify) args.push('-o', 'StrictHostKeyChecking=no');
  if (t.port !== undefined) args.push('-p', String(t.port));
  if (t.user !== undefined) args.push('-l', t.user);
  if (t.keyfile !== undefined) args.push('-i', t.keyfile);
  args.push('-L', `${localPath}:${remotePath}`, '--', t.host);
  return args;
}

/** Forwards `remotePath` on the URI's host to `localPath` here; resolves once the local socket listens. */
export async function forwardUnixSocket(uri: LibvirtUri | string, remotePath: string, localPath: string, options: ForwardOptions = {}): Promise<SocketForward> {
  const u = typeof uri === 'string' ? parseLibvirtUri(uri) : uri;
  for (const [what, p] of [['local socket', localPath], ['remote socket', remotePath]] as const) {
    // eslint-disable-next-line no-control-regex
    if (!p.startsWith('/') || /[\u0000-\u001f\u007f:]/.test(p)) throw new Error(`${what} path ${JSON.stringify(p)} must be absolute, without ':' or control characters`);
  }
  if (fs.existsSync(localPath)) throw new Error(`cannot forward to ${localPath}: something is already there`);
  const child = spawn(options.ssh ?? 'ssh', sshForwardArgs(u, localPath, remotePath), {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true, // no controlling terminal: ssh fails instead of asking for a password
    env: { ...process.env, LC_ALL: 'C.UTF-8', DISPLAY: '', SSH_ASKPASS_REQUIRE: 'never' },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    stderr = (stderr + d).slice(-2000);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) => {
    child.on('close', () => {
      exited = true;
      resolve();
    });
    child.on('error', (e) => {
      stderr += e.message;
      exited = true;
      resolve();
    });
  });
  const what = `forward of ${remotePath} on ${u.host} to ${localPath}`;
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (!isSocket(localPath)) {
    if (exited) throw new Error(`ssh ${what} failed: ${stderr.trim().split('\n').pop() || 'ssh exited'}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exit;
      throw new Error(`ssh ${what} was not ready within ${options.timeoutMs ?? 30_000} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    localPath,
    remotePath,
    pid: child.pid!,
    close: async () => {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exit;
        clearTimeout(timer);
      }
      if (isSocket(localPath)) fs.rmSync(localPath, { force: true });
    },
  };
}
