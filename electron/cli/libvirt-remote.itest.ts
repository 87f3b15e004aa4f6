// (In cli/ because it also runs the CLI.) The libvirt driver over qemu+ssh://root@127.0.0.1:PORT/system to a throwaway sshd on loopback
// (test/libvirt/sshd.ts): domains, checkpoints both ways with virsh, health that says what cannot be
// seen from here, the CLI with --connect URI --domain, and an eager connection that reconnects by
// itself after the SSH link is cut. Nothing leaves the machine.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_URI, LibvirtTestLab, runsAsRoot, type TestDomain } from '../../test/libvirt/lab';
import { startTestSshd, type TestSshd } from '../../test/libvirt/sshd';
import { runCli } from './main';
import { LibvirtUriConnection } from '../engine/libvirt-driver/connection';

let lab: LibvirtTestLab;
let dom: TestDomain;
let sshd: TestSshd;
let conn: LibvirtUriConnection;
let stateDir: string;

const virsh = (...args: string[]) => execFileSync('virsh', ['-q', '-c', LOCAL_URI, ...args], { encoding: 'utf8' });

beforeAll(async () => {
  if (!runsAsRoot) return;
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-lv-remote-'));
  lab = await LibvirtTestLab.open();
  dom = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 16 }] });
  sshd = await startTestSshd();
  conn = new LibvirtUriConnection(sshd.uri, { mode: 'eager', pollMs: 300, backoffMs: { first: 200, max: 1000 } });
  conn.start();
}, 180_000);

afterAll(async () => {
  await conn?.close();
  await sshd?.stop();
  await lab?.close();
  if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
}, 120_000);

describe.skipIf(!runsAsRoot)('libvirt driver over qemu+ssh://', () => {
  it('lists the remote domains; checkpoints go both ways with virsh; health says what it cannot see', async () => {
    await expect.poll(() => conn.find(dom.uuid)?.summary().connection, { timeout: 60_000 }).toBe('connected');
    const vm = conn.find(dom.uuid)!;
    expect(vm.id).toBe(`${sshd.uri}#${dom.uuid}`);
    expect(vm.capabilities.localImages).toBe(false);
    await vm.checkpoints.create({ name: 'r1' });
    expect(virsh('checkpoint-list', dom.uuid, '--name').trim()).toBe('r1');
    virsh('checkpoint-create-as', dom.uuid, 'r2');
    expect((await vm.checkpoints.list()).map((c) => [c.name, c.parent])).toEqual([['r1', undefined], ['r2', 'r1']]);
    expect((await vm.health()).issues).toEqual([]); // running: libvirt computed every size
    virsh('destroy', dom.uuid, '--graceful');
    await expect.poll(() => vm.domainState, { timeout: 30_000 }).toBe('shutoff');
    const issues = (await vm.health()).issues;
    expect(issues.map((i) => [i.state, i.severity, i.disk])).toEqual([['bitmaps-unknown', 'info', 'vda']]);
    expect(issues[0]!.message).toMatch(/^the image of vda is on 127\.0\.0\.1: its bitmaps cannot be seen from here while the domain is shut off/);
    await lab.start(dom);
    await expect.poll(() => vm.domainState, { timeout: 30_000 }).toBe('running');
  }, 120_000);

  it('the CLI takes the qemu+ssh URI and --domain', async () => {
    let out = '';
    let err = '';
    const code = await runCli(['--connect', sshd.uri, 'checkpoint-list', '--domain', dom.name, '--name'], {
      stdout: (t) => (out += t), stderr: (t) => (err += t), isTTY: false, env: { ...process.env, TIDEMARK_STATE_DIR: stateDir },
    });
    expect([code, err, out]).toEqual([0, '', 'r1\nr2\n\n']);
  }, 120_000);

  it('reconnects by itself after the SSH link is cut', async () => {
    const vm = conn.find(dom.uuid)!;
    const states: string[] = [];
    const off = vm.on('state', ({ connection }) => states.push(connection));
    try {
      expect(sshd.cutConnections()).toBeGreaterThan(0);
      await expect.poll(() => states.includes('disconnected'), { timeout: 60_000 }).toBe(true);
      await expect.poll(() => vm.summary().connection, { timeout: 60_000 }).toBe('connected');
      expect((await vm.checkpoints.list()).map((c) => c.name)).toEqual(['r1', 'r2']);
    } finally {
      off();
    }
  }, 120_000);
});
