// The executor's crash safety, driven by fake layer files (fake-layers.ts) so that hundreds of
// random plans can be stopped at random moments: at any named phase or between two clusters of a
// commit or rebase. A stopped run simply never continues (like kill -9: no catch, no finally);
// then a new run finishes the journal. Real qemu-img and a real kill -9 are in crash.itest.ts.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BackupLock, lockPath } from '../backup/lock';
import { BackupRepository } from '../backup/repository';
import { prng } from '../lab/writer';
import { randomRepo, restorePoint, type ModelFiles } from './chain-model';
import { finishJournal, RetentionAbandonedError, runPlan } from './execute';
import { fakeLayerOps, materialize, readFake, restoreFake, writeFake } from './fake-layers';
import { journalPath, readJournal } from './journal';
import { planRetention } from './plan';
import { applyRetention, RetentionBusyError } from './retention';
import { selectPoints } from './selection';

const SEED = process.env.TIDEMARK_RETENTION_SEED ? Number(process.env.TIDEMARK_RETENTION_SEED) : Math.floor(Math.random() * 2 ** 31);
const VM = 'vm-model';
const dirs: string[] = [];

// Every write is fsynced: on tmpfs that costs nothing, so hundreds of plans run in seconds.
const TMP = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();

function newRepo(): BackupRepository {
  const dir = fs.mkdtempSync(path.join(TMP, 'tm-ret-'));
  dirs.push(dir);
  return BackupRepository.open(path.join(dir, 'repo'), { create: true });
}

afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** Every kept point reads what it read before, through the files alone. */
function expectContent(repo: BackupRepository, files: ModelFiles, kept: string[], label: string): void {
  for (const [disk, layers] of files) {
    for (const id of kept) {
      if (!layers.has(id)) continue;
      expect(restoreFake(repo.imagePath(VM, disk, id)), `${label}: ${id} on ${disk}`).toEqual(restorePoint(layers, id));
    }
  }
}

/** Manifests agree with the files: backing file, size and checksum; nothing else is left. */
function expectConsistent(repo: BackupRepository, kept: string[], label: string): void {
  const ms = repo.list(VM);
  expect(ms.map((m) => m.id).sort(), label).toEqual([...kept].sort());
  const named = new Set<string>();
  for (const m of ms) {
    for (const d of m.disks) {
      const file = path.join(repo.vmDir(VM), d.image);
      named.add(file);
      const buf = fs.readFileSync(file);
      expect(readFake(file).backing, `${label}: backing of ${m.id} ${d.name}`).toBe(d.backingFile);
      expect(createHash('sha256').update(buf).digest('hex'), `${label}: checksum of ${m.id} ${d.name}`).toBe(d.sha256);
      expect(buf.length).toBe(d.fileSize);
    }
  }
  expect(repo.orphanImages(VM), `${label}: files left behind`).toEqual([]);
  expect(fs.existsSync(journalPath(repo, VM)), label).toBe(false);
}

function randomCase(seed: number) {
  const rnd = prng(seed);
  const { manifests, files } = randomRepo(seed);
  const keep = rnd() < 0.5
    ? manifests.filter(() => rnd() < 0.4).map((m) => m.id)
    : [...selectPoints(manifests, { policy: { last: Math.floor(rnd() * 3) }, maxChain: 1 + Math.floor(rnd() * 4), timeZone: 'UTC' }).kept.keys()];
  return { manifests, files, keep, rnd };
}

describe('executing a retention plan', () => {
  it('applies random plans: kept points unchanged, manifests consistent, removed points gone', async () => {
    const rnd = prng(SEED ^ 0x5a5a);
    for (let round = 0; round < 30; round++) {
      const seed = Math.floor(rnd() * 2 ** 31);
      const { manifests, files, keep } = randomCase(seed);
      const repo = newRepo();
      materialize(repo, manifests, files);
      const plan = planRetention(VM, manifests, keep);
      const r = await runPlan(repo, plan, 'prune', { ops: fakeLayerOps() });
      expect(r.stepsRun).toBe(plan.steps.length);
      expectContent(repo, files, plan.kept, `repo seed ${seed}`);
      expectConsistent(repo, plan.kept, `repo seed ${seed}`);
    }
  });

  it('after a stop at any moment, every kept point reads the same, and the next run finishes the plan', async () => {
    console.info(`retention crash test: seed ${SEED} (TIDEMARK_RETENTION_SEED=${SEED} replays it)`);
    const rnd = prng(SEED);
    let stoppedInside = 0;
    for (let round = 0; round < 80; round++) {
      const seed = Math.floor(rnd() * 2 ** 31);
      const { manifests, files, keep } = randomCase(seed);
      const plan = planRetention(VM, manifests, keep);
      if (plan.steps.length === 0) continue;
      const label = `seed ${SEED} round ${round} (repo seed ${seed})`;
      // Count the moments at which a run can stop, then stop at a random one.
      const counting = newRepo();
      materialize(counting, manifests, files);
      let moments = 0;
      const count = async () => void moments++;
      // "…:helper-running" is announced without waiting (a real helper runs on its own), so a run cannot stop there;
      // crash.itest.ts kills real processes at that moment.
      const stoppable = (p: string) => !p.endsWith(':helper-running');
      await runPlan(counting, plan, 'prune', { ops: fakeLayerOps({ betweenClusters: count }), onPhase: (p) => (stoppable(p) ? count() : undefined) });
      const stopAt = Math.floor(rnd() * moments);
      const repo = newRepo();
      materialize(repo, manifests, files);
      let n = 0;
      let stopped!: (phase: string) => void;
      const stop = new Promise<string>((r) => (stopped = r));
      const maybeStop = (where: string) => async () => {
        if (n++ === stopAt) {
          stopped(where);
          await new Promise(() => undefined); // never continues, like a killed process
        }
      };
      void runPlan(repo, plan, 'prune', { ops: fakeLayerOps({ betweenClusters: maybeStop('between clusters') }), onPhase: (p) => (stoppable(p) ? maybeStop(p)() : undefined) });
      const where = await stop;
      if (where !== 'step:done') stoppedInside++;
      expectContent(repo, files, plan.kept, `${label}: while stopped at ${where}`);
      const r = await finishJournal(repo, VM, { ops: fakeLayerOps() });
      expect(r, label).toBeDefined();
      expectContent(repo, files, plan.kept, `${label}: after finishing (stopped at ${where})`);
      expectConsistent(repo, plan.kept, `${label}: after finishing (stopped at ${where})`);
    }
    expect(stoppedInside).toBeGreaterThan(30);
  }, 180_000);

  it('stops at a step boundary when a backup made after an interruption builds on a layer the plan would fold', async () => {
    const { manifests } = randomRepo(1, { points: 1 });
    const t = manifests[0]!;
    const ids = ['20240001-000000-000-0001', '20240002-000000-000-0002', '20240003-000000-000-0003', '20240004-000000-000-0004'];
    const vda = new Map(ids.map((id, i) => [id, { data: new Map([[i, i + 10], [i + 1, i + 20]]), ...(i > 0 ? { base: ids[i - 1] } : {}) }]));
    const ms = ids.map((id, i) => ({
      ...t, id, startedAt: i, disks: [{ ...t.disks[0]!, name: 'vda', kind: (i ? 'incremental' : 'full') as 'full', image: `disks/vda/${id}.qcow2`, ...(i ? { base: ids[i - 1], backingFile: `${ids[i - 1]}.qcow2`, since: `cp-${ids[i - 1]}` } : { base: undefined, backingFile: undefined, since: undefined }) }],
    }));
    const model: ModelFiles = new Map([['vda', vda]]);
    const repo = newRepo();
    materialize(repo, ms, model);
    const plan = planRetention(VM, ms, [ids[3]!]);
    let stopped!: () => void;
    const stop = new Promise<void>((r) => (stopped = r));
    void runPlan(repo, plan, 'prune', { ops: fakeLayerOps(), onPhase: async (p) => { if (p === 'fold:start') { stopped(); await new Promise(() => undefined); } } });
    await stop;
    // A backup made now (after the crash) builds on the second point, which the plan removes.
    const foreign = '20240005-000000-000-0005';
    const file = repo.imagePath(VM, 'vda', foreign);
    writeFake(file, { backing: `${ids[1]}.qcow2`, data: new Map([[7, 77]]) });
    const before = restoreFake(file);
    repo.writeManifest({ ...ms[1]!, id: foreign, startedAt: 9, disks: [{ ...ms[1]!.disks[0]!, image: `disks/vda/${foreign}.qcow2`, base: ids[1], backingFile: `${ids[1]}.qcow2`, sha256: createHash('sha256').update(fs.readFileSync(file)).digest('hex'), fileSize: fs.statSync(file).size }] });
    await expect(finishJournal(repo, VM, { ops: fakeLayerOps() })).rejects.toThrow(RetentionAbandonedError);
    await expect(finishJournal(repo, VM, { ops: fakeLayerOps() })).resolves.toBeUndefined(); // the journal is gone
    expect(restoreFake(file)).toEqual(before);
    expectContent(repo, model, ids, 'abandoned plan');
  });

  it('refuses a VM with an unreadable manifest, naming the file, and changes nothing', async () => {
    const { manifests, files } = randomRepo(5, { points: 6 });
    const repo = newRepo();
    materialize(repo, manifests, files);
    const bad = path.join(repo.vmDir(VM), 'manifests', `${manifests[2]!.id}.json`);
    fs.writeFileSync(bad, '{"format": "tidemark-backup", "version": 1, "id": ');
    const listing = () => fs.readdirSync(path.join(repo.vmDir(VM), 'disks'), { recursive: true }).sort();
    const filesBefore = listing();
    await expect(applyRetention({ repo, vmId: VM, policy: { last: 1 }, ops: fakeLayerOps() })).rejects.toThrow(new RegExp(`manifest cannot be read[\\s\\S]*${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    await expect(applyRetention({ repo, vmId: VM, policy: { last: 1 }, dryRun: true })).rejects.toThrow(/cannot be read/);
    expect(listing()).toEqual(filesBefore);
    expect(fs.existsSync(lockPath(repo, VM))).toBe(false);
  });

  it('refuses while a backup holds the lock, clears a dead prune\'s lock, refuses a dead backup\'s', async () => {
    const { manifests, files } = randomRepo(9, { points: 8 });
    const repo = newRepo();
    materialize(repo, manifests, files);
    const init = { backupId: '20990101-000000-000-beef', vmId: VM, endpoint: '', startedAt: Date.now(), phase: 'running' as const, kind: 'full' as const, executed: true, disks: [], progress: [], log: [] };
    const held = BackupLock.acquire(repo, init);
    await expect(applyRetention({ repo, vmId: VM, policy: { last: 2 }, ops: fakeLayerOps() })).rejects.toThrow(/a backup of VM "vm-model" is running \(backup 20990101-000000-000-beef/);
    await expect(applyRetention({ repo, vmId: VM, policy: { last: 2 }, ops: fakeLayerOps() })).rejects.toBeInstanceOf(RetentionBusyError);
    held.release();
    const dead = { ...init, pid: 2 ** 22 + 12345, host: os.hostname(), updatedAt: Date.now() };
    fs.writeFileSync(lockPath(repo, VM), JSON.stringify(dead));
    await expect(applyRetention({ repo, vmId: VM, policy: { last: 2 }, ops: fakeLayerOps() })).rejects.toThrow(/an earlier backup .* did not finish; run backup-cancel/);
    fs.writeFileSync(lockPath(repo, VM), JSON.stringify({ ...dead, backupId: 'retention-20240101000000' }));
    const out = await applyRetention({ repo, vmId: VM, policy: { last: 2 }, ops: fakeLayerOps() });
    expect(out.kept.map((k) => k.id)).toEqual(manifests.slice(-2).map((m) => m.id).reverse());
    expect(out.kept[0]!.reasons).toEqual(['keep-last']);
    expect(fs.existsSync(lockPath(repo, VM))).toBe(false);
    expect(readJournal(repo, VM)).toBeUndefined();
  });

  it('previews without touching anything, and refuses to preview over an unfinished run', async () => {
    const { manifests, files } = randomRepo(21, { points: 12 });
    const repo = newRepo();
    materialize(repo, manifests, files);
    const snapshot = () => fs.readdirSync(repo.vmDir(VM), { recursive: true }).sort().map((f) => `${f}`);
    const before = snapshot();
    const preview = await applyRetention({ repo, vmId: VM, maxChain: 2, dryRun: true });
    expect(preview.dryRun).toBe(true);
    expect(preview.removed.length).toBeGreaterThan(0);
    expect(snapshot()).toEqual(before);
    fs.writeFileSync(journalPath(repo, VM), JSON.stringify({ format: 'tidemark-retention-journal', version: 1, what: 'prune --keep-last 1', vmId: VM, pid: 1, host: 'h', startedAt: 0, updatedAt: 0, basis: [], kept: [], removed: [], steps: [], done: 0 }));
    await expect(applyRetention({ repo, vmId: VM, maxChain: 2, dryRun: true })).rejects.toThrow(/an interrupted prune --keep-last 1 of VM "vm-model" has 0 of 0 steps left/);
    fs.writeFileSync(journalPath(repo, VM), JSON.stringify({ format: 'tidemark-retention-journal', version: 1, steps: [{ op: 'drop', disk: 'vda', point: '../../etc', bytes: 1 }] }));
    await expect(finishJournal(repo, VM)).rejects.toThrow(/retention journal .* is damaged/);
  });
});
