// The seeded random model test for retention on real backups: random guest writes, random full /
// incremental / differential push backups of random disk sets (so branches and per-disk fallbacks
// occur), and between them random prunes and merges (keep-last, max-chain, or a random set of
// points to keep). After each prune or merge every kept point restores byte for byte like the disk
// was at that point (the shadow copy) and backup-verify passes; the backups that follow keep
// building on what is left.
//
// TIDEMARK_RETENTION_SEED=N replays a run; TIDEMARK_RETENTION_OPS=N sets the number of operations.

import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KiB, MiB, startBackupRig, stopBackupRig, type BackupRig } from '../backup/itest-helpers';
import { runBackup } from '../qmp-driver/push';
import { describeFailures, verifyBackups } from '../backup/verify';
import { prng } from '../lab/writer';
import { runPlan } from './execute';
import { chainsMatchOracle, restoresMatchOracle, type Chains, type PointLabel } from './itest-chains';
import { planRetention } from './plan';
import { applyRetention } from './retention';

const SEED = process.env.TIDEMARK_RETENTION_SEED ? Number(process.env.TIDEMARK_RETENTION_SEED) : Math.floor(Math.random() * 2 ** 31);
const OPS = process.env.TIDEMARK_RETENTION_OPS ? Number(process.env.TIDEMARK_RETENTION_OPS) : 40;
const DISKS = [
  { name: 'vda', sizeBytes: 32 * MiB },
  { name: 'vdb', sizeBytes: 16 * MiB, clusterSize: 4 * KiB },
];

describe('retention model test (real backups, random prunes and merges)', () => {
  let rig: BackupRig | undefined;
  afterAll(async () => {
    await stopBackupRig(rig);
  });

  it(`keeps every kept point byte-identical (seed ${SEED}, ${OPS} operations)`, async () => {
    console.info(`retention model test: seed ${SEED} (TIDEMARK_RETENTION_SEED=${SEED} replays it), ${OPS} operations`);
    const rnd = prng(SEED);
    const int = (n: number) => Math.floor(rnd() * n);
    rig = await startBackupRig(DISKS);
    const r = rig;
    const vm = r.engine.vmId;
    // itest-chains' oracle helpers only need the rig and labels for messages.
    const c: Chains = { rig: r, ids: {} as Record<PointLabel, string>, byId: new Map() };
    const history: string[] = [];
    const counts: Record<string, number> = {};
    const note = (op: string, detail: string) => {
      counts[op] = (counts[op] ?? 0) + 1;
      history.push(`${op} ${detail}`);
    };
    try {
      for (let step = 0; step < OPS; step++) {
        const live = r.repo.list(vm);
        const roll = rnd();
        if (roll < 0.45 || live.length === 0) {
          for (let w = 1 + int(3); w > 0; w--) {
            const d = DISKS[int(DISKS.length)]!;
            const len = Math.min(d.sizeBytes, (1 + int(16)) * 64 * KiB);
            const off = int((d.sizeBytes - len) / 512) * 512;
            await r.shadow.write(d.name, off, len, rnd() < 0.15 ? 'zero' : 1 + int(250));
          }
          const kind = live.length === 0 || rnd() < 0.1 ? 'full' : rnd() < 0.2 ? 'since' : 'auto';
          const since = kind === 'since' ? live[int(live.length)]!.checkpoint : undefined;
          const disks = rnd() < 0.15 ? [DISKS[int(DISKS.length)]!.name] : undefined;
          const m = await runBackup(r.engine, r.client, { repo: r.repo, ...(kind === 'full' ? { full: true } : {}), ...(since ? { since } : {}), ...(disks ? { disks } : {}) });
          r.shadow.snapshot(m.id);
          c.byId.set(m.id, 'h');
          note('backup', `${m.id} ${m.disks.map((d) => `${d.name}:${d.kind}${d.base ? `<${d.base}` : ''}`).join(' ')}`);
          continue;
        }
        let what: string;
        if (roll < 0.65) {
          const last = 1 + int(4);
          await applyRetention({ repo: r.repo, vmId: vm, policy: { last } });
          what = `prune --keep-last ${last}`;
        } else if (roll < 0.85) {
          const maxChain = 1 + int(4);
          await applyRetention({ repo: r.repo, vmId: vm, maxChain });
          what = `merge --max-chain ${maxChain}`;
        } else {
          const keep = live.filter(() => rnd() < 0.5).map((m) => m.id);
          if (keep.length === 0) keep.push(live[live.length - 1]!.id);
          await runPlan(r.repo, planRetention(vm, live, keep), 'model keep set');
          what = `keep ${keep.length} of ${live.length}`;
        }
        note(what.split(' ')[0]!, what);
        const kept = r.repo.list(vm);
        const label = `seed ${SEED} step ${step} (${what}); history:\n  ${history.slice(-12).join('\n  ')}`;
        const report = await verifyBackups(r.repo);
        expect(describeFailures(report), label).toEqual([]);
        expect(chainsMatchOracle(c, r.repo, kept.map((m) => m.id)), label).toEqual([]);
        // Tidemark's own restore of a few kept points (all of them would be slow).
        const sample = kept.filter(() => rnd() < 0.3).slice(0, 2);
        expect(await restoresMatchOracle(c, r.repo, sample, path.join(r.root, 'restored')), label).toEqual([]);
      }
    } finally {
      console.info(`retention model test: ${JSON.stringify(counts)}`);
    }
    expect(counts.backup ?? 0).toBeGreaterThan(OPS / 4);
  }, 1_200_000);
});
