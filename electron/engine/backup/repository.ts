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
import { writeFileAtomic } from '../../os/atomic-file';
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
  private constructor(readonly root: string) {}

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
      if (info.version !== REPO_VERSION) throw new Error(`backup repository ${dir} has format version ${String(info.version)}; this Tidemark reads version ${REPO_VERSION}`);
      return new BackupRepository(dir);
    }
    if (!options.create) {
      throw new Error(fs.existsSync(dir) ? `${dir} is not a Tidemark backup repository (no ${REPO_MARKER})` : `backup repository ${dir} does not exist`);
    }
    if (fs.existsSync(dir)) {
      if (!fs.statSync(dir).isDirectory()) throw new Error(`backup repository ${dir} exists and is not a directory`);
      if (fs.readdirSync(dir).length > 0) throw new Error(`${dir} is not empty and not a Tidemark backup repository; choose an empty or new directory`);
    }
    fs.mkdirSync(dir, { recursive: true });
    writeFileAtomic(marker, JSON.stringify({ format: REPO_FORMAT, version: REPO_VERSION }, null, 2) + '\n');
    return new BackupRepository(dir);
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

  private manifestPath(vmId: string, id: string): string {
    return path.join(this.vmDir(vmId), 'manifests', `${validateBackupId(id)}.json`);
  }

  /** Every manifest of one VM (or of all VMs), oldest first, plus the files that could not be read. */
  scan(vmId?: string): { manifests: BackupManifest[]; problems: RepoProblem[] } {
    const vmsDir = path.join(this.root, 'vms');
    const dirs = vmId !== undefined ? [this.vmDir(vmId)] : listDir(vmsDir).map((k) => path.join(vmsDir, k));
    const manifests: BackupManifest[] = [];
    const problems: RepoProblem[] = [];
    for (const dir of dirs) {
      const mdir = path.join(dir, 'manifests');
      for (const f of listDir(mdir)) {
        if (!f.endsWith('.json')) continue;
        const file = path.join(mdir, f);
        try {
          const m = parseManifest(fs.readFileSync(file, 'utf8'), file);
          if (`${m.id}.json` !== f) throw new Error(`manifest ${file} holds backup ${m.id}, which does not match its file name`);
          if (path.join(vmsDir, vmKey(m.vm.id)) !== dir) throw new Error(`manifest ${file} belongs to VM ${JSON.stringify(m.vm.id)}, not to this directory`);
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

  /** The backup with this id (in any VM's directory); throws naming the id when there is none. */
  get(id: string): BackupManifest {
    validateBackupId(id);
    const found = this.list().find((m) => m.id === id);
    if (!found) throw new Error(`backup ${id} is not in repository ${this.root} (see backup-list)`);
    return found;
  }

  writeManifest(m: BackupManifest): void {
    const file = this.manifestPath(m.vm.id, m.id);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, serializeManifest(m));
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

  /** Deletes backups (manifests first, so each disappears at once; then their layers and logs). */
  deleteBackups(ms: BackupManifest[]): void {
    for (const m of [...ms].reverse()) fs.rmSync(this.manifestPath(m.vm.id, m.id), { force: true });
    for (const m of ms) {
      for (const d of m.disks) fs.rmSync(path.join(this.vmDir(m.vm.id), d.image), { force: true });
      fs.rmSync(this.logPath(m.vm.id, m.id), { force: true });
    }
  }

  /** Layer files in a VM's directory that no manifest references (left by a crash between image and manifest). */
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

  // ---- branch points (restore → new branch) and disks that need a full backup

  private branchPath(vmId: string, checkpoint: string): string {
    return path.join(this.vmDir(vmId), 'branches', `${safeFileStem(checkpoint)}.json`);
  }

  writeBranchPoint(vmId: string, bp: BranchPoint): void {
    const file = this.branchPath(vmId, bp.checkpoint);
    fs.mkdirSync(path.dirname(file), { recursive: true });
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
    const file = path.join(this.vmDir(vmId), 'needs-full.json');
    if (Object.keys(marks).length === 0) {
      fs.rmSync(file, { force: true });
      return;
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeFileAtomic(file, JSON.stringify(marks, null, 2) + '\n');
  }
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}
