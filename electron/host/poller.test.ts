// The bitmap poller without QEMU: fake drivers show when it asks, and that it pushes only changes.

import { describe, expect, it } from 'vitest';
import type { DiskBitmaps, VmDriver } from '../engine/driver';
import { BitmapPoller } from './poller';

function fakeVm(id: string, over: { connection?: 'connected' | 'disconnected'; counts?: 'live' | 'on-demand' } = {}) {
  let count = 0;
  const vm = {
    id,
    asked: 0,
    fail: false,
    capabilities: { bitmapCounts: over.counts ?? 'live' },
    summary: () => ({ id, label: id, endpoint: 'unix:/x', kind: 'endpoint' as const, connection: over.connection ?? 'connected' }),
    async liveBitmaps(): Promise<DiskBitmaps[]> {
      vm.asked++;
      if (vm.fail) throw new Error('QMP connection closed');
      return [{ disk: 'vda', bitmaps: [{ name: 'c1', recording: true, persistent: true, busy: false, inconsistent: false, count, granularity: 65536 }] }];
    },
    write(bytes: number) {
      count += bytes;
    },
  };
  return vm;
}

function poller(vms: ReturnType<typeof fakeVm>[], listening = () => true) {
  const pushed: { vmId: string; count: number | undefined }[] = [];
  const p = new BitmapPoller({
    vms: () => vms as unknown as VmDriver[],
    intervalMs: 10_000,
    listening,
    emit: (vmId, disks) => pushed.push({ vmId, count: disks[0]!.bitmaps[0]!.count }),
  });
  return { p, pushed };
}

describe('BitmapPoller', () => {
  it('pushes a VM\'s bitmaps when they changed, and only then', async () => {
    const a = fakeVm('a');
    const { p, pushed } = poller([a]);
    await p.pollAll();
    await p.pollAll();
    a.write(65536);
    await p.pollAll();
    await p.pollAll();
    expect(pushed).toEqual([{ vmId: 'a', count: 0 }, { vmId: 'a', count: 65536 }]);
    expect(a.asked).toBe(4);
  });

  it('asks only connected VMs whose counts are live, and only while someone listens', async () => {
    const up = fakeVm('up');
    const down = fakeVm('down', { connection: 'disconnected' });
    const lazy = fakeVm('lazy', { counts: 'on-demand' });
    let listening = false;
    const { p, pushed } = poller([up, down, lazy], () => listening);
    await p.pollAll();
    expect(up.asked).toBe(0);
    listening = true;
    await p.pollAll();
    expect([up.asked, down.asked, lazy.asked]).toEqual([1, 0, 0]);
    expect(pushed.map((x) => x.vmId)).toEqual(['up']);
  });

  it('a failed read pushes nothing; after forget() the same state is pushed again (a reconnect)', async () => {
    const a = fakeVm('a');
    const { p, pushed } = poller([a]);
    await p.pollAll();
    a.fail = true;
    await p.pollAll();
    a.fail = false;
    await p.pollAll();
    expect(pushed).toHaveLength(1);
    p.forget('a');
    await p.pollAll();
    expect(pushed).toHaveLength(2);
  });

  it('counts a driver pushes by itself go through the same change detection', () => {
    const { p, pushed } = poller([]);
    const disks = [{ disk: 'vda', bitmaps: [{ recording: true, persistent: false, busy: true, inconsistent: false, count: 5, granularity: 65536 }] }];
    expect(p.offer('x', disks)).toBe(true);
    expect(p.offer('x', structuredClone(disks))).toBe(false);
    expect(pushed).toEqual([{ vmId: 'x', count: 5 }]);
  });

  it('stops for good', async () => {
    const a = fakeVm('a');
    const { p, pushed } = poller([a]);
    p.stop();
    await p.poll(a as unknown as VmDriver);
    expect(pushed).toEqual([]);
  });
});
