// The CLI against libvirt domains (real libvirtd, qemu:///system, as root; run in-process through
// runCli): list with state, --domain by name or UUID before or after the command, checkpoints made
// with the CLI seen by virsh and back, and bad input: each a one-line error naming it, exit code 1.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_URI, LibvirtTestLab, runsAsRoot, type TestDomain } from '../../test/libvirt/lab';
import { runCli } from './main';

let lab: LibvirtTestLab;
let dom: TestDomain;
let off: TestDomain;
let stateDir: string;

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t), isTTY: false, env: { ...process.env, TIDEMARK_STATE_DIR: stateDir } });
  return { code, out, err };
}
async function ok(args: string[]): Promise<string> {
  const r = await cli(args);
  if (r.code !== 0) throw new Error(`tidemark ${args.join(' ')} exited ${r.code}: ${r.err}`);
  return r.out;
}
async function fails(args: string[], line: string | RegExp): Promise<void> {
  const r = await cli(args);
  expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(1);
  expect(r.out).toBe('');
  expect(r.err.split('\n'), `one line: ${JSON.stringify(r.err)}`).toHaveLength(2);
  if (typeof line === 'string') expect(r.err).toBe(`${line}\n`);
  else expect(r.err.trimEnd()).toMatch(line);
}
const virsh = (...args: string[]) => execFileSync('virsh', ['-q', '-c', LOCAL_URI, ...args], { encoding: 'utf8' });
const C = ['--connect', LOCAL_URI];

beforeAll(async () => {
  if (!runsAsRoot) return;
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-cli-libvirt-'));
  lab = await LibvirtTestLab.open();
  dom = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 16 }, { target: 'vdb', sizeMiB: 8 }] });
  off = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 8 }], start: false });
}, 180_000);

afterAll(async () => {
  await lab?.close();
  if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
}, 120_000);

describe.skipIf(!runsAsRoot)('tidemark CLI on libvirt', () => {
  it('list shows running domains, --all the shut-off ones too, --json every field', async () => {
    const running = await ok([...C, 'list']);
    expect(running).toMatch(/^ UUID +Name +State\n-+\n/);
    // columns are as wide as the longest name listed (other tests' domains may be there too)
    expect(running).toMatch(new RegExp(` ${dom.uuid} +${dom.name} +running\n`));
    expect(running).not.toContain(off.name);
    expect(await ok([...C, 'list', '--all'])).toMatch(new RegExp(` ${off.uuid} +${off.name} +shut off\\n`));
    const json = JSON.parse(await ok([...C, 'list', '--all', '--json'])) as { id: string; name: string; uuid: string; state: string }[];
    expect(json.find((d) => d.uuid === off.uuid)).toEqual({ id: `${LOCAL_URI}#${off.uuid}`, name: off.name, uuid: off.uuid, state: 'shutoff', connection: 'connected' });
  });

  it('--domain by name or UUID, before or after the command; checkpoints interoperate with virsh', async () => {
    expect(await ok([...C, '--domain', dom.name, 'checkpoint-create-as', 'c1', '--description', 'from the CLI', '--diskspec', 'vdb,checkpoint=no'])).toBe('Domain checkpoint c1 created\n');
    expect(virsh('checkpoint-list', dom.uuid, '--name').trim()).toBe('c1');
    virsh('checkpoint-create-as', dom.uuid, 'v1');
    expect(await ok([...C, 'checkpoint-list', '--domain', dom.uuid, '--name'])).toBe('c1\nv1\n\n');
    expect(await ok([...C, 'checkpoint-parent', `--domain=${dom.uuid.toUpperCase()}`, 'v1'])).toBe('c1\n');
    const info = JSON.parse(await ok([...C, 'domain-info', '--domain', dom.name, '--json'])) as { name: string; uuid: string; status: string; currentCheckpoint: string; health: unknown[] };
    expect(info).toMatchObject({ name: dom.name, uuid: dom.uuid, status: 'running', currentCheckpoint: 'v1', health: [] });
    expect(await ok([...C, '--domain', dom.name, 'checkpoint-dumpxml', 'c1', '--no-domain'])).toBe(`${virsh('checkpoint-dumpxml', dom.uuid, 'c1', '--no-domain')}\n`);
    expect(await ok([...C, '--domain', dom.name, 'checkpoint-delete', 'c1'])).toBe('Domain checkpoint c1 deleted\n\n');
    expect(virsh('checkpoint-list', dom.uuid, '--name').trim()).toBe('v1');
  });

  it('bad input: unknown domain, malformed URI, unreachable host, a libvirt error, a missing --domain, chained', async () => {
    await fails([...C, '--domain', 'tm-test-no-such', 'checkpoint-list'], `error: domain "tm-test-no-such" not found at ${LOCAL_URI} (see: tidemark --connect ${LOCAL_URI} list --all)`);
    await fails(['--connect', 'qemu:///nope', 'list'], 'error: libvirt URI "qemu:///nope" has path "/nope"; it must be /system or /session');
    await fails(['--connect', 'qemu+ssh://root@127.0.0.1:1/system', 'list'], /^error: cannot connect to libvirt at qemu\+ssh:\/\/root@127\.0\.0\.1:1\/system: .*Connection refused/);
    await fails([...C, '--domain', dom.name, 'checkpoint-delete', 'nope'], `error: Domain checkpoint not found: no domain checkpoint with matching name 'nope' (domain ${dom.name})`);
    await fails([...C, 'checkpoint-list'], `error: --connect ${LOCAL_URI} is a libvirt connection: name the domain with --domain NAME|UUID`);
    await fails(['--domain', dom.name, 'checkpoint-list'], `error: --domain ${dom.name} names a libvirt domain: pass --connect with a libvirt URI (e.g. qemu:///system) too`);
    await fails([...C, '--domain', dom.name, 'checkpoint-create-as', 'ch', '--layout', 'chained'], /^error: domain tm-test-\S+: libvirt domains use the independent bitmap layout only/);
    await fails([...C, '--domain', dom.name, 'checkpoint-create-as', 'q', '--quiesce'], /^error: cannot quiesce domain tm-test-\S+: libvirt could not freeze its filesystems \(.*guest agent is not configured\); no checkpoint q was created$/);
    expect(virsh('checkpoint-list', dom.uuid, '--name').trim()).toBe('v1');
    const usage = await cli([...C, 'list', '--domain']);
    expect([usage.code, usage.err]).toEqual([2, 'error: option --domain needs a value (NAME|UUID)\n']);
  });
});
