// The backup repository: a directory of plain qcow2 chains plus one manifest per backup.
//
//   REPO/tidemark-repository.json                 marker + format version
//   REPO/vms/<vm-key>/manifests/<id>.json         one per completed backup (written last, atomically)
//   REPO/vms/<vm-key>/disks/<disk>/<id>.qcow2     layers; an incremental's backing file is "<base-id>.qcow2"
//   REPO/vms/<vm-key>/logs/<id>.log               job log (also of failed backups)
//   REPO/vms/<vm-key>/branches/<checkpoint>.json  a checkpoint created by a restore = a backup's point in time
//   REPO/vms/<vm-key>/needs-full.json             disks that must be backed up in full next time (partial restore)
//   REPO/vms/<vm-key>/backup.lock                 held while a backup runs (its journal; see lock.ts)
//
// Every layer opens with stock qemu-img/QEMU: `qemu-img convert disks/vda/<id>.qcow2 out.raw`.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { safeFileStem, vmKey } from '../names';
import { fsyncDir, mkdirPrivate, writeFileAtomic } from '../../os/atomic-file';
import {
  parseBranchPoint, parseManifest, serializeManifest, validateBackupId, type BackupManifest, type BackupManifestDisk, type BranchPoint,
} from './manifest';

export const REPO_MARKER = 'tidemark-repository.json';
const REPO_FORMAT = 'tidemark-backup-repository';
const REPO_VERSION = 1;

export interface RepoProblem {
  /** The file concerned, absolute. */
  file: string;
  message: string;
}

/** One layer of a disk's chain, resolved to a file. */
export interface ChainLayer {
  manifest: BackupManifest;
  disk: BackupManifestDisk;
  file: string;
}

export class BackupRepository {
  /**
   * Why this repository is read-only, when it is: its marker says a newer Tidemark wrote it, so
   * manifests and files this version cannot understand may be in it. Nothing is written or deleted.
   */
  readonly readOnly: string | undefined;

  private constructor(readonly root: string, readOnly?: string) {
    this.readOnly = readOnly;
  }

  /** Opens `root`; with `create`, makes it (an existing non-empty directory must already be a repository). */
  static open(root: string, options: { create?: boolean } = {}): BackupRepository {
    const dir = path.resolve(root);
    const marker = path.join(dir, REPO_MARKER);
    if (fs.existsSync(marker)) {
      let info: { format?: unknown; version?: unknown };
      try {
        info = JSON.parse(fs.readFileSync(marker, 'utf8')) as typeof info;
      } catch (e) {
        throw new Error(`${marker} is not valid JSON (${(e as Error).message}); is ${dir} a Tidemark backup repository?`);
      }
      if (info.format !== REPO_FORMAT) throw new Error(`${marker} does not describe a Tidemark backup repository`);
      if (typeof info.version === 'number' && Number.isInteger(info.version) && info.version > REPO_VERSION) {
        return new BackupRepository(dir, `backup repository ${dir} was written by a newer Tidemark (format version ${info.version}; this one writes version ${REPO_VERSION}): it is opened read-only`);
      }
      if (info.version !== REPO_VERSION) throw new Error(`backup repository ${dir} has format version ${JSON.stringify(info.version)}; this Tidemark reads version ${REPO_VERSION}`);
      return new BackupRepository(dir);
    }
    if (!options.create) {
      throw new Error(fs.existsSync(dir) ? `${dir} is not a Tidemark backup repository (no ${REPO_MARKER})` : `backup repository ${dir} does not exist`);
    }
    if (fs.existsSync(dir)) {
      if (!fs.statSync(dir).isDirectory()) throw new Error(`backup repository ${dir} exists and is not a directory`);
      if (fs.readdirSync(dir).length > 0) throw new Error(`${dir} is not empty and not a Tidemark backup repository; choose an empty or new directory`);
    }
    mkdirPrivate(dir);
    writeFileAtomic(marker, JSON.stringify({ format: REPO_FORMAT, version: REPO_VERSION }, null, 2) + '\n');
    return new BackupRepository(dir);
  }

  /** Throws when this repository must not be changed (see readOnly). */
  assertWritable(what: string): void {
    if (this.readOnly !== undefined) throw new Error(`cannot ${what}: ${this.readOnly}`);
  }

  /**
   * Throws unless `file` lies inside the repository, following symbolic links of its folders: every
   * path Tidemark deletes or writes in a repository goes through here first.
   */
  assertInside(file: string): string {
    const abs = path.resolve(file);
    const realRoot = fs.realpathSync(this.root);
    let dir = path.dirname(abs);
    let rest = path.basename(abs);
    // the deepest folder that exists, resolved; the file itself may be missing or a link (unlinking a link removes only the link)
    while (!fs.existsSync(dir) && path.dirname(dir) !== dir) {
      rest = path.join(path.basename(dir), rest);
      dir = path.dirname(dir);
    }
    const real = path.join(fs.realpathSync(dir), rest);
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) throw new Error(`refusing to touch ${file}: it is outside backup repository ${this.root}`);
    return abs;
  }

  /** Deletes a file of this repository (after checking that it is one). */
  removeFile(file: string): void {
    this.assertWritable(`delete ${file}`);
    fs.rmSync(this.assertInside(file), { force: true });
  }

  vmDir(vmId: string): string {
    return path.join(this.root, 'vms', vmKey(vmId));
  }

  /** A layer's path relative to its VM directory. */
  static imageRel(disk: string, id: string): string {
    return `disks/${safeFileStem(disk)}/${validateBackupId(id)}.qcow2`;
  }

  imagePath(vmId: string, disk: string, id: string): string {
    return path.join(this.vmDir(vmId), BackupRepository.imageRel(disk, id));
  }

  logPath(vmId: string, id: string): string {
    return path.join(this.vmDir(vmId), 'logs', `${validateBackupId(id)}.log`);
  }

  manifestPath(vmId: string, id: string): string {
    return path.join(this.vmDir(vmId), 'manifests', `${validateBackupId(id)}.json`);
  }

  /** Every manifest of one VM (or of all VMs), oldest first, plus the files that could not be read. */
  scan(vmId?: string): { manifests: BackupManifest[]; problems: RepoProblem[] } {
    const vmsDir = path.join(this.root, 'vms');
    const dirs = vmId !== undefined ? [this.vmDir(vmId)] : listDir(vmsDir).map((k) => path.join(vmsDir, k));
    const manifests: BackupManifest[] = [];
    const problems: RepoProblem[] = this.readOnly !== undefined ? [{ file: path.join(this.root, REPO_MARKER), message: this.readOnly }] : [];
    for (const dir of dirs) {
      const mdir = path.join(dir, 'manifests');
      for (const f of listDir(mdir)) {
        if (!f.endsWith('.json')) continue;
        const file = path.join(mdir, f);
        try {
          const m = parseManifest(fs.readFileSync(file, 'utf8'), file);
          if (`${m.id}.json` !== f) throw new Error(`manifest ${file} holds backup ${m.id}, which does not match its file name`);
          if (path.join(vmsDir, vmKey(m.vm.id)) !== dir) throw new Error(`manifest ${file} belongs to VM ${JSON.stringify(m.vm.id)}, not to this directory`);
          checkImagePaths(m, file);
          manifests.push(m);
        } catch (e) {
          problems.push({ file, message: (e as Error).message });
        }
      }
    }
    manifests.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id));
    return { manifests, problems };
  }

  list(vmId?: string): BackupManifest[] {
    return this.scan(vmId).manifests;
  }

  /** The backup with this id (in any VM's directory); throws naming the id, or why its manifest cannot be read. */
  get(id: string): BackupManifest {
    validateBackupId(id);
    const scan = this.scan();
    const found = scan.manifests.find((m) => m.id === id);
    if (found) return found;
    const unreadable = scan.problems.find((p) => path.basename(p.file) === `${id}.json`);
    if (unreadable) throw new Error(`backup ${id} cannot be read: ${unreadable.message}`);
    throw new Error(`backup ${id} is not in repository ${this.root} (see backup-list)`);
  }

  /** Whether any manifest file (readable or not) exists for backup `id` of a VM. */
  hasManifestFile(vmId: string, id: string): boolean {
    return fs.existsSync(this.manifestPath(vmId, id));
  }

  writeManifest(m: BackupManifest): void {
    this.assertWritable(`record backup ${m.id}`);
    checkImagePaths(m, `of backup ${m.id}`);
    const file = this.manifestPath(m.vm.id, m.id);
    try {
      mkdirPrivate(path.dirname(file));
      writeFileAtomic(file, serializeManifest(m));
    } catch (e) {
      throw new Error(`cannot write the manifest of backup ${m.id} (${file}): ${(e as Error).message}`, { cause: e });
    }
  }

  /** The chain of `disk` ending at backup `m`, top first (m, its base, …, the full). Throws if a manifest is missing. */
  chain(m: BackupManifest, disk: string, all: BackupManifest[] = this.list(m.vm.id)): ChainLayer[] {
    const byId = new Map(all.map((x) => [x.id, x]));
    const out: ChainLayer[] = [];
    let cur: BackupManifest | undefined = m;
    const seen = new Set<string>();
    while (cur) {
      if (seen.has(cur.id)) throw new Error(`backup chain of ${disk} loops at ${cur.id}`);
      seen.add(cur.id);
      const d: BackupManifestDisk | undefined = cur.disks.find((x) => x.name === disk);
      if (!d) throw new Error(`backup ${cur.id} has no disk ${JSON.stringify(disk)} (it has ${cur.disks.map((x) => x.name).join(', ')})`);
      out.push({ manifest: cur, disk: d, file: path.join(this.vmDir(cur.vm.id), d.image) });
      if (!d.base) break;
      const next = byId.get(d.base);
      if (!next) throw new Error(`backup ${cur.id} of ${disk} builds on backup ${d.base}, whose manifest is gone from the repository`);
      cur = next;
    }
    return out;
  }

  /** Backups whose chain (for any disk) goes through `id`, nearest first. */
  dependents(id: string, all: BackupManifest[]): BackupManifest[] {
    const out: BackupManifest[] = [];
    const hit = new Set([id]);
    // Manifests are sorted oldest first and a base is always older, so one pass finds indirect dependents too.
    for (const m of all) {
      if (m.disks.some((d) => d.base !== undefined && hit.has(d.base))) {
        out.push(m);
        hit.add(m.id);
      }
    }
    return out;
  }

  /**
   * Deletes backups (manifests first, so each disappears at once; then their layers and logs).
   * Refused while a manifest of the same VM cannot be read: it might build on one of these layers.
   * Layer paths are derived from disk name and backup id (never taken from the manifest as written).
   */
  deleteBackups(ms: BackupManifest[]): void {
    this.assertWritable(`delete ${ms.map((m) => m.id).join(', ')}`);
    for (const vm of new Set(ms.map((m) => m.vm.id))) {
      const { problems } = this.scan(vm);
      if (problems.length > 0) {
        throw new Error(
          `refusing to delete backups of VM ${JSON.stringify(vm)}: ${problems.length === 1 ? 'a manifest' : 'manifests'} cannot be read, and a layer ${problems.length === 1 ? 'it' : 'they'} might build on would be lost ` +
            `(${problems.map((p) => `${p.file}: ${p.message}`).join('; ')}); move ${problems.length === 1 ? 'that file' : 'those files'} out of the repository or repair ${problems.length === 1 ? 'it' : 'them'} first`,
        );
      }
    }
    for (const m of [...ms].reverse()) this.removeFile(this.manifestPath(m.vm.id, m.id));
    fsyncDirs(ms.map((m) => path.dirname(this.manifestPath(m.vm.id, m.id))));
    for (const m of ms) {
      for (const d of m.disks) this.removeFile(this.imagePath(m.vm.id, d.name, m.id));
      this.removeFile(this.logPath(m.vm.id, m.id));
    }
  }

  /**
   * Unfinished layers (`*.partial`) of a VM: the only files automatic clean-up may delete without a
   * journal naming them. Only plain files directly in disks/<disk>/ (no links) are listed.
   */
  partialFiles(vmId: string): string[] {
    const disksDir = path.join(this.vmDir(vmId), 'disks');
    const out: string[] = [];
    for (const d of listDir(disksDir)) {
      const dir = path.join(disksDir, d);
      if (!isPlainDir(dir)) continue;
      for (const f of listDir(dir)) {
        const file = path.join(dir, f);
        if (f.endsWith('.partial') && fs.lstatSync(file).isFile()) out.push(file);
      }
    }
    return out.sort();
  }

  /** Layer files in a VM's directory that no readable manifest references (reported by backup-verify, never deleted automatically). */
  orphanImages(vmId: string, all: BackupManifest[] = this.list(vmId)): string[] {
    const referenced = new Set(all.flatMap((m) => m.disks.map((d) => path.join(this.vmDir(vmId), d.image))));
    const disksDir = path.join(this.vmDir(vmId), 'disks');
    const out: string[] = [];
    for (const d of listDir(disksDir)) {
      for (const f of listDir(path.join(disksDir, d))) {
        const file = path.join(disksDir, d, f);
        if (!referenced.has(file)) out.push(file);
      }
    }
    return out.sort();
  }

  /** Layer files (not `*.partial`) in any VM's directory that no readable manifest names: reported by backup-verify, never deleted automatically. */
  unreferencedLayers(manifests: BackupManifest[] = this.list()): string[] {
    const referenced = new Set(manifests.flatMap((m) => m.disks.map((d) => this.imagePath(m.vm.id, d.name, m.id))));
    const vmsDir = path.join(this.root, 'vms');
    const out: string[] = [];
    for (const k of listDir(vmsDir)) {
      const disksDir = path.join(vmsDir, k, 'disks');
      for (const d of listDir(disksDir)) {
        for (const f of listDir(path.join(disksDir, d))) {
          const file = path.join(disksDir, d, f);
          if (!f.endsWith('.partial') && !referenced.has(file)) out.push(file);
        }
      }
    }
    return out.sort();
  }

  // ---- branch points (restore → new branch) and disks that need a full backup

  private branchPath(vmId: string, checkpoint: string): string {
    return path.join(this.vmDir(vmId), 'branches', `${safeFileStem(checkpoint)}.json`);
  }

  writeBranchPoint(vmId: string, bp: BranchPoint): void {
    this.assertWritable(`record branch point ${bp.checkpoint}`);
    const file = this.branchPath(vmId, bp.checkpoint);
    mkdirPrivate(path.dirname(file));
    writeFileAtomic(file, JSON.stringify(bp, null, 2) + '\n');
  }

  branchPoints(vmId: string): BranchPoint[] {
    const dir = path.join(this.vmDir(vmId), 'branches');
    const out: BranchPoint[] = [];
    for (const f of listDir(dir)) {
      if (!f.endsWith('.json')) continue;
      const file = path.join(dir, f);
      try {
        out.push(parseBranchPoint(fs.readFileSync(file, 'utf8'), file));
      } catch {
        // an unreadable branch point only means the next backup of that branch is full
      }
    }
    return out;
  }

  needsFull(vmId: string): Record<string, string> {
    try {
      const raw = JSON.parse(fs.readFileSync(path.join(this.vmDir(vmId), 'needs-full.json'), 'utf8')) as unknown;
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return {};
      return Object.fromEntries(Object.entries(raw).filter((e): e is [string, string] => typeof e[1] === 'string'));
    } catch {
      return {};
    }
  }

  setNeedsFull(vmId: string, marks: Record<string, string>): void {
    this.assertWritable('record the disks that need a full backup');
    const file = path.join(this.vmDir(vmId), 'needs-full.json');
    if (Object.keys(marks).length === 0) {
      this.removeFile(file);
      return;
    }
    mkdirPrivate(path.dirname(file));
    writeFileAtomic(file, JSON.stringify(marks, null, 2) + '\n');
  }
}

/** A manifest's image paths must be the ones derived from disk name and backup id: anything else is a corrupt manifest. */
function checkImagePaths(m: BackupManifest, source: string): void {
  for (const d of m.disks) {
    const expected = BackupRepository.imageRel(d.name, m.id);
    if (d.image !== expected) throw new Error(`manifest ${source} is corrupt: disk ${JSON.stringify(d.name)} names image ${JSON.stringify(d.image)}, expected ${JSON.stringify(expected)}`);
  }
}

function isPlainDir(dir: string): boolean {
  try {
    return fs.lstatSync(dir).isDirectory();
  } catch {
    return false;
  }
}

function fsyncDirs(dirs: string[]): void {
  for (const d of new Set(dirs)) {
    try {
      fsyncDir(d);
    } catch {
      // the folder is gone (nothing left to make durable)
    }
  }
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}
