// The seeded random model test: random guest writes (512 B to MiBs, zero writes, overwrites),
// checkpoint creates and deletes at any position, full/incremental/differential backups of random
// disk sets, backup deletes, verifies, and restores of random backup points compared byte for byte
// with a shadow copy of what each disk held at that point. Both layouts, two disks (vdb with 4 KiB
// clusters, so its bitmaps and pull layers use 4 KiB granules).
//
// Each backup is randomly a push (blockdev-backup) or a pull (fleecing + NBD copy, issue 5) into
// the same repository, so chains mix both: a pull layer on a push base and the other way round.
// Some pulls get guest writes racing the copy (started once the point in time is fixed); their
// shadow snapshot is taken before the pull, so the restore must show the disk *at* that point.
//
// TIDEMARK_MODEL_SEED=N replays a run; TIDEMARK_MODEL_OPS=N sets the operations per layout;
// TIDEMARK_MODEL_PULL=0..1 sets the share of backups made in pull mode (default 0.5).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BitmapLayout } from '../../../shared/domain';
import { compareWith, KiB, MiB, startBackupRig, stopBackupRig, type BackupRig } from './itest-helpers';
import type { BackupManifest } from './manifest';
import { RecordingReporter } from '../operation';
import { runPull } from '../qmp-driver/pull';
import { runBackup } from '../qmp-driver/push';
import { restoreTo } from './restore';
import { describeFailures, verifyBackups } from './verify';
import { prng } from '../lab/writer';

const SEED = process.env.TIDEMARK_MODEL_SEED ? Number(process.env.TIDEMARK_MODEL_SEED) : Math.floor(Math.random() * 2 ** 31);
const OPS = process.env.TIDEMARK_MODEL_OPS ? Number(process.env.TIDEMARK_MODEL_OPS) : 300;
const PULL_SHARE = process.env.TIDEMARK_MODEL_PULL ? Number(process.env.TIDEMARK_MODEL_PULL) : 0.5;
if (!(PULL_SHARE >= 0 && PULL_SHARE <= 1)) throw new Error(`TIDEMARK_MODEL_PULL must be a number from 0 to 1, got ${JSON.stringify(process.env.TIDEMARK_MODEL_PULL)}`);
const DISKS = [
  { name: 'vda', sizeBytes: 64 * MiB },
  { name: 'vdb', sizeBytes: 32 * MiB, clusterSize: 4 * KiB },
];
/** Shadow snapshot label of a pull in progress (renamed to the backup id when it succeeds). */
const PENDING = 'pending-pull';
const MAX_LIVE_BACKUPS = 10;


interface Counts {
  [op: string]: number;
}

const isPull = (m: BackupManifest): boolean => m.tool.endsWith('(pull)');

async function runModel(layout: BitmapLayout, seed: number, ops: number): Promise<{ counts: Counts; ms: Record<string, number> }> {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const pick = <T,>(xs: T[]): T => xs[int(xs.length)]!;
  const counts: Counts = {};
  const ms: Record<string, number> = {};
  const history: string[] = [];
  let rig: BackupRig | undefined;
  let step = 0;
  /** The backup being made, for the failure message (it is not in the history yet). */
  let doing = '';
  const note = (op: string, detail: string, t0: number) => {
    doing = '';
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
    const recent: { disk: string; off: number; len: number }[] = [];
    /**
     * A guest write: 512 B .. 4 MiB (log-uniform) anywhere, or over (part of) a recent write; some
     * are zero writes, half of those on whole 64 KiB clusters, which qcow2 keeps as zero clusters
     * that block status reports as zeroes (an incremental must then write zeroes over its base).
     */
    const drawWrite = () => {
      const size = (max: number) => Math.min(max, 512 * Math.max(1, Math.round(2 ** (rnd() * 13))));
      let disk: string;
      let off: number;
      let len: number;
      if (recent.length > 0 && rnd() < 0.35) {
        const w = pick(recent);
        disk = w.disk;
        len = size(w.len);
        off = w.off + 512 * int((w.len - len) / 512 + 1);
      } else {
        const d = pick(DISKS);
        disk = d.name;
        len = size(d.sizeBytes);
        off = 512 * int((d.sizeBytes - len) / 512 + 1);
      }
      const pattern: number | 'zero' = rnd() < 0.2 ? 'zero' : 1 + int(255);
      if (pattern === 'zero' && rnd() < 0.5) {
        const c = 64 * KiB;
        const end = Math.min(DISKS.find((d) => d.name === disk)!.sizeBytes, Math.ceil((off + len) / c) * c);
        off = Math.floor(off / c) * c;
        len = end - off;
      }
      recent.push({ disk, off, len });
      if (recent.length > 32) recent.shift();
      return { disk, off, len, pattern };
    };
    await r.engine.create({ name: 'm0', layout });

    const doRestore = async (m: BackupManifest, disk: string) => {
      const to = path.join(restoreDir, `${m.id}-${disk}.${rnd() < 0.2 ? 'raw' : 'qcow2'}`);
      await restoreTo({ repo: r.repo, backup: m.id, disk, to });
      const diff = compareWith(to, to.endsWith('.raw') ? 'raw' : 'qcow2', r.shadow.snapFile(m.id, disk));
      fs.rmSync(to, { force: true });
      if (diff !== '') throw new Error(`restore of ${isPull(m) ? 'pull' : 'push'} backup ${m.id} (${m.disks.find((d) => d.name === disk)?.kind}) of ${disk} differs from the disk at that point: ${diff}`);
      counts[`restored:${isPull(m) ? 'pull' : 'push'}`] = (counts[`restored:${isPull(m) ? 'pull' : 'push'}`] ?? 0) + 1;
    };

    for (step = 0; step < ops; step++) {
      const t0 = Date.now();
      const roll = rnd();
      if (roll < 0.42) {
        const w = drawWrite();
        await r.shadow.write(w.disk, w.off, w.len, w.pattern);
        note('write', `${w.disk} ${w.off}+${w.len} ${w.pattern}`, t0);
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
        let m: BackupManifest;
        const pull = rnd() < PULL_SHARE;
        if (pull) {
          // Copy settings vary; some pulls get guest writes racing the copy (drawn now, so a seed replays).
          const pieceBytes = pick([64 * KiB, 256 * KiB, MiB, 4 * MiB]);
          const parallel = 1 + int(4);
          const racing = rnd() < 0.35 ? Array.from({ length: 1 + int(3) }, drawWrite) : [];
          what += ` pieces ${pieceBytes / KiB} KiB × ${parallel}${racing.length ? `, racing ${racing.map((w) => `${w.disk} ${w.off}+${w.len} ${w.pattern}`).join('; ')}` : ''}`;
          // What the disks hold now is what the backup must hold: nothing writes until the point in time is fixed.
          r.shadow.snapshot(PENDING);
          doing = `pull ${what}`;
          const writes: Promise<void>[] = [];
          const started = (l: string) => l.includes('transaction done');
          let res: Awaited<ReturnType<typeof runPull>>;
          let jobLog: string[] = [];
          try {
            res = await runPull(r.engine, r.client, {
              ...opts, stateDir: r.stateDir, pieceBytes, parallel,
              reporter: new RecordingReporter({ onChange: (job) => {
                jobLog = job.log;
                if (racing.length === 0 || writes.length > 0 || !job.log.some(started)) return;
                writes.push((async () => {
                  for (const w of racing) await r.shadow.write(w.disk, w.off, w.len, w.pattern);
                })());
              } }),
            });
          } finally {
            await Promise.allSettled(writes);
          }
          await Promise.all(writes);
          if (racing.length > 0) {
            expect(writes, 'the racing writes never started').toHaveLength(1);
            counts['write(racing a pull)'] = (counts['write(racing a pull)'] ?? 0) + racing.length;
          }
          if (res.mode !== 'repository') throw new Error(`a repository pull returned ${res.mode}`);
          m = res.manifest;
          expect(isPull(m)).toBe(true);
          // coverage: dirty extents that QEMU reported as zeroes and the pull wrote as zeroes
          counts['pull:zeroed-disks'] = (counts['pull:zeroed-disks'] ?? 0) + jobLog.filter((l) => /bytes written as zeroes/.test(l)).length;
          for (const d of DISKS) {
            if (m.disks.some((x) => x.name === d.name)) fs.renameSync(r.shadow.snapFile(PENDING, d.name), r.shadow.snapFile(m.id, d.name));
          }
          r.shadow.dropSnapshot(PENDING);
        } else {
          doing = `push ${what}`;
          m = await runBackup(r.engine, r.client, opts);
          expect(isPull(m)).toBe(false);
          r.shadow.snapshot(m.id, m.disks.map((d) => d.name));
        }
        const how = pull ? 'pull' : 'push';
        // Every new backup point is checked once at once (the repository image through its backing
        // chain, as stock qemu-img opens it), not only when a later random restore picks it.
        const c0 = Date.now();
        for (const d of m.disks) {
          const diff = compareWith(r.repo.imagePath(r.engine.vmId, d.name, m.id), 'qcow2', r.shadow.snapFile(m.id, d.name));
          if (diff !== '') throw new Error(`${how} backup ${m.id} (${d.kind}) of ${d.name} differs from the disk at that point: ${diff}`);
        }
        ms['(compare new point)'] = (ms['(compare new point)'] ?? 0) + (Date.now() - c0);
        counts['(compare new point)'] = (counts['(compare new point)'] ?? 0) + 1;
        for (const d of m.disks) {
          if (d.kind === 'full') {
            if (opts.since !== undefined) expect(d.fallbackReason, `${d.name} fell back to full without a reason`).toBeTruthy();
          } else {
            expect(d.base).toBeTruthy();
            expect(d.bytesCopied).toBeLessThanOrEqual(d.virtualSize);
          }
        }
        if (opts.full) expect(m.disks.every((d) => d.kind === 'full')).toBe(true);
        const bump = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
        for (const d of m.disks) {
          bump(`layer:${how}:${d.kind}${d.fallbackReason ? '(fallback)' : ''}`);
          // chains mixing both modes: which mode wrote the base this layer sits on
          const base = d.base !== undefined ? live().find((b) => b.id === d.base) : undefined;
          if (base) bump(`chain:${how} on ${isPull(base) ? 'pull' : 'push'}`);
        }
        note(how, `${what} → ${m.id} ${m.disks.map((d) => `${d.name}:${d.kind}:${d.bytesCopied}`).join(' ')}`, t0);
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
    const msg = `model test (${layout}) failed at operation ${step} (layout seed ${seed}) — replay with TIDEMARK_MODEL_SEED=${SEED} TIDEMARK_MODEL_OPS=${ops}${PULL_SHARE !== 0.5 ? ` TIDEMARK_MODEL_PULL=${PULL_SHARE}` : ''} (-t ${layout}): ${(e as Error).message}\nlast operations:\n  ${history.slice(-15).join('\n  ')}${doing ? `\n  #${step} (failed) ${doing}` : ''}`;
    console.error(msg);
    throw new Error(msg, { cause: e });
  } finally {
    await stopBackupRig(rig);
  }
}

describe('backup model test (real QEMU)', () => {
  const totals: Counts = {};
  const began = Date.now();
  afterAll(() => {
    // operations only: not the per-layer, per-chain and per-mode restore tallies
    const n = Object.entries(totals).filter(([k]) => k !== 'final-restores' && !/^(layer|chain|restored|pull):|^\(/.test(k)).reduce((a, [, v]) => a + v, 0);
    console.log(`model test seed ${SEED}: ${n} operations in ${((Date.now() - began) / 1000).toFixed(1)} s (pull share ${PULL_SHARE}) ${JSON.stringify(totals)}`);
  });

  for (const layout of ['independent', 'chained'] as BitmapLayout[]) {
    it(`${layout} layout: ${OPS} random operations, every restore byte-identical to its point`, async () => {
      const started = Date.now();
      const { counts, ms } = await runModel(layout, SEED + (layout === 'chained' ? 1 : 0), OPS);
      for (const [k, v] of Object.entries(counts)) totals[k] = (totals[k] ?? 0) + v;
      const timing = Object.entries(ms).map(([k, v]) => `${k} ${counts[k]}× ${(v / Math.max(1, counts[k] ?? 1)).toFixed(0)} ms`).join(', ');
      console.log(`model ${layout} (seed ${SEED}): ${((Date.now() - started) / 1000).toFixed(1)} s; ${timing}`);
      const backups = (counts.push ?? 0) + (counts.pull ?? 0);
      expect(backups).toBeGreaterThan(OPS / 10);
      expect(counts.restore ?? 0).toBeGreaterThan(OPS / 20);
      if (PULL_SHARE > 0 && PULL_SHARE < 1 && OPS >= 200) {
        // Enough of each mode that both were restored, and chains that mix them.
        expect(counts.pull ?? 0).toBeGreaterThan(backups * PULL_SHARE * 0.5);
        expect(counts.push ?? 0).toBeGreaterThan(backups * (1 - PULL_SHARE) * 0.5);
        expect(counts['restored:pull'] ?? 0).toBeGreaterThan(0);
        expect(counts['restored:push'] ?? 0).toBeGreaterThan(0);
        expect(counts['chain:pull on push'] ?? 0).toBeGreaterThan(0);
        expect(counts['chain:push on pull'] ?? 0).toBeGreaterThan(0);
      }
    }, 900_000);
  }
});

export { KiB };
