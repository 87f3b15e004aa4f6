// The seeded random model test: random guest writes (512 B to MiBs, zero writes, overwrites),
// checkpoint creates and deletes at any position, full/incremental/differential backups of random
// disk sets, backup deletes, verifies, and restores of random backup points compared byte for byte
// with a shadow copy of what each disk held at that point. Both layouts, two disks.
//
// TIDEMARK_MODEL_SEED=N replays a run; TIDEMARK_MODEL_OPS=N sets the operations per layout.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BitmapLayout } from '../../../shared/domain';
import { compareWith, KiB, MiB, startBackupRig, stopBackupRig, type BackupRig } from './itest-helpers';
import type { BackupManifest } from './manifest';
import { runBackup } from './push';
import { restoreTo } from './restore';
import { describeFailures, verifyBackups } from './verify';

const SEED = process.env.TIDEMARK_MODEL_SEED ? Number(process.env.TIDEMARK_MODEL_SEED) : Math.floor(Math.random() * 2 ** 31);
const OPS = process.env.TIDEMARK_MODEL_OPS ? Number(process.env.TIDEMARK_MODEL_OPS) : 300;
const DISKS = [
  { name: 'vda', sizeBytes: 64 * MiB },
  { name: 'vdb', sizeBytes: 32 * MiB },
];
const MAX_LIVE_BACKUPS = 10;

/** mulberry32: small, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Counts {
  [op: string]: number;
}

async function runModel(layout: BitmapLayout, seed: number, ops: number): Promise<{ counts: Counts; ms: Record<string, number> }> {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T,>(xs: T[]): T => xs[int(xs.length)]!;
  const counts: Counts = {};
  const ms: Record<string, number> = {};
  const history: string[] = [];
  let rig: BackupRig | undefined;
  let step = 0;
  const note = (op: string, detail: string, t0: number) => {
    counts[op] = (counts[op] ?? 0) + 1;
    ms[op] = (ms[op] ?? 0) + (Date.now() - t0);
    history.push(`#${step} ${op} ${detail}`);
  };
  try {
    rig = await startBackupRig(DISKS);
    const r = rig;
    const restoreDir = path.join(r.root, 'restored');
    fs.mkdirSync(restoreDir);
    let cpSeq = 0;
    const live = (): BackupManifest[] => r.repo.list(r.engine.vmId);
    await r.engine.create({ name: 'm0', layout });

    const doRestore = async (m: BackupManifest, disk: string) => {
      const to = path.join(restoreDir, `${m.id}-${disk}.${rnd() < 0.2 ? 'raw' : 'qcow2'}`);
      await restoreTo({ repo: r.repo, backup: m.id, disk, to });
      const diff = compareWith(to, to.endsWith('.raw') ? 'raw' : 'qcow2', r.shadow.snapFile(m.id, disk));
      fs.rmSync(to, { force: true });
      if (diff !== '') throw new Error(`restore of backup ${m.id} (${m.disks.find((d) => d.name === disk)?.kind}) of ${disk} differs from the disk at that point: ${diff}`);
    };

    for (step = 0; step < ops; step++) {
      const t0 = Date.now();
      const roll = rnd();
      if (roll < 0.42) {
        // a guest write: 512 B .. 4 MiB (log-uniform), sometimes zeroes, sometimes over an earlier write
        const disk = pick(DISKS);
        const len = Math.min(disk.sizeBytes, 512 * Math.max(1, Math.round(2 ** (rnd() * 13))));
        const off = 512 * int((disk.sizeBytes - len) / 512 + 1);
        const pattern = rnd() < 0.15 ? 'zero' : 1 + int(255);
        await r.shadow.write(disk.name, off, len, pattern);
        note('write', `${disk.name} ${off}+${len} ${pattern}`, t0);
      } else if (roll < 0.50) {
        const name = `m${++cpSeq}`;
        await r.engine.create({ name });
        note('checkpoint-create', name, t0);
      } else if (roll < 0.56) {
        const cps = r.engine.list();
        if (cps.length === 0) continue;
        const cp = pick(cps);
        await r.engine.delete(cp.name);
        note('checkpoint-delete', cp.name, t0);
      } else if (roll < 0.78) {
        const cps = r.engine.list();
        const mode = rnd();
        const opts: Parameters<typeof runBackup>[2] = { repo: r.repo };
        let what = 'auto';
        if (mode < 0.15) {
          opts.full = true;
          what = 'full';
        } else if (mode < 0.5 && cps.length > 0) {
          // mostly a checkpoint that has a backup (incremental/differential), sometimes any (→ per-disk fallback)
          const backed = cps.filter((c) => live().some((b) => b.checkpoint === c.name));
          opts.since = pick(backed.length > 0 && rnd() < 0.75 ? backed : cps).name;
          what = `since ${opts.since}`;
        }
        if (rnd() < 0.25) opts.disks = [pick(DISKS).name];
        if (rnd() < 0.1) opts.checkpoint = false;
        const m = await runBackup(r.engine, r.client, opts);
        r.shadow.snapshot(m.id, m.disks.map((d) => d.name));
        for (const d of m.disks) {
          if (d.kind === 'full') {
            if (opts.since !== undefined) expect(d.fallbackReason, `${d.name} fell back to full without a reason`).toBeTruthy();
          } else {
            expect(d.base).toBeTruthy();
            expect(d.bytesCopied).toBeLessThanOrEqual(d.virtualSize);
          }
        }
        if (opts.full) expect(m.disks.every((d) => d.kind === 'full')).toBe(true);
        for (const d of m.disks) counts[`layer:${d.kind}${d.fallbackReason ? '(fallback)' : ''}`] = (counts[`layer:${d.kind}${d.fallbackReason ? '(fallback)' : ''}`] ?? 0) + 1;
        note('backup', `${what} → ${m.id} ${m.disks.map((d) => `${d.name}:${d.kind}:${d.bytesCopied}`).join(' ')}`, t0);
        // keep the repository small: drop the oldest chain when there are too many backups
        const all = live();
        if (all.length > MAX_LIVE_BACKUPS) {
          const oldest = all[0]!;
          const gone = [oldest, ...r.repo.dependents(oldest.id, all)];
          r.repo.deleteBackups(gone);
          for (const g of gone) r.shadow.dropSnapshot(g.id);
          note('backup-delete', `${gone.map((g) => g.id).join(',')} (retention)`, Date.now());
        }
      } else if (roll < 0.93) {
        const all = live();
        if (all.length === 0) continue;
        const m = pick(all);
        const disk = pick(m.disks).name;
        await doRestore(m, disk);
        note('restore', `${m.id} ${disk}`, t0);
      } else if (roll < 0.97) {
        const all = live();
        if (all.length === 0) continue;
        const m = pick(all);
        const gone = [m, ...r.repo.dependents(m.id, all)];
        r.repo.deleteBackups(gone);
        for (const g of gone) r.shadow.dropSnapshot(g.id);
        note('backup-delete', gone.map((g) => g.id).join(','), t0);
      } else {
        const rep = await verifyBackups(r.repo);
        if (!rep.ok) throw new Error(`verify failed: ${describeFailures(rep).join('; ')}`);
        note('verify', `${rep.backups.length} backups`, t0);
      }
    }
    // Finally every live backup point of every disk must restore to exactly what the disk held.
    const t0 = Date.now();
    for (const m of live()) for (const d of m.disks) await doRestore(m, d.name);
    note('final-restores', `${live().length} backups`, t0);
    const rep = await verifyBackups(r.repo);
    if (!rep.ok) throw new Error(`final verify failed: ${describeFailures(rep).join('; ')}`);
    return { counts, ms };
  } catch (e) {
    const msg = `model test (${layout}) failed at operation ${step} with seed ${seed} — replay with TIDEMARK_MODEL_SEED=${seed}: ${(e as Error).message}\nlast operations:\n  ${history.slice(-15).join('\n  ')}`;
    console.error(msg);
    throw new Error(msg, { cause: e });
  } finally {
    rig?.shadow.close();
    await stopBackupRig(rig);
  }
}

describe('backup model test (real QEMU)', () => {
  const totals: Counts = {};
  afterAll(() => {
    const n = Object.entries(totals).filter(([k]) => k !== 'final-restores' && !k.startsWith('layer:')).reduce((a, [, v]) => a + v, 0);
    console.log(`model test seed ${SEED}: ${n} operations ${JSON.stringify(totals)}`);
  });

  for (const layout of ['independent', 'chained'] as BitmapLayout[]) {
    it(`${layout} layout: ${OPS} random operations, every restore byte-identical to its point`, async () => {
      const started = Date.now();
      const { counts, ms } = await runModel(layout, SEED + (layout === 'chained' ? 1 : 0), OPS);
      for (const [k, v] of Object.entries(counts)) totals[k] = (totals[k] ?? 0) + v;
      const timing = Object.entries(ms).filter(([k]) => !k.startsWith('layer:')).map(([k, v]) => `${k} ${counts[k]}× ${(v / Math.max(1, counts[k] ?? 1)).toFixed(0)} ms`).join(', ');
      console.log(`model ${layout} (seed ${SEED}): ${((Date.now() - started) / 1000).toFixed(1)} s; ${timing}`);
      expect(counts.backup ?? 0).toBeGreaterThan(OPS / 10);
      expect(counts.restore ?? 0).toBeGreaterThan(OPS / 20);
    }, 900_000);
  }
});

export { KiB };
