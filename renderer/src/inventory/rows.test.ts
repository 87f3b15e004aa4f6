// The backups view's rows, and the fleet overview's, from inventories as the host sends them.

import { describe, expect, it } from 'vitest';
import type { BackupInventory, BackupRecord, FleetBackups, VmSummary } from '../../../shared/contract';
import { fleetRows } from './fleet';
import { backupRows, dependentsOf, filterRows, sortRows } from './rows';
import { checkAgeLimit, DEFAULT_SETTINGS, loadSettings, parseSettings, saveSettings } from './settings';

const T = Date.UTC(2026, 11, 4, 10);
const A = '20261204-100000-000-000a';
const B = '20261204-110000-000-000b';
const C = '20261204-120000-000-000c';

function rec(id: string, at: number, ms: number, disks: { name: string; base?: string; copied: number; size: number; kind?: 'full' | 'incremental' }[]): BackupRecord {
  const kind = disks.some((d) => d.base) ? 'incremental' : 'full';
  return {
    format: 'tidemark-backup', version: 1, id, vm: { id: 'u' }, kind, startedAt: at, completedAt: at + ms, qemuVersion: '7.2', tool: 't', checkpoint: `cp-${id.slice(-1)}`,
    disks: disks.map((d) => ({
      name: d.name, kind: d.kind ?? (d.base ? 'incremental' : 'full'), ...(d.base ? { since: `cp-${d.base.slice(-1)}`, base: d.base, backingFile: `${d.base}.qcow2` } : {}),
      image: `disks/${d.name}/${id}.qcow2`, virtualSize: 1 << 30, bytesCopied: d.copied, fileSize: d.size, sha256: '0'.repeat(64), sourceImage: '/x', sourceFormat: 'qcow2', checkpointBitmap: true,
    })),
  };
}

const inv = (): BackupInventory => ({
  repo: '/r', exists: true, running: false,
  backups: [
    rec(A, T, 10_000, [{ name: 'vda', copied: 100 << 20, size: 101 << 20 }, { name: 'vdb', copied: 0, size: 1 << 20 }]),
    rec(B, T + 3600_000, 2_000, [{ name: 'vda', base: A, copied: 4 << 20, size: 5 << 20 }, { name: 'vdb', copied: 1 << 20, size: 2 << 20, kind: 'full' }]),
    rec(C, T + 7200_000, 1_000, [{ name: 'vda', base: '20261204-090000-000-0009', copied: 0, size: 1 << 16 }]),
  ],
  failed: [{ id: '20261204-130000-000-00ff', startedAt: T + 3 * 3600_000, endedAt: T + 3 * 3600_000 + 500, outcome: 'failed', reason: 'No space left on device' }],
  problems: [{ file: '/r/vms/u/manifests/x.json', message: 'manifest /r/vms/u/manifests/x.json is invalid: manifest version 9 is not supported' }],
  verified: { [A]: { backup: A, at: T + 100, durationMs: 900, ok: true, how: 'h', layers: 2, problems: [] }, [B]: { backup: B, at: T + 200, durationMs: 50, ok: false, how: 'h', layers: 3, problems: ['vda: content changed'] } },
});

describe('backup rows', () => {
  it('give each backup its size, duration, throughput, base, verification and dependents', () => {
    const rows = backupRows(inv());
    const a = rows.find((r) => r.key === A)!;
    expect(a).toMatchObject({ kind: 'full', kindText: 'full', baseText: '—', size: 102 << 20, copied: 100 << 20, durationMs: 10_000, status: 'ok', dependents: [B] });
    expect(a.throughput).toBeCloseTo((100 << 20) / 10);
    const b = rows.find((r) => r.key === B)!;
    expect(b).toMatchObject({ kindText: 'incremental (vdb full)', baseText: `since cp-a · on ${A}`, status: 'verify-failed' });
    expect(b.disks.map((d) => [d.disk, d.kind, d.size])).toEqual([['vda', 'incremental', 5 << 20], ['vdb', 'full', 2 << 20]]);
    expect(rows.find((r) => r.key === C)).toMatchObject({ status: 'broken-chain', reason: expect.stringContaining('whose manifest is gone') as string });
    expect(rows.find((r) => r.type === 'failed')).toMatchObject({ status: 'failed', reason: 'No space left on device', durationMs: 500 });
    expect(rows.find((r) => r.type === 'damaged')).toMatchObject({ key: '/r/vms/u/manifests/x.json', reason: 'is invalid: manifest version 9 is not supported' });
    // newest first; an unreadable manifest has no time and comes last
    expect(rows.map((r) => r.type)).toEqual(['failed', 'backup', 'backup', 'backup', 'damaged']);
  });

  it('sort by any figure with rows that lack it last, and filter by words, kind and problems', () => {
    const rows = backupRows(inv());
    expect(sortRows(rows, { key: 'size', dir: 'asc' }).map((r) => r.key.slice(-4))).toEqual(['000c', '000b', '000a', '00ff', 'json']);
    expect(sortRows(rows, { key: 'throughput', dir: 'desc' })[0]!.key).toBe(A);
    expect(sortRows(rows, { key: 'verified', dir: 'desc' }).slice(0, 2).map((r) => r.key)).toEqual([B, A]);
    expect(filterRows(rows, { text: '', kind: 'all', problems: false }).map((r) => r.key)).toEqual([C, B, A]);
    expect(filterRows(rows, { text: 'space', kind: 'all', problems: true }).map((r) => r.type)).toEqual(['failed']);
    expect(filterRows(rows, { text: 'cp-a', kind: 'all', problems: true }).map((r) => r.key)).toEqual([B, A]);
    // B has a full layer (vdb): it counts as full too
    expect(filterRows(rows, { text: '', kind: 'full', problems: true }).map((r) => r.key)).toEqual([B, A]);
    expect(filterRows(rows, { text: 'verification failed', kind: 'all', problems: true }).map((r) => r.key)).toEqual([B]);
  });

  it('find indirect dependents', () => {
    const list = inv().backups;
    list[2] = rec(C, T + 7200_000, 1_000, [{ name: 'vda', base: B, copied: 0, size: 1 }]);
    expect(dependentsOf(A, list)).toEqual([B, C]);
    expect(dependentsOf(C, list)).toEqual([]);
  });
});

describe('fleet rows', () => {
  const vms: VmSummary[] = [
    { id: 'demo', label: 'Demo VM', endpoint: 'lab', kind: 'demo', connection: 'connected' },
    { id: 'ep-1', label: 'web', endpoint: 'unix:/w', kind: 'endpoint', connection: 'disconnected', detail: 'no such socket' },
    { id: 'ep-2', label: 'db', endpoint: 'unix:/d', kind: 'endpoint', connection: 'connected' },
  ];
  const now = T + 48 * 3600_000;
  const backups: FleetBackups = {
    repo: '/r', exists: true,
    vms: [
      { identity: 'u-demo', vmId: 'demo', backups: 3, running: false, problems: 0, last: { id: B, kind: 'incremental', startedAt: now - 3600_000, completedAt: now - 3600_000 + 5000 }, lastAttempt: { id: B, at: now - 3595_000, outcome: 'succeeded' } },
      { identity: 'u-db', vmId: 'ep-2', backups: 1, running: false, problems: 1, last: { id: A, kind: 'full', startedAt: T, completedAt: T + 1000 }, lastAttempt: { id: C, at: now - 60_000, outcome: 'failed', reason: 'QEMU went away' } },
      { identity: 'old-vm', name: 'old', backups: 2, running: false, problems: 0, last: { id: A, kind: 'full', startedAt: T, completedAt: T } },
    ],
  };
  const facts = {
    demo: { status: 'running', checkpoints: 4, issues: [] },
    'ep-2': { status: 'paused', checkpoints: 0, issues: [{ state: 'bitmap-inconsistent' as const, severity: 'error' as const, disk: 'vda', message: 'm', consequence: 'c' }] },
  };

  it('mark overdue, never backed up, failed and unreadable VMs against the limit', () => {
    const rows = fleetRows(vms, facts, backups, 24 * 3600_000, now);
    expect(rows.map((r) => [r.key, r.alarms])).toEqual([
      ['demo', []], ['ep-1', ['never']], ['ep-2', ['failed', 'overdue', 'unreadable']], ['repo:old-vm', ['overdue']],
    ]);
    expect(rows[0]).toMatchObject({ status: 'running', checkpoints: 4, health: { errors: 0, warnings: 0, known: true }, age: 3600_000 - 5000 });
    expect(rows[1]).toMatchObject({ connection: 'disconnected', detail: 'no such socket', health: { known: false } });
    expect(rows[2]!.health).toEqual({ errors: 1, warnings: 0, known: true });
    expect(rows[3]).toMatchObject({ label: 'old', connection: 'not listed' });
    // a looser limit clears the overdue marks, never the others
    expect(fleetRows(vms, facts, backups, 100 * 3600_000, now).map((r) => r.alarms)).toEqual([[], ['never'], ['failed', 'unreadable'], []]);
  });
});

describe('settings', () => {
  it('keep the age limit, refusing what is out of range', () => {
    expect(parseSettings(null)).toEqual(DEFAULT_SETTINGS);
    expect(parseSettings('{"backupAgeLimitHours": 6}').backupAgeLimitHours).toBe(6);
    expect(parseSettings('{"backupAgeLimitHours": 0}').backupAgeLimitHours).toBe(24);
    expect(parseSettings('{"backupAgeLimitHours": "6"}').backupAgeLimitHours).toBe(24);
    expect(parseSettings('not json').backupAgeLimitHours).toBe(24);
    expect(checkAgeLimit(0.5)).toMatch(/at least 1 hour/);
    expect(checkAgeLimit(NaN)).toMatch(/number/);
    const box = new Map<string, string>();
    const storage = { getItem: (k: string) => box.get(k) ?? null, setItem: (k: string, v: string) => void box.set(k, v) };
    saveSettings({ backupAgeLimitHours: 72 }, storage);
    expect(loadSettings(storage).backupAgeLimitHours).toBe(72);
    expect(loadSettings({ getItem: () => { throw new Error('blocked'); } })).toEqual(DEFAULT_SETTINGS);
  });
});
