// Backup planning without QEMU: kinds, bases, and per-disk fallbacks with their reasons.

import { describe, expect, it } from 'vitest';
import type { Checkpoint, DiskInfo, VmInfo } from '../../../shared/domain';
import type { BackupManifest, BackupManifestDisk, BranchPoint } from './manifest';
import { backupAt, currentPath, planBackup, type PlanInputs } from './plan';

const GiB = 1024 ** 3;

function disk(name: string, over: Partial<DiskInfo> = {}): DiskInfo {
  return { name, nodeName: `${name}-fmt`, format: 'qcow2', virtualSize: GiB, imageFile: `/img/${name}.qcow2`, granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps: [], ...over };
}

const vm: VmInfo = {
  id: 'vm1', name: 'demo', endpoint: 'unix:/q', status: 'running', qemuVersion: '7.2.22',
  disks: [disk('vda'), disk('vdb'), disk('vdc', { bitmapCapable: false, bitmapIncapableReason: 'qcow2 v2 (compat 0.10) cannot store persistent bitmaps' })],
};

function cp(name: string, parent?: string): Checkpoint {
  return { name, parent, creationTime: 0, createdAtMs: 0, layout: 'independent', disks: [{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'bitmap' }] };
}

function layer(name: string, id: string, base?: string, over: Partial<BackupManifestDisk> = {}): BackupManifestDisk {
  return {
    name, kind: base ? 'incremental' : 'full', ...(base ? { since: 'x', base, backingFile: `${base}.qcow2` } : {}), image: `disks/${name}/${id}.qcow2`,
    virtualSize: GiB, bytesCopied: 0, fileSize: 0, sha256: '0'.repeat(64), sourceImage: '', sourceFormat: 'qcow2', checkpointBitmap: name !== 'vdc', ...over,
  };
}

function backup(id: string, checkpoint: string | undefined, base?: string, disks = ['vda', 'vdb', 'vdc']): BackupManifest {
  return {
    format: 'tidemark-backup', version: 1, id, vm: { id: 'vm1' }, kind: base ? 'incremental' : 'full', ...(checkpoint ? { checkpoint } : {}),
    startedAt: Number(id.slice(-4)), completedAt: 0, qemuVersion: '7.2.22', tool: 't', disks: disks.map((d) => layer(d, id, d === 'vdc' ? undefined : base)),
  };
}

const B1 = '20260101-000000-000-0001';
const B2 = '20260101-000000-000-0002';
const B3 = '20260101-000000-000-0003';

/** c1 (B1, full) → c2 (B2, incremental on B1) → c3 (no backup), current c3. */
function inputs(over: Partial<PlanInputs> = {}): PlanInputs {
  return {
    vm,
    request: { mode: 'auto' },
    checkpoints: [cp('c1'), cp('c2', 'c1'), cp('c3', 'c2')],
    current: 'c3',
    backups: [backup(B1, 'c1'), backup(B2, 'c2', B1)],
    branchPoints: [],
    needsFull: {},
    layerExists: () => true,
    changesUnusable: () => undefined,
    ...over,
  };
}

const kinds = (p: ReturnType<typeof planBackup>) => p.disks.map((d) => [d.disk.name, d.kind, d.base ?? null]);

describe('planBackup', () => {
  it('defaults to incremental since the newest checkpoint on the current path that has a backup', () => {
    const p = planBackup(inputs());
    expect([p.kind, p.since]).toEqual(['incremental', 'c2']);
    expect(kinds(p)).toEqual([['vda', 'incremental', B2], ['vdb', 'incremental', B2], ['vdc', 'full', null]]);
    expect(p.disks[2]!.fallbackReason).toBe('the disk cannot hold bitmaps (qcow2 v2 (compat 0.10) cannot store persistent bitmaps)');
    expect(p.notes[0]).toBe('no kind given: incremental since c2, the newest checkpoint that has a backup');
    expect(p.checkpointDisks).toEqual([{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'bitmap' }, { name: 'vdc', checkpoint: 'no' }]);
  });

  it('defaults to full when no checkpoint has a backup', () => {
    const p = planBackup(inputs({ backups: [] }));
    expect(p.kind).toBe('full');
    expect(kinds(p).every(([, k]) => k === 'full')).toBe(true);
    expect(p.disks.every((d) => d.fallbackReason === undefined && d.since === undefined && d.base === undefined)).toBe(true);
  });

  it('--since an older checkpoint is differential, onto that checkpoint\'s backup', () => {
    const p = planBackup(inputs({ request: { mode: 'since', checkpoint: 'c1' } }));
    expect(p.kind).toBe('differential');
    expect(kinds(p).slice(0, 2)).toEqual([['vda', 'differential', B1], ['vdb', 'differential', B1]]);
    expect(p.disks[0]!.since).toBe('c1');
  });

  it('a checkpoint not on the current path is not a default base', () => {
    // c4 is a sibling branch under c1 with a backup; current is c3
    const p = planBackup(inputs({ checkpoints: [cp('c1'), cp('c2', 'c1'), cp('c3', 'c2'), cp('c4', 'c1')], backups: [backup(B1, 'c1'), backup(B2, 'c2', B1), backup(B3, 'c4', B1)] }));
    expect(p.since).toBe('c2');
  });

  it.each<[string, Partial<PlanInputs>, RegExp]>([
    ['a disk marked after a partial restore', { needsFull: { vda: 'restored in place from backup X' } }, /^restored in place from backup X$/],
    ['a new disk (no backup of it at the checkpoint)', { backups: [backup(B1, 'c1'), backup(B2, 'c2', B1, ['vdb', 'vdc'])] }, /no backup in this repository holds vda at checkpoint c2 \(a new disk/],
    ['a base layer gone from the repository', { layerExists: (id, d) => !(id === B1 && d === 'vda') }, new RegExp(`backup ${B1}'s image of vda is gone from the repository`)],
    ['a base manifest gone', { backups: [{ ...backup(B2, 'c2', B1), disks: [layer('vda', B2, B1), layer('vdb', B2), layer('vdc', B2)] }] }, new RegExp(`backup ${B1}, on which ${B2}'s layer of vda builds, is gone from the repository`)],
    ['a resized disk', { vm: { ...vm, disks: [disk('vda', { virtualSize: 2 * GiB }), disk('vdb'), vm.disks[2]!] } }, /the disk was resized since backup \S+ \(1\.00 GiB → 2\.00 GiB\)/],
    ['an unusable bitmap', { changesUnusable: (s, d) => (d === 'vda' ? `bitmap ${s} of checkpoint ${s} on vda is inconsistent (QEMU was not shut down cleanly)` : undefined) }, /inconsistent \(QEMU was not shut down cleanly\)/],
  ])('falls back to full for %s, with the reason', (_what, over, reason) => {
    const p = planBackup(inputs(over));
    const vda = p.disks.find((d) => d.disk.name === 'vda')!;
    expect(vda.kind).toBe('full');
    expect(vda.fallbackReason).toMatch(reason);
    expect([vda.since, vda.base]).toEqual([undefined, undefined]);
    expect(p.notes.some((n) => n.startsWith('vda: full backup instead of changes since c2: '))).toBe(true);
    expect(p.disks.find((d) => d.disk.name === 'vdb')!.kind).toBe('incremental'); // per disk: the others are unaffected
  });

  it('refuses bad requests with clear errors', () => {
    expect(() => planBackup(inputs({ disks: ['vdz'] }))).toThrow('VM demo has no disk "vdz" (it has vda, vdb, vdc)');
    expect(() => planBackup(inputs({ disks: ['vda', 'vda'] }))).toThrow('disk "vda" is given twice');
    expect(() => planBackup(inputs({ request: { mode: 'since', checkpoint: 'nope' } }))).toThrow('checkpoint "nope" does not exist (see checkpoint-list); use --full for a full backup');
    expect(() => planBackup(inputs({ vm: { ...vm, disks: [] } }))).toThrow('VM vm1 has no disks to back up');
  });

  it('a disk subset gets a checkpoint bitmap only on the disks backed up', () => {
    const p = planBackup(inputs({ disks: ['vdb'] }));
    expect(kinds(p)).toEqual([['vdb', 'incremental', B2]]);
    expect(p.checkpointDisks).toEqual([{ name: 'vda', checkpoint: 'no' }, { name: 'vdb', checkpoint: 'bitmap' }, { name: 'vdc', checkpoint: 'no' }]);
  });

  it('a branch point stands for its backup: the next incremental builds on the restored backup', () => {
    const bp: BranchPoint = { format: 'tidemark-branch-point', version: 1, checkpoint: 'r1', parent: 'c1', backup: B1, disks: ['vda', 'vdb'], createdAt: 0 };
    const p = planBackup(inputs({ checkpoints: [cp('c1'), cp('c2', 'c1'), cp('r1', 'c1')], current: 'r1', branchPoints: [bp] }));
    expect([p.kind, p.since]).toEqual(['incremental', 'r1']);
    expect(kinds(p).slice(0, 2)).toEqual([['vda', 'incremental', B1], ['vdb', 'incremental', B1]]);
    expect(backupAt('r1', 'vda', [backup(B1, 'c1')], [bp])?.id).toBe(B1);
    expect(backupAt('r1', 'vdc', [backup(B1, 'c1')], [bp])).toBeUndefined();
  });

  it('currentPath walks parents and survives cycles', () => {
    expect(currentPath([cp('a', 'b'), cp('b', 'a')], 'a').map((c) => c.name)).toEqual(['a', 'b']);
    expect(currentPath([cp('a')], undefined)).toEqual([]);
  });
});
