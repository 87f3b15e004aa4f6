// Two engines on one VM (the metadata lock), hostile names, and libvirt checkpoint XML, against
// a real QEMU.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../qmp/client';
import { CheckpointEngine } from './engine';
import { killLab } from '../lab/labvm';
import { bitmap, bitmaps, startRig, stopRig, type Rig } from './itest-helpers';

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/libvirt-9.0');

/** Every path under dir, relative, sorted. */
function tree(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort();
}

describe('two engines on one VM', () => {
  let rig: Rig | undefined;
  let client2: QmpClient | undefined;
  let other: CheckpointEngine | undefined;
  beforeAll(async () => {
    rig = await startRig();
    client2 = await QmpClient.connect(rig.lab.qmpSecondary);
    other = await CheckpointEngine.open(client2, { endpoint: rig.lab.qmpSecondary, stateDir: rig.stateDir });
  });
  afterAll(async () => {
    await client2?.close();
    await stopRig(rig);
  });

  it('identify the same VM through either socket', () => {
    expect(other!.vmId).toBe(rig!.engine.vmId);
  });

  it('while one holds the lock, the other gets a clear error naming the holder', async () => {
    const r = rig!;
    const impatient = await CheckpointEngine.open(client2!, { endpoint: r.lab.qmpSecondary, stateDir: r.stateDir, lockWaitMs: 300 });
    await r.engine.withLock(async () => {
      await expect(impatient.create({ name: 'x' })).rejects.toThrow(new RegExp(`^metadata of VM tidemark-demo \\(${r.engine.vmId}\\) is locked by pid ${process.pid} \\(backup of demo, since `));
      await expect(impatient.delete('x')).rejects.toThrow(/is locked by pid/);
    }, 'backup of demo');
    expect(other!.list()).toEqual([]);
    expect(await bitmap(r.client, 'vda', 'x')).toBeUndefined();
  });

  it('reading needs no lock: dumpxml works while another process holds it; dumpxml --size waits', async () => {
    const r = rig!;
    await r.engine.create({ name: 'held' });
    const impatient = await CheckpointEngine.open(client2!, { endpoint: r.lab.qmpSecondary, stateDir: r.stateDir, lockWaitMs: 300 });
    await r.engine.withLock(async () => {
      expect(await impatient.dumpXml('held', { noDomain: true })).toContain('<name>held</name>');
      await expect(impatient.dumpXml('held', { size: true })).rejects.toThrow(/is locked by pid/);
    }, 'a long backup');
    expect(await impatient.dumpXml('held', { size: true })).toContain("size='0'");
    await r.engine.delete('held');
  });

  it('concurrent creates from both are serialised; each sees the other\'s result', async () => {
    const r = rig!;
    const [a, b] = await Promise.all([r.engine.create({ name: 'a' }), other!.create({ name: 'b' })]);
    const [first, second] = a.parent === undefined ? [a, b] : [b, a];
    expect(first.parent).toBeUndefined();
    expect(second.parent).toBe(first.name);
    await r.engine.health(); // refreshes its view
    expect(r.engine.list().map((c) => c.name).sort()).toEqual(['a', 'b']);
    expect(r.engine.current()?.name).toBe(second.name);
  });

  it('a closed engine refuses work', async () => {
    await other!.close();
    await expect(other!.create({ name: 'z' })).rejects.toThrow('the checkpoint engine was closed');
  });
});

describe('names', () => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await startRig();
  });
  afterAll(async () => stopRig(rig));

  it('hostile names are rejected with a reason and nothing is written anywhere', async () => {
    const r = rig!;
    const before = tree(r.root).filter((p) => !p.startsWith('lab'));
    for (const [name, reason] of [
      ['..', 'starts with "."'], ['../../x', 'contains "/"'], ['a/b', 'contains "/"'], ['a\u0000b', 'control character'], ['new\nline', 'control character'],
      ['x'.repeat(2000), '2000 bytes long'], ['', 'empty'], ['tidemark-tmp-1', 'reserved'],
    ] as const) {
      await expect(r.engine.create({ name }), JSON.stringify(name)).rejects.toThrow(reason);
    }
    expect(tree(r.root).filter((p) => !p.startsWith('lab'))).toEqual(before);
    expect(await bitmaps(r.client, 'vda')).toEqual([]);
  });

  it('odd but valid names work end to end and their files stay inside the state dir', async () => {
    const r = rig!;
    const long = 'ü'.repeat(511); // 1022 bytes
    for (const name of ['%2e%2e', 'naïve ☃', long, 'a.b']) await r.engine.create({ name });
    expect((await bitmaps(r.client, 'vda')).map((b) => b.name).sort()).toEqual(['%2e%2e', 'a.b', long, 'naïve ☃'].sort());
    const files = tree(path.join(r.stateDir, 'vms', r.engine.vmId, 'checkpoints'));
    expect(files).toHaveLength(4);
    expect(files).toContain('%252e%252e.json');
    expect(files.filter((f) => /^~[0-9a-f]{64}\.json$/.test(f))).toHaveLength(1);
    expect(tree(r.root).filter((p) => !p.startsWith('lab') && !p.startsWith('state'))).toEqual([]);
    const reopened = await CheckpointEngine.open(r.client, { endpoint: r.lab.qmp, stateDir: r.stateDir });
    expect(reopened.list().map((c) => c.name)).toEqual(['%2e%2e', 'naïve ☃', long, 'a.b']);
    await reopened.delete(long);
    expect(await bitmap(r.client, 'vda', long)).toBeUndefined();
  });

  it('damaged metadata: open fails with an error naming the file', async () => {
    const r = rig!;
    const file = path.join(r.stateDir, 'vms', r.engine.vmId, 'checkpoints', 'a.b.json');
    const good = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, good.slice(0, 20));
    await expect(CheckpointEngine.open(r.client, { endpoint: r.lab.qmp, stateDir: r.stateDir })).rejects.toThrow(`checkpoint metadata ${file} is damaged (not valid JSON`);
    await expect(r.engine.create({ name: 'y' })).rejects.toThrow(/a\.b\.json is damaged/);
    fs.writeFileSync(file, good);
  });
});

describe('libvirt checkpoint XML', () => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await startRig();
  });
  afterAll(async () => stopRig(rig));

  it('create from XML: listed disks take bitmaps, unlisted ones do not (as libvirt)', async () => {
    const r = rig!;
    const cp = await r.engine.createFromXml("<domaincheckpoint><name>x1</name><description>from xml</description><disks><disk name='vda'/></disks></domaincheckpoint>");
    expect(cp).toMatchObject({ name: 'x1', description: 'from xml' });
    expect(cp.disks.map((d) => [d.name, d.checkpoint])).toEqual([['vda', 'bitmap'], ['vdb', 'no'], ['vdc', 'no']]);
    expect(await bitmap(r.client, 'vdb', 'x1')).toBeUndefined();
    const minimal = await r.engine.createFromXml(fs.readFileSync(path.join(FIXTURES, 'checkpoint-input-minimal.xml'), 'utf8'));
    expect(minimal.name).toBe('cp4');
    expect(minimal.description).toBe('created from XML file');
    expect(minimal.disks.map((d) => [d.name, d.checkpoint])).toEqual([['vda', 'bitmap'], ['vdb', 'bitmap'], ['vdc', 'no']]);
    await expect(r.engine.createFromXml("<domaincheckpoint><disks><disk name='vdz'/></disks></domaincheckpoint>")).rejects.toThrow(/unknown disk vdz/);
    await expect(r.engine.createFromXml('<domaincheckpoint><name>p</name><parent><name>x1</name></parent></domaincheckpoint>')).rejects.toThrow(/cannot name its parent/);
  });

  it('redefine refuses disks the VM does not have (as libvirt), quoting odd names; nothing is recorded', async () => {
    const r = rig!;
    const before = r.engine.list().map((c) => c.name);
    await expect(r.engine.createFromXml("<domaincheckpoint><name>ok1</name><disks><disk name='../vda'/></disks></domaincheckpoint>", { redefine: true }))
      .rejects.toThrow('unknown disk "../vda" in checkpoint XML (VM tidemark-demo');
    await expect(r.engine.createFromXml("<domaincheckpoint><name>ok1</name><disks><disk name='vdz'/></disks></domaincheckpoint>", { redefine: true }))
      .rejects.toThrow(/^unknown disk vdz in checkpoint XML/);
    expect(r.engine.list().map((c) => c.name)).toEqual(before);
    expect(() => r.engine.get('ok1')).toThrow('not found');
  });

  it('dump → delete --metadata → redefine --validate restores the checkpoint', async () => {
    const r = rig!;
    const xml = await r.engine.dumpXml('cp4');
    await r.engine.delete('cp4', 'metadata');
    expect((await r.engine.health()).issues.filter((i) => i.state === 'foreign-bitmap')).toHaveLength(2);
    const back = await r.engine.createFromXml(xml, { redefine: true, validate: true });
    expect(back).toMatchObject({ name: 'cp4', parent: 'x1', description: 'created from XML file' });
    expect(r.engine.current()?.name).toBe('cp4');
    expect((await r.engine.health()).issues.map((i) => i.state)).toEqual(['disk-incapable']);
    expect(await r.engine.dumpXml('cp4')).toBe(xml);
    // An identical redefinition is accepted; a different one is not.
    await expect(r.engine.createFromXml(xml, { redefine: true })).resolves.toMatchObject({ name: 'cp4' });
    await expect(r.engine.createFromXml(xml.replace("<disk name='vdb' checkpoint='bitmap' bitmap='cp4'/>", "<disk name='vdb' checkpoint='no'/>"), { redefine: true })).rejects.toThrow('checkpoint cp4 already exists with a different definition');
  });

  it('redefine checks the parent, and validate checks the bitmaps (libvirt\'s messages)', async () => {
    const r = rig!;
    const cp3 = "<domaincheckpoint><name>cp3</name><parent><name>cp2</name></parent><disks><disk name='vda' checkpoint='bitmap' bitmap='cp3'/></disks></domaincheckpoint>";
    await expect(r.engine.createFromXml(cp3, { redefine: true })).rejects.toThrow('parent cp2 for checkpoint cp3 not found');
    const ghost = "<domaincheckpoint><name>ghost</name><disks><disk name='vda' checkpoint='bitmap' bitmap='ghost'/></disks></domaincheckpoint>";
    await expect(r.engine.createFromXml(ghost, { redefine: true, validate: true })).rejects.toThrow("checkpoint inconsistent: missing or broken bitmap 'ghost' for disk 'vda'");
    expect(() => r.engine.get('ghost')).toThrow('not found');
    // Without validate, any metadata is accepted (as libvirt); health then reports the missing bitmap.
    await r.engine.createFromXml(ghost, { redefine: true });
    const issues = (await r.engine.health()).issues;
    expect(issues.find((i) => i.checkpoint === 'ghost')).toMatchObject({ state: 'bitmap-missing', disk: 'vda' });
    expect(await r.engine.delete('ghost')).toEqual({ deleted: ['ghost'], reparented: [] });
  });

  it('redefines a libvirt 9.0 checkpoint with its <domain> kept verbatim', async () => {
    const r = rig!;
    const xml = fs.readFileSync(path.join(FIXTURES, 'checkpoint-cp1.xml'), 'utf8');
    const cp = await r.engine.createFromXml(xml, { redefine: true });
    expect(cp.domainXml).toContain('<name>peerlab</name>');
    // (virsh prints one more newline after the document than libvirt's formatter returns)
    expect((await r.engine.dumpXml(cp.name)).trimEnd()).toBe(xml.trimEnd());
    expect((await r.engine.dumpXml(cp.name, { noDomain: true })).trimEnd()).toBe(fs.readFileSync(path.join(FIXTURES, 'checkpoint-cp1.no-domain.xml'), 'utf8').trimEnd());
  });
});

describe('bitmaps held by a job', () => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await startRig();
  });
  afterAll(async () => stopRig(rig));

  it('a bitmap exported over NBD is busy: health says so, and a delete that needs it is refused clearly', async () => {
    const r = rig!;
    await r.engine.create({ name: 'c1', layout: 'chained' });
    await r.engine.create({ name: 'c2' });
    await r.client.execute('nbd-server-start', { addr: { type: 'unix', data: { path: path.join(r.root, 'nbd.sock') } } });
    await r.client.execute('block-export-add', { type: 'nbd', id: 'exp', 'node-name': 'vda-fmt', name: 'vda', writable: false, bitmaps: ['c1'] });
    try {
      expect(await bitmap(r.client, 'vda', 'c1')).toMatchObject({ busy: true });
      const busy = (await r.engine.health()).issues.filter((i) => i.state === 'bitmap-busy');
      expect(busy.map((i) => [i.disk, i.checkpoint, i.severity])).toEqual([['vda', 'c1', 'info']]);
      await expect(r.engine.delete('c2')).rejects.toThrow('bitmap c1 on vda is in use by a running job; try again when it has finished');
      expect(r.engine.list().map((c) => c.name)).toEqual(['c1', 'c2']);
      expect(await bitmap(r.client, 'vdb', 'c2')).toMatchObject({ recording: true }); // vdb untouched too
    } finally {
      const gone = r.client.waitForEvent((e) => e.event === 'BLOCK_EXPORT_DELETED', 5_000);
      await r.client.execute('block-export-del', { id: 'exp' });
      await gone;
      await r.client.execute('nbd-server-stop');
    }
    expect(await r.engine.delete('c2')).toEqual({ deleted: ['c2'], reparented: [] });
    expect(await bitmap(r.client, 'vda', 'c1')).toMatchObject({ busy: false, recording: true });
  });
});

describe('QEMU gone mid-session', () => {
  let rig: Rig | undefined;
  beforeAll(async () => {
    rig = await startRig();
  });
  afterAll(async () => stopRig(rig));

  it('every operation says QEMU is gone and that nothing changed; the metadata is as it was', async () => {
    const r = rig!;
    await r.engine.create({ name: 'c1' });
    const metaDir = path.join(r.stateDir, 'vms', r.engine.vmId);
    const snapshot = () => tree(metaDir).map((f) => [f, fs.statSync(path.join(metaDir, f)).isFile() ? fs.readFileSync(path.join(metaDir, f), 'utf8') : '']);
    const before = snapshot();
    await killLab(r.labDir, 'SIGKILL');
    const gone = /^QEMU at unix:.* is gone \(.*\); nothing was changed$/;
    await expect(r.engine.create({ name: 'c2' })).rejects.toThrow(gone);
    await expect(r.engine.delete('c1')).rejects.toThrow(gone);
    await expect(r.engine.dumpXml('c1', { size: true })).rejects.toThrow(gone);
    await expect(r.engine.changesSince('c1')).rejects.toThrow(gone);
    await expect(r.engine.createFromXml("<domaincheckpoint><name>c3</name></domaincheckpoint>", { redefine: true })).rejects.toThrow(gone);
    expect(snapshot()).toEqual(before);
    expect(fs.existsSync(path.join(metaDir, 'lock'))).toBe(false);
  });
});
