// How the libvirt client fails: malformed URIs, hosts that cannot be reached, and libvirtd restarting
// between two calls (the client reports the loss once noticed, and reconnect() brings it back).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, makeTlsCreds } from '../nbd/testkit';
import { restartLibvirtd } from '../../test/libvirt/daemons';
import { LOCAL_URI, LibvirtTestLab, type TestDomain, runsAsRoot } from '../../test/libvirt/lab';
import { LibvirtConnection } from './connection';
import { domainState, listDomains } from './domains';
import { LibvirtConnectionError } from './errors';
import { LibvirtUriError } from './uri';

let lab: LibvirtTestLab;
let dom: TestDomain;

beforeAll(async () => {
  if (!runsAsRoot) return;
  // It restarts libvirtd: it waits here while another file that does runs (test/libvirt/daemons.ts).
  lab = await LibvirtTestLab.open({ restartsLibvirtd: true });
  dom = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 16 }] });
}, 900_000);

afterAll(async () => {
  await lab?.close();
}, 120_000);

describe.skipIf(!runsAsRoot)('connection failures', () => {
  it('refuses a malformed URI with one line naming it, before running anything', async () => {
    const e = await LibvirtConnection.open('qemu+ssh//root@host/system').catch((x: Error) => x);
    expect(e).toBeInstanceOf(LibvirtUriError);
    expect((e as Error).message).toMatch(/^libvirt URI "qemu\+ssh\/\/root@host\/system" /);
  });

  it('reports an unreachable host with ssh and libvirt text', async () => {
    const port = await freePort(); // nothing listens on it
    const uri = `qemu+ssh://root@127.0.0.1:${port}/system?no_verify=1`;
    const e = await LibvirtConnection.open(uri).catch((x: Error) => x);
    expect(e).toBeInstanceOf(LibvirtConnectionError);
    expect((e as Error).message).toBe(
      `cannot connect to libvirt at ${uri}: error: failed to connect to the hypervisor: Cannot recv data: ssh: connect to host 127.0.0.1 port ${port}: Connection refused: Connection reset by peer`,
    );
  });

  it('reports a qemu+tls host that cannot be reached, and missing certificates, in libvirt words', async () => {
    const port = await freePort(); // nothing listens on it
    const noPki = await LibvirtConnection.open(`qemu+tls://127.0.0.1:${port}/system?pkipath=/nonexistent-tm-pki`).catch((x: Error) => x);
    expect(noPki).toBeInstanceOf(LibvirtConnectionError);
    expect((noPki as Error).message).toMatch(/: error: failed to connect to the hypervisor: Cannot read CA certificate '\/nonexistent-tm-pki\/cacert\.pem': No such file or directory$/);
    // with certificates in place, libvirt gets as far as the TCP connect
    const pki = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-pki-'));
    try {
      const creds = makeTlsCreds(path.join(pki, 'gen'));
      fs.copyFileSync(path.join(creds.dir, 'ca-cert.pem'), path.join(pki, 'cacert.pem'));
      fs.copyFileSync(path.join(creds.dir, 'client-cert.pem'), path.join(pki, 'clientcert.pem'));
      fs.copyFileSync(path.join(creds.dir, 'client-key.pem'), path.join(pki, 'clientkey.pem'));
      const uri = `qemu+tls://127.0.0.1:${port}/system?pkipath=${pki}`;
      const e = await LibvirtConnection.open(uri).catch((x: Error) => x);
      expect(e).toBeInstanceOf(LibvirtConnectionError);
      expect((e as Error).message).toBe(`cannot connect to libvirt at ${uri}: error: failed to connect to the hypervisor: unable to connect to server at '127.0.0.1:${port}': Connection refused`);
    } finally {
      fs.rmSync(pki, { recursive: true, force: true });
    }
  });

  it('reports libvirtd restarting between two calls and reconnects', async () => {
    const conn = await LibvirtConnection.open(LOCAL_URI);
    try {
      const lost: string[] = [];
      conn.onLost((e) => lost.push(e.message));
      expect((await listDomains(conn)).some((d) => d.uuid === dom.uuid)).toBe(true);
      await restartLibvirtd();
      // virsh notices the closed socket at once and says so; the client stops it from reconnecting silently
      const e = await domainState(conn, dom.uuid).catch((x: Error) => x);
      expect(e).toBeInstanceOf(LibvirtConnectionError);
      expect((e as Error).message).toBe('libvirt connection to qemu:///system was lost (Disconnected from qemu:///system due to end of file); call reconnect() to continue');
      expect(lost).toEqual([(e as Error).message]);
      await conn.reconnect();
      expect(conn.lost).toBeUndefined();
      expect(await domainState(conn, dom.uuid)).toEqual({ state: 'running', reason: 'booted' }); // domains outlive libvirtd
      // the lab's own connection died too: it reconnects the same way
      await lab.conn.reconnect();
    } finally {
      await conn.close();
    }
  }, 900_000);
});
