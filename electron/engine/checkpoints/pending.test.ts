// Pending checkpoints: the pure decisions (left-over detection, commit and roll-back checks) and the
// bookkeeping over real record files in a temporary state directory (no QEMU).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BitmapInfo, Checkpoint, DiskInfo, VmInfo } from '../../../shared/domain';
import { ownStartTime } from '../../os/process-liveness';
import { assertCommittable, hasLiveBitmap, leftoverAction, ownerStatus, PendingCheckpoints, rollbackState } from './pending';
import type { PlanState } from './plan';
import { MetadataStore } from './store';

const bm = (name: string): BitmapInfo => ({ name, recording: true, persistent: true, busy: false, inconsistent: false, count: 0, granularity: 65536 });
const disk = (name: string, bitmaps: string[] = []): DiskInfo => ({
  name, nodeName: `${name}-fmt`, format: 'qcow2', virtualSize: 1 << 30, imageFile: `/x/${name}.qcow2`, granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps: bitmaps.map(bm),
});
const cp = (name: string, parent?: string, disks: Record<string, 'bitmap' | 'no'> = { vda: 'bitmap', vdb: 'no' }): Checkpoint => ({
  name, ...(parent !== undefined ? { parent } : {}), creationTime: 1, createdAtMs: 1000, layout: 'chained',
  disks: Object.entries(disks).map(([d, c]) => (c === 'bitmap' ? { name: d, checkpoint: c, bitmap: name } : { name: d, checkpoint: c })),
});
const vmWith = (disks: DiskInfo[]): VmInfo => ({ id: 'vm1', endpoint: 'unix:/x', status: 'running', qemuVersion: '7.2.0', disks } as VmInfo);

describe('hasLiveBitmap', () => {
  it('true when a bitmap of a taking-part disk exists, by its recorded name or the checkpoint name', () => {
    expect(hasLiveBitmap(cp('c1'), [disk('vda', ['c1'])])).toBe(true);
    const custom = { ...cp('c1'), disks: [{ name: 'vda', checkpoint: 'bitmap' as const, bitmap: 'other' }] };
    expect(hasLiveBitmap(custom, [disk('vda', ['other'])])).toBe(true);
    expect(hasLiveBitmap(custom, [disk('vda', ['c1'])])).toBe(false);
    expect(hasLiveBitmap({ ...cp('c1'), disks: [{ name: 'vda', checkpoint: 'bitmap' }] }, [disk('vda', ['c1'])])).toBe(true);
  });
  it('false when no bitmap exists, the disk is gone, or the disk did not take part', () => {
    expect(hasLiveBitmap(cp('c1'), [disk('vda', ['c0'])])).toBe(false);
    expect(hasLiveBitmap(cp('c1'), [disk('vdb', ['c1'])])).toBe(false);
    expect(hasLiveBitmap(cp('c1', undefined, { vda: 'no', vdb: 'no' }), [disk('vda', ['c1'])])).toBe(false);
  });
});

describe('ownerStatus and leftoverAction', () => {
  it('a dead owner is interrupted; a live one in progress unless it gave up', () => {
    expect(ownerStatus({}, false)).toBe('interrupted');
    expect(ownerStatus({ abandoned: true }, false)).toBe('interrupted');
    expect(ownerStatus({ abandoned: true }, true)).toBe('abandoned');
    expect(ownerStatus({}, true)).toBe('in-progress');
  });
  it('recorded → forget the record; in progress → keep; otherwise → roll back', () => {
    expect(leftoverAction({ status: 'interrupted' }, true)).toBe('forget');
    expect(leftoverAction({ status: 'in-progress' }, true)).toBe('forget');
    expect(leftoverAction({ status: 'in-progress' }, false)).toBe('keep');
    expect(leftoverAction({ status: 'interrupted' }, false)).toBe('roll-back');
    expect(leftoverAction({ status: 'abandoned' }, false)).toBe('roll-back');
  });
});

describe('assertCommittable', () => {
  const ok = { bitmap: () => 'ok' as const };
  it('passes for the child of the current checkpoint whose bitmaps are there', () => {
    expect(() => assertCommittable(cp('c2', 'c1'), false, 'c1', ok)).not.toThrow();
    expect(() => assertCommittable(cp('c1'), false, undefined, ok)).not.toThrow();
  });
  it('refuses a recorded one, a moved current, and a missing or broken bitmap', () => {
    expect(() => assertCommittable(cp('c2', 'c1'), true, 'c1', ok)).toThrow('checkpoint c2 already exists');
    expect(() => assertCommittable(cp('c2', 'c1'), false, 'c9', ok)).toThrow(
      'the current checkpoint changed since checkpoint c2 was prepared (now c9); prepare and commit inside withLock',
    );
    expect(() => assertCommittable(cp('c2', 'c1'), false, undefined, ok)).toThrow(/was prepared \(now none\)/);
    expect(() => assertCommittable(cp('c2', 'c1'), false, 'c1', { bitmap: () => 'missing' })).toThrow('cannot record checkpoint c2: its bitmap is not on vda (did its actions run?)');
    expect(() => assertCommittable(cp('c2', 'c1'), false, 'c1', { bitmap: () => 'inconsistent' })).toThrow(/its bitmap is not on vda/);
  });
});

describe('rollbackState', () => {
  const state: PlanState = { layout: 'chained', checkpoints: new Map([['c1', cp('c1')]]), current: 'c1' };
  it('recorded: the state as it is', () => {
    expect(rollbackState(state, cp('c1'), true, [])).toBe(state);
  });
  it('not recorded, bitmaps exist: the state with it as current', () => {
    const s = rollbackState(state, cp('c2', 'c1'), false, [disk('vda', ['c1', 'c2'])]);
    expect(s?.current).toBe('c2');
    expect([...s!.checkpoints.keys()]).toEqual(['c1', 'c2']);
  });
  it('not recorded, no bitmaps: nothing to undo', () => {
    expect(rollbackState(state, cp('c2', 'c1'), false, [disk('vda', ['c1'])])).toBeUndefined();
  });
});

describe('PendingCheckpoints (record files)', () => {
  let root: string;
  let store: MetadataStore;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'tmpending-'));
    store = new MetadataStore(path.join(root, 'state'), 'vm1', 'demo');
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));
  const names = () => store.loadPending().map((p) => p.checkpoint.name).sort();
  /** A record of our own pid with a start time that is not ours: its owner died and the pid was reused. */
  const deadOwner = (c: Checkpoint, abandoned = false) => store.writePending({ checkpoint: c, owner: { pid: process.pid, start: '1', command: 'backup b1', since: 'then' }, ...(abandoned ? { abandoned } : {}) });

  it('add records this process as owner with its command; list shows it in progress; resolve forgets it', () => {
    const p = new PendingCheckpoints(store);
    p.add(cp('c1'), 'backup b2');
    const [rec] = store.loadPending();
    expect(rec!.owner).toMatchObject({ pid: process.pid, command: 'backup b2', start: ownStartTime() });
    expect(p.list()).toEqual([{ checkpoint: cp('c1'), command: 'backup b2', pid: process.pid, status: 'in-progress' }]);
    p.resolve('c1');
    expect(names()).toEqual([]);
    expect(() => p.resolve('c1')).not.toThrow();
  });

  it('add says nothing was changed when the record cannot be written', () => {
    fs.mkdirSync(path.dirname(store.pendingDir), { recursive: true });
    fs.writeFileSync(store.pendingDir, 'not a folder');
    expect(() => new PendingCheckpoints(store).add(cp('c1'), 'backup b2')).toThrow(/; nothing was changed$/);
  });

  it('settle at the end of a hold: unresolved records with bitmaps become abandoned, those without are forgotten', async () => {
    const p = new PendingCheckpoints(store);
    p.add(cp('c1'), 'backup b2');
    p.add(cp('c2'), 'backup b2');
    p.add(cp('c3'), 'backup b2');
    p.resolve('c3');
    store.writePending({ checkpoint: cp('c3'), owner: { pid: process.pid, command: 'again', since: 'now' } }); // not held any more
    await p.settle(async () => vmWith([disk('vda', ['c1'])]));
    expect(names()).toEqual(['c1', 'c3']);
    expect(store.loadPending().find((r) => r.checkpoint.name === 'c1')!.abandoned).toBe(true);
    expect(p.list().find((r) => r.checkpoint.name === 'c1')!.status).toBe('abandoned');
    expect(store.loadPending().find((r) => r.checkpoint.name === 'c3')!.abandoned).toBeUndefined();
  });

  it('settle keeps the records when the VM cannot be read (a dead owner makes them left-overs later)', async () => {
    const p = new PendingCheckpoints(store);
    p.add(cp('c1'), 'backup b2');
    await p.settle(async () => {
      throw new Error('QEMU is gone');
    });
    expect(names()).toEqual(['c1']);
    expect(store.loadPending()[0]!.abandoned).toBeUndefined();
  });

  it('reapLeftovers: rolls back left-overs whose bitmaps exist, forgets recorded ones, keeps running ones', async () => {
    deadOwner(cp('dead-with-bitmap'));
    deadOwner(cp('dead-without-bitmap'));
    deadOwner(cp('committed'));
    store.writePending({ checkpoint: cp('gave-up'), owner: { pid: process.pid, start: ownStartTime(), command: 'pull p1', since: 'then' }, abandoned: true });
    store.writePending({ checkpoint: cp('running'), owner: { pid: process.pid, start: ownStartTime(), command: 'backup b3', since: 'now' } });
    const rolled: [string, string][] = [];
    const reaped = await new PendingCheckpoints(store).reapLeftovers(
      vmWith([disk('vda', ['dead-with-bitmap', 'committed', 'gave-up', 'running'])]),
      (n) => n === 'committed',
      async (c, what) => void rolled.push([c.name, what]),
    );
    expect(reaped.sort()).toEqual(['dead-with-bitmap', 'dead-without-bitmap', 'gave-up']);
    expect(rolled.sort()).toEqual([
      ['dead-with-bitmap', `removing the bitmaps of checkpoint dead-with-bitmap, left by an interrupted backup b1 (pid ${process.pid})`],
      ['gave-up', `removing the bitmaps of checkpoint gave-up, left by an unfinished pull p1 (pid ${process.pid})`],
    ]);
    expect(names()).toEqual(['running']);
  });

  it('reapLeftovers: a failed roll-back keeps the record (the next operation tries again)', async () => {
    deadOwner(cp('c1'));
    const reap = new PendingCheckpoints(store).reapLeftovers(vmWith([disk('vda', ['c1'])]), () => false, async () => {
      throw new Error('bitmap c1 on vda is in use by a running job');
    });
    await expect(reap).rejects.toThrow('in use by a running job');
    expect(names()).toEqual(['c1']);
  });
});
