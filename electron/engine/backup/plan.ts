// PURE planning of a backup (push or pull, any driver): which disks, which kind per disk (with the
// reason when a disk falls back to full), and which base backup each layer chains onto. No I/O and
// nothing hypervisor-specific: the caller passes what the repository and the VM's driver know; the
// driver's strategy turns the plan into its own operations (QMP transaction actions, libvirt XML).

import type { Checkpoint, DiskInfo, VmInfo } from '../../../shared/domain';
import type { BackupKind, BackupManifest, BranchPoint } from './manifest';

export type BackupRequest = { mode: 'full' } | { mode: 'since'; checkpoint: string } | { mode: 'auto' };

export interface PlanInputs {
  vm: VmInfo;
  request: BackupRequest;
  /** Disk names to back up; default: every disk of the VM. */
  disks?: string[];
  checkpoints: Checkpoint[];
  current?: string;
  /** This VM's backups in the repository, oldest first. */
  backups: BackupManifest[];
  branchPoints: BranchPoint[];
  /** Disks marked for a full backup (after a restore of only some disks), with why. */
  needsFull: Record<string, string>;
  /** True when the layer file of `disk` in backup `id` exists in the repository. */
  layerExists(id: string, disk: string): boolean;
  /** Why the changes on `disk` since checkpoint `since` cannot be had (bitmap missing, inconsistent,
   *  incomplete…), or undefined when they can. From the VM's driver. */
  changesUnusable(since: string, disk: string): string | undefined;
}

export interface DiskPlan {
  disk: DiskInfo;
  kind: BackupKind;
  /** Base checkpoint (incremental/differential). */
  since?: string;
  /** The backup this layer chains onto. */
  base?: string;
  /** Why this disk is backed up in full although changes since a checkpoint were asked for. */
  fallbackReason?: string;
}

export interface BackupPlan {
  /** The kind asked for, after resolving the default. */
  kind: BackupKind;
  since?: string;
  disks: DiskPlan[];
  /** Disks of the VM that get a bitmap in the new checkpoint (bitmap-capable disks being backed up). */
  checkpointDisks: { name: string; checkpoint: 'bitmap' | 'no' }[];
  /** Plain-words notes for the job log (the default resolution, per-disk fallbacks). */
  notes: string[];
}

/** Path from the current checkpoint up to the root (current first). */
export function currentPath(checkpoints: Checkpoint[], current: string | undefined): Checkpoint[] {
  const byName = new Map(checkpoints.map((c) => [c.name, c]));
  const out: Checkpoint[] = [];
  const seen = new Set<string>();
  let c = current !== undefined ? byName.get(current) : undefined;
  while (c && !seen.has(c.name)) {
    out.push(c);
    seen.add(c.name);
    c = c.parent !== undefined ? byName.get(c.parent) : undefined;
  }
  return out;
}

/**
 * The backup whose content of `disk` is the disk's content at checkpoint `checkpoint`: the newest
 * backup that created that checkpoint with a bitmap on the disk, or the backup a restore made that
 * checkpoint's branch from.
 */
export function backupAt(checkpoint: string, disk: string, backups: BackupManifest[], branchPoints: BranchPoint[]): BackupManifest | undefined {
  for (let i = backups.length - 1; i >= 0; i--) {
    const b = backups[i]!;
    if (b.checkpoint === checkpoint && b.disks.some((d) => d.name === disk && d.checkpointBitmap)) return b;
  }
  const bp = branchPoints.find((p) => p.checkpoint === checkpoint && p.disks.includes(disk));
  if (bp) return backups.find((b) => b.id === bp.backup && b.disks.some((d) => d.name === disk));
  return undefined;
}

/** Newest checkpoint on the current path at which `disk` (or, without a disk, any of `disks`) has a backup. */
export function newestBackedUpCheckpoint(
  path: Checkpoint[], disks: string[], backups: BackupManifest[], branchPoints: BranchPoint[],
): string | undefined {
  return path.find((cp) => disks.some((d) => backupAt(cp.name, d, backups, branchPoints) !== undefined))?.name;
}

function gib(n: number): string {
  return n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

/** Decides every disk's kind and base. Throws on bad requests. */
export function planBackup(inp: PlanInputs): BackupPlan {
  const all = inp.vm.disks;
  if (all.length === 0) throw new Error(`VM ${inp.vm.id} has no disks to back up`);
  const wanted = inp.disks && inp.disks.length > 0 ? inp.disks : all.map((d) => d.name);
  const dup = wanted.find((d, i) => wanted.indexOf(d) !== i);
  if (dup !== undefined) throw new Error(`disk ${JSON.stringify(dup)} is given twice`);
  const selected = wanted.map((name) => {
    const d = all.find((x) => x.name === name);
    if (!d) throw new Error(`VM ${inp.vm.name ?? inp.vm.id} has no disk ${JSON.stringify(name)} (it has ${all.map((x) => x.name).join(', ')})`);
    return d;
  });
  const names = selected.map((d) => d.name);
  const path = currentPath(inp.checkpoints, inp.current);
  const notes: string[] = [];

  let since: string | undefined;
  if (inp.request.mode === 'since') {
    since = inp.request.checkpoint;
    if (!inp.checkpoints.some((c) => c.name === since)) {
      throw new Error(`checkpoint ${JSON.stringify(since)} does not exist (see checkpoint-list); use --full for a full backup`);
    }
  } else if (inp.request.mode === 'auto') {
    since = newestBackedUpCheckpoint(path, names, inp.backups, inp.branchPoints);
    notes.push(since !== undefined
      ? `no kind given: incremental since ${since}, the newest checkpoint that has a backup`
      : 'no kind given and no checkpoint has a backup in this repository: full backup');
  }
  const newest = newestBackedUpCheckpoint(path, names, inp.backups, inp.branchPoints);
  const kind: BackupKind = since === undefined ? 'full' : since === newest ? 'incremental' : 'differential';

  const disks: DiskPlan[] = selected.map((disk) => {
    const base: DiskPlan = { disk, kind: 'full' };
    if (since === undefined) return base;
    const full = (reason: string): DiskPlan => {
      notes.push(`${disk.name}: full backup instead of changes since ${since}: ${reason}`);
      return { ...base, fallbackReason: reason };
    };
    const mark = inp.needsFull[disk.name];
    if (mark !== undefined) return full(mark);
    if (!disk.bitmapCapable) return full(`the disk cannot hold bitmaps (${disk.bitmapIncapableReason ?? 'not qcow2 v3'})`);
    const at = backupAt(since, disk.name, inp.backups, inp.branchPoints);
    if (!at) return full(`no backup in this repository holds ${disk.name} at checkpoint ${since} (a new disk, or one that was not backed up then)`);
    let chain: BackupManifest[];
    try {
      chain = layersOf(at, disk.name, inp.backups);
    } catch (e) {
      return full((e as Error).message);
    }
    const gone = chain.find((b) => !inp.layerExists(b.id, disk.name));
    if (gone) return full(`backup ${gone.id}'s image of ${disk.name} is gone from the repository`);
    const atDisk = at.disks.find((d) => d.name === disk.name)!;
    if (atDisk.virtualSize !== disk.virtualSize) return full(`the disk was resized since backup ${at.id} (${gib(atDisk.virtualSize)} → ${gib(disk.virtualSize)})`);
    const unusable = inp.changesUnusable(since, disk.name);
    if (unusable !== undefined) return full(unusable);
    const newestHere = newestBackedUpCheckpoint(path, [disk.name], inp.backups, inp.branchPoints);
    return { ...base, kind: since === newestHere ? 'incremental' : 'differential', since, base: at.id };
  });

  const checkpointDisks = all.map((d) => ({
    name: d.name,
    checkpoint: (names.includes(d.name) && d.bitmapCapable ? 'bitmap' : 'no') as 'bitmap' | 'no',
  }));
  return { kind, since, disks, checkpointDisks, notes };
}

/** Manifests of `disk`'s chain from `top` down to its full backup; throws naming a missing base. */
export function layersOf(top: BackupManifest, disk: string, backups: BackupManifest[]): BackupManifest[] {
  const byId = new Map(backups.map((b) => [b.id, b]));
  const out: BackupManifest[] = [];
  let cur: BackupManifest | undefined = top;
  while (cur) {
    if (out.includes(cur)) throw new Error(`the backup chain of ${disk} loops at ${cur.id}`);
    out.push(cur);
    const d = cur.disks.find((x) => x.name === disk);
    if (!d) throw new Error(`backup ${cur.id} has no layer of ${disk}`);
    if (!d.base) return out;
    const next = byId.get(d.base);
    if (!next) throw new Error(`backup ${d.base}, on which ${cur.id}'s layer of ${disk} builds, is gone from the repository`);
    cur = next;
  }
  return out;
}
