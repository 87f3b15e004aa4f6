// dumpxml --size: measured changes written into a copy of the checkpoint.
import { describe, expect, it } from 'vitest';
import type { Checkpoint } from '../../../shared/domain';
import { withSizes } from './plan-changes';

describe('withSizes', () => {
  const cp: Checkpoint = {
    name: 'c1', creationTime: 1, createdAtMs: 1000, layout: 'independent',
    disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: 'c1' }, { name: 'vdb', checkpoint: 'bitmap', bitmap: 'c1' }, { name: 'vdc', checkpoint: 'no' }],
  };
  it('sets the size of each bitmap disk whose changes were usable; the original is not changed', () => {
    const out = withSizes(cp, {
      checkpoint: 'c1',
      disks: [
        { disk: 'vda', bytes: 65536, granularity: 65536, virtualSize: 1 << 30, usable: true },
        { disk: 'vdb', bytes: 0, granularity: 65536, virtualSize: 1 << 30, usable: false, reason: 'bitmap c1 of checkpoint c1 is missing on vdb' },
        { disk: 'vdc', bytes: 4096, granularity: 65536, virtualSize: 1 << 30, usable: true },
      ],
    });
    expect(out.disks.map((d) => d.size)).toEqual([65536, undefined, undefined]);
    expect(cp.disks[0]!.size).toBeUndefined();
  });
});
