// What backup-verify found, kept per backup: REPO/vms/<vm-key>/verified/<id>.json, one file per
// backup (written atomically; two verifications at once each replace the file whole, the later
// wins). The backups view shows when and how each backup was last verified.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { VERIFY_METHOD, verifyRecordSchema, type VerifyRecord } from '../../../shared/contract/inventory';
import { check } from '../../../shared/schema';
import { mkdirPrivate, writeFileAtomic } from '../../os/atomic-file';
import type { BackupManifest } from './manifest';
import { validateBackupId } from './manifest';
import type { BackupRepository } from './repository';
import type { VerifyReport } from './verify';

function verifiedDir(repo: BackupRepository, vmKey: string): string {
  return path.join(repo.vmDir(vmKey), 'verified');
}

function recordPath(repo: BackupRepository, vmKey: string, id: string): string {
  return path.join(verifiedDir(repo, vmKey), `${validateBackupId(id)}.json`);
}

/** PURE: the record of each verified backup in `report` (problems one line each, as describeFailures). */
export function verifyRecords(report: VerifyReport, at: number, durationMs: number): VerifyRecord[] {
  return report.backups.map((b) => {
    const problems: string[] = [];
    for (const d of b.disks) {
      for (const p of d.problems) problems.push(`${d.disk}: ${p}`);
      for (const l of d.layers) for (const p of l.problems) problems.push(`${d.disk}: layer of backup ${l.backup}: ${p}`);
    }
    const layers = new Set(b.disks.flatMap((d) => d.layers.map((l) => l.file)));
    return { backup: b.id, at, durationMs: Math.max(0, Math.round(durationMs)), ok: b.ok, how: VERIFY_METHOD, layers: layers.size, problems: [...new Set(problems)].slice(0, 1000) };
  });
}

/** Records the verification of each backup in `report`; `manifests` give each backup's VM folder. */
export function recordVerifications(repo: BackupRepository, manifests: readonly BackupManifest[], records: readonly VerifyRecord[]): void {
  const vmOf = new Map(manifests.map((m) => [m.id, m.vm.id]));
  for (const r of records) {
    const vm = vmOf.get(r.backup);
    if (vm === undefined) continue;
    mkdirPrivate(verifiedDir(repo, vm));
    writeFileAtomic(recordPath(repo, vm, r.backup), JSON.stringify(r, null, 2) + '\n');
  }
}

/** The last verification of each backup of a VM, by id. A record that cannot be read counts as never verified. */
export function readVerifications(repo: BackupRepository, vmKey: string): Record<string, VerifyRecord> {
  const dir = verifiedDir(repo, vmKey);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return {};
  }
  const out: Record<string, VerifyRecord> = {};
  for (const f of names) {
    if (!f.endsWith('.json')) continue;
    try {
      const r = check(verifyRecordSchema, JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')), f);
      if (`${r.backup}.json` === f) out[r.backup] = r;
    } catch {
      // an unreadable record only means "not verified": the next verify writes it again
    }
  }
  return out;
}

/** Drops the records of deleted backups (only files named after those backup ids). */
export function forgetVerifications(repo: BackupRepository, deleted: readonly BackupManifest[]): void {
  for (const m of deleted) fs.rmSync(recordPath(repo, m.vm.id, m.id), { force: true });
}
