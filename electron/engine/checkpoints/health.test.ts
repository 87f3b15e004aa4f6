import { describe, expect, it } from 'vitest';
import type { BitmapInfo, BitmapLayout, Checkpoint, DiskInfo } from '../../../shared/domain';
import { bitmapIsValidForCheckpoint, checkHealth, type PendingInput } from './health';

const cp = (name: string, parent?: string, disks: Record<string, 'bitmap' | 'no'> = { vda: 'bitmap' }): Checkpoint => ({
  name, ...(parent ? { parent } : {}), creationTime: 1, createdAtMs: 1, layout: 'chained',
  disks: Object.entries(disks).map(([d, c]) => (c === 'bitmap' ? { name: d, checkpoint: c, bitmap: name } : { name: d, checkpoint: c })),
});
const bm = (name: string | undefined, o: Partial<BitmapInfo> = {}): BitmapInfo => ({
  ...(name !== undefined ? { name } : {}), recording: true, persistent: true, busy: false, inconsistent: false, count: 0, granularity: 65536, ...o,
});
const disk = (name: string, bitmaps: BitmapInfo[], o: Partial<DiskInfo> = {}): DiskInfo => ({
  name, nodeName: `${name}-fmt`, format: 'qcow2', virtualSize: 1 << 30, imageFile: `/x/${name}.qcow2`, granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps, ...o,
});
const input = (layout: BitmapLayout, cps: Checkpoint[], current: string | undefined, disks: DiskInfo[]) => ({ layout, checkpoints: new Map(cps.map((c) => [c.name, c])), current, disks });
const states = (issues: ReturnType<typeof checkHealth>) => issues.map((i) => [i.state, i.disk, i.checkpoint ?? i.bitmap]);

describe('checkHealth', () => {
  it('a healthy chained VM has no issues', () => {
    const i = checkHealth(input('chained', [cp('c1'), cp('c2', 'c1')], 'c2', [disk('vda', [bm('c1', { recording: false }), bm('c2')])]));
    expect(i).toEqual([]);
  });
  it('a healthy independent VM: every bitmap records', () => {
    expect(checkHealth(input('independent', [cp('c1'), cp('c2', 'c1')], 'c2', [disk('vda', [bm('c1'), bm('c2')])]))).toEqual([]);
  });

  it('missing bitmap: error with a consequence naming the disk and the older checkpoints (chained)', () => {
    const [i] = checkHealth(input('chained', [cp('c1'), cp('c2', 'c1'), cp('c3', 'c2')], 'c3', [disk('vda', [bm('c1', { recording: false }), bm('c3')])]));
    expect(i).toMatchObject({ state: 'bitmap-missing', severity: 'error', disk: 'vda', checkpoint: 'c2', bitmap: 'c2', message: 'bitmap c2 of checkpoint c2 is missing on vda' });
    expect(i!.consequence).toBe('checkpoint c2 cannot be used as a base for vda (nor can the older checkpoint c1, whose changes pass through it); the next backup of vda based on it will be full');
  });

  it('inconsistent bitmaps after a crash: one error each, telling what to do', () => {
    const i = checkHealth(input('independent', [cp('c1'), cp('c2', 'c1')], 'c2', [disk('vda', [bm('c1', { inconsistent: true, recording: false }), bm('c2', { inconsistent: true, recording: false })])]));
    expect(states(i)).toEqual([['bitmap-inconsistent', 'vda', 'c1'], ['bitmap-inconsistent', 'vda', 'c2']]);
    expect(i[0]!.message).toBe('bitmap c1 on vda is inconsistent (QEMU was not shut down cleanly)');
    expect(i[0]!.consequence).toMatch(/next backup of vda based on it will be full; delete the checkpoint to clean up/);
  });

  it('independent: a disabled bitmap should record', () => {
    const [i] = checkHealth(input('independent', [cp('c1')], 'c1', [disk('vda', [bm('c1', { recording: false })])]));
    expect(i).toMatchObject({ state: 'bitmap-not-recording', severity: 'error', checkpoint: 'c1' });
    expect(i!.consequence).toMatch(/writes to vda are not tracked for checkpoint c1; a backup based on it would miss data/);
  });

  it('chained: the newest must record, older ones must not', () => {
    const i = checkHealth(input('chained', [cp('c1'), cp('c2', 'c1')], 'c2', [disk('vda', [bm('c1'), bm('c2', { recording: false })])]));
    expect(states(i)).toEqual([['bitmap-recording-unexpectedly', 'vda', 'c1'], ['bitmap-not-recording', 'vda', 'c2']]);
    expect(i[0]!.severity).toBe('warning');
    expect(i[0]!.consequence).toMatch(/copy more than needed \(still correct\)/);
  });

  it('chained: with current excluding a disk, its nearest ancestor with a bitmap records', () => {
    const cps = [cp('c1', undefined, { vda: 'bitmap', vdb: 'bitmap' }), cp('c2', 'c1', { vda: 'bitmap', vdb: 'no' })];
    const ok = checkHealth(input('chained', cps, 'c2', [disk('vda', [bm('c1', { recording: false }), bm('c2')]), disk('vdb', [bm('c1')])]));
    expect(ok).toEqual([]);
  });

  it('busy: info only', () => {
    const [i] = checkHealth(input('independent', [cp('c1')], 'c1', [disk('vda', [bm('c1', { busy: true })])]));
    expect(i).toMatchObject({ state: 'bitmap-busy', severity: 'info', message: 'bitmap c1 on vda is in use by a running job' });
  });

  it('a foreign bitmap is reported as info and left alone; temp and anonymous ones are not foreign', () => {
    const i = checkHealth(input('independent', [cp('c1')], 'c1', [disk('vda', [bm('c1'), bm('backup-vda'), bm('tidemark-tmp-abc', { persistent: false }), bm(undefined, { busy: true })])]));
    expect(i).toEqual([{
      state: 'foreign-bitmap', severity: 'info', disk: 'vda', bitmap: 'backup-vda',
      message: 'foreign bitmap backup-vda on vda is left alone',
      consequence: 'Tidemark neither uses nor changes it; a checkpoint named backup-vda cannot be created',
    }]);
  });

  it('a bitmap of ours on another disk is foreign on this one', () => {
    const i = checkHealth(input('independent', [cp('c1', undefined, { vda: 'bitmap', vdb: 'no' })], 'c1', [disk('vda', [bm('c1')]), disk('vdb', [bm('c1')])]));
    expect(states(i)).toEqual([['foreign-bitmap', 'vdb', 'c1']]);
  });

  it('incapable disks: info with the reason and what it means', () => {
    const [i] = checkHealth(input('independent', [], undefined, [disk('vdc', [], { bitmapCapable: false, bitmapIncapableReason: 'qcow2 v2 (compat 0.10) cannot store persistent bitmaps' })]));
    expect(i).toMatchObject({ state: 'disk-incapable', severity: 'info', disk: 'vdc', message: 'vdc cannot hold checkpoint bitmaps: qcow2 v2 (compat 0.10) cannot store persistent bitmaps', consequence: 'checkpoints leave vdc out; every backup of vdc is full' });
  });

  it('a detached disk and damaged metadata links are reported', () => {
    const i = checkHealth(input('independent', [cp('c2', 'c1', { vdz: 'bitmap' })], 'c9', []));
    expect(states(i)).toEqual([['metadata-missing', '', 'c9'], ['metadata-missing', '', 'c2'], ['bitmap-missing', 'vdz', 'c2']]);
    expect(i[2]!.message).toBe('disk vdz of checkpoint c2 is no longer attached to the VM');
  });

  it('an incomplete checkpoint (chained, interval lost) is a warning with the reason', () => {
    const c1 = cp('c1');
    c1.disks[0]!.incomplete = 'changes recorded on vda between checkpoint c2 and its successor were lost (bitmap c2 was missing)';
    const [i] = checkHealth(input('chained', [c1], 'c1', [disk('vda', [bm('c1')])]));
    expect(i).toMatchObject({ state: 'bitmap-missing', severity: 'warning', checkpoint: 'c1' });
    expect(i!.message).toMatch(/^checkpoint c1 misses changes on vda: changes recorded/);
  });
});

describe('checkHealth: pending checkpoints (prepared for a backup, not yet recorded)', () => {
  const pending = (c: Checkpoint, status: PendingInput['status']): PendingInput => ({ checkpoint: c, command: 'backup 20260101-000000-ab12', pid: 4242, status });
  const withPending = (layout: BitmapLayout, cps: Checkpoint[], current: string | undefined, disks: DiskInfo[], p: PendingInput[]) => ({ ...input(layout, cps, current, disks), pending: p });
  const two = { vda: 'bitmap', vdb: 'bitmap' } as const;

  it('in progress: its bitmaps are "being created" (info), not foreign', () => {
    const bk = cp('bk', undefined, two);
    const i = checkHealth(withPending('independent', [], undefined, [disk('vda', [bm('bk')]), disk('vdb', [bm('bk')])], [pending(bk, 'in-progress')]));
    expect(states(i)).toEqual([['checkpoint-pending', 'vda', 'bk'], ['checkpoint-pending', 'vdb', 'bk']]);
    expect(i[0]).toMatchObject({
      severity: 'info', bitmap: 'bk',
      message: 'bitmap bk on vda belongs to checkpoint bk, being created by backup 20260101-000000-ab12 (pid 4242)',
      consequence: 'it becomes checkpoint bk when that operation succeeds and is removed if it fails',
    });
  });

  it('chained, in progress: the predecessor being disabled is expected, not an error', () => {
    const c1 = cp('c1');
    const bk = cp('bk', 'c1');
    const i = checkHealth(withPending('chained', [c1], 'c1', [disk('vda', [bm('c1', { recording: false }), bm('bk')])], [pending(bk, 'in-progress')]));
    expect(states(i)).toEqual([['checkpoint-pending', 'vda', 'bk']]);
    // without the pending record the same bitmaps are an error and a foreign bitmap
    expect(states(checkHealth(input('chained', [c1], 'c1', [disk('vda', [bm('c1', { recording: false }), bm('bk')])])))).toEqual([
      ['bitmap-not-recording', 'vda', 'c1'], ['foreign-bitmap', 'vda', 'bk'],
    ]);
  });

  it('before its transaction ran (no bitmaps yet) nothing is reported', () => {
    expect(checkHealth(withPending('independent', [cp('c1')], 'c1', [disk('vda', [bm('c1')])], [pending(cp('bk', 'c1'), 'in-progress')]))).toEqual([]);
  });

  it('left over by a dead process: a warning saying so, with what happens next (independent)', () => {
    const [i, ...rest] = checkHealth(withPending('independent', [cp('c1')], 'c1', [disk('vda', [bm('c1'), bm('bk')])], [pending(cp('bk', 'c1'), 'interrupted')]));
    expect(rest).toEqual([]);
    expect(i).toEqual({
      state: 'checkpoint-left-over', severity: 'warning', disk: 'vda', checkpoint: 'bk', bitmap: 'bk',
      message: 'bitmap bk on vda was left by an interrupted backup 20260101-000000-ab12 (pid 4242); checkpoint bk was never recorded',
      consequence: 'it is no checkpoint and no backup can use it; the next checkpoint change or backup of this VM removes it (checkpoint-delete bk does it now)',
    });
  });

  it('left over in the chained layout: the writes since the predecessor are in it, and will be merged back', () => {
    const [i, ...rest] = checkHealth(withPending('chained', [cp('c1')], 'c1', [disk('vda', [bm('c1', { recording: false }), bm('bk')])], [pending(cp('bk', 'c1'), 'abandoned')]));
    expect(rest).toEqual([]);
    expect(i!.message).toBe('bitmap bk on vda was left by an unfinished backup 20260101-000000-ab12 (pid 4242); checkpoint bk was never recorded');
    expect(i!.consequence).toBe("writes to vda since checkpoint c1 are tracked in it rather than in c1's bitmap; the next checkpoint change or backup of this VM merges it back into c1 and removes it (checkpoint-delete bk does it now)");
  });

  it('a pending record of a checkpoint that is recorded already is ignored', () => {
    expect(checkHealth(withPending('independent', [cp('c1')], 'c1', [disk('vda', [bm('c1')])], [pending(cp('c1'), 'interrupted')]))).toEqual([]);
  });
});

describe('bitmapIsValidForCheckpoint (redefine-validate)', () => {
  const d = disk('vda', [bm('ok'), bm('off', { recording: false }), bm('broken', { inconsistent: true, recording: false }), bm('temp', { persistent: false })]);
  it('independent: present, persistent, consistent and recording', () => {
    expect(bitmapIsValidForCheckpoint(d, 'ok')).toEqual({ ok: true });
    expect(bitmapIsValidForCheckpoint(d, 'ghost')).toEqual({ ok: false, reason: 'bitmap ghost is not present on vda' });
    expect(bitmapIsValidForCheckpoint(d, 'broken')).toEqual({ ok: false, reason: 'bitmap broken on vda is inconsistent' });
    expect(bitmapIsValidForCheckpoint(d, 'off')).toEqual({ ok: false, reason: 'bitmap off on vda is not recording' });
    expect(bitmapIsValidForCheckpoint(d, 'temp')).toEqual({ ok: false, reason: 'bitmap temp on vda is not persistent' });
  });
  it('chained: a disabled but consistent bitmap is valid', () => {
    expect(bitmapIsValidForCheckpoint(d, 'off', 'chained')).toEqual({ ok: true });
    expect(bitmapIsValidForCheckpoint(d, 'broken', 'chained').ok).toBe(false);
  });
});
