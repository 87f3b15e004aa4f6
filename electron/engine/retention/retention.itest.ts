// Prune and merge of real qcow2 chains made by real push backups of the lab VM (itest-chains.ts):
// several policies, each on its own copy of the repository; afterwards every kept point restores
// (Tidemark's restore and stock qemu-img) byte for byte like the disk was at that point, and
// backup-verify passes. Then the live repository is pruned and the VM backed up again on top.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopBackupRig } from '../backup/itest-helpers';
import { imageInfo } from '../backup/qemuimg';
import { runBackup } from '../qmp-driver/push';
import { BackupRepository } from '../backup/repository';
import { describeFailures, verifyBackups } from '../backup/verify';
import { runPlan } from './execute';
import { buildChains, chainsMatchOracle, copyRepo, describeShape, restoresMatchOracle, type Chains, type PointLabel } from './itest-chains';
import { planRetention } from './plan';
import { applyRetention } from './retention';

describe('retention on real backup chains', () => {
  let c: Chains | undefined;
  let n = 0;

  beforeAll(async () => {
    c = await buildChains();
  }, 180_000);
  afterAll(async () => {
    await stopBackupRig(c?.rig);
  });

  const vm = () => c!.rig.engine.vmId;
  const label = (ids: string[]) => ids.map((id) => c!.byId.get(id)).join(',');
  const fresh = () => copyRepo(c!.rig.repo, path.join(c!.rig.root, `copy-${n++}`));

  async function expectIntact(repo: BackupRepository, keptLabels: PointLabel[]): Promise<void> {
    const keptIds = keptLabels.map((l) => c!.ids[l]);
    expect(repo.list(vm()).map((m) => m.id).sort()).toEqual([...keptIds].sort());
    const report = await verifyBackups(repo);
    expect(describeFailures(report)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(chainsMatchOracle(c!, repo, keptIds)).toEqual([]);
    expect(await restoresMatchOracle(c!, repo, repo.list(vm()), path.join(c!.rig.root, 'restored'))).toEqual([]);
  }

  it('builds the expected chain shape (a branch at F, a per-disk full fallback at h)', () => {
    expect(describeShape(c!.rig.repo, vm(), c!.byId)).toEqual([
      'F: vda=full vdb=full',
      'a: vda=incremental<F vdb=incremental<F',
      'b: vda=incremental<a vdb=incremental<a',
      'd: vda=differential<F vdb=differential<F',
      'c: vda=incremental<d vdb=incremental<d',
      'e: vda=incremental<c vdb=incremental<c',
      'g: vdb=incremental<e',
      'h: vda=full vdb=incremental<g',
    ]);
  });

  it('--keep-last 3: the old branch goes, F+d+c fold into e, which becomes a full', async () => {
    const repo = fresh();
    const out = await applyRetention({ repo, vmId: vm(), policy: { last: 3 } });
    expect(label(out.kept.map((k) => k.id))).toBe('h,g,e');
    expect(label(out.removed.map((r) => r.id))).toBe('c,d,b,a,F');
    expect(out.merged.map((m) => `${m.disk}:${label(m.layers)}→${c!.byId.get(m.child)}${m.becomesFull ? ' (full)' : ''}`)).toEqual(['vda:F,d,c→e (full)', 'vdb:F,d,c→e (full)']);
    expect(out.checkpointsFreed).toEqual([c!.ids.F, c!.ids.a, c!.ids.b, c!.ids.d, c!.ids.c].sort());
    expect(out.result!.bytesFreed).toBeGreaterThan(0);
    const e = repo.get(c!.ids.e);
    expect(e.kind).toBe('full');
    expect(e.disks.every((d) => d.kind === 'full' && d.base === undefined)).toBe(true);
    expect((await imageInfo(repo.imagePath(vm(), 'vda', c!.ids.e))).backingFile).toBeUndefined();
    await expectIntact(repo, ['e', 'g', 'h']);
  });

  it('a plan keeping a, e and h: drops b, rebases one child of F, folds the other, folds g into h on vdb', async () => {
    const repo = fresh();
    const keep = (['a', 'e', 'h'] as PointLabel[]).map((l) => c!.ids[l]);
    const plan = planRetention(vm(), repo.list(vm()), keep);
    expect(plan.steps.map((s) => s.op).sort()).toEqual(['drop', 'drop', 'fold', 'fold', 'fold', 'rebase', 'rebase']);
    const r = await runPlan(repo, plan, 'test plan');
    expect(r.stepsRun).toBe(7);
    await expectIntact(repo, ['a', 'e', 'h']);
    expect(repo.get(c!.ids.h).disks.find((d) => d.name === 'vdb')!.base).toBe(c!.ids.e);
  });

  it('backup-merge --max-chain 2 folds the oldest layers of every chain; previews first', async () => {
    const repo = fresh();
    const preview = await applyRetention({ repo, vmId: vm(), maxChain: 2, dryRun: true });
    expect(preview.result).toBeUndefined();
    expect(repo.list(vm())).toHaveLength(8);
    const out = await applyRetention({ repo, vmId: vm(), maxChain: 2 });
    expect(out.kept.map((k) => k.id)).toEqual(preview.kept.map((k) => k.id));
    for (const a of out.plan.after) expect(a.chainLength).toBeLessThanOrEqual(2);
    expect(out.removed.every((r) => /--max-chain 2/.test(r.reason))).toBe(true);
    await expectIntact(repo, out.kept.map((k) => c!.byId.get(k.id)!));
  });

  it('a policy and a chain limit together, run twice: the second run has nothing left to do', async () => {
    const repo = fresh();
    const first = await applyRetention({ repo, vmId: vm(), policy: { last: 5 }, maxChain: 3 });
    await expectIntact(repo, first.kept.map((k) => c!.byId.get(k.id)!));
    const second = await applyRetention({ repo, vmId: vm(), policy: { last: 5 }, maxChain: 3 });
    expect(second.removed).toEqual([]);
    expect(second.plan.steps).toEqual([]);
    expect(second.result!.stepsRun).toBe(0);
  });

  it('prunes the live repository, then the next backup builds on the newest kept point and restores right', async () => {
    const r = c!.rig;
    const pruned = await applyRetention({ repo: r.repo, vmId: vm(), policy: { last: 2 } });
    await r.shadow.write('vda', 3 * 1024 * 1024, 1024 * 1024, 0x77);
    await r.shadow.write('vdb', 5 * 1024 * 1024, 64 * 1024, 0x78);
    const next = await runBackup(r.engine, r.client, { repo: r.repo });
    r.shadow.snapshot(next.id);
    c!.byId.set(next.id, 'h'); // label for messages only
    expect(next.disks.map((d) => [d.name, d.kind, d.base])).toEqual([['vda', 'incremental', c!.ids.h], ['vdb', 'incremental', c!.ids.h]]);
    const report = await verifyBackups(r.repo);
    expect(describeFailures(report)).toEqual([]);
    expect(await restoresMatchOracle(c!, r.repo, r.repo.list(vm()), path.join(r.root, 'restored'))).toEqual([]);
    // Private files: the layers retention rewrote, and the manifests, are 0600.
    expect(pruned.result!.rewritten.length).toBeGreaterThan(0);
    for (const w of pruned.result!.rewritten) expect(fs.statSync(r.repo.imagePath(vm(), w.disk, w.point)).mode & 0o777).toBe(0o600);
    for (const m of r.repo.list(vm())) expect(fs.statSync(path.join(r.repo.vmDir(vm()), 'manifests', `${m.id}.json`)).mode & 0o777).toBe(0o600);
  });
});
