// PURE: a backup plan → libvirt's <domainbackup> disks. Every disk of the domain is listed (one
// not backed up as backup='no'); each disk says its own mode, so one job can hold full disks next
// to incremental and differential ones (libvirt's per-disk backupmode/incremental).

import type { PullDisk, PushDisk } from '../../../libvirt/backup-xml';
import type { BackupPlan } from '../../backup/plan';

export function pushDisks(plan: BackupPlan, allDisks: string[], targetOf: (disk: string) => string): PushDisk[] {
  return allDisks.map((name): PushDisk => {
    const d = plan.disks.find((x) => x.disk.name === name);
    if (!d) return { name, backup: false };
    return { name, target: targetOf(name), format: 'qcow2', ...(d.since !== undefined ? { backupmode: 'incremental' as const, incremental: d.since } : { backupmode: 'full' as const }) };
  });
}

export function pullDisks(plan: BackupPlan, allDisks: string[], scratchOf: (disk: string) => string): PullDisk[] {
  return allDisks.map((name): PullDisk => {
    const d = plan.disks.find((x) => x.disk.name === name);
    if (!d) return { name, backup: false };
    return { name, scratch: scratchOf(name), ...(d.since !== undefined ? { backupmode: 'incremental' as const, incremental: d.since } : { backupmode: 'full' as const }) };
  });
}
