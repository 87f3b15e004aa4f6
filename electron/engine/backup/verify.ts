// backup-verify: every layer of every chain is checked against its manifest — file present, size
// and checksum (BLAKE3, or SHA-256 for older layers) of all its bytes, qcow2 header (format, virtual size, backing file) and qemu-img
// check. A layer shared by several backups is read once per run.

import * as fs from 'node:fs';
import { checksumFile, recordedChecksum } from './checksum';
import type { BackupManifest, BackupManifestDisk } from './manifest';
import { checkImage } from './qemuimg';
import { qcow2HeadFacts } from '../qcow2/format';
import type { BackupRepository, RepoProblem } from './repository';

export interface LayerReport {
  backup: string;
  disk: string;
  file: string;
  ok: boolean;
  problems: string[];
}

export interface DiskReport {
  disk: string;
  ok: boolean;
  /** Top first. */
  layers: LayerReport[];
  /** A chain-level problem (a missing base manifest). */
  problems: string[];
}

export interface BackupReport {
  id: string;
  ok: boolean;
  disks: DiskReport[];
}

export interface VerifyReport {
  ok: boolean;
  backups: BackupReport[];
  /** Unreadable manifests and layer files no manifest refers to. */
  problems: RepoProblem[];
}

/**
 * The qcow2 header (read here) and `qemu-img check` (a child process) of one layer, against its
 * manifest entry. The header was read by `qemu-img info` until phase 9: one process fewer per layer
 * beside a restore's convert (bench/README.md; the restore's wall time did not measurably move).
 */
async function headerProblems(file: string, d: BackupManifestDisk): Promise<string[]> {
  const problems: string[] = [];
  try {
    const info = await qcow2HeadFacts(file);
    if (info.virtualSize !== d.virtualSize) problems.push(`virtual size is ${info.virtualSize}, the manifest says ${d.virtualSize}`);
    if ((info.backingFile ?? undefined) !== d.backingFile) problems.push(`backing file is ${JSON.stringify(info.backingFile ?? null)}, the manifest says ${JSON.stringify(d.backingFile ?? null)}`);
    const check = await checkImage(file);
    if (!check.ok) problems.push(`qemu-img check: ${check.problems.join('; ')}`);
  } catch (e) {
    problems.push((e as Error).message);
  }
  return problems;
}

/**
 * Checks one layer file against its manifest entry: size, checksum of every byte, header, check.
 * `headers` may be the header checks already started by the caller (they run in qemu-img processes,
 * beside the hash in this one).
 */
export async function verifyLayer(
  file: string, m: BackupManifest, d: BackupManifestDisk, options: { signal?: AbortSignal; headers?: Promise<string[]> } = {},
): Promise<LayerReport> {
  const problems: string[] = [];
  const out = (): LayerReport => ({ backup: m.id, disk: d.name, file, ok: problems.length === 0, problems });
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    problems.push('the layer file is missing');
    return out();
  }
  if (st.size !== d.fileSize) problems.push(`file size is ${st.size} bytes, the manifest says ${d.fileSize}`);
  const headers = options.headers ?? headerProblems(file, d);
  const want = recordedChecksum(d);
  try {
    const sum = await checksumFile(file, want.algorithm, options);
    if (sum.digest !== want.digest) problems.push(`content changed: ${want.algorithm} is ${sum.digest}, the manifest says ${want.digest}`);
  } finally {
    problems.push(...(await headers)); // never left running behind an error
  }
  return out();
}

/**
 * Starts the header checks of every layer at once (child processes, side by side); the caller
 * passes each to verifyLayer, which hashes the layers one at a time meanwhile.
 */
export function startHeaderChecks(layers: readonly { file: string; disk: BackupManifestDisk }[]): Promise<string[]>[] {
  return layers.map((l) => (fs.existsSync(l.file) ? headerProblems(l.file, l.disk) : Promise.resolve([])));
}

/** Verifies the given backups (default: all of the repository, or of one VM). */
export async function verifyBackups(
  repo: BackupRepository,
  options: { ids?: string[]; vmId?: string; signal?: AbortSignal; onLayer?: (r: LayerReport) => void } = {},
): Promise<VerifyReport> {
  const scan = repo.scan(options.vmId);
  const problems: RepoProblem[] = [...scan.problems];
  const targets = options.ids ? options.ids.map((id) => repo.get(id)) : scan.manifests;
  const cache = new Map<string, LayerReport>();
  const backups: BackupReport[] = [];
  for (const m of targets) {
    const all = scan.manifests.filter((x) => x.vm.id === m.vm.id);
    const disks: DiskReport[] = [];
    for (const d of m.disks) {
      const layers: LayerReport[] = [];
      const chainProblems: string[] = [];
      let chain: ReturnType<BackupRepository['chain']> = [];
      try {
        chain = repo.chain(m, d.name, all);
      } catch (e) {
        chainProblems.push((e as Error).message);
        // still check the layers we can reach
        const own = { manifest: m, disk: d, file: `${repo.vmDir(m.vm.id)}/${d.image}` };
        chain = [own];
      }
      for (const layer of chain) {
        let r = cache.get(layer.file);
        if (!r) {
          r = await verifyLayer(layer.file, layer.manifest, layer.disk, options);
          cache.set(layer.file, r);
          options.onLayer?.(r);
        }
        layers.push(r);
      }
      disks.push({ disk: d.name, ok: chainProblems.length === 0 && layers.every((l) => l.ok), layers, problems: chainProblems });
    }
    backups.push({ id: m.id, ok: disks.every((x) => x.ok), disks });
  }
  if (!options.ids) {
    const vmDir = options.vmId !== undefined ? repo.vmDir(options.vmId) + '/' : undefined;
    for (const f of repo.unreferencedLayers(scan.manifests)) {
      if (vmDir === undefined || f.startsWith(vmDir)) problems.push({ file: f, message: 'no readable manifest refers to this file (left by an interrupted backup or delete, or named by a manifest listed above that cannot be read); it is kept' });
    }
  }
  return { ok: problems.length === 0 && backups.every((b) => b.ok), backups, problems };
}

/** One line per problem, for error messages. */
export function describeFailures(report: VerifyReport): string[] {
  const out: string[] = [];
  for (const b of report.backups) {
    for (const d of b.disks) {
      for (const p of d.problems) out.push(`backup ${b.id} ${d.disk}: ${p}`);
      for (const l of d.layers) for (const p of l.problems) out.push(`backup ${b.id} ${d.disk}: layer ${l.backup} (${l.file}): ${p}`);
    }
  }
  for (const p of report.problems) out.push(`${p.file}: ${p.message}`);
  return [...new Set(out)];
}
