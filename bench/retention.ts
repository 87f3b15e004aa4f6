// Benchmark (figures only, never pass/fail):
//  1. restore of the newest point against chain length (1, 10, 50 layers), as is and after
//     forever-forward merging (backup-merge --max-chain 7): `qemu-img convert` of the chain (the
//     copy a restore makes) and Tidemark's restoreTo (verify every layer + convert + compare);
//  2. prune of a year of daily backups (365 points, small synthetic layers) with a GFS policy.
// Chains are real qcow2 files (qemu-img create -b + qemu-io writes) with real manifests, so the
// restore, merge and prune code is the production code. Medians [min..max].
// Run: npx tsx bench/retention.ts [rounds]   (default 3)

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checksumFields, checksumFile } from '../electron/engine/backup/checksum';
import { newBackupId, type BackupManifest } from '../electron/engine/backup/manifest';
import { BackupRepository } from '../electron/engine/backup/repository';
import { restoreTo } from '../electron/engine/backup/restore';
import { applyRetention } from '../electron/engine/retention/retention';
import { planRetention } from '../electron/engine/retention/plan';
import { selectPoints } from '../electron/engine/retention/selection';
import { formatBytes } from '../electron/engine/retention/preview';
import { stats, time } from './measure';

const rounds = Number(process.argv[2] ?? 3);
const MiB = 1024 * 1024;
const VM = 'bench-vm';

interface ChainSpec {
  points: number;
  diskBytes: number;
  /** Bytes the full writes, and each incremental. */
  fullBytes: number;
  incBytes: number;
  /** Time of point i (ms). */
  at: (i: number) => number;
}

/** A repository with one linear chain of real qcow2 layers and their manifests. */
async function buildRepo(root: string, spec: ChainSpec): Promise<BackupRepository> {
  const repo = BackupRepository.open(path.join(root, 'repo'), { create: true });
  const dir = path.join(repo.vmDir(VM), 'disks', 'vda');
  fs.mkdirSync(dir, { recursive: true });
  let prev: BackupManifest | undefined;
  const clusters = spec.diskBytes / (64 * 1024);
  for (let i = 0; i < spec.points; i++) {
    const id = newBackupId(new Date(spec.at(i)), () => (i % 65536) / 65536);
    const file = path.join(dir, `${id}.qcow2`);
    // -u: the base is not opened (it exists; opening a deep chain for every new layer would make building quadratic).
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...(prev ? ['-u', '-b', `${prev.id}.qcow2`, '-F', 'qcow2'] : []), file, String(spec.diskBytes)]);
    const bytes = prev ? spec.incBytes : spec.fullBytes;
    const writes: string[] = [];
    for (let done = 0, k = 0; done < bytes; done += 64 * 1024, k++) {
      const cluster = prev ? (i * 7919 + k * 104729) % clusters : k;
      writes.push('-c', `write -P ${(i + k) % 250 + 1} ${cluster * 64 * 1024} 64k`);
    }
    // Opened without its backing chain (whole-cluster writes need none), so building stays linear in the points.
    const target = `json:${JSON.stringify({ driver: 'qcow2', file: { driver: 'file', filename: file }, backing: null })}`;
    for (let w = 0; w < writes.length; w += 400) execFileSync('qemu-io', [...writes.slice(w, w + 400), target], { stdio: 'ignore' });
    const sum = await checksumFile(file);
    const m: BackupManifest = {
      format: 'tidemark-backup', version: 2, id, vm: { id: VM }, kind: prev ? 'incremental' : 'full', ...(prev ? { since: prev.id } : {}), checkpoint: id,
      startedAt: spec.at(i), completedAt: spec.at(i) + 1000, qemuVersion: '7.2', tool: 'bench',
      disks: [{
        name: 'vda', kind: prev ? 'incremental' : 'full', ...(prev ? { since: prev.id, base: prev.id, backingFile: `${prev.id}.qcow2` } : {}),
        image: `disks/vda/${id}.qcow2`, virtualSize: spec.diskBytes, bytesCopied: bytes, fileSize: sum.size, ...checksumFields(sum),
        sourceImage: '/bench/vda.qcow2', sourceFormat: 'qcow2', checkpointBitmap: true,
      }],
    };
    repo.writeManifest(m);
    prev = m;
  }
  return repo;
}

async function restoreFigures(repo: BackupRepository, label: string, root: string): Promise<void> {
  const newest = repo.list(VM).at(-1)!;
  const top = repo.imagePath(VM, 'vda', newest.id);
  const conv: number[] = [];
  const full: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const out = path.join(root, `out-${r}.raw`);
    conv.push(await time(() => execFileSync('qemu-img', ['convert', '-O', 'raw', top, out])));
    fs.rmSync(out);
    const to = path.join(root, `restored-${r}.qcow2`);
    full.push(await time(() => restoreTo({ repo, backup: newest.id, disk: 'vda', to })));
    fs.rmSync(to);
  }
  const layers = repo.chain(newest, 'vda').length;
  console.log(`  ${label.padEnd(34)} ${String(layers).padStart(2)} layers   qemu-img convert ${stats(conv)}   restoreTo ${stats(full)}`);
}

async function restoreBench(): Promise<void> {
  const spec = { diskBytes: 256 * MiB, fullBytes: 64 * MiB, incBytes: 2 * MiB, at: (i: number) => Date.UTC(2025, 0, 1) + i * 86_400_000 };
  console.log(`restore of the newest point: disk ${formatBytes(spec.diskBytes)}, full ${formatBytes(spec.fullBytes)}, incrementals ${formatBytes(spec.incBytes)} each (scattered 64 KiB clusters); ${rounds} rounds`);
  for (const points of [1, 10, 50]) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tmbench-ret-'));
    try {
      const repo = await buildRepo(root, { ...spec, points });
      await restoreFigures(repo, `chain of ${points}, as backed up`, root);
      if (points > 7) {
        let merged = 0;
        const ms = await time(async () => {
          merged = (await applyRetention({ repo, vmId: VM, maxChain: 7 })).removed.length;
        });
        await restoreFigures(repo, `after --max-chain 7 (merge ${ms.toFixed(0)} ms, ${merged} folded)`, root);
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
}

async function pruneBench(): Promise<void> {
  const policy = { daily: 7, weekly: 4, monthly: 12 };
  const spec: ChainSpec = { points: 365, diskBytes: 64 * MiB, fullBytes: 4 * MiB, incBytes: 128 * 1024, at: (i) => Date.UTC(2025, 0, 1, 2) + i * 86_400_000 };
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tmbench-year-'));
  try {
    let repo: BackupRepository | undefined;
    const buildMs = await time(async () => (repo = await buildRepo(root, spec)));
    const manifests = repo!.list(VM);
    const planMs: number[] = [];
    let steps = { fold: 0, drop: 0, rebase: 0 };
    for (let r = 0; r < rounds; r++) {
      planMs.push(await time(() => {
        const sel = selectPoints(manifests, { policy, timeZone: 'UTC' });
        const plan = planRetention(VM, manifests, sel.kept.keys());
        steps = { fold: 0, drop: 0, rebase: 0 };
        for (const s of plan.steps) steps[s.op]++;
      }));
    }
    console.log(`prune of a year of daily backups: 365 points in one chain (full ${formatBytes(spec.fullBytes)}, ${formatBytes(spec.incBytes)} per day; built in ${(buildMs / 1000).toFixed(1)} s), --keep-daily 7 --keep-weekly 4 --keep-monthly 12`);
    console.log(`  select + plan (pure)             ${stats(planMs)}   → ${steps.fold} folds, ${steps.drop} drops, ${steps.rebase} rebases`);
    const dry = await time(() => applyRetention({ repo: repo!, vmId: VM, policy, timeZone: 'UTC', dryRun: true }));
    console.log(`  dry run (read manifests + plan)  ${stats([dry])}`);
    let out: Awaited<ReturnType<typeof applyRetention>> | undefined;
    const run = await time(async () => (out = await applyRetention({ repo: repo!, vmId: VM, policy, timeZone: 'UTC' })));
    console.log(`  prune (journal, qemu-img commit, renames, SHA-256 of rewritten layers, manifests) ${(run / 1000).toFixed(1)} s: ${out!.kept.length} kept, ${out!.removed.length} removed, ${formatBytes(out!.result!.bytesFreed)} freed`);
    const again = await time(() => applyRetention({ repo: repo!, vmId: VM, policy, timeZone: 'UTC' }));
    console.log(`  the same prune again (nothing to do)  ${stats([again])}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(`load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, ${os.cpus().length} CPUs`);
  await restoreBench();
  await pruneBench();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
