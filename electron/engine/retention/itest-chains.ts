// Shared setup for the retention integration tests: real backups of the lab VM (push, through
// runBackup) with a shadow copy of every disk snapshotted at each backup point (the oracle), in a
// shape that exercises every kind of plan step:
//
//   vda: F ← a ← b              vdb: F ← a ← b
//        F ← d ← c ← e               F ← d ← c ← e ← g ← h
//        h (full: vda was left out of g, so h falls back to a full of vda)
//
// d is a differential since F's checkpoint, so F has two children on both disks (a branch).

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compareWith, KiB, MiB, startBackupRig, type BackupRig } from '../backup/itest-helpers';
import type { BackupManifest } from '../backup/manifest';
import { runBackup } from '../qmp-driver/push';
import { BackupRepository } from '../backup/repository';
import { restoreTo } from '../backup/restore';

export const CHAIN_DISKS = [
  { name: 'vda', sizeBytes: 48 * MiB },
  { name: 'vdb', sizeBytes: 24 * MiB, clusterSize: 4 * KiB },
];

export type PointLabel = 'F' | 'a' | 'b' | 'd' | 'c' | 'e' | 'g' | 'h';

export interface Chains {
  rig: BackupRig;
  /** Label → backup id. */
  ids: Record<PointLabel, string>;
  byId: Map<string, PointLabel>;
}

/** Guest writes for step `n`: a few scattered extents per disk, one of them zeroes, some overwriting earlier ones. */
async function writeStep(rig: BackupRig, n: number, mib = 1): Promise<void> {
  for (const d of CHAIN_DISKS) {
    const size = d.sizeBytes;
    for (let i = 0; i < 4; i++) {
      const off = ((n * 7 + i * 13) % Math.floor(size / MiB - mib)) * MiB + (i % 2) * 64 * KiB;
      await rig.shadow.write(d.name, off, mib * MiB, i === 3 ? 'zero' : 0x10 + n * 4 + i);
    }
  }
}

export async function buildChains(options: { bigMiB?: number } = {}): Promise<Chains> {
  const rig = await startBackupRig(CHAIN_DISKS);
  const ids = {} as Record<PointLabel, string>;
  const take = async (label: PointLabel, opts: { full?: boolean; since?: string; disks?: string[] }) => {
    const m = await runBackup(rig.engine, rig.client, { repo: rig.repo, ...opts });
    ids[label] = m.id;
    rig.shadow.snapshot(m.id);
    return m;
  };
  await writeStep(rig, 1, options.bigMiB ?? 4);
  await take('F', { full: true });
  await writeStep(rig, 2, options.bigMiB ?? 1);
  await take('a', {});
  await writeStep(rig, 3);
  await take('b', {});
  await writeStep(rig, 4);
  await take('d', { since: ids.F });
  await writeStep(rig, 5, options.bigMiB ?? 1);
  await take('c', {});
  await writeStep(rig, 6);
  await take('e', {});
  await writeStep(rig, 7);
  await take('g', { disks: ['vdb'] });
  await writeStep(rig, 8);
  await take('h', {});
  const byId = new Map(Object.entries(ids).map(([k, v]) => [v, k as PointLabel]));
  return { rig, ids, byId };
}

/** The shape above really holds (a guard: if the backup engine changes its choices, say so). */
export function describeShape(repo: BackupRepository, vmId: string, byId: Map<string, PointLabel>): string[] {
  const lines: string[] = [];
  for (const m of repo.list(vmId)) {
    lines.push(`${byId.get(m.id)}: ${m.disks.map((d) => `${d.name}=${d.kind}${d.base ? `<${byId.get(d.base)}` : ''}`).join(' ')}`);
  }
  return lines;
}

/** A copy of the VM's repository (cp -a keeps sparse files, modes and times). */
export function copyRepo(src: BackupRepository, to: string): BackupRepository {
  execFileSync('cp', ['-a', '--sparse=always', src.root, to]);
  return BackupRepository.open(to);
}

/** Each kept point's chain, read by stock qemu-img through its backing files, equals the oracle (the disks its manifest lists). */
export function chainsMatchOracle(c: Chains, repo: BackupRepository, kept: string[]): string[] {
  const problems: string[] = [];
  const vmId = c.rig.engine.vmId;
  for (const id of kept) {
    const m = repo.list(vmId).find((x) => x.id === id);
    if (!m) {
      problems.push(`${c.byId.get(id)}: the manifest of ${id} is gone`);
      continue;
    }
    for (const d of m.disks) {
      const top = repo.imagePath(vmId, d.name, id);
      if (!fs.existsSync(top)) {
        problems.push(`${c.byId.get(id)} ${d.name}: ${top} is missing`);
        continue;
      }
      const diff = compareWith(top, 'qcow2', c.rig.shadow.snapFile(id, d.name));
      if (diff) problems.push(`${c.byId.get(id)} ${d.name}: ${diff}`);
    }
  }
  return problems;
}

/** Restores every disk of every kept point with Tidemark's own restore (verify + convert + compare) and compares with the oracle. */
export async function restoresMatchOracle(c: Chains, repo: BackupRepository, kept: BackupManifest[], dir: string): Promise<string[]> {
  const problems: string[] = [];
  fs.mkdirSync(dir, { recursive: true });
  for (const m of kept) {
    for (const d of m.disks) {
      const to = path.join(dir, `${m.id}-${d.name}.qcow2`);
      fs.rmSync(to, { force: true });
      try {
        await restoreTo({ repo, backup: m.id, disk: d.name, to });
        const diff = compareWith(to, 'qcow2', c.rig.shadow.snapFile(m.id, d.name));
        if (diff) problems.push(`${c.byId.get(m.id)} ${d.name}: ${diff}`);
      } catch (e) {
        problems.push(`${c.byId.get(m.id)} ${d.name}: ${(e as Error).message}`);
      } finally {
        fs.rmSync(to, { force: true });
      }
    }
  }
  return problems;
}
