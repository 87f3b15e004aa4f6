// The QMP side of a backup plan without QEMU: object names, temporary bitmaps, and the order of the
// push and pull transactions.

import { describe, expect, it } from 'vitest';
import type { DiskInfo } from '../../../shared/domain';
import type { QmpAction } from '../checkpoints/api';
import type { BackupPlan } from '../backup/plan';
import { backupActions, backupNames, fleeceNodeArgs, pullActions, qmpDiskRuns } from './actions';
import { BACKUP_TEMP_BITMAP, changeMapBitmap } from './change-map';

const disk = (name: string): DiskInfo => ({ name, nodeName: `${name}-fmt`, format: 'qcow2', virtualSize: 1 << 30, imageFile: `/img/${name}.qcow2`, granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps: [] });

const plan: BackupPlan = {
  kind: 'incremental',
  since: 'c2',
  disks: [
    { disk: disk('vda'), kind: 'incremental', since: 'c2', base: 'B2' },
    { disk: disk('vdb'), kind: 'differential', since: 'c1', base: 'B1' },
    { disk: disk('vdc'), kind: 'full', fallbackReason: 'cannot hold bitmaps' },
  ],
  checkpointDisks: [],
  notes: [],
};

const calls: string[] = [];
const temp = (since: string, d: string, tmp: string): QmpAction[] => {
  calls.push(`${since}/${d}/${tmp}`);
  return [{ type: 'block-dirty-bitmap-add', data: { node: `${d}-fmt`, name: tmp } }, { type: 'block-dirty-bitmap-merge', data: { node: `${d}-fmt`, target: tmp, bitmaps: [since] } }];
};

describe('qmpDiskRuns', () => {
  it('names every QEMU object and asks for a temporary bitmap only where the plan wants changes', () => {
    calls.length = 0;
    const runs = qmpDiskRuns(plan, backupNames('abc123'), temp);
    expect(runs.map((r) => [r.jobId, r.targetNode, r.tmpBitmap ?? null])).toEqual([
      ['tidemark-bk-abc123-0', 'tidemark-bkt-abc123-0', 'tidemark-tmp-bk-abc123-0'],
      ['tidemark-bk-abc123-1', 'tidemark-bkt-abc123-1', 'tidemark-tmp-bk-abc123-1'],
      ['tidemark-bk-abc123-2', 'tidemark-bkt-abc123-2', null],
    ]);
    expect(calls).toEqual(['c2/vda/tidemark-tmp-bk-abc123-0', 'c1/vdb/tidemark-tmp-bk-abc123-1']);
    expect(runs[2]!.bitmapActions).toEqual([]);
    // node names fit QEMU's 31 characters
    expect(backupNames('ffffff').targetNode(255).length).toBeLessThanOrEqual(31);
  });
});

describe('backupActions', () => {
  it('temporary bitmaps, then the checkpoint, then one backup job per disk that waits to be finalized', () => {
    const runs = qmpDiskRuns(plan, backupNames('abc123'), temp);
    const checkpointActions = [{ type: 'block-dirty-bitmap-add', data: { node: 'vda-fmt', name: 'new', persistent: true } }];
    const actions = backupActions(runs, { checkpointActions, speed: 1048576, fullSync: () => 'top' });
    expect(actions.map((a) => a.type)).toEqual([
      'block-dirty-bitmap-add', 'block-dirty-bitmap-merge', 'block-dirty-bitmap-add', 'block-dirty-bitmap-merge',
      'block-dirty-bitmap-add', 'blockdev-backup', 'blockdev-backup', 'blockdev-backup',
    ]);
    expect(actions[5]!.data).toEqual({
      'job-id': 'tidemark-bk-abc123-0', device: 'vda-fmt', target: 'tidemark-bkt-abc123-0', 'auto-finalize': false, 'auto-dismiss': false,
      sync: 'bitmap', bitmap: 'tidemark-tmp-bk-abc123-0', 'bitmap-mode': 'never', speed: 1048576,
    });
    expect(actions[7]!.data).toEqual({
      'job-id': 'tidemark-bk-abc123-2', device: 'vdc-fmt', target: 'tidemark-bkt-abc123-2', 'auto-finalize': false, 'auto-dismiss': false, sync: 'top', speed: 1048576,
    });
  });

  it('asks for copy_file_range (x-perf use-copy-range) on every job only when told to', () => {
    const runs = qmpDiskRuns(plan, backupNames('abc123'), temp);
    const jobs = (copyRange?: boolean) => backupActions(runs, { copyRange }).filter((a) => a.type === 'blockdev-backup');
    expect(jobs(true).map((a) => a.data['x-perf'])).toEqual([{ 'use-copy-range': true }, { 'use-copy-range': true }, { 'use-copy-range': true }]);
    expect(jobs(false).some((a) => 'x-perf' in a.data)).toBe(false);
    expect(jobs(undefined).some((a) => 'x-perf' in a.data)).toBe(false);
  });
});

describe('pullActions', () => {
  it('puts temporary bitmaps, the checkpoint and one sync=none job per disk into one transaction, in that order', () => {
    const runs = qmpDiskRuns({ ...plan, disks: plan.disks.slice(0, 1).concat(plan.disks.slice(2)) }, backupNames('abc'), temp);
    const actions = pullActions(runs, [{ type: 'block-dirty-bitmap-add', data: { name: 'c2' } }]);
    expect(actions.map((a) => a.type)).toEqual(['block-dirty-bitmap-add', 'block-dirty-bitmap-merge', 'block-dirty-bitmap-add', 'blockdev-backup', 'blockdev-backup']);
    expect(actions[3]).toEqual({ type: 'blockdev-backup', data: { 'job-id': 'tidemark-bk-abc-0', device: 'vda-fmt', target: 'tidemark-bkt-abc-0', sync: 'none' } });
    expect(fleeceNodeArgs('tidemark-bkt-abc-0', '/s/f.qcow2', 'vda-fmt')).toEqual({ driver: 'qcow2', 'node-name': 'tidemark-bkt-abc-0', file: { driver: 'file', filename: '/s/f.qcow2' }, backing: 'vda-fmt' });
  });

  it('names temporary bitmaps as change-map clean-up recognises them, and nothing else', () => {
    for (const [tag, i] of [['abc123', 0], ['ffffff', 255], ['000000', 3]] as const) expect(backupNames(tag).tmpBitmap(i)).toMatch(BACKUP_TEMP_BITMAP);
    for (const name of ['tidemark', 'tidemark-tmp-bk-', 'tidemark-tmp-map-0a1b2c3d4e5f', 'tidemark-tmp-bk-abc123-0-map', 'tidemark-tmp-bk-ABC123-0']) expect(name).not.toMatch(BACKUP_TEMP_BITMAP);
    expect(changeMapBitmap(backupNames('abc123').tmpBitmap(1))).toBe('tidemark-tmp-bk-abc123-1-map');
  });
});
