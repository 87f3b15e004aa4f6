import { describe, expect, it } from 'vitest';
import { checkpoint, disk, vmInfo } from '../test/fake-api';
import { dirtyMapTarget } from './dirtymap-target';
import { emptyVmView } from './types';

const a = checkpoint('a', undefined, 1000, ['vda', 'vdb']);
const b = { ...checkpoint('b', 'a', 2000, ['vda']), disks: [{ name: 'vda', checkpoint: 'bitmap' as const, bitmap: 'b' }, { name: 'vdb', checkpoint: 'no' as const }] };
const view = { ...emptyVmView(), checkpoints: [a, b], current: 'b', info: vmInfo('vm1', [disk('vda'), disk('vdb'), disk('raw', { bitmapCapable: false })]) };

describe('dirtyMapTarget', () => {
  it('maps the disks where the baseline (the selected checkpoint, else the current one) has a bitmap', () => {
    expect(dirtyMapTarget({ selectedVmId: 'vm1', byVm: { vm1: view } }, 64)).toEqual({ vmId: 'vm1', since: 'b', disks: ['vda'], cells: 64 });
    expect(dirtyMapTarget({ selectedVmId: 'vm1', byVm: { vm1: view }, selected: 'a' }, 64)).toEqual({ vmId: 'vm1', since: 'a', disks: ['vda', 'vdb'], cells: 64 });
  });

  it('is undefined without a VM, its data, a baseline or a disk to map', () => {
    expect(dirtyMapTarget({ byVm: { vm1: view } }, 64)).toBeUndefined();
    expect(dirtyMapTarget({ selectedVmId: 'vm2', byVm: { vm1: view } }, 64)).toBeUndefined();
    expect(dirtyMapTarget({ selectedVmId: 'vm1', byVm: { vm1: { ...view, current: undefined } } }, 64)).toBeUndefined();
    expect(dirtyMapTarget({ selectedVmId: 'vm1', byVm: { vm1: { ...view, info: vmInfo('vm1', [disk('raw', { bitmapCapable: false })]) } } }, 64)).toBeUndefined();
  });
});
