// The libvirt driver against the real libvirtd (qemu:///system, as root), on guest-less TCG domains
// the test lab defines and always removes: domains listed with state, checkpoints through the driver
// and interop both ways with virsh (sizes equal to virsh's), every delete mode, redefine, the
// chained layout and quiesce refused, health against the images' bitmaps, and a reconnect.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestFlush, guestWrite } from '../../../test/libvirt/guest-writes';
import { LOCAL_URI, LibvirtTestLab, runsAsRoot, type TestDomain } from '../../../test/libvirt/lab';
import { LibvirtUriConnection } from './connection';
import type { LibvirtVmDriver } from './driver';

const MiB = 1024 * 1024;
let lab: LibvirtTestLab;
let dom: TestDomain;
let off: TestDomain;
let conn: LibvirtUriConnection;
let vm: LibvirtVmDriver;

const virsh = (...args: string[]) => execFileSync('virsh', ['-q', '-c', LOCAL_URI, ...args], { encoding: 'utf8' });
const virshNames = (d: TestDomain) => virsh('checkpoint-list', d.uuid, '--name', '--topological').split('\n').filter((l) => l.trim() !== '');
const names = async () => (await vm.checkpoints.list({ topological: true })).map((c) => c.name);

beforeAll(async () => {
  if (!runsAsRoot) return;
  lab = await LibvirtTestLab.open();
  dom = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 32 }, { target: 'vdb', sizeMiB: 16 }] });
  off = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 16 }], start: false });
  conn = new LibvirtUriConnection(LOCAL_URI, { mode: 'on-demand' });
  await conn.refresh();
  vm = conn.find(dom.name)!;
}, 180_000);

afterAll(async () => {
  await conn?.close();
  await lab?.close();
}, 120_000);

describe.skipIf(!runsAsRoot)('libvirt driver', () => {
  it('lists the connection\'s domains, each with its state and an id that names the connection', () => {
    expect(vm.id).toBe(`qemu:///system#${dom.uuid}`);
    expect(conn.find(dom.uuid.toUpperCase())).toBe(vm);
    expect(vm.summary()).toMatchObject({ id: vm.id, label: dom.name, kind: 'libvirt', connection: 'connected', domainState: 'running', connectionId: conn.id });
    expect(conn.find(off.name)!.summary()).toMatchObject({ domainState: 'shutoff' });
    expect(vm.capabilities).toMatchObject({ layouts: ['independent'], bitmapCounts: 'on-demand', metadata: 'hypervisor', localImages: true, dirtyMap: false, backupModes: ['push', 'pull'] });
    expect(vm.identity()).toEqual({ key: dom.uuid, name: dom.name, uuid: dom.uuid });
  });

  it('a checkpoint made by Tidemark is libvirt\'s: virsh lists it, with the description and disks asked for', async () => {
    const cp = await vm.checkpoints.create({ name: 'tm1', description: 'made by tidemark', disks: [{ name: 'vdb', checkpoint: 'no' }] });
    expect(cp).toMatchObject({ name: 'tm1', description: 'made by tidemark', layout: 'independent', disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: 'tm1' }, { name: 'vdb', checkpoint: 'no' }] });
    expect(virshNames(dom)).toEqual(['tm1']);
    expect(virsh('checkpoint-dumpxml', dom.uuid, 'tm1', '--no-domain')).toContain('<description>made by tidemark</description>');
  });

  it('a checkpoint made with virsh shows in Tidemark, with its parent, as the current one, and with virsh\'s sizes', async () => {
    virsh('checkpoint-create-as', dom.uuid, 'v1', '--description', 'made by virsh');
    expect(await names()).toEqual(['tm1', 'v1']);
    expect((await vm.checkpoints.parent('v1'))?.name).toBe('tm1');
    expect((await vm.checkpoints.current())?.name).toBe('v1');
    await guestWrite(lab.conn, dom, 'vda', { offset: 0, length: 2 * MiB, pattern: 0xab });
    await guestWrite(lab.conn, dom, 'vdb', { offset: MiB, length: MiB, pattern: 0xcd });
    await guestFlush(lab.conn, dom, 'vda');
    const sizes = (xml: string) => [...xml.matchAll(/<disk name='(\w+)'[^>]*size='(\d+)'/g)].map((m) => [m[1], Number(m[2])]);
    for (const name of ['tm1', 'v1']) {
      const theirs = sizes(virsh('checkpoint-dumpxml', dom.uuid, name, '--size', '--no-domain'));
      const ours = (await vm.checkpoints.changesSince(name)).disks.map((d) => [d.disk, d.bytes]);
      expect(ours).toEqual(theirs);
      expect(await vm.checkpoints.dumpXml(name, { size: true, noDomain: true })).toBe(virsh('checkpoint-dumpxml', dom.uuid, name, '--size', '--no-domain'));
    }
    expect((await vm.checkpoints.changesSince('v1')).disks).toEqual([
      { disk: 'vda', bytes: 2 * MiB, granularity: 65536, virtualSize: 32 * MiB, usable: true },
      { disk: 'vdb', bytes: MiB, granularity: 65536, virtualSize: 16 * MiB, usable: true },
    ]);
    expect((await vm.checkpoints.dumpXml('v1')).includes('<domain type=')).toBe(true);
    expect((await vm.checkpoints.dumpXml('v1', { noDomain: true })).includes('<domain type=')).toBe(false);
  });

  it('lists with every filter', async () => {
    await vm.checkpoints.create({ name: 'tm2' });
    await vm.checkpoints.create({ name: 'tm3' });
    const l = async (f: Parameters<typeof vm.checkpoints.list>[0]) => (await vm.checkpoints.list(f)).map((c) => c.name);
    expect(await l({ roots: true })).toEqual(['tm1']);
    expect(await l({ leaves: true })).toEqual(['tm3']);
    expect(await l({ noLeaves: true, topological: true })).toEqual(['tm1', 'v1', 'tm2']);
    expect(await l({ from: 'v1' })).toEqual(['tm2']);
    expect(await l({ from: 'v1', descendants: true, topological: true })).toEqual(['tm2', 'tm3']);
    await expect(vm.checkpoints.get('nope')).rejects.toThrow(`error: Domain checkpoint not found: no domain checkpoint with matching name 'nope' (domain ${dom.name})`);
  });

  it('deletes as virsh does: plain re-parents, --metadata leaves the bitmap, --children-only, --children', async () => {
    expect(await vm.checkpoints.delete('v1', 'plain')).toEqual({ deleted: ['v1'], reparented: [{ name: 'tm2', parent: 'tm1' }] });
    expect(virshNames(dom)).toEqual(['tm1', 'tm2', 'tm3']);
    expect(virsh('checkpoint-parent', dom.uuid, 'tm2').trim()).toBe('tm1');

    const saved = await vm.checkpoints.dumpXml('tm3');
    expect(await vm.checkpoints.delete('tm3', 'metadata')).toEqual({ deleted: ['tm3'], reparented: [] });
    expect(virshNames(dom)).toEqual(['tm1', 'tm2']);
    // and back: libvirt checks the bitmaps before taking the metadata again
    expect((await vm.checkpoints.redefine(saved, { validate: true })).name).toBe('tm3');
    expect(virshNames(dom)).toEqual(['tm1', 'tm2', 'tm3']);
    expect((await vm.health()).issues).toEqual([]);

    expect(await vm.checkpoints.delete('tm1', 'children-only')).toEqual({ deleted: ['tm3', 'tm2'], reparented: [] });
    expect(virshNames(dom)).toEqual(['tm1']);
    await vm.checkpoints.create({ name: 'tm4' });
    expect(await vm.checkpoints.delete('tm1', 'children')).toEqual({ deleted: ['tm4', 'tm1'], reparented: [] });
    expect(virshNames(dom)).toEqual([]);
  });

  it('refuses the chained layout with the reason, and quiesce without a guest agent, creating nothing', async () => {
    await expect(vm.checkpoints.create({ name: 'ch', layout: 'chained' })).rejects.toThrow(/^domain tm-test-.*: libvirt domains use the independent bitmap layout only/);
    const e = await vm.checkpoints.create({ name: 'q1', quiesce: {} }).catch((x: Error) => x);
    expect((e as Error).message).toMatch(new RegExp(`^cannot quiesce domain ${dom.name}: libvirt could not freeze its filesystems \\(.*QEMU guest agent is not configured\\); no checkpoint q1 was created$`));
    expect(virshNames(dom)).toEqual([]);
  });

  it('creates from XML, and a libvirt error comes back as libvirt wrote it', async () => {
    const cp = await vm.checkpoints.createFromXml("<domaincheckpoint><name>x1</name><disks><disk name='vda'/><disk name='vdb' checkpoint='no'/></disks></domaincheckpoint>");
    expect(cp.disks.map((d) => d.checkpoint)).toEqual(['bitmap', 'no']);
    await expect(vm.checkpoints.createFromXml('<domaincheckpoint><name>x1</name></domaincheckpoint>')).rejects.toThrow('error: operation failed: domain moment x1 already exists');
    await vm.checkpoints.delete('x1', 'plain');
  });

  it('health of a shut-off domain reads the bitmaps in its images: a metadata-only delete leaves a foreign bitmap', async () => {
    const offVm = conn.find(off.name)!;
    virsh('start', off.uuid);
    await offVm.checkpoints.create({ name: 'o1' });
    await offVm.checkpoints.create({ name: 'o2' });
    await offVm.checkpoints.delete('o2', 'metadata');
    virsh('destroy', off.uuid, '--graceful');
    await conn.refresh();
    expect(offVm.domainState).toBe('shutoff');
    expect((await offVm.health()).issues.map((i) => [i.state, i.disk, i.bitmap])).toEqual([['foreign-bitmap', 'vda', 'o2']]);
    expect((await offVm.info()).disks[0]!.bitmaps.map((b) => [b.name, b.recording, b.inconsistent]).sort()).toEqual([['o1', true, false], ['o2', true, false]]);
    expect((await offVm.checkpoints.list()).map((c) => c.name)).toEqual(['o1']);
  });
});

describe.skipIf(!runsAsRoot)('libvirt connection, eager', () => {
  it('sees a domain defined elsewhere and reconnects by itself when its virsh dies', async () => {
    // As root qemu:///session is the system daemon: a URI of its own, so its virsh is told apart from the lab's.
    const eager = new LibvirtUriConnection('qemu:///session', { mode: 'eager', pollMs: 200, backoffMs: { first: 100, max: 400 } });
    try {
      let changes = 0;
      eager.onVmsChanged(() => changes++);
      eager.start();
      await expect.poll(() => eager.find(dom.uuid)?.summary().connection, { timeout: 30_000 }).toBe('connected');
      const extra = await lab.createDomain({ disks: [{ target: 'vda', sizeMiB: 8 }], start: false });
      await expect.poll(() => eager.find(extra.uuid) !== undefined, { timeout: 30_000 }).toBe(true);
      await expect.poll(() => changes, { timeout: 30_000 }).toBeGreaterThanOrEqual(2); // told, after its checkpoint baseline
      const states: string[] = [];
      eager.find(dom.uuid)!.on('state', ({ connection }) => states.push(connection));
      const pids = execFileSync('pgrep', ['-P', String(process.pid), '-f', 'virsh.*qemu:///session'], { encoding: 'utf8' }).trim().split('\n');
      expect(pids).toHaveLength(1);
      process.kill(Number(pids[0]), 'SIGKILL');
      await expect.poll(() => states.includes('disconnected'), { timeout: 30_000 }).toBe(true);
      await expect.poll(() => eager.find(dom.uuid)?.summary().connection, { timeout: 30_000 }).toBe('connected');
      expect((await eager.find(dom.uuid)!.checkpoints.list()).map((c) => c.name)).toEqual(await names());
      await lab.removeDomain(extra);
      await expect.poll(() => eager.find(extra.uuid), { timeout: 30_000 }).toBeUndefined();
    } finally {
      await eager.close();
    }
  }, 120_000);
});
