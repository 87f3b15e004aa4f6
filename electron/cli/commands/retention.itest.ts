// backup-prune, backup-merge, schedules and quiesce through the real `tidemark` CLI (bin/tidemark.js
// as a child process) against a real demo VM: a push chain is pruned (dry run first, then for real)
// and every kept point restores the same bytes as before; a running backup or prune makes the other
// exit 75; an interrupted prune is reported by backup-verify, refused by restore and finished by the
// next backup-begin; schedules go into a temporary unit folder; quiesce is refused without a guest
// agent and freezes and thaws a fake one around the transaction.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupRecord, RetentionReport, ScheduleAddResult, ScheduleListing } from '../../../shared/contract';
import { BackupLock } from '../../engine/backup/lock';
import { BackupRepository } from '../../engine/backup/repository';
import { startLab, stopLab } from '../../engine/lab/labvm';
import { readJournal } from '../../engine/retention/journal';
import { applyRetention } from '../../engine/retention/retention';
import { startFakeAgent, type FakeAgent } from '../../qga/fake-agent';
import { runTidemark, type CliRun } from '../run-cli';

const MiB = 1024 * 1024;
const DISKS = [{ name: 'vda', sizeBytes: 16 * MiB }, { name: 'vdb', sizeBytes: 8 * MiB }];

describe('retention, schedules and quiesce through the CLI', () => {
  let dir = '';
  let repo = '';
  let vmKey = '';
  const tidemark = (args: string[]): Promise<CliRun> => runTidemark(dir, args, { timeoutMs: 120_000 });
  const ok = async (args: string[]): Promise<string> => {
    const r = await tidemark(args);
    if (r.code !== 0) throw new Error(`tidemark ${args.join(' ')} exited ${r.code}: ${r.err}`);
    return r.out;
  };
  const backup = async (...extra: string[]): Promise<BackupRecord> => JSON.parse(await ok(['backup-begin', '--repo', repo, '--json', ...extra])) as BackupRecord;
  const list = async (): Promise<BackupRecord[]> => JSON.parse(await ok(['backup-list', '--repo', repo, '--json'])) as BackupRecord[];
  const write = (disk: string, mib: number) => ok(['lab', 'write', '--disk', disk, '--pattern', 'random', '--mib', String(mib)]);
  /** Restores every disk of a point to files under `tag`; returns their paths by disk. */
  const restorePoint = async (id: string, tag: string): Promise<Map<string, string>> => {
    const out = new Map<string, string>();
    for (const d of DISKS) {
      const to = path.join(dir, 'restored', tag, `${id}-${d.name}.qcow2`);
      fs.mkdirSync(path.dirname(to), { recursive: true });
      await ok(['restore', '--repo', repo, '--backup', id, '--disk', d.name, '--to', to]);
      out.set(d.name, to);
    }
    return out;
  };
  const sameBytes = (a: string, b: string) => execFileSync('qemu-img', ['compare', '-q', a, b], { stdio: 'pipe' });
  const modeOf = (f: string) => fs.statSync(f).mode & 0o777;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmret-'));
    repo = path.join(dir, 'repo');
    await startLab({ dir: path.join(dir, 'lab'), disks: DISKS });
    // A chain: full, then three incrementals, with writes between.
    await write('vda', 2);
    const full = await backup('--full');
    vmKey = full.vm.id;
    for (let i = 0; i < 3; i++) {
      await write(i % 2 ? 'vdb' : 'vda', 1);
      await backup();
    }
  }, 240_000);
  afterAll(async () => {
    await stopLab(path.join(dir, 'lab')).catch(() => undefined);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a prune without rules (usage, exit 2) and a policy of zeros', async () => {
    const none = await tidemark(['backup-prune', '--repo', repo]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/^error: backup-prune needs keep rules \(--keep-last/);
    const zero = await tidemark(['backup-prune', '--repo', repo, '--keep-daily', '0']);
    expect(zero.code).toBe(2);
    expect(zero.err).toContain('every keep rule is 0');
    const bad = await tidemark(['backup-prune', '--repo', repo, '--keep-last', 'two']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('option --keep-last must be a whole number');
  });

  it('prune --dry-run shows the plan (table and JSON) and changes nothing', async () => {
    const before = await list();
    const files = fs.readdirSync(path.join(repo, 'vms'), { recursive: true }).map(String).sort();
    const text = await ok(['backup-prune', '--repo', repo, '--keep-last', '2', '--dry-run']);
    expect(text).toMatch(/POINT\s+TAKEN/);
    expect(text).toContain('2 kept, 2 removed');
    expect(text).toContain('Dry run: nothing changed');
    const r = JSON.parse(await ok(['backup-prune', '--repo', repo, '--keep-last', '2', '--dry-run', '--json'])) as RetentionReport;
    expect(r.dryRun).toBe(true);
    expect(r.kept.map((k) => k.id)).toEqual([before[3]!.id, before[2]!.id]);
    expect(r.removed.map((k) => k.id)).toEqual([before[1]!.id, before[0]!.id]);
    expect(r.kept[0]!.reasons).toEqual(['keep-last']);
    // The two oldest layers of each disk fold into the oldest kept point, which becomes a full.
    expect(r.merged.map((m) => [m.disk, m.child, m.layers.length, m.becomesFull])).toEqual(
      expect.arrayContaining([['vda', before[2]!.id, 2, true], ['vdb', before[2]!.id, 2, true]]),
    );
    expect(r.preview.rows.map((x) => x.keep)).toEqual([true, true, false, false]);
    expect(await list()).toEqual(before);
    expect(fs.readdirSync(path.join(repo, 'vms'), { recursive: true }).map(String).sort()).toEqual(files);
  });

  it('prune for real: every kept point restores the same bytes, verify passes, rewritten layers are 0600, and the next backup builds on it', async () => {
    const before = await list();
    const kept = [before[3]!.id, before[2]!.id];
    const earlier = new Map(await Promise.all(kept.map(async (id) => [id, await restorePoint(id, 'before')] as const)));
    const r = JSON.parse(await ok(['backup-prune', '--repo', repo, '--keep-last', '2', '--json'])) as RetentionReport;
    expect(r.dryRun).toBe(false);
    expect(r.removed.map((x) => x.id).sort()).toEqual([before[0]!.id, before[1]!.id].sort());
    expect(r.result!.stepsRun).toBe(r.result!.stepsTotal);
    expect(r.result!.bytesFreed).toBeGreaterThan(0);
    const after = await list();
    expect(after.map((b) => b.id)).toEqual([before[2]!.id, before[3]!.id]);
    expect(after[0]!.kind).toBe('full');
    for (const id of kept) {
      const now = await restorePoint(id, 'after');
      for (const d of DISKS) sameBytes(earlier.get(id)!.get(d.name)!, now.get(d.name)!);
    }
    const rewritten = path.join(repo, 'vms', fs.readdirSync(path.join(repo, 'vms'))[0]!, 'disks', 'vda', `${before[2]!.id}.qcow2`);
    expect(modeOf(rewritten)).toBe(0o600);
    expect(await ok(['backup-verify', '--repo', repo])).toContain('All 2 backup(s) verified');
    await write('vda', 1);
    const next = await backup();
    expect(next.kind).toBe('incremental');
    expect(next.since).toBe(before[3]!.checkpoint);
  });

  it('backup-merge --max-chain bounds the chain; its dry run says what it would fold', async () => {
    const dry = JSON.parse(await ok(['backup-merge', '--repo', repo, '--max-chain', '2', '--dry-run', '--json'])) as RetentionReport;
    expect(dry.removed).toHaveLength(1);
    const r = JSON.parse(await ok(['backup-merge', '--repo', repo, '--max-chain', '2', '--json'])) as RetentionReport;
    expect(r.removed.map((x) => x.id)).toEqual(dry.removed.map((x) => x.id));
    expect(r.preview.rows.filter((x) => x.keep).every((x) => x.layers.every((l) => (l.chainLength ?? 0) <= 2))).toBe(true);
    expect((await list()).length).toBe(2);
    const missing = await tidemark(['backup-merge', '--repo', repo]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('backup-merge needs --max-chain N');
  });

  it('a running backup makes a prune exit 75, and a running prune makes a backup exit 75', async () => {
    const r = BackupRepository.open(repo);
    const init = { vmId: vmKey, endpoint: '', startedAt: Date.now(), phase: 'running' as const, kind: 'incremental' as const, executed: true, disks: [], progress: [], log: [] };
    const backupLock = BackupLock.acquire(r, { ...init, backupId: '20261204-000000-000-aaaa' });
    try {
      const p = await tidemark(['backup-prune', '--repo', repo, '--keep-last', '1']);
      expect(p.code).toBe(75);
      expect(p.err).toMatch(/^error: a backup of VM .* is running \(backup 20261204-000000-000-aaaa, process \d+\); prune or merge when it has finished\n$/);
    } finally {
      backupLock.release();
    }
    const pruneLock = BackupLock.acquire(r, { ...init, backupId: 'retention-20261204000000', purpose: 'retention' });
    try {
      const b = await tidemark(['backup-begin', '--repo', repo]);
      expect(b.code).toBe(75);
      expect(b.err).toMatch(/a prune or merge of VM .*'s backups is running \(process \d+/);
    } finally {
      pruneLock.release();
    }
    expect((await list()).length).toBe(2); // nothing was added or removed
  });

  it('an interrupted prune: verify says so, restore refuses, the next backup-begin finishes it first', async () => {
    await write('vdb', 1);
    await backup();
    const r = BackupRepository.open(repo);
    const stop = new Error('stopped by the test');
    await expect(applyRetention({ repo: r, vmId: vmKey, policy: { last: 1 }, onPhase: (p) => { if (p === 'fold:committed') throw stop; } }))
      .rejects.toThrow(/stopped inside step/);
    expect(readJournal(r, vmKey)).toBeDefined();
    const v = await tidemark(['backup-verify', '--repo', repo]);
    expect(v.code).toBe(1);
    expect(v.out).toMatch(/an interrupted prune --keep-last 1 of VM .* has \d+ of \d+ step\(s\) left/);
    expect(v.out).toContain('tidemark backup-prune --finish --repo');
    const newest = (await list()).at(-1)!;
    const rs = await tidemark(['restore', '--repo', repo, '--backup', newest.id, '--disk', 'vda', '--to', path.join(dir, 'refused.qcow2')]);
    expect(rs.code).toBe(1);
    expect(rs.err).toContain(`cannot restore backup ${newest.id} yet: an interrupted prune`);
    expect(fs.existsSync(path.join(dir, 'refused.qcow2'))).toBe(false);
    const next = await backup();
    expect(readJournal(r, vmKey)).toBeUndefined();
    const ids = (await list()).map((b) => b.id);
    expect(ids).toEqual([newest.id, next.id]);
    expect(await ok(['backup-verify', '--repo', repo])).toContain('All 2 backup(s) verified');
  });

  it('schedule add, list and remove in a unit folder', async () => {
    const unitDir = path.join(dir, 'units');
    const add = JSON.parse(await ok(['schedule', 'add', '--every', 'daily', '--repo', repo, '--keep-daily', '7', '--keep-weekly', '4', '--max-chain', '10', '--unit-dir', unitDir, '--json'])) as ScheduleAddResult;
    expect(add.schedule.id).toMatch(/-daily$/);
    expect(add.schedule.policy).toEqual({ daily: 7, weekly: 4 });
    expect(add.schedule.files.map((f) => path.basename(f))).toEqual([`tidemark-backup-${add.schedule.id}.service`, `tidemark-backup-${add.schedule.id}.timer`]);
    expect(add.todo[0]).toContain('daemon-reload');
    const service = fs.readFileSync(add.schedule.files[0]!, 'utf8');
    expect(service).toContain('backup-begin --repo');
    expect(service).toMatch(/backup-prune --repo \S+ --keep-daily 7 --keep-weekly 4 --max-chain 10/);
    expect(service).toContain(add.schedule.connect); // the demo VM's second socket
    const again = await tidemark(['schedule', 'add', '--every', 'daily', '--repo', repo, '--unit-dir', unitDir]);
    expect(again.code).toBe(1);
    expect(again.err).toContain(`schedule ${add.schedule.id} already exists`);
    const badCal = await tidemark(['schedule', 'add', '--every', 'every full moon', '--id', 'moon', '--unit-dir', unitDir]);
    expect(badCal.code).toBe(1);
    expect(badCal.err).toContain('--every "every full moon"');
    const listed = JSON.parse(await ok(['schedule', 'list', '--unit-dir', unitDir, '--json'])) as ScheduleListing;
    expect(listed.schedules.map((s) => s.id)).toEqual([add.schedule.id]);
    expect(listed.schedules[0]!.next).toBeGreaterThan(Date.now());
    expect(await ok(['schedule', 'list', '--unit-dir', unitDir])).toContain('keep-daily 7, keep-weekly 4, max-chain 10');
    fs.writeFileSync(path.join(unitDir, 'unrelated.service'), '[Service]\n');
    expect(await ok(['schedule', 'remove', add.schedule.id, '--unit-dir', unitDir])).toContain(`Schedule ${add.schedule.id} removed`);
    expect(fs.readdirSync(unitDir)).toEqual(['unrelated.service']);
    const gone = await tidemark(['schedule', 'remove', add.schedule.id, '--unit-dir', unitDir]);
    expect(gone.code).toBe(1);
    expect(gone.err).toContain(`there is no schedule "${add.schedule.id}"`);
  });

  describe('quiesce', () => {
    let agent: FakeAgent | undefined;
    beforeAll(async () => {
      agent = await startFakeAgent();
    });
    afterAll(async () => {
      await agent?.close();
    });

    it('is refused clearly when the VM has no guest agent, and nothing is created', async () => {
      const cps = await ok(['checkpoint-list', '--name']);
      const c = await tidemark(['checkpoint-create-as', 'q-none', '--quiesce']);
      expect(c.code).toBe(1);
      expect(c.err).toMatch(/^error: quiesce needs the QEMU guest agent, and the VM has no org\.qemu\.guest_agent\.0 channel/);
      const b = await tidemark(['backup-begin', '--repo', repo, '--quiesce']);
      expect(b.code).toBe(1);
      expect(b.err).toContain('quiesce needs the QEMU guest agent');
      expect(await ok(['checkpoint-list', '--name'])).toBe(cps);
      const usage = await tidemark(['checkpoint-create-as', 'q-x', '--agent', agent!.endpoint]);
      expect(usage.code).toBe(2);
      expect(usage.err).toContain('--agent only applies with --quiesce');
    });

    it('freezes a guest agent just for the transaction and thaws it (checkpoint and backup)', async () => {
      await ok(['checkpoint-create-as', 'q1', '--quiesce', '--agent', agent!.endpoint]);
      expect(agent!.state).toMatchObject({ frozen: false, freezes: 1, thaws: 1 });
      const cmds = agent!.received.filter((c) => c.startsWith('guest-fsfreeze-'));
      expect(cmds).toEqual(['guest-fsfreeze-status', 'guest-fsfreeze-freeze', 'guest-fsfreeze-thaw']);
      const b = await backup('--quiesce', '--agent', agent!.endpoint);
      expect(b.checkpoint).toBeDefined();
      expect(agent!.state).toMatchObject({ frozen: false, freezes: 2, thaws: 2 });
    });
  });
});
