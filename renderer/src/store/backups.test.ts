import { describe, expect, it } from 'vitest';
import type { BackupRecord, JobInfo } from '../../../shared/contract';
import { checkpoint } from '../test/fake-api';
import { backupMarks, parseBackupTitle, parsePullLog } from '../model/backup-marks';
import { EXPORT_ONLY_TITLE, sessionFromJob } from './backups';

function record(id: string, startedAt: number, kind: BackupRecord['kind'], since: string | undefined, cp: string | undefined, disks: { name: string; kind: BackupRecord['kind']; bytes: number; fallbackReason?: string }[]): BackupRecord {
  return {
    format: 'tidemark-backup', version: 1, id, vm: { id: 'uuid-1', name: 'demo' }, kind, since, checkpoint: cp, layout: 'independent',
    startedAt, completedAt: startedAt + 500, qemuVersion: '7.2.22', tool: 'tidemark',
    disks: disks.map((d) => ({
      name: d.name, kind: d.kind, since: d.kind === 'full' ? undefined : since, image: `disks/${d.name}/${id}.qcow2`, virtualSize: 1 << 30,
      bytesCopied: d.bytes, fileSize: d.bytes, sha256: 'x', sourceImage: '/x', sourceFormat: 'qcow2', checkpointBitmap: true,
      ...(d.fallbackReason ? { fallbackReason: d.fallbackReason } : {}),
    })),
  };
}

const cps = [checkpoint('b1', undefined, 1000, ['vda']), checkpoint('b2', 'b1', 2000, ['vda']), checkpoint('b3', 'b2', 3000, ['vda'])];

describe('backupMarks', () => {
  const records = [
    record('r1', 1000, 'full', undefined, 'b1', [{ name: 'vda', kind: 'full', bytes: 100 }]),
    record('r2', 2000, 'incremental', 'b1', 'b2', [{ name: 'vda', kind: 'incremental', bytes: 10 }, { name: 'vdc', kind: 'full', bytes: 64, fallbackReason: 'vdc cannot hold bitmaps' }]),
    record('r3', 3000, 'incremental', 'b1', 'b3', [{ name: 'vda', kind: 'incremental', bytes: 30 }]),
  ];
  const marks = backupMarks(records, cps, [], () => true, ['vda', 'vdc']);

  it('tells incremental (since the previous backup) from differential (since an older one)', () => {
    expect(marks.map((m) => [m.id, m.kind, m.base, m.baseTime])).toEqual([
      ['r1', 'full', undefined, undefined],
      ['r2', 'incremental', 'b1', 1000],
      ['r3', 'differential', 'b1', 1000],
    ]);
  });

  it('keeps what was done per disk, with the fallback reason', () => {
    expect(marks[1]!.disks).toEqual([
      { disk: 'vda', bytes: 10, kind: 'incremental' },
      { disk: 'vdc', bytes: 64, kind: 'full', reason: 'full: vdc cannot hold bitmaps' },
    ]);
  });

  it('adds running and failed backup jobs of this VM only; failures keep their error', () => {
    const job = (id: string, state: JobInfo['state'], vmId = 'demo', error?: string): JobInfo => ({
      id, kind: 'backup', vmId, state, title: 'Backup (since b2) to /repo', startedAt: 5000, progress: [{ disk: 'vda', done: 1, total: 9 }], log: [], ...(error ? { error } : {}),
    });
    const out = backupMarks([], cps, [job('j1', 'failed', 'demo', 'No space left on device'), job('j2', 'running'), job('j3', 'succeeded'), job('j4', 'failed', 'other')], (id) => id === 'demo', ['vda']);
    expect(out.map((m) => [m.id, m.state, m.kind, m.base, m.baseTime, m.error])).toEqual([
      ['j1', 'failed', 'incremental', 'b2', 2000, 'No space left on device'],
      ['j2', 'running', 'incremental', 'b2', 2000, undefined],
    ]);
  });

  it('reads kind and base from backup job titles, defaulting safely', () => {
    expect(parseBackupTitle('Backup (full) to /r')).toEqual({ kind: 'full' });
    expect(parseBackupTitle('Backup (incremental) to /r')).toEqual({ kind: 'incremental' });
    expect(parseBackupTitle('Backup (since cp (1)) to /r')).toEqual({ kind: 'incremental', since: 'cp (1)' });
    expect(parseBackupTitle('something else')).toEqual({ kind: 'full' });
  });

  it('marks pull jobs too, with kind and base read from their log', () => {
    const pull = (id: string, state: JobInfo['state'], log: string[]): JobInfo => ({ id, kind: 'pull', vmId: 'demo', state, title: 'Pull backup to /repo', startedAt: 6000, progress: [], log });
    expect(parsePullLog(['started: Pull backup to /repo', 'pull incremental backup of vda (incremental since b2), vdc (full), new checkpoint p1'])).toEqual({ kind: 'incremental', since: 'b2' });
    expect(parsePullLog(['pull full backup of vda (full), vdb (full)'])).toEqual({ kind: 'full' });
    expect(parsePullLog([])).toEqual({ kind: 'full' });
    const out = backupMarks([], cps, [pull('p1', 'failed', ['pull incremental backup of vda (incremental since b2)']), pull('p2', 'succeeded', [])], () => true, ['vda']);
    expect(out.map((m) => [m.id, m.state, m.kind, m.base, m.pull])).toEqual([['p1', 'failed', 'incremental', 'b2', true]]);
    const pulled = { ...record('r9', 9000, 'full', undefined, 'b3', [{ name: 'vda', kind: 'full', bytes: 1 }]), tool: 'tidemark 0.1.0 (pull)' };
    expect(backupMarks([records[0]!, pulled], cps, [], () => true, ['vda']).map((m) => m.pull)).toEqual([undefined, true]);
  });
});

describe('sessionFromJob', () => {
  const job = (over: Partial<JobInfo> = {}): JobInfo => ({
    id: 'j', kind: 'pull', vmId: 'demo', state: 'running', title: EXPORT_ONLY_TITLE, startedAt: 1, progress: [],
    log: [
      'started: Pull backup (export only)',
      'pull incremental backup of vda (incremental since c1), vdc (full)',
      '2026-11-23T04:11:07.324Z vda: nbd+unix:///tidemark-pull-1?socket=/s/nbd.sock (changes since c1: qemu:dirty-bitmap:tidemark-tmp-bk-1)',
      'vdc: nbd+unix:///tidemark-pull-2?socket=/s/nbd.sock',
      'waiting for backup-end',
    ],
    ...over,
  });

  it('reads the open exports of an export-only pull back from its log', () => {
    expect(sessionFromJob(job(), '/repo')).toEqual({
      vmId: 'demo', jobId: 'j', repo: '/repo',
      exports: [
        { disk: 'vda', uri: 'nbd+unix:///tidemark-pull-1?socket=/s/nbd.sock', since: 'c1', dirtyContext: 'qemu:dirty-bitmap:tidemark-tmp-bk-1' },
        { disk: 'vdc', uri: 'nbd+unix:///tidemark-pull-2?socket=/s/nbd.sock' },
      ],
    });
  });

  it('finds nothing for other jobs, ended pulls, or a log without exports', () => {
    expect(sessionFromJob(job({ state: 'succeeded' }), undefined)).toBeUndefined();
    expect(sessionFromJob(job({ title: 'Pull backup to /repo' }), undefined)).toBeUndefined();
    expect(sessionFromJob(job({ kind: 'backup' }), undefined)).toBeUndefined();
    expect(sessionFromJob(job({ log: ['started'] }), undefined)).toBeUndefined();
  });
});
