import { describe, expect, it } from 'vitest';
import type { Checkpoint } from '../../../shared/domain';
import type { DomainDisk } from '../../libvirt/domain-xml';
import { CHAINED_REFUSED, deleteFlags, planCreate, planDelete, toCheckpoint, whyNoBitmap } from './plan';
import { libvirtConnectionId, libvirtVmId, looksLikeLibvirtUri, parseLibvirtVmId } from './ids';

const disk = (target: string, over: Partial<DomainDisk> = {}): DomainDisk => ({ device: 'disk', type: 'file', target, format: 'qcow2', readonly: false, backingChain: [], ...over });
const disks = [disk('vda'), disk('vdb'), disk('vdc', { format: 'raw' }), disk('hdc', { device: 'cdrom', format: 'raw', readonly: true })];
const base = { disks, existing: new Set<string>(), nowMs: 1_700_000_000_123, domain: 'web1' };

describe('planCreate', () => {
  it('lists every disk: capable ones take a bitmap, the others are left out with checkpoint=no', () => {
    const p = planCreate({ ...base, options: { name: 'c1', description: 'before upgrade' } });
    expect(p).toEqual({
      quiesce: false,
      spec: { name: 'c1', description: 'before upgrade', disks: [
        { name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'bitmap' }, { name: 'vdc', checkpoint: 'no' }, { name: 'hdc', checkpoint: 'no' },
      ] },
    });
  });

  it('takes --diskspec choices and refuses unknown, twice-listed and incapable disks', () => {
    expect(planCreate({ ...base, options: { name: 'c', disks: [{ name: 'vdb', checkpoint: 'no' }] } }).spec.disks.map((d) => d.checkpoint)).toEqual(['bitmap', 'no', 'no', 'no']);
    expect(() => planCreate({ ...base, options: { name: 'c', disks: [{ name: 'sdz', checkpoint: 'bitmap' }] } })).toThrow('unknown disk sdz (domain web1 has vda, vdb, vdc, hdc)');
    expect(() => planCreate({ ...base, options: { name: 'c', disks: [{ name: 'vda', checkpoint: 'no' }, { name: 'vda', checkpoint: 'no' }] } })).toThrow('disk vda is listed twice');
    expect(() => planCreate({ ...base, options: { name: 'c', disks: [{ name: 'vdc', checkpoint: 'bitmap' }] } })).toThrow('disk vdc cannot hold a checkpoint bitmap: its format is raw, and bitmaps need qcow2');
    expect(() => planCreate({ ...base, options: { name: 'c', disks: [{ name: 'vda', checkpoint: 'no' }, { name: 'vdb', checkpoint: 'no' }] } })).toThrow('no disk takes part in checkpoint c');
  });

  it('refuses the chained layout with the reason, and names taken or invalid', () => {
    expect(() => planCreate({ ...base, options: { name: 'c', layout: 'chained' } })).toThrow(`domain web1: ${CHAINED_REFUSED}`);
    expect(planCreate({ ...base, options: { name: 'c', layout: 'independent' } }).spec.name).toBe('c');
    expect(() => planCreate({ ...base, existing: new Set(['c']), options: { name: 'c' } })).toThrow('checkpoint c already exists on domain web1');
    expect(() => planCreate({ ...base, options: { name: 'a/b' } })).toThrow(/a\/b/);
  });

  it('names an unnamed checkpoint after the time in seconds, as libvirt, avoiding taken names', () => {
    expect(planCreate({ ...base, options: {} }).spec.name).toBe('1700000000');
    expect(planCreate({ ...base, existing: new Set(['1700000000']), options: {} }).spec.name).toBe('1700000000-2');
  });

  it('carries quiesce as a freeze around the call', () => {
    expect(planCreate({ ...base, options: { name: 'q', quiesce: true } }).quiesce).toBe(true);
  });

  it('says why a disk cannot hold a bitmap', () => {
    expect(whyNoBitmap(disk('a'))).toBeUndefined();
    expect(whyNoBitmap(disk('a', { readonly: true }))).toBe('it is read-only');
    expect(whyNoBitmap(disk('a', { device: 'cdrom' }))).toBe('it is a cdrom');
  });
});

const cp = (name: string, parent?: string): Checkpoint => ({ name, ...(parent ? { parent } : {}), creationTime: 1, createdAtMs: 1000, disks: [], layout: 'independent' });
const tree = new Map([cp('a'), cp('b', 'a'), cp('c', 'b'), cp('d', 'b'), cp('e', 'c')].map((c) => [c.name, c]));

describe('delete', () => {
  it('maps each mode to virsh checkpoint-delete flags', () => {
    expect(deleteFlags('plain')).toEqual({ mode: 'only' });
    expect(deleteFlags('children')).toEqual({ mode: 'children' });
    expect(deleteFlags('children-only')).toEqual({ mode: 'children-only' });
    expect(deleteFlags('metadata')).toEqual({ mode: 'only', metadataOnly: true });
    expect(() => deleteFlags('all' as never)).toThrow('unknown delete mode "all"');
  });

  it('plain: the children move to the parent; children: the subtree; children-only: keeps the named one', () => {
    expect(planDelete(tree, 'b', 'plain')).toEqual({ deleted: ['b'], reparented: [{ name: 'c', parent: 'a' }, { name: 'd', parent: 'a' }] });
    expect(planDelete(tree, 'a', 'metadata')).toEqual({ deleted: ['a'], reparented: [{ name: 'b' }] });
    expect(planDelete(tree, 'b', 'children')).toEqual({ deleted: ['e', 'c', 'd', 'b'], reparented: [] });
    expect(planDelete(tree, 'b', 'children-only')).toEqual({ deleted: ['e', 'c', 'd'], reparented: [] });
    expect(() => planDelete(tree, 'zz', 'plain')).toThrow('checkpoint zz not found');
  });
});

describe('toCheckpoint', () => {
  it('keeps libvirt sizes only where libvirt gave them, and the independent layout', () => {
    expect(toCheckpoint({ name: 'c', parent: 'b', creationTime: 1700000000, hasDomain: false, disks: [
      { name: 'vda', checkpoint: 'bitmap', bitmap: 'c', size: 65536 }, { name: 'vdb', checkpoint: 'bitmap' }, { name: 'vdc', checkpoint: 'no' },
    ] })).toEqual({
      name: 'c', parent: 'b', creationTime: 1700000000, createdAtMs: 1700000000000, layout: 'independent',
      disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: 'c', size: 65536 }, { name: 'vdb', checkpoint: 'bitmap', bitmap: 'c' }, { name: 'vdc', checkpoint: 'no' }],
    });
  });
});

describe('ids', () => {
  const uuid = '0b5a3c8e-1f2d-4c3b-9a8e-7d6c5b4a3f21';
  it('a VM id names the connection and the UUID, and splits back', () => {
    const id = libvirtVmId('qemu+ssh://root@h:2222/system?keyfile=/k', uuid.toUpperCase());
    expect(id).toBe(`qemu+ssh://root@h:2222/system?keyfile=/k#${uuid}`);
    expect(parseLibvirtVmId(id)).toEqual({ uri: 'qemu+ssh://root@h:2222/system?keyfile=/k', uuid });
    expect(parseLibvirtVmId('ep-123#abc')).toBeUndefined();
    expect(parseLibvirtVmId('qemu:///system#not-a-uuid')).toBeUndefined();
  });
  it('connection ids are stable per URI, and URIs are recognised before they are checked', () => {
    expect(libvirtConnectionId('qemu:///system')).toBe(libvirtConnectionId(' qemu:///system '));
    expect(libvirtConnectionId('qemu:///system')).toMatch(/^lv-[0-9a-f]{12}$/);
    expect(libvirtConnectionId('qemu:///system')).not.toBe(libvirtConnectionId('qemu:///session'));
    expect(() => libvirtConnectionId('qemu:///nope')).toThrow('libvirt URI "qemu:///nope" has path "/nope"; it must be /system or /session');
    expect(looksLikeLibvirtUri('qemu+ssh://h/system')).toBe(true);
    expect(looksLikeLibvirtUri('unix:/run/x.sock')).toBe(false);
  });
});
