// PURE: the rows of the fleet overview — every VM of every connection with its state, checkpoints,
// health and last backup — and which are overdue: not backed up within the user's limit, never
// backed up, or whose last attempt failed. VMs that only the repository knows come last.

import type { FleetBackupEntry, FleetBackups, VmSummary } from '../../../shared/contract';
import type { FleetVmFacts } from '../store/types';

export type FleetAlarm = 'overdue' | 'never' | 'failed' | 'unreadable';

export interface FleetRow {
  key: string;
  /** The host's VM id (absent for a VM only the repository knows). */
  vmId?: string;
  label: string;
  connection: VmSummary['connection'] | 'not listed';
  detail?: string;
  /** QEMU run state, when connected. */
  status?: string;
  checkpoints?: number;
  health: { errors: number; warnings: number; known: boolean };
  backups: number;
  last?: FleetBackupEntry['last'];
  lastAttempt?: FleetBackupEntry['lastAttempt'];
  running: boolean;
  /** Age of the last completed backup, ms. */
  age?: number;
  /** Why the row is red, most urgent first; empty when all is well. */
  alarms: FleetAlarm[];
}

export function fleetRows(vms: readonly VmSummary[], facts: Record<string, FleetVmFacts>, backups: FleetBackups | undefined, limitMs: number, now: number): FleetRow[] {
  const entries = backups?.vms ?? [];
  const used = new Set<FleetBackupEntry>();
  const row = (key: string, e: FleetBackupEntry | undefined, base: Omit<FleetRow, 'key' | 'backups' | 'running' | 'alarms' | 'health'> & { health?: FleetRow['health'] }): FleetRow => {
    const age = e?.last ? Math.max(0, now - e.last.completedAt) : undefined;
    const alarms: FleetAlarm[] = [];
    if (e?.lastAttempt && e.lastAttempt.outcome !== 'succeeded') alarms.push('failed');
    if (!e?.last) alarms.push('never');
    else if (age! > limitMs) alarms.push('overdue');
    if (e && e.problems > 0) alarms.push('unreadable');
    return {
      key, ...base, health: base.health ?? { errors: 0, warnings: 0, known: false }, backups: e?.backups ?? 0,
      ...(e?.last ? { last: e.last } : {}), ...(e?.lastAttempt ? { lastAttempt: e.lastAttempt } : {}),
      running: e?.running ?? false, ...(age !== undefined ? { age } : {}), alarms,
    };
  };
  const rows = vms.map((vm) => {
    const e = entries.find((x) => x.vmId === vm.id);
    if (e) used.add(e);
    const f = facts[vm.id];
    const issues = f?.issues;
    return row(vm.id, e, {
      vmId: vm.id, label: vm.label, connection: vm.connection,
      ...(vm.detail ? { detail: vm.detail } : f?.error ? { detail: f.error } : {}),
      ...(f?.status ? { status: f.status } : {}),
      ...(f?.checkpoints !== undefined ? { checkpoints: f.checkpoints } : {}),
      health: { errors: issues?.filter((i) => i.severity === 'error').length ?? 0, warnings: issues?.filter((i) => i.severity === 'warning').length ?? 0, known: issues !== undefined },
    });
  });
  for (const e of entries) {
    if (used.has(e)) continue;
    rows.push(row(`repo:${e.identity}`, e, { label: e.name ?? e.identity, connection: 'not listed', detail: `in the repository as ${e.identity}; not a VM this host lists` }));
  }
  return rows;
}

/** "3 h ago" style, without "ago": for the age column's fixed width. */
export function formatAge(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}
