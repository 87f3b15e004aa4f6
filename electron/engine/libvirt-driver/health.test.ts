import { describe, expect, it } from 'vitest';
import type { Checkpoint } from '../../../shared/domain';
import type { DomainDisk } from '../../libvirt/domain-xml';
import { checkLibvirtHealth, type ImageBitmaps } from './health';

const disk = (target: string, over: Partial<DomainDisk> = {}): DomainDisk => ({ device: 'disk', type: 'file', target, format: 'qcow2', source: `/img/${target}.qcow2`, readonly: false, backingChain: [], ...over });
const cp = (name: string, sizes: Record<string, number | undefined> = {}): Checkpoint => ({
  name, creationTime: 1, createdAtMs: 1000, layout: 'independent',
  disks: ['vda', 'vdb'].map((d) => ({ name: d, checkpoint: 'bitmap' as const, bitmap: name, ...(sizes[d] !== undefined ? { size: sizes[d] } : {}) })),
});
const img = (...bitmaps: [string, string[]][]): ImageBitmaps => ({ bitmaps: bitmaps.map(([name, flags]) => ({ name, flags })) });
const states = (issues: ReturnType<typeof checkLibvirtHealth>) => issues.map((i) => [i.state, i.disk, i.checkpoint ?? i.bitmap]);

describe('checkLibvirtHealth (local images)', () => {
  const disks = [disk('vda'), disk('vdb')];
  it('is quiet when every checkpoint bitmap is in its image and recording', () => {
    const images = new Map([['vda', img(['c1', ['auto']])], ['vdb', img(['c1', ['in-use', 'auto']])]]);
    expect(checkLibvirtHealth({ checkpoints: [cp('c1', { vda: 0, vdb: 0 })], sizesComputed: true, disks, running: true, images })).toEqual([]);
  });

  it('names missing, not-recording, inconsistent and foreign bitmaps with the QMP-mode consequences', () => {
    const images = new Map([['vda', img(['c2', ['auto', 'in-use']], ['other', ['auto']])], ['vdb', img(['c2', []])]]);
    const issues = checkLibvirtHealth({ checkpoints: [cp('c1'), cp('c2')], sizesComputed: false, disks, running: false, images });
    expect(states(issues)).toEqual([
      ['bitmap-missing', 'vda', 'c1'], ['bitmap-missing', 'vdb', 'c1'],
      ['bitmap-inconsistent', 'vda', 'c2'], ['bitmap-not-recording', 'vdb', 'c2'],
      ['foreign-bitmap', 'vda', 'other'],
    ]);
    expect(issues[0]).toMatchObject({
      severity: 'error', message: 'bitmap c1 of checkpoint c1 is missing in the image of vda (/img/vda.qcow2)',
      consequence: 'checkpoint c1 cannot be used as a base for vda; the next backup of vda based on it will be full',
    });
    expect(issues[2]!.consequence).toBe('checkpoint c2 cannot be used as a base for vda; the next backup of vda based on it will be full; delete the checkpoint to clean up');
    expect(issues[3]!.consequence).toBe('writes to vdb are not tracked for checkpoint c2; a backup based on it would miss data, so it is refused');
  });

  it('a running domain: in-use is normal; a size libvirt cannot compute means the bitmap is unusable', () => {
    const images = new Map([['vda', img(['c1', ['in-use', 'auto']])], ['vdb', img(['c1', ['in-use', 'auto']])]]);
    const issues = checkLibvirtHealth({ checkpoints: [cp('c1', { vda: 4096 })], sizesComputed: true, disks, running: true, images });
    expect(states(issues)).toEqual([['bitmap-inconsistent', 'vdb', 'c1']]);
  });

  it('detached disks, incapable disks and unreadable images', () => {
    const issues = checkLibvirtHealth({
      checkpoints: [cp('c1')], sizesComputed: false, running: false,
      disks: [disk('vda'), disk('vdc', { format: 'raw' }), disk('cd', { device: 'cdrom' })],
      images: new Map([['vda', { unreadable: 'qemu-img: Could not open' }]]),
    });
    expect(states(issues)).toEqual([['bitmap-missing', 'vdb', 'c1'], ['bitmaps-unknown', 'vda', undefined], ['disk-incapable', 'vdc', undefined]]);
    expect(issues[0]!.message).toBe('disk vdb of checkpoint c1 is no longer attached to the domain');
  });
});

describe('checkLibvirtHealth (remote host)', () => {
  const disks = [disk('vda'), disk('vdb')];
  it('says plainly that a shut-off remote domain\'s bitmaps cannot be seen', () => {
    const issues = checkLibvirtHealth({ checkpoints: [cp('c1')], sizesComputed: false, disks, running: false, remoteHost: 'h1' });
    expect(states(issues)).toEqual([['bitmaps-unknown', 'vda', undefined], ['bitmaps-unknown', 'vdb', undefined]]);
    expect(issues[0]!.message).toMatch(/^the image of vda is on h1: its bitmaps cannot be seen from here while the domain is shut off/);
  });
  it('a running remote domain is judged by libvirt\'s sizes', () => {
    expect(states(checkLibvirtHealth({ checkpoints: [cp('c1', { vda: 0 })], sizesComputed: true, disks, running: true, remoteHost: 'h1' }))).toEqual([['bitmap-inconsistent', 'vdb', 'c1']]);
  });
});
