// The libvirt client over qemu+ssh:// to a throwaway sshd on 127.0.0.1 (test/libvirt/sshd.ts): one SSH
// session serves every command; a pull export is read through a socket forwarded over SSH; a cut
// link is reported and reconnect() recovers. Nothing leaves the machine.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestFlush, guestWrite } from '../../test/libvirt/guest-writes';
import { copyExport, exportSize, imagesIdentical, nbdUnixUri } from '../../test/libvirt/images';
import { LibvirtTestLab, type TestDomain, runsAsRoot } from '../../test/libvirt/lab';
import { startTestSshd, type TestSshd } from '../../test/libvirt/sshd';
import { abortJob, beginBackup, describeBackup, waitForJobEnd } from './backups';
import { createCheckpoint, deleteCheckpoint, listCheckpoints } from './checkpoints';
import { LibvirtConnection } from './connection';
import { findDomain, listDomains } from './domains';
import { LibvirtConnectionError } from './errors';
import { forwardUnixSocket } from './ssh-forward';

const MiB = 1024 * 1024;
let lab: LibvirtTestLab;
let dom: TestDomain;
let sshd: TestSshd;
let remote: LibvirtConnection;
let localDir: string;

beforeAll(async () => {
  if (!runsAsRoot) return;
  lab = await LibvirtTestLab.open();
  dom = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 32 }, { target: 'vdb', sizeMiB: 16 }] });
  sshd = await startTestSshd();
  remote = await LibvirtConnection.open(sshd.uri);
  localDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-forward-'));
}, 180_000);

afterAll(async () => {
  await remote?.close();
  await sshd?.stop();
  if (localDir) fs.rmSync(localDir, { recursive: true, force: true });
  await lab?.close();
}, 120_000);

const allDisks = (d: TestDomain) => d.disks.map((x) => ({ name: x.target, checkpoint: 'bitmap' as const }));

describe.skipIf(!runsAsRoot)('over qemu+ssh://', () => {
  it('lists domains and finds the test domain', async () => {
    expect(remote.uri).toMatchObject({ transport: 'ssh', host: '127.0.0.1', port: sshd.port, user: 'root' });
    expect((await listDomains(remote)).find((d) => d.uuid === dom.uuid)).toEqual({ name: dom.name, uuid: dom.uuid, state: 'running', persistent: true });
  });

  it('creates, lists and deletes checkpoints', async () => {
    await createCheckpoint(remote, dom.uuid, { name: 's1', disks: allDisks(dom) });
    await createCheckpoint(remote, dom.uuid, { name: 's2', disks: allDisks(dom) });
    expect((await listCheckpoints(remote, dom.uuid)).map((c) => [c.name, c.parent])).toEqual([['s1', undefined], ['s2', 's1']]);
    await deleteCheckpoint(remote, dom.uuid, 's1', { mode: 'children' });
    expect(await listCheckpoints(remote, dom.uuid)).toEqual([]);
  });

  it('runs a push backup into targets on the host', async () => {
    const dir = await lab.qemuDir(dom, 'push');
    await guestWrite(lab.conn, dom, 'vda', { offset: 2 * MiB, length: 3 * MiB, pattern: 0x61 });
    for (const d of dom.disks) await guestFlush(lab.conn, dom, d.target);
    const target = (t: string) => path.join(dir, `full-${t}.qcow2`);
    await beginBackup(remote, dom.uuid, { mode: 'push', disks: dom.disks.map((d) => ({ name: d.target, target: target(d.target) })) }, { checkpoint: { name: 'rb0', disks: allDisks(dom) } });
    expect(await waitForJobEnd(remote, dom.uuid, { timeoutMs: 60_000 })).toMatchObject({ type: 'completed', success: true, diskTotal: 48 * MiB });
    for (const d of dom.disks) expect(await imagesIdentical(target(d.target), d.file)).toBe(true);
  });

  it("reads a pull backup's export through a socket forwarded over SSH", async () => {
    const dir = await lab.qemuDir(dom, 'pull');
    const socket = path.join(dir, 'pull.sock');
    await guestWrite(lab.conn, dom, 'vda', { offset: 20 * MiB, length: MiB, pattern: 0x62 });
    await guestFlush(lab.conn, dom, 'vda');
    await beginBackup(remote, dom.uuid, { mode: 'pull', server: { transport: 'unix', socket }, disks: [{ name: 'vda', scratch: path.join(dir, 'scratch-vda.qcow2') }, { name: 'vdb', backup: false }] });
    const localSock = path.join(localDir, 'vda.sock');
    const forward = await forwardUnixSocket(remote.uri, socket, localSock);
    try {
      expect((await describeBackup(remote, dom.uuid)).disks[0]).toMatchObject({ exportName: 'vda', backupmode: 'full' });
      // only the forwarded socket is used from here on
      expect(fs.lstatSync(localSock).isSocket()).toBe(true);
      expect((fs.lstatSync(localSock).mode & 0o777).toString(8)).toBe('600');
      const uri = nbdUnixUri(localSock, 'vda');
      expect(await exportSize(uri)).toBe(32 * MiB);
      const copy = path.join(localDir, 'vda.raw');
      await copyExport(uri, copy);
      expect(await imagesIdentical(copy, dom.disks[0]!.file, { a: 'raw', b: 'qcow2' })).toBe(true);
    } finally {
      await forward.close();
      await abortJob(remote, dom.uuid);
    }
    expect(fs.existsSync(localSock)).toBe(false);
    expect((await waitForJobEnd(remote, dom.uuid, { timeoutMs: 30_000 })).type).toBe('completed');
  });

  it('reports a cut SSH link and reconnects over a new one', async () => {
    const lost: string[] = [];
    remote.onLost((e) => lost.push(e.message));
    expect(sshd.cutConnections()).toBeGreaterThan(0);
    const deadline = Date.now() + 20_000;
    while (lost.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(lost).toEqual([`libvirt connection to ${sshd.uri} was lost (Disconnected from ${sshd.uri} due to end of file); call reconnect() to continue`]);
    await expect(findDomain(remote, dom.uuid)).rejects.toThrow(LibvirtConnectionError);
    await remote.reconnect();
    expect(await findDomain(remote, dom.uuid)).toMatchObject({ state: 'running' });
  });
});
