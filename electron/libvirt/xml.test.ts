// The libvirt layer's XML readers and builders, against XML real libvirt 9.0 produced
// (test/fixtures/libvirt-9.0) and against hostile input.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildBackupXml, parseBackupXml, type BackupSpec } from './backup-xml';
import { buildCheckpointXml, parseLibvirtCheckpointXml } from './checkpoint-xml';
import { parseDomainXml } from './domain-xml';
import { MAX_XML_BYTES, parseXmlTree } from './xml-tree';

const FIX = path.resolve(__dirname, '../../test/fixtures');
const fixture = (name: string) => fs.readFileSync(path.join(FIX, name.startsWith('domain-') ? 'libvirt-9.0-domain' : 'libvirt-9.0', name), 'utf8');

describe('domain XML', () => {
  it('reads identity, disks, aliases, source indexes and the DAC label of a running domain', () => {
    const d = parseDomainXml(fixture('domain-live.xml'));
    expect(d).toMatchObject({ name: 'tm-exp-1', uuid: '5653c79d-d9d5-4fed-9638-e78588f947e8', hypervisor: 'qemu', id: 2, dac: { uid: 64055, gid: 64055 } });
    expect(d.disks).toEqual([
      { device: 'disk', type: 'file', target: 'vda', bus: 'virtio', format: 'qcow2', source: '/var/lib/libvirt/images/vda.qcow2', sourceIndex: 2, alias: 'virtio-disk0', readonly: false, backingChain: [] },
      { device: 'disk', type: 'file', target: 'vdb', bus: 'virtio', format: 'qcow2', source: '/var/lib/libvirt/images/vdb.qcow2', sourceIndex: 1, alias: 'virtio-disk1', readonly: false, backingChain: [] },
    ]);
  });

  it('reads the inactive definition (no id, alias, index or label)', () => {
    const d = parseDomainXml(fixture('domain-inactive.xml'));
    expect(d.id).toBeUndefined();
    expect(d.dac).toBeUndefined();
    expect(d.disks.map((x) => [x.target, x.alias, x.sourceIndex, x.source])).toEqual([
      ['vda', undefined, undefined, '/var/lib/libvirt/images/vda.qcow2'],
      ['vdb', undefined, undefined, '/var/lib/libvirt/images/vdb.qcow2'],
    ]);
  });

  it('reads a backing chain from the live XML', () => {
    const d = parseDomainXml(fixture('domain-live-backing-chain.xml'));
    expect(d.disks[0]).toMatchObject({ target: 'vda', source: '/var/lib/libvirt/images/top.qcow2', sourceIndex: 1, backingChain: [{ format: 'qcow2', source: '/var/lib/libvirt/images/base.qcow2', index: 2 }] });
  });

  it('refuses XML without a name or a valid UUID, or with a disk listed twice', () => {
    expect(() => parseDomainXml('<domain><uuid>5653c79d-d9d5-4fed-9638-e78588f947e8</uuid></domain>')).toThrow(/no <name>/);
    expect(() => parseDomainXml('<domain><name>a</name><uuid>nope</uuid></domain>')).toThrow(/no valid <uuid>/);
    const twice = "<domain><name>a</name><uuid>5653c79d-d9d5-4fed-9638-e78588f947e8</uuid><devices><disk><target dev='vda'/></disk><disk><target dev='vda'/></disk></devices></domain>";
    expect(() => parseDomainXml(twice)).toThrow(/disk 'vda' twice/);
    expect(() => parseDomainXml('<domaincheckpoint/>')).toThrow(/root element <domaincheckpoint>; expected <domain>/);
  });
});

describe('hostile XML is refused', () => {
  it.each([
    ['a DTD', '<!DOCTYPE domain [<!ENTITY x "y">]><domain/>', /DTDs are not allowed/],
    ['an undefined entity', '<domain><name>&x;</name></domain>', /malformed/],
    ['billion laughs', '<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><domain>&b;</domain>', /DTDs are not allowed/],
    ['an external entity', '<!DOCTYPE d SYSTEM "file:///etc/passwd"><domain/>', /DTDs are not allowed/],
    ['a processing instruction', '<domain><?evil x?></domain>', /processing instruction/],
    ['two roots', '<domain/><domain/>', /malformed|more than one root/],
    ['not XML', 'error: something', /malformed|no root/],
    ['unclosed', '<domain><name>x</name>', /malformed/],
  ])('%s', (_what, xml, why) => {
    expect(() => parseXmlTree(xml, 'domain XML')).toThrow(why);
  });

  it('refuses oversized documents before parsing', () => {
    expect(() => parseXmlTree(`<domain>${'a'.repeat(MAX_XML_BYTES)}</domain>`, 'domain XML')).toThrow(/bytes; the limit is/);
  });

  it('reads the five predefined entities and character references', () => {
    expect(parseXmlTree("<a x='&lt;&amp;&#65;'>&gt;&quot;&apos;</a>", 'x')).toMatchObject({ attrs: { x: '<&A' }, text: '>"\'' });
  });
});

describe('checkpoint XML', () => {
  it('reads what checkpoint-dumpxml printed, with and without --size and --no-domain', () => {
    expect(parseLibvirtCheckpointXml(fixture('checkpoint-cp2.size.no-domain.xml'))).toEqual({
      name: 'cp2', parent: 'cp1', creationTime: 1795398740, hasDomain: false,
      disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: 'cp2', size: 3145728 }, { name: 'vdb', checkpoint: 'bitmap', bitmap: 'cp2', size: 65536 }],
    });
    const full = parseLibvirtCheckpointXml(fixture('checkpoint-cp1.xml'));
    expect(full).toMatchObject({ name: 'cp1', description: 'first checkpoint', hasDomain: true });
    expect(full.parent).toBeUndefined();
    expect(parseLibvirtCheckpointXml(fixture('checkpoint-no-bitmaps-at-all.no-domain.xml')).disks).toEqual([{ name: 'vda', checkpoint: 'no' }, { name: 'vdb', checkpoint: 'no' }]);
    expect(parseLibvirtCheckpointXml(fixture('virtnbdbackup-checkpoint.0.no-domain.xml')).name).toBe('virtnbdbackup.0');
  });

  it('builds create XML listing every disk, escaped', () => {
    const xml = buildCheckpointXml({ name: "b<1>&'", description: 'before "upgrade"', disks: [{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'no' }] });
    expect(xml).toBe(
      "<domaincheckpoint>\n  <name>b&lt;1&gt;&amp;&apos;</name>\n  <description>before &quot;upgrade&quot;</description>\n  <disks>\n" +
        "    <disk name='vda' checkpoint='bitmap'/>\n    <disk name='vdb' checkpoint='no'/>\n  </disks>\n</domaincheckpoint>\n",
    );
    expect(parseLibvirtCheckpointXml(xml)).toMatchObject({ name: "b<1>&'", description: 'before "upgrade"' });
  });

  it('refuses bad names, no disks, duplicate disks and bad modes', () => {
    expect(() => buildCheckpointXml({ name: 'a/b', disks: [{ name: 'vda', checkpoint: 'bitmap' }] })).toThrow(/not valid for libvirt/);
    expect(() => buildCheckpointXml({ name: '..', disks: [{ name: 'vda', checkpoint: 'bitmap' }] })).toThrow(/not valid/);
    expect(() => buildCheckpointXml({ name: 'a', disks: [] })).toThrow(/lists no disks/);
    expect(() => buildCheckpointXml({ name: 'a', disks: [{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vda', checkpoint: 'no' }] })).toThrow(/twice/);
    expect(() => parseLibvirtCheckpointXml("<domaincheckpoint><name>a</name><disks><disk name='vda' checkpoint='maybe'/></disks></domaincheckpoint>")).toThrow(/checkpoint='maybe'/);
    expect(() => parseLibvirtCheckpointXml('<domaincheckpoint><name>a</name><creationTime>-1</creationTime></domaincheckpoint>')).toThrow(/not a non-negative integer/);
    expect(() => parseLibvirtCheckpointXml('<domaincheckpoint/>')).toThrow(/no <name>/);
  });
});

describe('backup XML', () => {
  it('builds push XML that reads back as the fixture libvirt accepted', () => {
    const xml = buildBackupXml({
      mode: 'push',
      disks: [
        { name: 'vda', target: '/var/lib/libvirt/backup/full-vda.qcow2' },
        { name: 'vdb', target: '/var/lib/libvirt/backup/full-vdb.qcow2' },
      ],
    });
    expect(parseBackupXml(xml).disks.map((d) => [d.name, d.backup, d.format, d.target])).toEqual(parseBackupXml(fixture('backup-push-full.xml')).disks.map((d) => [d.name, d.backup, 'qcow2', d.target]));
    const inc = buildBackupXml({ mode: 'push', incremental: 'b0', disks: [{ name: 'vda', target: '/b/inc1-vda.qcow2', backupmode: 'incremental', incremental: 'b0' }, { name: 'vdb', backup: false }] });
    expect(inc).toContain("<incremental>b0</incremental>");
    expect(inc).toContain("<disk name='vda' backup='yes' type='file' backupmode='incremental' incremental='b0'>");
    expect(inc).toContain("<disk name='vdb' backup='no'/>");
  });

  it('builds pull XML over a unix socket and over TCP', () => {
    const xml = buildBackupXml({
      mode: 'pull',
      incremental: 'b1',
      server: { transport: 'unix', socket: '/var/lib/libvirt/qemu/backup/pull.sock' },
      disks: [{ name: 'vda', scratch: '/var/lib/libvirt/backup/scratch-vda.qcow2' }, { name: 'vdb', backup: false }],
    });
    const given = parseBackupXml(fixture('backup-pull-inc-unix.xml'));
    expect(parseBackupXml(xml)).toEqual({ ...given, disks: [{ ...given.disks[0], format: 'qcow2' }, given.disks[1]] });
    expect(buildBackupXml({ mode: 'pull', server: { transport: 'tcp', host: '127.0.0.1', port: 10809 }, disks: [{ name: 'vda', scratch: '/s.qcow2', exportName: 'e', exportBitmap: 'bm' }] })).toContain(
      "<server transport='tcp' name='127.0.0.1' port='10809'/>",
    );
  });

  it('reads what backup-dumpxml returned', () => {
    expect(parseBackupXml(fixture('backup-pull-inc-unix.dumpxml.xml'))).toEqual({
      mode: 'pull',
      incremental: 'b1',
      server: { transport: 'unix', socket: '/var/lib/libvirt/qemu/backup/pull.sock' },
      disks: [
        { name: 'vda', backup: true, type: 'file', backupmode: 'incremental', incremental: 'b1', exportName: 'vda', exportBitmap: 'backup-vda', index: 7, format: 'qcow2', scratch: '/var/lib/libvirt/backup/scratch-vda.qcow2' },
        { name: 'vdb', backup: false },
      ],
    });
    expect(parseBackupXml(fixture('backup-push-inc.dumpxml.xml')).disks[1]).toEqual({
      name: 'vdb', backup: true, type: 'file', backupmode: 'incremental', incremental: 'b0', index: 6, format: 'qcow2', target: '/var/lib/libvirt/backup/inc1-vdb.qcow2',
    });
  });

  it('refuses what libvirt would refuse or misread', () => {
    expect(() => buildBackupXml({ mode: 'push', disks: [] })).toThrow(/at least one disk/);
    expect(() => buildBackupXml({ mode: 'push', disks: [{ name: 'vda', target: 'relative.qcow2' }] })).toThrow(/absolute path/);
    expect(() => buildBackupXml({ mode: 'pull', server: { transport: 'tcp', host: 'h', port: 0 }, disks: [{ name: 'vda', scratch: '/s' }] })).toThrow(/not a TCP port/);
    // a caller ignoring the types (JSON from elsewhere) still gets a clear refusal
    expect(() => buildBackupXml({ mode: 'pull', server: { transport: 'unix', socket: '/s' }, disks: [{ name: 'vda', target: '/t' }] } as unknown as BackupSpec)).toThrow(/push target in a pull backup/);
    expect(() => buildBackupXml({ mode: 'push', disks: [{ name: 'vda', target: '/t' }, { name: 'vda', backup: false }] })).toThrow(/twice/);
    expect(() => buildBackupXml({ mode: 'push', incremental: 'a/b', disks: [{ name: 'vda', target: '/t' }] })).toThrow(/not valid/);
    expect(() => parseBackupXml("<domainbackup mode='sideways'/>")).toThrow(/mode='sideways'/);
  });
});
