// Executing plans on QEMU, against a scripted QMP executor: the transaction's error messages, the
// busy-bitmap check, the live view, and "changes since" always removing its temporary bitmaps.
import { describe, expect, it } from 'vitest';
import type { BitmapInfo, Checkpoint, DiskInfo, VmInfo } from '../../../shared/domain';
import { QmpConnectionError, QmpError } from '../../qmp/errors';
import type { QmpExecutor } from '../vm/discovery';
import { assertNotBusy, liveView, measureChanges, runTransaction } from './execute';
import type { PlanState } from './plan';

const bm = (name: string, o: Partial<BitmapInfo> = {}): BitmapInfo => ({ name, recording: true, persistent: true, busy: false, inconsistent: false, count: 0, granularity: 65536, ...o });
const disk = (name: string, bitmaps: BitmapInfo[] = []): DiskInfo => ({
  name, nodeName: `${name}-fmt`, format: 'qcow2', virtualSize: 1 << 30, imageFile: `/x/${name}.qcow2`, granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps,
});
const vmWith = (disks: DiskInfo[]): VmInfo => ({ id: 'vm1', endpoint: 'unix:/x', status: 'running', qemuVersion: '7.2.0', disks } as VmInfo);

/** Records every command; `answer` decides each reply. */
function executor(answer: (command: string, args?: Record<string, unknown>) => unknown = () => ({})): QmpExecutor & { calls: [string, Record<string, unknown> | undefined][] } {
  const calls: [string, Record<string, unknown> | undefined][] = [];
  return {
    calls,
    async execute<T>(command: string, args?: Record<string, unknown>): Promise<T> {
      calls.push([command, args]);
      return answer(command, args) as T;
    },
  };
}

describe('runTransaction', () => {
  const add = { type: 'block-dirty-bitmap-add', data: { node: 'vda-fmt', name: 'c1' } };
  it('sends the actions as one transaction, and nothing at all for no actions', async () => {
    const q = executor();
    await runTransaction(q, [], 'creating checkpoint c1');
    await runTransaction(q, [add], 'creating checkpoint c1');
    expect(q.calls).toEqual([['transaction', { actions: [add] }]]);
  });
  it('a refusal by QEMU: nothing changed; a lost connection: the outcome is unknown', async () => {
    const refused = executor(() => {
      throw new QmpError('transaction', 'GenericError', "Bitmap already exists: c1");
    });
    await expect(runTransaction(refused, [add], 'creating checkpoint c1')).rejects.toThrow('creating checkpoint c1 failed; QEMU changed nothing: Bitmap already exists: c1');
    const lost = executor(() => {
      throw new QmpConnectionError('connection closed');
    });
    await expect(runTransaction(lost, [add], 'creating checkpoint c1')).rejects.toThrow("creating checkpoint c1: the outcome is unknown (connection closed); check the VM's health");
  });
});

describe('assertNotBusy and liveView', () => {
  const vm = vmWith([disk('vda', [bm('c1', { busy: true }), bm('c2', { inconsistent: true })]), disk('vdb', [bm('c1')])]);
  it('names a bitmap held by a job, whichever field of the action names it', () => {
    const msg = 'bitmap c1 on vda is in use by a running job; try again when it has finished';
    expect(() => assertNotBusy([{ type: 'block-dirty-bitmap-remove', data: { node: 'vda-fmt', name: 'c1' } }], vm)).toThrow(msg);
    expect(() => assertNotBusy([{ type: 'block-dirty-bitmap-merge', data: { node: 'vda-fmt', target: 'c1', bitmaps: [] } }], vm)).toThrow(msg);
    expect(() => assertNotBusy([{ type: 'block-dirty-bitmap-merge', data: { node: 'vda-fmt', target: 'c2', bitmaps: ['c1'] } }], vm)).toThrow(msg);
    expect(() => assertNotBusy([{ type: 'block-dirty-bitmap-remove', data: { node: 'vdb-fmt', name: 'c1' } }], vm)).not.toThrow();
    expect(() => assertNotBusy([{ type: 'block-dirty-bitmap-remove', data: { node: 'other', name: 'c1' } }], vm)).not.toThrow();
  });
  it('the live view: node names, bitmap states, and an error for a disk that is not attached', () => {
    const live = liveView(vm, 'demo');
    expect(live.node('vdb')).toBe('vdb-fmt');
    expect([live.bitmap('vda', 'c1'), live.bitmap('vda', 'c2'), live.bitmap('vda', 'c3'), live.bitmap('vdz', 'c1')]).toEqual(['ok', 'inconsistent', 'missing', 'missing']);
    expect(() => live.node('vdz')).toThrow('disk vdz is not attached to VM demo');
  });
});

describe('measureChanges', () => {
  const c1: Checkpoint = { name: 'c1', creationTime: 1, createdAtMs: 1000, layout: 'independent', disks: [{ name: 'vda', checkpoint: 'bitmap', bitmap: 'c1' }, { name: 'vdb', checkpoint: 'no' }] };
  const state: PlanState = { layout: 'independent', checkpoints: new Map([['c1', c1]]), current: 'c1' };
  const vm = vmWith([disk('vda', [bm('c1', { granularity: 131072 })]), disk('vdb')]);
  const tmp = 'tidemark-tmp-changes-t1-0';

  it('fills a temporary bitmap per usable disk, reads its count, then removes it; unusable disks say why', async () => {
    const q = executor((command) => (command === 'query-named-block-nodes' ? [{ 'node-name': 'vda-fmt', 'dirty-bitmaps': [{ name: tmp, count: 196608 }] }] : {}));
    const out = await measureChanges(q, vm, state, liveView(vm, 'demo'), c1, 't1');
    expect(out).toEqual({
      checkpoint: 'c1',
      disks: [
        { disk: 'vda', bytes: 196608, granularity: 131072, virtualSize: 1 << 30, usable: true },
        { disk: 'vdb', bytes: 0, granularity: 65536, virtualSize: 1 << 30, usable: false, reason: 'checkpoint c1 has no bitmap on vdb (the disk was not part of it)' },
      ],
    });
    expect(q.calls.map((c) => c[0])).toEqual(['transaction', 'query-named-block-nodes', 'transaction']);
    expect(q.calls[2]![1]).toEqual({ actions: [{ type: 'block-dirty-bitmap-remove', data: { node: 'vda-fmt', name: tmp } }] });
  });

  it('a temporary bitmap that vanished makes its disk unusable', async () => {
    const q = executor((command) => (command === 'query-named-block-nodes' ? [{ 'node-name': 'vda-fmt' }] : {}));
    const out = await measureChanges(q, vm, state, liveView(vm, 'demo'), c1, 't1');
    expect(out.disks[0]).toMatchObject({ usable: false, reason: `temporary bitmap ${tmp} vanished before it could be read` });
  });

  it('removes the temporary bitmaps one by one when the removal transaction fails, and still reports the failure', async () => {
    let transactions = 0;
    const q = executor((command) => {
      if (command === 'transaction' && ++transactions === 1) throw new QmpError('transaction', 'GenericError', 'no space');
      if (command === 'transaction') throw new QmpError('transaction', 'GenericError', 'Dirty bitmap not found');
      return {};
    });
    await expect(measureChanges(q, vm, state, liveView(vm, 'demo'), c1, 't1')).rejects.toThrow('measuring changes since c1 failed; QEMU changed nothing: no space');
    expect(q.calls.map((c) => c[0])).toEqual(['transaction', 'transaction', 'block-dirty-bitmap-remove']);
    expect(q.calls[2]![1]).toEqual({ node: 'vda-fmt', name: tmp });
  });
});
