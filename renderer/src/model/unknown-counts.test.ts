// A count the driver cannot tell (libvirt, shut-off domain: BitmapInfo.count absent) is never
// turned into 0: sums over it are unknown, and fingerprints treat it as missing.
import { describe, expect, it } from 'vitest';
import type { BitmapInfo, Checkpoint } from '../../../shared/domain';
import { changedSinceCurrent } from '../timeline/model';
import { chainFingerprint } from './bitmaps';

const bitmap = (name: string, count?: number): BitmapInfo => ({
  name, recording: true, persistent: true, busy: false, inconsistent: false, granularity: 65536, ...(count !== undefined ? { count } : {}),
});
const cp = { name: 'c1', disks: [{ name: 'vda', checkpoint: 'bitmap' }, { name: 'vdb', checkpoint: 'bitmap' }] } as unknown as Checkpoint;

describe('unknown bitmap counts', () => {
  it('make the "changed since" sum unknown, not smaller', () => {
    expect(changedSinceCurrent([cp], 'c1', { vda: [bitmap('c1', 4096)], vdb: [bitmap('c1', 8192)] })).toBe(12288);
    expect(changedSinceCurrent([cp], 'c1', { vda: [bitmap('c1', 4096)], vdb: [bitmap('c1')] })).toBeUndefined();
  });

  it('count as missing in a chain fingerprint', () => {
    expect(chainFingerprint(['c1'], [bitmap('c1')])).toBe('c1=missing');
    expect(chainFingerprint(['c1'], [bitmap('c1', 0)])).toBe('c1=0');
  });
});
