// The seeded fault model: the model test's operations (guest writes, checkpoints, push backups,
// restores, deletes, verifies) mixed with faults — kill -9 of a `tidemark` CLI child process during
// a backup, a restore and a backup-delete (the next command recovers), a file-size limit (EFBIG,
// RLIMIT_FSIZE through `ulimit -f`) that makes the manifest write fail, a manifest edited to an
// unknown version, a truncated manifest (later repaired, as a user would).
//
// After every step: every backup point ever reported finished is either readable (its layers all
// there, and it restores byte-identical whenever a restore picks it, and at the end) or reported by
// the repository scan that backup-verify/backup-list show, with a reason; no layer named by any
// manifest file (readable or not) was deleted; no backup lock outlives the command after a fault.
// Every `verify` step runs backup-verify and checks that each damaged point is reported with a reason.
//
// TIDEMARK_MODEL_SEED=N replays a run; TIDEMARK_FAULT_OPS=N (default below, measured for CI) or
// TIDEMARK_MODEL_OPS=N sets the number of operations.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TIDEMARK_BIN } from './run-cli';
import { prng } from '../engine/lab/writer';
import { RecordingReporter } from '../engine/operation';
import { cancelBackup } from '../engine/qmp-driver/backup-control';
import { runBackup } from '../engine/qmp-driver/push';
import { compareWith, KiB, MiB, startBackupRig, stopBackupRig, type BackupRig } from '../engine/backup/itest-helpers';
import { lockPath, readLock } from '../engine/backup/lock';
import { MANIFEST_VERSION, type BackupManifest } from '../engine/backup/manifest';
import { restoreTo } from '../engine/backup/restore';
import { verifyBackups } from '../engine/backup/verify';

const SEED = process.env.TIDEMARK_MODEL_SEED ? Number(process.env.TIDEMARK_MODEL_SEED) : Math.floor(Math.random() * 2 ** 31);
// 500 by default (CI runs every itest; measured: see DEVELOPERS.md, "Data safety"); 2000 by hand.
const OPS = Number(process.env.TIDEMARK_FAULT_OPS ?? process.env.TIDEMARK_MODEL_OPS ?? 500);
const DISKS = [
  { name: 'vda', sizeBytes: 24 * MiB },
  { name: 'vdb', sizeBytes: 8 * MiB, clusterSize: 4 * KiB },
];
const MAX_POINTS = 8;
const PENDING = 'pending';

/** A backup point reported finished. `damaged` holds the manifest's true text while the file is edited. */
interface Point {
  id: string;
  disks: string[];
  /** Base backups of its layers (its chain). */
  bases: string[];
  damaged?: { original: string; how: string };
}

describe('backup fault model (real QEMU, real CLI child processes)', () => {
  const began = Date.now();
  let summary = '';
  afterAll(() => console.log(summary));

  it(`${OPS} operations with kill -9, EFBIG and damaged manifests: no finished point is ever lost`, async () => {
    const rnd = prng(SEED);
    const int = (n: number) => Math.floor(rnd() * n);
    const pick = <T,>(xs: T[]): T => xs[int(xs.length)]!;
    const counts: Record<string, number> = {};
    const bump = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
    const history: string[] = [];
    let rig: BackupRig | undefined;
    let step = 0;
    try {
      rig = await startBackupRig(DISKS);
      const r = rig;
      const vm = r.engine.vmId;
      const qmp2 = r.lab.qmpSecondary;
      const out = path.join(r.root, 'restored');
      fs.mkdirSync(out);
      const points = new Map<string, Point>();
      const manifestFile = (id: string) => path.join(r.repo.vmDir(vm), 'manifests', `${id}.json`);
      const layersOf = (p: Point) => p.disks.map((d) => r.repo.imagePath(vm, d, p.id));
      const pointOf = (m: BackupManifest): Point => ({ id: m.id, disks: m.disks.map((d) => d.name), bases: [...new Set(m.disks.flatMap((d) => (d.base ? [d.base] : [])))] });
      /** Whether a point's chain goes through a damaged manifest (then it cannot be restored until repaired, and verify says why). */
      const throughDamaged = (p: Point | undefined): boolean => p !== undefined && (p.damaged !== undefined || p.bases.some((b) => throughDamaged(points.get(b))));
      const readable = () => [...points.values()].filter((p) => !throughDamaged(p));

      /** How long each kind of command took when it ran to its end (the last one): kills are timed inside it. */
      const lastRunMs = new Map<string, number>();
      /**
       * A `tidemark` child killed with SIGKILL at a random moment of its expected run (or its natural
       * end, whichever is first): between `minMs` and 1.2× the last full run of the same command (at
       * least `minMs` + `spanMs`), so the kills keep landing as the CLI gets faster.
       */
      const killedChild = (args: string[], minMs: number, spanMs: number) => new Promise<{ killed: boolean; code: number | null }>((resolve) => {
        const started = Date.now();
        const last = lastRunMs.get(args[0]!);
        const delayMs = minMs + int(Math.max(spanMs, last === undefined ? spanMs : 1.2 * last - minMs));
        const child = spawn('node', [TIDEMARK_BIN, '--state-dir', r.stateDir, '--connect', qmp2, ...args], { stdio: 'ignore' });
        let killed = false;
        const timer = setTimeout(() => {
          killed = child.kill('SIGKILL');
        }, delayMs);
        child.once('exit', (code) => {
          clearTimeout(timer);
          if (!killed) lastRunMs.set(args[0]!, Date.now() - started);
          resolve({ killed, code });
        });
      });

      /** A `tidemark` child that gets a 1 KiB file-size limit as soon as its backup's jobs run. */
      const limitedChild = (args: string[]) => new Promise<{ code: number | null; err: string }>((resolve) => {
        const child = spawn('bash', ['-c', 'trap "" XFSZ; exec node "$@"', 'bash', TIDEMARK_BIN, '--state-dir', r.stateDir, '--connect', qmp2, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
        const poll = setInterval(() => {
          const held = readLock(r.repo, vm);
          if (held?.journal.phase !== 'running') return;
          clearInterval(poll);
          spawnSync('prlimit', ['--pid', String(child.pid), '--fsize=1024:1024']);
        }, 20);
        child.once('exit', (code) => {
          clearInterval(poll);
          resolve({ code, err });
        });
      });

      /** New manifests (a child finished before its kill) become points at the pending snapshot. */
      const adoptNewPoints = () => {
        for (const m of r.repo.list(vm)) {
          if (points.has(m.id)) continue;
          for (const d of m.disks) fs.renameSync(r.shadow.snapFile(PENDING, d.name), r.shadow.snapFile(m.id, d.name));
          points.set(m.id, pointOf(m));
          bump('finished before the kill');
        }
        r.shadow.dropSnapshot(PENDING);
      };

      /** Points whose manifest a (killed) delete removed are gone, as asked; their left-over layers are reported, and removed by hand. */
      const forgetDeleted = () => {
        for (const p of [...points.values()]) {
          if (fs.existsSync(manifestFile(p.id))) continue;
          points.delete(p.id);
          r.shadow.dropSnapshot(p.id);
          for (const f of layersOf(p)) {
            if (fs.existsSync(f)) {
              bump('layer left by a killed delete (reported, removed by hand)');
              fs.rmSync(f);
            }
          }
        }
      };

      const expectNoHypervisorLeftovers = async () => {
        const jobs = await r.client.execute<{ id: string }[]>('query-jobs');
        expect(jobs.filter((j) => j.id.startsWith('tidemark-')), 'QEMU jobs left').toEqual([]);
        const nodes = await r.client.execute<{ 'node-name': string; 'dirty-bitmaps'?: { name?: string }[] }[]>('query-named-block-nodes', { flat: true });
        expect(nodes.map((n) => n['node-name']).filter((n) => n.startsWith('tidemark-')), 'QEMU nodes left').toEqual([]);
        expect(nodes.flatMap((n) => n['dirty-bitmaps'] ?? []).filter((b) => b.name?.startsWith('tidemark-tmp-')), 'temporary bitmaps left').toEqual([]);
      };

      /** The next command after a fault: the next backup or backup-cancel cleans up a stale lock. */
      const recoverIfStale = async () => {
        if (!fs.existsSync(lockPath(r.repo, vm))) return;
        expect(readLock(r.repo, vm)?.alive, 'a killed backup\'s lock must be stale').toBe(false);
        if (rnd() < 0.5) {
          const c = await cancelBackup(r.engine, r.client, r.repo);
          expect(c.how).toBe('cleaned-up');
          bump('recovered by backup-cancel');
        } else {
          await backup({}, 'recovery');
          bump('recovered by the next backup');
        }
        expect(fs.existsSync(lockPath(r.repo, vm))).toBe(false);
        await expectNoHypervisorLeftovers();
      };

      const backup = async (opts: { full?: boolean }, why: string) => {
        const m: BackupManifest = await runBackup(r.engine, r.client, { repo: r.repo, ...opts, reporter: new RecordingReporter() });
        r.shadow.snapshot(m.id, m.disks.map((d) => d.name));
        points.set(m.id, pointOf(m));
        history.push(`#${step} backup (${why}) → ${m.id} ${m.disks.map((d) => `${d.name}:${d.kind}`).join(' ')}`);
        return m;
      };

      const restoreAndCompare = async (p: Point, disk: string, to = path.join(out, `${p.id}-${disk}.qcow2`)) => {
        if (!fs.existsSync(to)) await restoreTo({ repo: r.repo, backup: p.id, disk, to });
        const diff = compareWith(to, 'qcow2', r.shadow.snapFile(p.id, disk));
        fs.rmSync(to, { force: true });
        if (diff !== '') throw new Error(`point ${p.id} of ${disk} does not restore byte-identical: ${diff}`);
        bump('restored byte-identical');
      };

      const repairAll = () => {
        for (const p of points.values()) {
          if (!p.damaged) continue;
          fs.writeFileSync(manifestFile(p.id), p.damaged.original);
          delete p.damaged;
          bump('manifest repaired');
        }
      };

      /** The invariant, after every step. */
      const check = () => {
        const scan = r.repo.scan(vm);
        const ids = new Set(scan.manifests.map((m) => m.id));
        for (const p of points.values()) {
          for (const f of layersOf(p)) expect(fs.existsSync(f), `layer ${f} of ${p.damaged ? 'damaged' : 'finished'} point ${p.id} was deleted`).toBe(true);
          if (p.damaged) {
            const problem = scan.problems.find((x) => x.file === manifestFile(p.id));
            expect(problem?.message, `damaged point ${p.id} (${p.damaged.how}) is not reported with a reason`).toMatch(/\S/);
          } else {
            expect(ids.has(p.id), `finished point ${p.id} is not listed`).toBe(true);
          }
        }
        // every manifest file names layers that exist (readable ones checked here; damaged ones above)
        for (const m of scan.manifests) for (const d of m.disks) expect(fs.existsSync(r.repo.imagePath(vm, d.name, m.id)), `layer of ${m.id} ${d.name}`).toBe(true);
      };

      await r.engine.create({ name: 'f0', layout: 'independent' });
      let cp = 0;
      for (step = 0; step < OPS; step++) {
        const roll = rnd();
        if (roll < 0.3) {
          const d = pick(DISKS);
          const len = Math.min(d.sizeBytes, 512 * (1 + int(4096)));
          const off = 512 * int((d.sizeBytes - len) / 512 + 1);
          const pattern = rnd() < 0.15 ? 'zero' as const : 1 + int(255);
          await r.shadow.write(d.name, off, len, pattern);
          bump('write');
        } else if (roll < 0.36) {
          await r.engine.create({ name: `f${++cp}` });
          bump('checkpoint-create');
        } else if (roll < 0.5) {
          await backup({ full: rnd() < 0.2 }, 'in-process');
          bump('backup');
        } else if (roll < 0.58) {
          const ps = readable();
          if (ps.length === 0) continue;
          const p = pick(ps);
          await restoreAndCompare(p, pick(p.disks));
          bump('restore');
        } else if (roll < 0.62) {
          const ps = readable();
          if (ps.length === 0) continue;
          const p = pick(ps);
          const all = r.repo.list(vm);
          const gone = [all.find((m) => m.id === p.id)!, ...r.repo.dependents(p.id, all)];
          if ([...points.values()].some((x) => x.damaged)) {
            expect(() => r.repo.deleteBackups(gone)).toThrow(/refusing to delete backups of VM .* cannot be read/);
            bump('delete refused (a manifest cannot be read)');
          } else {
            r.repo.deleteBackups(gone);
            for (const g of gone) {
              points.delete(g.id);
              r.shadow.dropSnapshot(g.id);
            }
            bump('backup-delete');
          }
        } else if (roll < 0.72) {
          // kill -9 of a CLI backup (slowed down so the kill often lands while QEMU copies; timed within the
          // last backup's run: fixed delays of 0.3-4.3 s missed three backups in four once the CLI got faster)
          r.shadow.snapshot(PENDING);
          const args = ['backup-begin', '--repo', r.repo.root, '--no-checkpoint', '--speed', String(pick([4, 16, 64])), ...(rnd() < 0.3 ? ['--full'] : [])];
          const res = await killedChild(args, 150, 400);
          bump(res.killed ? 'fault: kill -9 during backup' : 'backup child ended before its kill');
          adoptNewPoints();
          await recoverIfStale();
        } else if (roll < 0.77) {
          const ps = readable();
          if (ps.length === 0) continue;
          const p = pick(ps);
          const disk = pick(p.disks);
          const to = path.join(out, `${p.id}-${disk}-killed.qcow2`);
          const res = await killedChild(['restore', '--repo', r.repo.root, '--backup', p.id, '--disk', disk, '--to', to], 150, 400);
          bump(res.killed ? 'fault: kill -9 during restore' : 'restore child ended before its kill');
          // The next command: the same restore again (its partial file is replaced), or the finished file compared.
          await restoreAndCompare(p, disk, to);
          fs.rmSync(`${to}.tidemark-partial`, { force: true });
        } else if (roll < 0.81) {
          const ps = readable();
          if (ps.length === 0) continue;
          repairAll(); // a delete needs every manifest readable
          const p = pick(ps);
          const res = await killedChild(['backup-delete', p.id, '--repo', r.repo.root, '--with-dependents'], 100, 300);
          bump(res.killed ? 'fault: kill -9 during backup-delete' : 'delete child ended before its kill');
          forgetDeleted();
        } else if (roll < 0.86) {
          // A file-size limit (RLIMIT_FSIZE, set with prlimit) on the CLI child once its backup runs:
          // qemu-img has created the targets, QEMU writes the layers, and the child's next writes
          // (journal updates, tolerated; then the manifest) fail with EFBIG.
          r.shadow.snapshot(PENDING);
          const before = r.repo.list(vm).map((m) => m.id);
          const res = await limitedChild(['backup-begin', '--repo', r.repo.root, '--no-checkpoint', '--speed', '16']);
          if (res.code === 0) {
            bump('EFBIG limit came too late (backup finished)');
          } else {
            expect(res.err.trim().split('\n'), 'one line naming what was wrong').toHaveLength(1);
            expect(res.err.trim()).toMatch(/^error: .*(EFBIG|file size limit|too large)/i);
            bump(/manifest/i.test(res.err) ? 'fault: EFBIG while the manifest is written' : `fault: EFBIG (${res.err.trim().replace(/[0-9]{8}-[0-9-]+/g, 'ID').slice(0, 90)})`);
            expect(r.repo.list(vm).map((m) => m.id)).toEqual(before);
            expect(r.repo.partialFiles(vm)).toEqual([]);
          }
          adoptNewPoints();
          await recoverIfStale();
        } else if (roll < 0.9) {
          const ps = [...points.values()].filter((p) => !p.damaged);
          if (ps.length === 0) continue;
          const p = pick(ps);
          const original = fs.readFileSync(manifestFile(p.id), 'utf8');
          const truncate = rnd() < 0.5;
          fs.writeFileSync(manifestFile(p.id), truncate ? original.slice(0, int(original.length - 1)) : original.replace(/"version": \d+/, `"version": ${MANIFEST_VERSION + 1 + int(8)}`));
          p.damaged = { original, how: truncate ? 'truncated' : 'unknown version' };
          bump(truncate ? 'fault: truncated manifest' : 'fault: manifest of an unknown version');
        } else if (roll < 0.93) {
          if (![...points.values()].some((p) => p.damaged)) continue;
          repairAll();
        } else {
          const rep = await verifyBackups(r.repo);
          for (const p of points.values()) {
            if (p.damaged) expect(rep.problems.find((x) => x.file === manifestFile(p.id))?.message, `verify names damaged ${p.id}`).toMatch(/\S/);
            else if (!throughDamaged(p)) expect(rep.backups.find((b) => b.id === p.id)?.ok, `verify of ${p.id}`).toBe(true);
            else {
              const br = rep.backups.find((b) => b.id === p.id)!;
              const why = br.disks.flatMap((d) => [...d.problems, ...d.layers.flatMap((l) => l.problems)]).join('; ');
              expect(br.ok, `verify of ${p.id}, whose chain goes through a damaged manifest`).toBe(false);
              expect(why).toMatch(/manifest is gone|cannot be read/);
              bump('verify: point on a damaged base reported');
            }
          }
          const other = rep.problems.filter((x) => ![...points.values()].some((p) => p.damaged && x.file === manifestFile(p.id)));
          // layers of damaged points are reported as not named by a readable manifest: nothing else may be
          expect(other.filter((x) => ![...points.values()].some((p) => p.damaged && layersOf(p).includes(x.file))).map((x) => `${x.file}: ${x.message}`)).toEqual([]);
          bump('verify');
        }
        if (readable().length > MAX_POINTS && ![...points.values()].some((p) => p.damaged)) {
          const all = r.repo.list(vm);
          const gone = [all[0]!, ...r.repo.dependents(all[0]!.id, all)];
          r.repo.deleteBackups(gone);
          for (const g of gone) {
            points.delete(g.id);
            r.shadow.dropSnapshot(g.id);
          }
        }
        check();
      }
      repairAll();
      for (const p of points.values()) for (const d of p.disks) await restoreAndCompare(p, d);
      const rep = await verifyBackups(r.repo);
      expect(rep.ok, JSON.stringify(rep.problems)).toBe(true);
      const faults = Object.entries(counts).filter(([k]) => k.startsWith('fault:')).reduce((a, [, v]) => a + v, 0);
      const secs = (Date.now() - began) / 1000;
      summary = `fault model seed ${SEED}: ${OPS} operations in ${secs.toFixed(1)} s (${(OPS / secs).toFixed(2)} ops/s), ${faults} faults; ${JSON.stringify(counts)}`;
      expect(faults).toBeGreaterThan(OPS / 10);
    } catch (e) {
      const msg = `fault model failed at operation ${step} — replay with TIDEMARK_MODEL_SEED=${SEED} TIDEMARK_FAULT_OPS=${OPS}: ${(e as Error).message}\n  ${history.slice(-10).join('\n  ')}\n  counts ${JSON.stringify(counts)}`;
      summary = msg;
      throw new Error(msg, { cause: e });
    } finally {
      await stopBackupRig(rig);
    }
  }, 3_600_000);
});
