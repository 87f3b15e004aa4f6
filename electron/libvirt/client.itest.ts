// The libvirt client against the real libvirtd on qemu:///system: every operation, on guest-less
// TCG domains the test lab defines and always removes (test/libvirt/lab.ts).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_URI, LibvirtTestLab, type TestDomain, runsAsRoot } from '../../test/libvirt/lab';
import { guestFlush, guestWrite } from '../../test/libvirt/guest-writes';
import { exportSize, imagesIdentical, mapTotal, nbdUnixUri } from '../../test/libvirt/images';
import { abortJob, beginBackup, completedJobInfo, describeBackup, jobInfo, waitForJobEnd } from './backups';
import { checkpointXml, createCheckpoint, currentCheckpoint, deleteCheckpoint, getCheckpoint, listCheckpoints, redefineCheckpoint } from './checkpoints';
import { parseLibvirtCheckpointXml } from './checkpoint-xml';
import { LibvirtConnection } from './connection';
import { describeDomain, destroyDomain, domainState, domainXml, findDomain, fsFreeze, fsThaw, listDomains, startDomain, undefineDomain } from './domains';
import { LibvirtError, LibvirtXmlError } from './errors';
import { renameDurable } from '../os/atomic-file';

const MiB = 1024 * 1024;
let lab: LibvirtTestLab;
let dom: TestDomain;
let conn: LibvirtConnection; // a product connection: no monitor commands

const allDisks = (d: TestDomain) => d.disks.map((x) => ({ name: x.target, checkpoint: 'bitmap' as const }));
const names = async () => (await listCheckpoints(conn, dom.uuid)).map((c) => c.name);
async function flushAll(d: TestDomain): Promise<void> {
  for (const disk of d.disks) await guestFlush(lab.conn, d, disk.target);
}

beforeAll(async () => {
  if (!runsAsRoot) return;
  lab = await LibvirtTestLab.open();
  dom = await lab.createDomain();
  conn = await LibvirtConnection.open(LOCAL_URI);
}, 120_000);

afterAll(async () => {
  await conn?.close();
  await lab?.close();
}, 120_000);

describe.skipIf(!runsAsRoot)('domains', () => {
  it('lists domains with state and persistence and finds one by name or UUID', async () => {
    const mine = (await listDomains(conn)).find((d) => d.uuid === dom.uuid);
    expect(mine).toEqual({ name: dom.name, uuid: dom.uuid, state: 'running', persistent: true });
    expect(await findDomain(conn, dom.name)).toEqual(mine);
    expect(await findDomain(conn, dom.uuid.toUpperCase())).toEqual(mine);
  });

  it('refuses an unknown domain with a clear error', async () => {
    const e = await findDomain(conn, 'tm-test-no-such-domain').catch((x: Error) => x);
    expect(e).toBeInstanceOf(LibvirtError);
    expect((e as LibvirtError).kind).toBe('no-domain');
    expect((e as Error).message).toBe("error: Domain not found: no domain named 'tm-test-no-such-domain' at qemu:///system");
    const e2 = await domainXml(conn, 'tm-test-no-such-domain').catch((x: LibvirtError) => x);
    expect(e2).toMatchObject({ kind: 'no-domain', message: "error: failed to get domain 'tm-test-no-such-domain'" });
  });

  it('reads the live XML (aliases, source indexes, QEMU user) and the inactive definition', async () => {
    const live = await describeDomain(conn, dom.uuid);
    expect(live.name).toBe(dom.name);
    expect(live.disks.map((d) => [d.target, d.source, d.format, d.alias])).toEqual([
      ['vda', dom.disks[0]!.file, 'qcow2', 'virtio-disk0'],
      ['vdb', dom.disks[1]!.file, 'qcow2', 'virtio-disk1'],
    ]);
    expect(live.disks.every((d) => typeof d.sourceIndex === 'number')).toBe(true);
    expect(live.dac?.uid).toBeGreaterThan(0); // QEMU does not run as root here
    const inactive = await describeDomain(conn, dom.uuid, { inactive: true });
    expect(inactive.disks.map((d) => [d.target, d.alias, d.sourceIndex])).toEqual([['vda', undefined, undefined], ['vdb', undefined, undefined]]);
    expect(inactive.id).toBeUndefined();
  });

  it('freeze and thaw go through libvirt, which needs a guest agent these domains do not have', async () => {
    for (const op of [fsFreeze, fsThaw]) {
      const e = await op(conn, dom.uuid).catch((x: LibvirtError) => x);
      expect(e).toBeInstanceOf(LibvirtError);
      expect(e).toMatchObject({ kind: 'agent-unavailable' });
      expect((e as Error).message).toMatch(/^error: .*QEMU guest agent is not configured$/);
    }
  });

  it('defines, starts, destroys and undefines a domain', async () => {
    const d = await lab.createDomain({ start: false, disks: [{ target: 'vda', sizeMiB: 16 }] });
    expect(await findDomain(conn, d.uuid)).toMatchObject({ state: 'shutoff', persistent: true });
    const cp = await createCheckpoint(conn, d.uuid, { name: 'x', disks: [{ name: 'vda', checkpoint: 'bitmap' }] }).catch((e: LibvirtError) => e);
    expect(cp).toMatchObject({ kind: 'not-running', message: 'error: Operation not supported: cannot create checkpoint for inactive domain' });
    await startDomain(conn, d.uuid);
    expect(await domainState(conn, d.uuid)).toEqual({ state: 'running', reason: 'booted' });
    await destroyDomain(conn, d.uuid);
    expect(await domainState(conn, d.uuid)).toEqual({ state: 'shutoff', reason: 'destroyed' });
    await undefineDomain(conn, d.uuid);
    await expect(findDomain(conn, d.uuid)).rejects.toMatchObject({ kind: 'no-domain' });
    await lab.removeDomain(d); // bookkeeping only: it is gone already
  });
});

describe.skipIf(!runsAsRoot)('checkpoints', () => {
  it('creates checkpoints on all disks, lists them with parents, sizes and deletes them', async () => {
    expect(await createCheckpoint(conn, dom.uuid, { name: 'c1', description: 'first', disks: allDisks(dom) })).toBe('c1');
    await guestWrite(lab.conn, dom, 'vda', { offset: 0, length: MiB, pattern: 0x11 });
    await createCheckpoint(conn, dom.uuid, { name: 'c2', disks: allDisks(dom) });
    await guestWrite(lab.conn, dom, 'vda', { offset: 4 * MiB, length: 2 * MiB, pattern: 0x22 });

    const list = await listCheckpoints(conn, dom.uuid);
    expect(list.map((c) => [c.name, c.parent])).toEqual([['c1', undefined], ['c2', 'c1']]);
    expect(list[0]).toMatchObject({ description: 'first', disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: 'c1' }, { name: 'vdb', checkpoint: 'bitmap', bitmap: 'c1' }] });
    expect(await currentCheckpoint(conn, dom.uuid)).toEqual({ name: 'c2', ambiguous: false });

    const c1 = await getCheckpoint(conn, dom.uuid, 'c1', { size: true });
    expect(c1.disks.map((d) => [d.name, d.size])).toEqual([['vda', 3 * MiB], ['vdb', 0]]);
    expect((await getCheckpoint(conn, dom.uuid, 'c2', { size: true })).disks[0]!.size).toBe(2 * MiB);
    expect(parseLibvirtCheckpointXml(await checkpointXml(conn, dom.uuid, 'c1')).hasDomain).toBe(true);
    expect(parseLibvirtCheckpointXml(await checkpointXml(conn, dom.uuid, 'c1', { noDomain: true })).hasDomain).toBe(false);

    const dup = await createCheckpoint(conn, dom.uuid, { name: 'c1', disks: allDisks(dom) }).catch((e: LibvirtError) => e);
    expect(dup).toMatchObject({ kind: 'already-exists' });
    expect((dup as Error).message).toMatch(/^error: .*c1.* already exists$/);

    await deleteCheckpoint(conn, dom.uuid, 'c1'); // the middle of nothing: c2 moves to the root
    expect((await listCheckpoints(conn, dom.uuid)).map((c) => [c.name, c.parent])).toEqual([['c2', undefined]]);
    await deleteCheckpoint(conn, dom.uuid, 'c2');
    expect(await names()).toEqual([]);
  });

  it("passes libvirt's error text through for an unknown checkpoint", async () => {
    const e = await checkpointXml(conn, dom.uuid, 'nope').catch((x: LibvirtError) => x);
    expect(e).toBeInstanceOf(LibvirtError);
    expect((e as Error).message).toBe("error: Domain checkpoint not found: no domain checkpoint with matching name 'nope'");
    expect(e).toMatchObject({ kind: 'no-checkpoint', command: 'checkpoint-dumpxml' });
  });

  it('deletes with --children-only and --children (--metadata: see redefine)', async () => {
    for (const n of ['k1', 'k2', 'k3']) await createCheckpoint(conn, dom.uuid, { name: n, disks: allDisks(dom) });
    await deleteCheckpoint(conn, dom.uuid, 'k1', { mode: 'children-only' });
    expect(await names()).toEqual(['k1']);
    await createCheckpoint(conn, dom.uuid, { name: 'k2', disks: allDisks(dom) });
    await deleteCheckpoint(conn, dom.uuid, 'k1', { mode: 'children' });
    expect(await names()).toEqual([]);
  });

  it('redefines a checkpoint from its saved XML, validated against the bitmaps QEMU holds', async () => {
    await createCheckpoint(conn, dom.uuid, { name: 'r1', disks: allDisks(dom) });
    const saved = await checkpointXml(conn, dom.uuid, 'r1');
    await deleteCheckpoint(conn, dom.uuid, 'r1', { metadataOnly: true }); // the bitmaps stay in QEMU
    expect(await names()).toEqual([]);
    expect(await redefineCheckpoint(conn, dom.uuid, saved, { validate: true })).toBe('r1');
    expect(await names()).toEqual(['r1']);
    expect((await getCheckpoint(conn, dom.uuid, 'r1', { size: true })).disks.map((d) => d.size)).toEqual([0, 0]);

    const ghost = saved.replace(/<name>r1<\/name>/, '<name>ghost</name>').replace(/bitmap='r1'/g, "bitmap='ghost'");
    const e = await redefineCheckpoint(conn, dom.uuid, ghost, { validate: true }).catch((x: LibvirtError) => x);
    expect(e).toMatchObject({ kind: 'checkpoint-inconsistent', message: "error: checkpoint inconsistent: missing or broken bitmap 'ghost' for disk 'vda'" });
    expect(await names()).toEqual(['r1']);
    await expect(redefineCheckpoint(conn, dom.uuid, '<domaincheckpoint><name>n</name></domaincheckpoint>')).rejects.toThrow(LibvirtXmlError);
    await expect(redefineCheckpoint(conn, dom.uuid, '<!DOCTYPE x [<!ENTITY e "e">]><domaincheckpoint/>')).rejects.toThrow(/DTDs are not allowed/);
    await deleteCheckpoint(conn, dom.uuid, 'r1');
  });
});

describe.skipIf(!runsAsRoot)('backups', () => {
  it('push: a full backup with a checkpoint, then an incremental into targets the caller made', async () => {
    const dir = await lab.qemuDir(dom, 'push');
    await guestWrite(lab.conn, dom, 'vda', { offset: 0, length: 4 * MiB, pattern: 0x33 });
    await guestWrite(lab.conn, dom, 'vdb', { offset: MiB, length: MiB, pattern: 0x34 });
    await flushAll(dom);
    const full = (t: string) => path.join(dir, `full-${t}.qcow2`);
    await beginBackup(conn, dom.uuid, { mode: 'push', disks: dom.disks.map((d) => ({ name: d.target, target: full(d.target) })) }, { checkpoint: { name: 'b0', disks: allDisks(dom) } });
    const done = await waitForJobEnd(conn, dom.uuid, { timeoutMs: 60_000 });
    expect(done).toMatchObject({ type: 'completed', operation: 'backup', success: true, diskTotal: 96 * MiB, diskProcessed: 96 * MiB, diskRemaining: 0 });
    for (const d of dom.disks) expect(await imagesIdentical(full(d.target), d.file)).toBe(true);
    // libvirt created these targets: root-owned and private after the job (QEMU's user only while it ran)
    const st = fs.statSync(full('vda'));
    expect([st.uid, st.mode & 0o777]).toEqual([0, 0o600]);

    await guestWrite(lab.conn, dom, 'vda', { offset: 8 * MiB, length: MiB, pattern: 0x44 });
    await flushAll(dom);
    const inc = (t: string) => path.join(dir, `inc1-${t}.qcow2`);
    for (const d of dom.disks) execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', full(d.target), inc(d.target), String(d.sizeBytes)]);
    await beginBackup(conn, dom.uuid, { mode: 'push', incremental: 'b0', disks: dom.disks.map((d) => ({ name: d.target, target: inc(d.target) })) }, { checkpoint: { name: 'b1', disks: allDisks(dom) }, reuseExternal: true });
    const incDone = await waitForJobEnd(conn, dom.uuid, { timeoutMs: 60_000 });
    expect(incDone).toMatchObject({ type: 'completed', success: true, diskTotal: MiB, diskProcessed: MiB }); // only the dirty MiB
    for (const d of dom.disks) expect(await imagesIdentical(inc(d.target), d.file)).toBe(true);
    expect((await listCheckpoints(conn, dom.uuid)).map((c) => [c.name, c.parent])).toEqual([['b0', undefined], ['b1', 'b0']]);
    expect((await jobInfo(conn, dom.uuid)).type).toBe('none');
    expect((await completedJobInfo(conn, dom.uuid)).type).toBe('none'); // waitForJobEnd consumed the record
  });

  it("push into a private 0700 folder fails (libvirt relabels files, not folders); a staging folder in QEMU's group works", async () => {
    const priv = fs.mkdtempSync(path.join(lab.dir, 'private-')); // 0700, like a Tidemark repository
    const vda = dom.disks[0]!;
    const e = await beginBackup(conn, dom.uuid, { mode: 'push', disks: [{ name: 'vda', target: path.join(priv, 'vda.qcow2') }, { name: 'vdb', backup: false }] }).catch((x: LibvirtError) => x);
    expect(e).toBeInstanceOf(LibvirtError);
    expect((e as Error).message).toBe(`error: internal error: unable to execute QEMU command 'blockdev-add': Could not open '${path.join(priv, 'vda.qcow2')}': Permission denied`);
    expect(fs.readdirSync(priv)).toEqual([]); // libvirt removed the target it had created

    // The staging plan: the target in a folder QEMU can reach (its backing file may stay private:
    // QEMU never opens a push target's backing chain), then renamed into the private folder.
    const staging = await lab.qemuDir(dom, 'staging');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(priv, 'base.qcow2'), String(vda.sizeBytes)]);
    const staged = path.join(staging, 'vda.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', path.join(priv, 'base.qcow2'), staged]);
    await guestFlush(lab.conn, dom, 'vda');
    await beginBackup(conn, dom.uuid, { mode: 'push', disks: [{ name: 'vda', target: staged }, { name: 'vdb', backup: false }] }, { reuseExternal: true });
    expect(await waitForJobEnd(conn, dom.uuid, { timeoutMs: 60_000 })).toMatchObject({ type: 'completed', success: true });
    expect(fs.statSync(staged).uid).toBe(process.getuid!()); // a caller-made target gets its owner back
    renameDurable(staged, path.join(priv, 'vda.qcow2'));
    expect(await imagesIdentical(path.join(priv, 'vda.qcow2'), vda.file)).toBe(true);
  });

  it('pull: export over a unix socket, the backup XML libvirt completed, job info, abort', async () => {
    const dir = await lab.qemuDir(dom, 'pull');
    const socket = path.join(dir, 'pull.sock');
    const scratch = path.join(dir, 'scratch-vda.qcow2');
    await guestWrite(lab.conn, dom, 'vda', { offset: 12 * MiB, length: MiB, pattern: 0x55 });
    await beginBackup(conn, dom.uuid, { mode: 'pull', incremental: 'b1', server: { transport: 'unix', socket }, disks: [{ name: 'vda', scratch }, { name: 'vdb', backup: false }] });
    try {
      expect(await describeBackup(conn, dom.uuid)).toMatchObject({
        mode: 'pull',
        incremental: 'b1',
        server: { transport: 'unix', socket },
        disks: [{ name: 'vda', backup: true, backupmode: 'incremental', exportName: 'vda', exportBitmap: 'backup-vda', scratch }, { name: 'vdb', backup: false }],
      });
      expect(await jobInfo(conn, dom.uuid)).toMatchObject({ type: 'unbounded', operation: 'backup' });
      const uri = nbdUnixUri(socket, 'vda');
      expect(await exportSize(uri)).toBe(64 * MiB);
      expect(await mapTotal(uri, 'qemu:dirty-bitmap:backup-vda', 1)).toBe(MiB);
    } finally {
      await abortJob(conn, dom.uuid);
    }
    const end = await waitForJobEnd(conn, dom.uuid, { timeoutMs: 30_000 });
    expect(end).toMatchObject({ type: 'completed', errorMessage: 'Operation canceled' });
    expect(fs.existsSync(socket) || fs.existsSync(scratch)).toBe(false); // libvirt removed both
    await expect(abortJob(conn, dom.uuid)).rejects.toThrow(LibvirtError);
  });
});
