// How often the engine reads the VM from QEMU: once per lock hold (the discovery health and the plan
// both use), then only the bitmaps after a transaction — and never a read from before the hold.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QmpExecutor } from '../vm/discovery';
import { CheckpointEngine } from './engine';
import { startRig, stopRig, type Rig } from './itest-helpers';

describe('VM reads per operation', () => {
  let rig: Rig | undefined;
  let engine: CheckpointEngine;
  const sent: string[] = [];
  const count = (command: string) => sent.filter((c) => c === command).length;
  beforeAll(async () => {
    rig = await startRig();
    const counting: QmpExecutor = { execute: (command, args) => (sent.push(command), rig!.client.execute(command, args)) };
    engine = await CheckpointEngine.open(counting, { endpoint: rig.lab.qmp, stateDir: rig.stateDir });
  });
  afterAll(() => stopRig(rig));

  it('a backup-like hold (health, vm, prepare, the caller\'s transaction, commit) discovers the VM once', async () => {
    sent.length = 0;
    await engine.withLock(async () => {
      await engine.health();
      await engine.vm();
      const prepared = await engine.prepareCreate({ name: 'b1' });
      await rig!.client.execute('transaction', { actions: prepared.actions });
      await engine.commitCreate(prepared);
    }, 'backup test');
    expect(count('query-block')).toBe(1);
    // name, uuid and version were read when the engine opened, on this same connection: not again
    expect(count('query-name') + count('query-uuid') + count('query-version')).toBe(0);
    expect(count('query-status')).toBe(1);
    // the discovery's, then the bitmaps once more after the caller's transaction (commit checks them)
    expect(count('query-named-block-nodes')).toBe(2);
    expect(engine.current()?.name).toBe('b1');
  });

  it('health inside a hold is computed on what QEMU reports in that hold, not on an earlier read', async () => {
    await engine.vm(); // a read before the hold
    await rig!.client.execute('block-dirty-bitmap-add', { node: 'vdb-fmt', name: 'foreign1', persistent: true });
    const report = await engine.withLock(() => engine.health(), 'health test');
    expect(report.issues.some((i) => i.disk === 'vdb' && i.bitmap === 'foreign1')).toBe(true);
    await rig!.client.execute('block-dirty-bitmap-remove', { node: 'vdb-fmt', name: 'foreign1' });
    const after = await engine.withLock(() => engine.health(), 'health test');
    expect(after.issues.some((i) => i.bitmap === 'foreign1')).toBe(false);
  });

  it('checkpoint create: one discovery, one bitmap read after its transaction, and the new bitmaps are known at once', async () => {
    sent.length = 0;
    await engine.create({ name: 'c2' });
    expect(count('query-block')).toBe(1);
    expect(count('query-named-block-nodes')).toBe(2);
    expect(count('transaction')).toBe(1);
    // tempBitmapActions reads the engine's last view: it must hold c2's bitmaps without another read
    expect(engine.tempBitmapActions('c2', 'vda', 'tidemark-tmp-r1').length).toBeGreaterThan(0);
  });
});
