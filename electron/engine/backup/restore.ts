// Restore a disk from a backup point: to a new image (--to), or in place over the image of a VM
// that is not running (--in-place). Both write a sparse copy next to the destination while the
// chain's layers are verified against the manifest (restore-pass.ts), and only then move it into
// place. In place keeps the old image aside (the safety copy) unless told not to.
// Restoring every checkpointed disk in place to checkpoint C's backup opens a new branch under C.
// What that does to the VM's checkpoints is its driver's part (RestoreHooks): Tidemark's own
// metadata for a QMP VM, libvirt's checkpoints (redefined) for a libvirt domain.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BitmapLayout } from '../../../shared/domain';
import { fsyncDir, fsyncFile, renameDurable } from '../../os/atomic-file';
import { OperationLog, silentReporter, type OperationReporter } from '../operation';
import { newBackupId, type BackupManifest } from './manifest';
import { addBitmap, imageInfo, QemuImgError } from './qemuimg';
import type { BackupRepository, ChainLayer } from './repository';
import { convertWhileVerifying } from './restore-pass';
import { startHeaderChecks, verifyLayer } from './verify';

export type ImageFormat = 'qcow2' | 'raw';

/** The format for a new image: explicit, else from the extension (.raw/.img → raw), else qcow2. */
export function formatFor(file: string, explicit?: string): ImageFormat {
  if (explicit !== undefined) {
    if (explicit !== 'qcow2' && explicit !== 'raw') throw new Error(`image format ${JSON.stringify(explicit)} is not supported: use qcow2 or raw`);
    return explicit;
  }
  return /\.(raw|img)$/i.test(file) ? 'raw' : 'qcow2';
}

/** Verifies every layer of a chain against its manifest; throws listing what is wrong. */
export async function verifyChain(chain: ChainLayer[], what: string, signal?: AbortSignal): Promise<void> {
  const bad: string[] = [];
  const headers = startHeaderChecks(chain);
  for (const [i, l] of chain.entries()) {
    const r = await verifyLayer(l.file, l.manifest, l.disk, { signal, headers: headers[i] });
    for (const p of r.problems) bad.push(`layer ${l.manifest.id} (${l.file}): ${p}`);
  }
  if (bad.length > 0) throw new Error(`${what} cannot be restored, its backup chain is damaged:\n  ${bad.join('\n  ')}\n(backup-verify lists every problem in the repository)`);
}

/** Copies the chain's content to `tmp` while verifying every layer, and leaves it there. Removes `tmp` on failure. */
async function writeVerifiedCopy(
  chain: ChainLayer[], tmp: string, format: ImageFormat, opts: { compat?: string; clusterSize?: number; signal?: AbortSignal; log: OperationLog; disk: string; size: number; what: string },
): Promise<void> {
  const top = chain[0]!.file;
  try {
    opts.log.add(`copying ${top} (through its chain) to ${tmp} while verifying its ${chain.length} layer(s)`);
    await convertWhileVerifying(chain.map((l) => l.file), tmp, () => verifyChain(chain, opts.what, opts.signal), {
      format, compat: opts.compat, clusterSize: opts.clusterSize, signal: opts.signal,
      onProgress: (pct) => opts.log.progress([{ disk: opts.disk, done: Math.round((opts.size * pct) / 100), total: opts.size }]),
    });
    opts.log.add(`${opts.disk}: ${chain.length} layer(s) verified against the manifest, unchanged while copied`);
    fsyncFile(tmp); // durable before it is linked or renamed into place
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

export interface RestoreToOptions {
  repo: BackupRepository;
  backup: string;
  disk: string;
  to: string;
  format?: string;
  /** Progress, log lines and cancel (default: none). */
  reporter?: OperationReporter;
}

export interface RestoreResult {
  backup: string;
  disk: string;
  path: string;
  format: ImageFormat;
  virtualSize: number;
  /** In place: where the old image was kept (absent when the safety copy was skipped). */
  safetyCopy?: string;
  log: string[];
}

/** Restores one disk of a backup to a new image file (never overwrites). */
export async function restoreTo(options: RestoreToOptions): Promise<RestoreResult> {
  const m = options.repo.get(options.backup);
  const to = path.resolve(options.to);
  const format = formatFor(to, options.format);
  const chain = options.repo.chain(m, options.disk);
  const top = chain[0]!;
  if (fs.existsSync(to)) throw new Error(`${to} already exists; restore --to never overwrites a file (choose a new path, or use --in-place for a stopped VM's image)`);
  if (!fs.existsSync(path.dirname(to))) throw new Error(`directory ${path.dirname(to)} does not exist`);
  const log = new OperationLog(options.reporter ?? silentReporter());
  const signal = log.reporter.signal;
  const tmp = `${to}.tidemark-partial`;
  fs.rmSync(tmp, { force: true });
  await writeVerifiedCopy(chain, tmp, format, { signal, log, disk: options.disk, size: top.disk.virtualSize, what: `backup ${m.id} of ${options.disk}` });
  try {
    fs.linkSync(tmp, to); // no-clobber: fails if `to` appeared meanwhile
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDir(path.dirname(to));
  log.add(`restored to ${to}`);
  return { backup: m.id, disk: options.disk, path: to, format, virtualSize: top.disk.virtualSize, log: log.lines };
}

/** What an in-place restore did, for the VM's checkpoints. */
export interface InPlaceRestoreRecord {
  backup: BackupManifest;
  /** The disks restored (their images hold none of the older checkpoints' bitmaps any more). */
  disks: string[];
  /** When (ISO time, for the notes written into the checkpoints). */
  when: string;
  /** Set when every checkpointed disk was restored to the backup of checkpoint `parent`: open a new branch under it. */
  branch?: {
    parent: string;
    name: string;
    /** Restored qcow2 disks that get the new checkpoint's bitmap. */
    bitmapDisks: string[];
    /** Puts the new checkpoint's bitmap into those images (call while holding the VM's checkpoint lock). */
    addBitmaps(): Promise<void>;
  };
}

export interface InPlaceRestoreOutcome {
  /** Checkpoints that no longer track the restored disks. */
  dropped: number;
  /** The branch opened, with the layout its checkpoint got. */
  branch?: { checkpoint: string; parent: string; layout: BitmapLayout };
  /** Why no branch was opened although one was asked for. */
  noBranch?: string;
}

/** What a VM's driver does around an in-place restore (the VM is stopped throughout). */
export interface RestoreHooks {
  /** Throws, naming why, unless the VM that uses these images is stopped. */
  assertStopped(images: string[]): Promise<void>;
  /** Records the restore in the VM's checkpoints (Tidemark's metadata, or libvirt's, redefined). */
  recordInPlace(record: InPlaceRestoreRecord): Promise<InPlaceRestoreOutcome>;
}

export interface InPlaceOptions {
  repo: BackupRepository;
  backup: string;
  /** Disk → the image file to overwrite. */
  targets: { disk: string; image: string }[];
  /** Skip keeping the old image as IMAGE.pre-restore-<time> (must be asked for explicitly). */
  noSafetyCopy?: boolean;
  /** The VM's driver's part (without: the restored disks are only marked for a full backup). */
  hooks?: RestoreHooks;
  /** Name of the new branch's checkpoint (default: restore-<time>). */
  branchCheckpoint?: string;
  /** Progress, log lines and cancel (default: none). */
  reporter?: OperationReporter;
}

export interface InPlaceResult {
  backup: string;
  restored: RestoreResult[];
  /** Set when a new branch was opened: the fresh checkpoint and its parent. */
  branch?: { checkpoint: string; parent: string };
  /** Disks marked for a full backup next time, with why. */
  needsFull: Record<string, string>;
  log: string[];
}

/** Refuses an image some process (a running QEMU) holds: qemu-img takes the same lock QEMU does. */
async function assertNotInUse(image: string): Promise<Awaited<ReturnType<typeof imageInfo>>> {
  try {
    return await imageInfo(image);
  } catch (e) {
    if (e instanceof QemuImgError && /lock/i.test(e.message)) {
      throw new Error(`${image} is in use by another process (is the VM running?); stop the VM before an in-place restore, or restore --to a new file`);
    }
    throw e;
  }
}

/** Restores disks of a backup over existing images of a stopped VM. */
export async function restoreInPlace(options: InPlaceOptions): Promise<InPlaceResult> {
  const repo = options.repo;
  const m = repo.get(options.backup);
  if (options.targets.length === 0) throw new Error('no disk to restore in place');
  const log = new OperationLog(options.reporter ?? silentReporter());
  const signal = log.reporter.signal;
  const seen = new Set<string>();
  const prepared: { disk: string; image: string; tmp: string; format: ImageFormat; chain: ChainLayer[] }[] = [];
  try {
    for (const t of options.targets) {
      if (seen.has(t.disk)) throw new Error(`disk ${t.disk} is given twice`);
      seen.add(t.disk);
      const image = path.resolve(t.image);
      if (!fs.existsSync(image)) throw new Error(`${image} does not exist; --in-place overwrites an existing image (use --to for a new file)`);
      const chain = repo.chain(m, t.disk);
      const info = await assertNotInUse(image);
      if (info.format !== 'qcow2' && info.format !== 'raw') throw new Error(`${image} is a ${info.format} image; in-place restore handles qcow2 and raw`);
      if (info.backingFile) throw new Error(`${image} has a backing file (${info.backingFile}); restoring over an overlay would hide it — restore --to a new file instead`);
      const top = chain[0]!;
      if (info.virtualSize !== top.disk.virtualSize) log.add(`${t.disk}: ${image} is ${info.virtualSize} bytes, the backup ${top.disk.virtualSize}: the restored disk takes the backup's size`);
      const tmp = `${image}.tidemark-restore-partial`;
      fs.rmSync(tmp, { force: true });
      prepared.push({ disk: t.disk, image, tmp, format: info.format as ImageFormat, chain });
      await writeVerifiedCopy(chain, tmp, info.format as ImageFormat, {
        compat: info.compat, clusterSize: info.clusterSize, signal, log, disk: t.disk, size: top.disk.virtualSize, what: `backup ${m.id} of ${t.disk}`,
      });
      fs.chmodSync(tmp, fs.statSync(image).mode & 0o7777); // the restored image keeps the old one's permissions
    }
    // Check again that nothing opened the images meanwhile, then swap them all.
    for (const p of prepared) await assertNotInUse(p.image);
    await options.hooks?.assertStopped(prepared.map((p) => p.image));
  } catch (e) {
    for (const p of prepared) fs.rmSync(p.tmp, { force: true });
    throw e;
  }

  const stamp = newBackupId().slice(0, 19);
  const restored: RestoreResult[] = [];
  try {
    for (const p of prepared) {
      let safetyCopy: string | undefined;
      if (!options.noSafetyCopy) {
        safetyCopy = `${p.image}.pre-restore-${stamp}`;
        fs.linkSync(p.image, safetyCopy); // the old image stays, under a new name, whatever happens next
      }
      renameDurable(p.tmp, p.image); // the new image was fsynced; the rename (and the safety link) made durable with the folder

      log.add(`${p.disk}: ${p.image} restored${safetyCopy ? `; the previous image is kept as ${safetyCopy}` : ' (no safety copy, as asked)'}`);
      restored.push({ backup: m.id, disk: p.disk, path: p.image, format: p.format, virtualSize: p.chain[0]!.disk.virtualSize, ...(safetyCopy ? { safetyCopy } : {}), log: [] });
    }
  } catch (e) {
    // All disks or none: put back the images already swapped (possible when their safety copies exist).
    const undone = restored.filter((r) => r.safetyCopy).map((r) => {
      renameDurable(r.safetyCopy!, r.path);
      return r.disk;
    });
    for (const p of prepared) fs.rmSync(p.tmp, { force: true });
    const msg = `in-place restore failed while swapping images: ${(e as Error).message}${undone.length ? `; ${undone.join(', ')} put back as they were` : ''}`;
    throw new Error(msg, { cause: e });
  }

  const result: InPlaceResult = { backup: m.id, restored, needsFull: {}, log: log.lines };
  await afterInPlace(options, m, prepared.map((p) => ({ disk: p.disk, image: p.image, format: p.format })), result, log);
  return result;
}

/**
 * Bitmaps after an in-place restore. Every disk of the backup's checkpoint restored → a new branch:
 * a fresh checkpoint under C whose bitmaps start now, marked in the repository as the same point
 * as the backup, so the next incremental continues C's chain. Otherwise the restored disks are
 * marked as needing a full backup.
 */
async function afterInPlace(options: InPlaceOptions, m: BackupManifest, done: { disk: string; image: string; format: ImageFormat }[], result: InPlaceResult, log: OperationLog): Promise<void> {
  const repo = options.repo;
  const checkpointed = m.disks.filter((d) => d.checkpointBitmap).map((d) => d.name);
  const restoredNames = done.map((d) => d.disk);
  const all = checkpointed.length > 0 && checkpointed.every((d) => restoredNames.includes(d));
  const when = new Date().toISOString();
  const markFull = (why: string) => {
    const marks = repo.needsFull(m.vm.id);
    for (const d of restoredNames) marks[d] = why;
    repo.setNeedsFull(m.vm.id, marks);
    result.needsFull = Object.fromEntries(restoredNames.map((d) => [d, why]));
    log.add(`next backup of ${restoredNames.join(', ')} will be full: ${why}`);
  };
  if (!options.hooks) {
    markFull(`restored in place from backup ${m.id} (${when}) without checkpoint metadata at hand`);
    return;
  }
  const parent = m.checkpoint;
  const bitmapDisks = done.filter((d) => d.format === 'qcow2' && checkpointed.includes(d.disk));
  const name = options.branchCheckpoint ?? `restore-${newBackupId().slice(0, 19)}`;
  const outcome = await options.hooks.recordInPlace({
    backup: m, disks: restoredNames, when,
    ...(parent && all ? { branch: { parent, name, bitmapDisks: bitmapDisks.map((d) => d.disk), addBitmaps: async () => { for (const d of bitmapDisks) await addBitmap(d.image, name); } } } : {}),
  });
  if (outcome.dropped > 0) {
    log.add(`${outcome.dropped} older checkpoint(s) no longer track ${restoredNames.join(', ')}: their bitmaps are not in the restored images`);
  }
  if (!outcome.branch) {
    markFull(!parent
      ? `restored in place from backup ${m.id} (${when}), which has no checkpoint`
      : !all
        ? `restored in place from backup ${m.id} (${when}) without the VM's other checkpointed disks (${checkpointed.filter((d) => !restoredNames.includes(d)).join(', ')})`
        : `restored in place from backup ${m.id} (${when}); ${outcome.noBranch ?? `checkpoint ${parent} is not in the metadata`}, so no branch could be opened`);
    return;
  }
  repo.writeBranchPoint(m.vm.id, { format: 'tidemark-branch-point', version: 1, checkpoint: name, parent: outcome.branch.parent, backup: m.id, disks: bitmapDisks.map((d) => d.disk), createdAt: Date.now() });
  const marks = repo.needsFull(m.vm.id);
  for (const d of bitmapDisks) delete marks[d.disk];
  repo.setNeedsFull(m.vm.id, marks);
  result.branch = { checkpoint: outcome.branch.checkpoint, parent: outcome.branch.parent };
  log.add(`new branch: checkpoint ${name} under ${outcome.branch.parent}; its bitmaps start now, and the next incremental builds on backup ${m.id}`);
}
