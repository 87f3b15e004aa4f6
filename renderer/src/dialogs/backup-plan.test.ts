import { describe, expect, it } from 'vitest';
import type { BackupRecord } from '../../../shared/contract';
import { estimateSummary } from './backup-plan';
import { summaryLine } from './BackupDialog';

const MiB = 1024 * 1024;

describe('what a backup will copy, said for what it is', () => {
  it('a full backup: the disks’ size is an upper bound, not an estimate', () => {
    expect(estimateSummary([{ disk: 'vda', bytes: 1024 * MiB }, { disk: 'vdb', bytes: 512 * MiB }], 'full'))
      .toBe('Up to 1.5 GiB for vda, vdb copied in full (disk size: only allocated data is copied, often far less)');
  });

  it('an incremental: measured bytes, plus a bound for disks that fall back to full', () => {
    expect(estimateSummary([{ disk: 'vda', bytes: 4 * MiB }, { disk: 'vdb', bytes: 0 }], 'incremental')).toBe('4.0 MiB to copy (measured from the bitmaps)');
    expect(estimateSummary([{ disk: 'vda', bytes: 4 * MiB }, { disk: 'vdc', bytes: 64 * MiB, fallback: 'vdc cannot hold bitmaps' }], 'incremental'))
      .toBe('4.0 MiB measured from the bitmaps + up to 64.0 MiB for vdc copied in full (disk size: only allocated data is copied, often far less)');
    expect(estimateSummary([{ disk: 'vda', bytes: Number.NaN }], 'incremental')).toBe('Measuring…');
  });
});

describe('the summary names the base the backup really used', () => {
  const record = (disks: [string, BackupRecord['kind'], string | undefined][], since?: string): BackupRecord => ({
    format: 'tidemark-backup', version: 1, id: 'bk-inc-2', vm: { id: 'vm' }, kind: 'incremental', since, checkpoint: 'bk-inc-2', startedAt: 1, completedAt: 2,
    qemuVersion: '7.2.22', tool: 't',
    disks: disks.map(([name, kind, s]) => ({ name, kind, since: s, image: 'x', virtualSize: 1, bytesCopied: 1, fileSize: 1, sha256: 'x', sourceImage: 'x', sourceFormat: 'qcow2', checkpointBitmap: true })),
  });
  const ran = { kind: 'incremental' as const, base: 'bk-inc-1', mode: 'push' as const, exportOnly: false, disks: ['vda', 'vdb'] };

  it('from the record once there is one — never the checkpoint this backup created', () => {
    expect(summaryLine(ran, record([['vda', 'incremental', 'bk-inc-1'], ['vdb', 'incremental', 'bk-inc-1']], 'bk-inc-1'))).toBe('◧ Incremental backup since bk-inc-1 of vda, vdb.');
    expect(summaryLine(ran, record([['vda', 'incremental', 'bk-inc-1'], ['vdc', 'full', undefined]], 'bk-inc-1')))
      .toBe('Backup of vda incremental since bk-inc-1 · vdc full.');
  });

  it('from what was asked at the click while it runs', () => {
    expect(summaryLine({ ...ran, mode: 'pull' }, undefined)).toBe('◧ Incremental backup since bk-inc-1 of vda, vdb, pull mode.');
  });
});
