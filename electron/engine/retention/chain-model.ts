// An in-memory model of qcow2 backup chains for tests: a layer is a map cluster → value plus a
// base; restoring a point is the overlay of its chain (unallocated reads as 0, an explicit 0 is
// allocated). `applyStep` does what qemu-img commit / rebase and file deletion do to the files,
// and checks each step's preconditions, so a wrong plan fails loudly instead of silently.

import type { BackupKind, BackupManifest } from '../backup/manifest';
import type { RetentionStep } from './plan';
import { prng } from '../lab/writer';

export interface ModelLayer {
  data: Map<number, number>;
  base?: string;
}

/** disk → point → layer file. */
export type ModelFiles = Map<string, Map<string, ModelLayer>>;

export function readCluster(layers: Map<string, ModelLayer>, top: string | undefined, k: number): number {
  for (let id = top; id !== undefined; id = layers.get(id)!.base) {
    const l = layers.get(id);
    if (!l) throw new Error(`layer ${id} is missing from the chain`);
    const v = l.data.get(k);
    if (v !== undefined) return v;
  }
  return 0;
}

/** The restored content of a chain as cluster → value (zeros left out). */
export function restorePoint(layers: Map<string, ModelLayer>, top: string): Map<number, number> {
  const keys = new Set<number>();
  const seen = new Set<string>();
  for (let id: string | undefined = top; id !== undefined; id = layers.get(id)!.base) {
    if (seen.has(id)) throw new Error(`chain loops at ${id}`);
    seen.add(id);
    const l = layers.get(id);
    if (!l) throw new Error(`layer ${id} is missing from the chain of ${top}`);
    for (const k of l.data.keys()) keys.add(k);
  }
  const out = new Map<number, number>();
  for (const k of [...keys].sort((a, b) => a - b)) {
    const v = readCluster(layers, top, k);
    if (v !== 0) out.set(k, v);
  }
  return out;
}

function dependents(layers: Map<string, ModelLayer>, id: string): string[] {
  return [...layers.entries()].filter(([, l]) => l.base === id).map(([k]) => k);
}

/** Applies one plan step to the model files; throws when its preconditions do not hold. */
export function applyStep(files: ModelFiles, s: RetentionStep): void {
  const layers = files.get(s.disk);
  if (!layers) throw new Error(`no disk ${s.disk}`);
  if (s.op === 'drop') {
    if (!layers.has(s.point)) throw new Error(`drop ${s.point}: no such layer`);
    const deps = dependents(layers, s.point);
    if (deps.length) throw new Error(`drop ${s.point} on ${s.disk}: ${deps.join(', ')} still build on it`);
    layers.delete(s.point);
    return;
  }
  if (s.op === 'rebase') {
    const c = layers.get(s.child);
    if (!c || c.base !== s.oldBase) throw new Error(`rebase ${s.child}: its base is ${c?.base}, not ${s.oldBase}`);
    if (s.newBase !== undefined && !layers.has(s.newBase)) throw new Error(`rebase ${s.child}: new base ${s.newBase} missing`);
    const keys = new Set<number>();
    for (const top of [s.oldBase, s.newBase]) {
      for (let id = top; id !== undefined; id = layers.get(id)!.base) for (const k of layers.get(id)!.data.keys()) keys.add(k);
    }
    for (const k of keys) {
      if (c.data.has(k)) continue;
      const old = readCluster(layers, s.oldBase, k);
      if (old !== readCluster(layers, s.newBase, k)) c.data.set(k, old);
    }
    c.base = s.newBase;
    return;
  }
  // fold: commit child (and `through`) into `into`, then `into`'s file becomes the child's layer.
  const chain = [s.into, ...s.through, s.child];
  for (let i = 1; i < chain.length; i++) {
    const l = layers.get(chain[i]!);
    if (!l || l.base !== chain[i - 1]) throw new Error(`fold: ${chain[i]}'s base is ${l?.base}, not ${chain[i - 1]}`);
    const others = dependents(layers, chain[i - 1]!).filter((d) => d !== chain[i]);
    if (others.length) throw new Error(`fold into ${s.into} on ${s.disk}: ${others.join(', ')} also build on ${chain[i - 1]}`);
  }
  const into = layers.get(s.into)!;
  const keys = new Set<number>();
  for (const id of chain.slice(1)) for (const k of layers.get(id)!.data.keys()) keys.add(k);
  for (const k of keys) into.data.set(k, readCluster(layers, s.child, k));
  for (const id of chain) layers.delete(id);
  layers.set(s.child, into);
  if (s.newBase !== into.base) throw new Error(`fold into ${s.into}: the plan says the new base is ${s.newBase}, the file says ${into.base}`);
}

// ---- random repositories

export interface RandomRepo {
  manifests: BackupManifest[];
  files: ModelFiles;
}

const sha = '0'.repeat(64);

/**
 * A random history of one VM: 1–3 disks, fulls, incrementals, differentials, disks left out of a
 * backup, per-disk fallbacks to full, and branches (a later backup building on an older point, as
 * after an in-place restore). Each layer writes random clusters (some explicit zeros).
 */
export function randomRepo(seed: number, options: { points?: number; vmId?: string } = {}): RandomRepo {
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const vmId = options.vmId ?? 'vm-model';
  const disks = ['vda', 'vdb', 'vdc'].slice(0, 1 + int(3));
  const count = options.points ?? 1 + int(24);
  const files: ModelFiles = new Map(disks.map((d) => [d, new Map<string, ModelLayer>()]));
  const manifests: BackupManifest[] = [];
  /** The point the next incremental builds on, per disk (the "current" branch). */
  const current = new Map<string, string>();
  let t = Date.UTC(2024, 0, 1);
  for (let i = 0; i < count; i++) {
    t += 3_600_000 * (1 + int(60));
    const id = `2024${String(i).padStart(4, '0')}-000000-000-${(i & 0xffff).toString(16).padStart(4, '0')}`;
    if (i > 0 && rnd() < 0.12) {
      // A restore opens a branch: the next backups build on an older point.
      const older = manifests[int(manifests.length)]!;
      for (const d of older.disks) current.set(d.name, older.id);
    }
    const chosen = disks.filter(() => rnd() < 0.85);
    if (chosen.length === 0) chosen.push(disks[0]!);
    const entries = chosen.map((disk) => {
      const prev = current.get(disk);
      let base: string | undefined;
      let kind: BackupKind = 'full';
      if (prev !== undefined && rnd() > 0.1) {
        base = prev;
        kind = 'incremental';
        if (rnd() < 0.2) {
          // differential: since an older point of the same chain
          const chain: string[] = [];
          for (let b: string | undefined = prev; b !== undefined; b = files.get(disk)!.get(b)!.base) chain.push(b);
          base = chain[int(chain.length)]!;
          kind = base === prev ? 'incremental' : 'differential';
        }
      }
      const data = new Map<number, number>();
      const writes = kind === 'full' ? 4 + int(12) : int(8);
      for (let w = 0; w < writes; w++) data.set(int(24), rnd() < 0.15 ? 0 : 1 + int(250));
      files.get(disk)!.set(id, { data, ...(base !== undefined ? { base } : {}) });
      current.set(disk, id);
      return {
        name: disk, kind, ...(base !== undefined ? { since: `cp-${base}`, base, backingFile: `${base}.qcow2` } : {}),
        image: `disks/${disk}/${id}.qcow2`, virtualSize: 24 * 65536, bytesCopied: data.size * 65536, fileSize: 196608 + data.size * 65536,
        sha256: sha, sourceImage: `/img/${disk}.qcow2`, sourceFormat: 'qcow2', checkpointBitmap: true,
      };
    });
    const top: BackupKind = entries.every((e) => e.kind === 'full') ? 'full' : entries.some((e) => e.kind === 'differential') ? 'differential' : 'incremental';
    manifests.push({
      format: 'tidemark-backup', version: 1, id, vm: { id: vmId }, kind: top, checkpoint: `cp-${id}`, startedAt: t, completedAt: t + 1000,
      qemuVersion: '7.2.22', tool: 'model', disks: entries,
    });
  }
  return { manifests, files };
}

/** Deep copy of model files. */
export function cloneFiles(files: ModelFiles): ModelFiles {
  return new Map([...files].map(([d, layers]) => [d, new Map([...layers].map(([id, l]) => [id, { data: new Map(l.data), ...(l.base !== undefined ? { base: l.base } : {}) }]))]));
}
