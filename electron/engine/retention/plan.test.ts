import { describe, expect, it } from 'vitest';
import type { BackupManifest } from '../backup/manifest';
import { prng } from '../lab/writer';
import { applyStep, cloneFiles, randomRepo, restorePoint, type ModelFiles } from './chain-model';
import { planRetention, type RetentionPlan } from './plan';
import type { KeepPolicy } from './policy';
import { selectPoints } from './selection';

const SEED = process.env.TIDEMARK_RETENTION_SEED ? Number(process.env.TIDEMARK_RETENTION_SEED) : Math.floor(Math.random() * 2 ** 31);

/** Every kept point's content per disk, before and after running the plan on the model. */
function checkPlan(manifests: BackupManifest[], files: ModelFiles, plan: RetentionPlan, label: string): void {
  const after = cloneFiles(files);
  for (const s of plan.steps) applyStep(after, s);
  const kept = new Set(plan.kept);
  for (const m of manifests) {
    for (const d of m.disks) {
      const layers = after.get(d.name)!;
      if (!kept.has(m.id)) {
        expect(layers.has(m.id), `${label}: removed ${m.id} still has a ${d.name} layer`).toBe(false);
        continue;
      }
      expect(restorePoint(layers, m.id), `${label}: kept ${m.id} on ${d.name} restores other bytes`).toEqual(restorePoint(files.get(d.name)!, m.id));
      const planned = plan.after.find((a) => a.point === m.id && a.disk === d.name)!;
      expect(layers.get(m.id)!.base, `${label}: base of ${m.id} on ${d.name}`).toBe(planned.base);
      let length = 0;
      for (let b: string | undefined = m.id; b !== undefined; b = layers.get(b)!.base) length++;
      expect(length, `${label}: chain length of ${m.id}`).toBe(planned.chainLength);
      expect(planned.kind === 'full', `${label}: kind of ${m.id}`).toBe(planned.base === undefined);
    }
  }
  for (const [disk, layers] of after) for (const id of layers.keys()) expect(kept.has(id), `${label}: ${disk}/${id} left behind`).toBe(true);
}

function chainText(plan: RetentionPlan): string[] {
  return plan.steps.map((s) => (s.op === 'drop' ? `drop ${s.disk} ${s.point}` : s.op === 'rebase' ? `rebase ${s.disk} ${s.child} ${s.oldBase}→${s.newBase ?? '∅'}` : `fold ${s.disk} ${[s.into, ...s.through].join('+')}→${s.child} on ${s.newBase ?? '∅'}`));
}

describe('planRetention', () => {
  it('folds the oldest incrementals into the full and makes the new bottom a full (forever-forward)', () => {
    const { manifests } = randomRepo(7, { points: 1 });
    // Build a clean linear chain by hand: F ← a ← b ← c ← d on one disk.
    const base = manifests[0]!;
    const ids = ['20240001-000000-000-0001', '20240002-000000-000-0002', '20240003-000000-000-0003', '20240004-000000-000-0004', '20240005-000000-000-0005'];
    const ms: BackupManifest[] = ids.map((id, i) => ({
      ...base, id, startedAt: i * 1000, checkpoint: `cp-${id}`, kind: i === 0 ? 'full' : 'incremental',
      disks: [{ ...base.disks[0]!, name: 'vda', kind: i === 0 ? 'full' : 'incremental', ...(i > 0 ? { base: ids[i - 1], backingFile: `${ids[i - 1]}.qcow2`, since: `cp-${ids[i - 1]}` } : { base: undefined, backingFile: undefined, since: undefined }), fileSize: 1000 * (i === 0 ? 10 : 1), image: `disks/vda/${id}.qcow2` }],
    }));
    const sel = selectPoints(ms, { maxChain: 3 });
    expect([...sel.removed.keys()]).toEqual([ids[0], ids[1]]);
    const plan = planRetention(base.vm.id, ms, sel.kept.keys());
    expect(chainText(plan)).toEqual([`fold vda ${ids[0]}+${ids[1]}→${ids[2]} on ∅`]);
    expect(plan.after.find((a) => a.point === ids[2])).toMatchObject({ kind: 'full', chainLength: 1, rewritten: true });
    expect(plan.after.find((a) => a.point === ids[4])).toMatchObject({ base: ids[3], chainLength: 3, rewritten: false });
    expect(plan.checkpointsFreed).toEqual([`cp-${ids[0]}`, `cp-${ids[1]}`]);
    expect(plan.bytesFreed).toEqual({ atLeast: 0, atMost: 2000 });
  });

  it('rebases all but one child of a removed branch point, drops dead layers, and says which checkpoints are free', () => {
    // F ← a ← {b ← c, d}; keep c and d: a has two live children.
    const { manifests } = randomRepo(3, { points: 1 });
    const t = manifests[0]!;
    const mk = (id: string, base: string | undefined, size: number, at: number): BackupManifest => ({
      ...t, id, startedAt: at, checkpoint: `cp-${id}`, kind: base ? 'incremental' : 'full',
      disks: [{ ...t.disks[0]!, name: 'vda', kind: base ? 'incremental' : 'full', base, backingFile: base ? `${base}.qcow2` : undefined, since: base ? `cp-${base}` : undefined, fileSize: size, image: `disks/vda/${id}.qcow2` }],
    });
    const [F, a, b, c, d, e] = ['20240001-000000-000-0001', '20240002-000000-000-0002', '20240003-000000-000-0003', '20240004-000000-000-0004', '20240005-000000-000-0005', '20240006-000000-000-0006'];
    const ms = [mk(F!, undefined, 100, 1), mk(a!, F, 10, 2), mk(b!, a, 5, 3), mk(c!, b, 7, 4), mk(d!, a, 50, 5), mk(e!, b, 3, 6)];
    const plan = planRetention(t.vm.id, ms, [c!, d!]);
    expect(chainText(plan)).toEqual([
      `drop vda ${e}`,
      `rebase vda ${b} ${a}→∅`, // d (50 bytes) is the larger child: it stays on the fold path
      `fold vda ${F}+${a}→${d} on ∅`,
      `fold vda ${b}→${c} on ∅`,
    ]);
    expect(plan.removed.sort()).toEqual([F, a, b, e].sort());
    expect(plan.checkpointsFreed).toEqual([F, a, b, e].map((x) => `cp-${x}`).sort());
  });

  it('never changes what a kept point restores (property test over random repositories and policies)', () => {
    console.info(`retention plan property test: seed ${SEED} (TIDEMARK_RETENTION_SEED=${SEED} replays it)`);
    const rnd = prng(SEED);
    const int = (n: number) => Math.floor(rnd() * n);
    let steps = 0;
    let folds = 0;
    let rebases = 0;
    for (let round = 0; round < 400; round++) {
      const seed = int(2 ** 31);
      const label = `seed ${SEED} round ${round} (repo seed ${seed})`;
      const { manifests, files } = randomRepo(seed);
      let keep: Iterable<string>;
      let maxChain: number | undefined;
      if (rnd() < 0.4) {
        keep = manifests.filter(() => rnd() < 0.4).map((m) => m.id);
      } else {
        const policy: KeepPolicy = {};
        if (rnd() < 0.7) policy.last = int(5);
        if (rnd() < 0.5) policy.hourly = int(6);
        if (rnd() < 0.6) policy.daily = int(6);
        if (rnd() < 0.4) policy.weekly = int(4);
        if (rnd() < 0.3) policy.monthly = int(3);
        maxChain = rnd() < 0.5 ? 1 + int(6) : undefined;
        keep = selectPoints(manifests, { policy, maxChain, timeZone: 'UTC' }).kept.keys();
      }
      const plan = planRetention('vm-model', manifests, keep);
      checkPlan(manifests, files, plan, label);
      if (maxChain !== undefined) for (const a of plan.after) expect(a.chainLength, label).toBeLessThanOrEqual(maxChain);
      expect(plan.bytesFreed.atLeast, label).toBeLessThanOrEqual(plan.bytesFreed.atMost);
      steps += plan.steps.length;
      folds += plan.steps.filter((s) => s.op === 'fold').length;
      rebases += plan.steps.filter((s) => s.op === 'rebase').length;
    }
    // The generator must exercise every kind of step, or the property says little.
    expect(folds).toBeGreaterThan(50);
    expect(rebases).toBeGreaterThan(5);
    expect(steps).toBeGreaterThan(folds + rebases);
  });

  it('refuses a repository whose chain is already broken', () => {
    const { manifests } = randomRepo(11, { points: 3 });
    const broken = manifests.filter((_, i) => i !== 0);
    const dependsOnFirst = manifests.some((m) => m.disks.some((d) => d.base === manifests[0]!.id));
    if (dependsOnFirst) expect(() => planRetention('vm-model', broken, [])).toThrow(/which is not in the repository; the chain is already broken/);
    expect(() => planRetention('vm-model', manifests, ['20990101-000000-000-ffff'])).toThrow(/cannot keep backup/);
  });
});
