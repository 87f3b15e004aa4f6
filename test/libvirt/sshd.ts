// A throwaway sshd on 127.0.0.1 for qemu+ssh:// tests: temporary host and client keys, a free port,
// run in the foreground (-D -e) so we own its PID, stopped afterwards, and the known_hosts line that
// no_verify=1 made ssh add is removed again (ssh-keygen -R '[127.0.0.1]:PORT'). Nothing leaves the
// machine. See ../shared/notes/libvirt-over-ssh-on-loopback.md beside the checkout.

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from '../../electron/nbd/testkit';

export interface TestSshd {
  port: number;
  pid: number;
  /** The client private key (its public half is the only authorized key). */
  keyfile: string;
  /** qemu+ssh://root@127.0.0.1:PORT/system?keyfile=…&no_verify=1 */
  uri: string;
  /** Cuts every open SSH session (SIGKILL to sshd's per-connection processes); sshd keeps listening. */
  cutConnections(): number;
  stop(): Promise<void>;
}

/** Direct children of `pid`, from /proc. */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

export async function startTestSshd(): Promise<TestSshd> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-sshd-'));
  const key = (name: string) => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `tidemark-test-${name}`, '-f', path.join(dir, name)]);
    return path.join(dir, name);
  };
  const hostKey = key('host');
  const clientKey = key('client');
  fs.copyFileSync(`${clientKey}.pub`, path.join(dir, 'authorized_keys'));
  const port = await freePort();
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(
    config,
    [
      'ListenAddress 127.0.0.1',
      `Port ${port}`,
      `HostKey ${hostKey}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      // Debian's PAM stack breaks sessions in containers; key login works without it.
      'UsePAM no',
      // the keys live under /tmp, which StrictModes would refuse
      'StrictModes no',
      'AllowStreamLocalForwarding yes',
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      '',
    ].join('\n'),
  );
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation folder; nothing creates it without systemd
  const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sshd did not start within 15 s: ${log.trim()}`)), 15_000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      log += d;
      if (log.includes(`Server listening on 127.0.0.1 port ${port}`)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited (${code}) before listening: ${log.trim()}`));
    });
  });
  return {
    port,
    pid: child.pid!,
    keyfile: clientKey,
    uri: `qemu+ssh://root@127.0.0.1:${port}/system?keyfile=${clientKey}&no_verify=1`,
    cutConnections: () => {
      let n = 0;
      for (const pid of childPids(child.pid!)) {
        try {
          process.kill(pid, 'SIGKILL');
          n++;
        } catch {
          // gone already
        }
      }
      return n;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      try {
        execFileSync('ssh-keygen', ['-R', `[127.0.0.1]:${port}`], { stdio: 'ignore' });
      } catch {
        // no known_hosts file, or no such entry
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
