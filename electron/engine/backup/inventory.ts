// The repository as an inventory (issue 12): what the backups view and the fleet overview show.
// Reads only: the manifests (repository.ts), the verification records (verify-history.ts), the
// logs of backups that did not complete (a log without a manifest), the backup lock, and the
// repository's size and its file system's free space (statfs).

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BackupInventory, FailedBackup, FleetBackupEntry, RepositoryUsage } from '../../../shared/contract/inventory';
import { BACKUP_ID_RE } from '../../../shared/contract/manifest';
import { readLock } from './lock';
import type { BackupManifest } from './manifest';
import type { BackupRepository, RepoProblem } from './repository';
import { readVerifications } from './verify-history';

/** Logs are short; a longer one is read from its end only. */
const LOG_TAIL_BYTES = 64 * 1024;

/** The start time a backup id carries ("YYYYMMDD-HHMMSS-mmm-xxxx", UTC). */
export function backupIdTime(id: string): number {
  const m = /^(\d{4})(\d\d)(\d\d)-(\d\d)(\d\d)(\d\d)-(\d{3})-/.exec(id);
  if (!m) return NaN;
  const [, y, mo, d, h, mi, s, ms] = m.map(Number) as number[];
  return Date.UTC(y!, mo! - 1, d!, h!, mi!, s!, ms!);
}

/** PURE: why a backup failed, from its log's lines ("HH:MM:SS.mmm failed: …; rolling back"). */
export function failureFromLog(lines: readonly string[]): { outcome: 'failed' | 'cancelled'; reason: string } {
  for (let i = lines.length - 1; i >= 0; i--) {
    const text = lines[i]!.replace(/^\d\d:\d\d:\d\d\.\d{3} /, '');
    if (text.startsWith('cancelled: rolling back')) return { outcome: 'cancelled', reason: 'cancelled while it ran (backup-cancel); rolled back, nothing kept' };
    const m = /^failed: (.*); rolling back$/.exec(text);
    if (m) return { outcome: 'failed', reason: m[1]! };
  }
  return { outcome: 'failed', reason: 'did not complete (its log says no more)' };
}

function readTail(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, LOG_TAIL_BYTES);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** Backups of the VM in `vmDir` that left a log and no manifest, oldest first. */
export function failedBackups(vmDir: string, manifests: readonly BackupManifest[]): FailedBackup[] {
  const done = new Set(manifests.map((m) => m.id));
  const logs = path.join(vmDir, 'logs');
  let names: string[];
  try {
    names = fs.readdirSync(logs);
  } catch {
    return [];
  }
  const out: FailedBackup[] = [];
  for (const f of names) {
    const id = f.replace(/\.log$/, '');
    if (!f.endsWith('.log') || !BACKUP_ID_RE.test(id) || done.has(id)) continue;
    try {
      const file = path.join(logs, f);
      const endedAt = Math.round(fs.statSync(file).mtimeMs);
      out.push({ id, startedAt: backupIdTime(id), endedAt, ...failureFromLog(readTail(file).split('\n').filter(Boolean)) });
    } catch {
      // a log that vanished meanwhile (its backup deleted) is no failure
    }
  }
  return out.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id));
}

/** The repository's bytes (apparent and allocated; symbolic links are not followed) and its file system's space. */
export function repositoryUsage(root: string): RepositoryUsage {
  let bytes = 0;
  let allocated = 0;
  let files = 0;
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        try {
          const st = fs.lstatSync(p);
          bytes += st.size;
          allocated += st.blocks * 512;
          files += 1;
        } catch {
          // deleted while we walked
        }
      }
    }
  };
  walk(root);
  const fsStat = fs.statfsSync(root);
  return { bytes, allocated, files, fsSize: fsStat.blocks * fsStat.bsize, fsFree: fsStat.bfree * fsStat.bsize, fsAvailable: fsStat.bavail * fsStat.bsize };
}

function inDir(problems: readonly RepoProblem[], dir: string): RepoProblem[] {
  return problems.filter((p) => p.file.startsWith(dir + path.sep));
}

/** One VM's inventory: its folder is the durable identity `vmKey`. */
export function vmInventory(repo: BackupRepository, vmKey: string): Omit<BackupInventory, 'usage'> {
  const scan = repo.scan(vmKey);
  const dir = repo.vmDir(vmKey);
  return {
    repo: repo.root,
    exists: true,
    backups: scan.manifests,
    problems: inDir(scan.problems, dir),
    failed: failedBackups(dir, scan.manifests),
    verified: readVerifications(repo, vmKey),
    running: readLock(repo, vmKey)?.alive ?? false,
  };
}

/** Every VM folder of the repository: its last backup, its newest attempt, whether one runs. */
export function fleetEntries(repo: BackupRepository, vmIdOf: (identity: string) => string | undefined): FleetBackupEntry[] {
  const scan = repo.scan();
  const byDir = new Map<string, BackupManifest[]>();
  const vmsDir = path.join(repo.root, 'vms');
  let dirs: string[] = [];
  try {
    dirs = fs.readdirSync(vmsDir).sort();
  } catch {
    return [];
  }
  for (const m of scan.manifests) {
    const dir = repo.vmDir(m.vm.id);
    byDir.set(dir, [...(byDir.get(dir) ?? []), m]);
  }
  const out: FleetBackupEntry[] = [];
  for (const name of dirs) {
    const dir = path.join(vmsDir, name);
    const manifests = byDir.get(dir) ?? [];
    const newest = manifests.at(-1);
    // Without a manifest the folder's name is all we know of the VM (it is the identity when it needs no escaping).
    const identity = newest?.vm.id ?? name;
    const failed = failedBackups(dir, manifests).at(-1);
    const verified = newest ? readVerifications(repo, newest.vm.id)[newest.id] : undefined;
    const running = readLock(repo, identity)?.alive ?? false;
    const problems = inDir(scan.problems, dir).length;
    if (!newest && !failed && !running && problems === 0) continue;
    const vmId = vmIdOf(identity);
    const entry: FleetBackupEntry = { identity, ...(newest?.vm.name ? { name: newest.vm.name } : {}), ...(vmId !== undefined ? { vmId } : {}), backups: manifests.length, running, problems };
    if (newest) entry.last = { id: newest.id, kind: newest.kind, startedAt: newest.startedAt, completedAt: newest.completedAt, ...(verified ? { verified } : {}) };
    if (failed && (!newest || failed.startedAt > newest.startedAt)) entry.lastAttempt = { id: failed.id, at: failed.endedAt, outcome: failed.outcome, reason: failed.reason };
    else if (newest) entry.lastAttempt = { id: newest.id, at: newest.completedAt, outcome: 'succeeded' };
    out.push(entry);
  }
  return out;
}
