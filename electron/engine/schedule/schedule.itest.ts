// Generated schedule units checked by systemd itself (systemd-analyze verify, system and --user),
// and the service's command lines run once by hand, the way systemd runs a oneshot service (each
// ExecStart= in order, stopping at the first failure), against the lab VM: backups are taken and
// pruned by the policy, and a run that overlaps a running backup is refused with a clear message.

import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareWith, MiB, startBackupRig, stopBackupRig, type BackupRig } from '../backup/itest-helpers';
import { BackupLock } from '../backup/lock';
import { describeFailures, verifyBackups } from '../backup/verify';
import { findSystemdAnalyze } from './calendar';
import { parseExecStart, type ScheduleSpec } from './spec';
import { addSchedule, scheduleTarget } from './store';
import { BUSY_EXIT_STATUS } from './units';

const STUB = path.join(__dirname, 'testing', 'tidemark-stub.cjs');
const REAL_BIN = path.join(__dirname, '..', '..', '..', 'bin', 'tidemark.js');
const analyze = findSystemdAnalyze();

function verifyUnits(files: string[], user: boolean, runtimeDir: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(analyze!, [...(user ? ['--user'] : []), 'verify', ...files], { env: { ...process.env, XDG_RUNTIME_DIR: runtimeDir, SYSTEMD_LOG_COLOR: '0' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: `${stdout}${stderr}`.trim() });
    });
  });
}

/** Runs a oneshot service's ExecStart= lines in order, as systemd does; stops at the first failure. */
function runService(serviceFile: string): Promise<{ code: number; out: string }[]> {
  const lines = fs.readFileSync(serviceFile, 'utf8').split('\n').filter((l) => l.startsWith('ExecStart='));
  const ok = new Set([0, BUSY_EXIT_STATUS]);
  return (async () => {
    const results: { code: number; out: string }[] = [];
    for (const line of lines) {
      const [cmd, ...args] = parseExecStart(line.slice('ExecStart='.length));
      const r = await new Promise<{ code: number; out: string }>((resolve) => {
        execFile(cmd!, args, { cwd: '/', timeout: 120_000 }, (error, stdout, stderr) => {
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: `${stdout}${stderr}` });
        });
      });
      results.push(r);
      if (!ok.has(r.code)) break;
    }
    return results;
  })();
}

describe('schedules', () => {
  let rig: BackupRig | undefined;
  let unitDir = '';
  let spec: ScheduleSpec;

  beforeAll(async () => {
    rig = await startBackupRig([{ name: 'vda', sizeBytes: 16 * MiB }]);
    unitDir = path.join(rig.root, 'units');
    spec = {
      format: 'tidemark-schedule', version: 1, id: 'lab-hourly', vm: { id: rig.engine.vmId, name: rig.lab.name }, every: 'hourly',
      connect: rig.lab.qmpSecondary, stateDir: rig.stateDir, repo: rig.repo.root, mode: 'push', policy: { last: 2 },
      user: false, command: [process.execPath, STUB], createdAt: Date.now(),
    };
  }, 120_000);
  afterAll(async () => {
    await stopBackupRig(rig);
  });

  it.skipIf(!analyze)('writes units that systemd-analyze verify accepts, for the system and for --user (skipped where systemd-analyze is not installed)', async () => {
    const runtime = path.join(rig!.root, 'runtime');
    fs.mkdirSync(runtime, { mode: 0o700 });
    for (const user of [false, true]) {
      const dir = path.join(unitDir, user ? 'user' : 'system');
      const s = { ...spec, user, command: [process.execPath, REAL_BIN], every: user ? 'Mon..Fri 02:30' : 'daily' };
      const added = await addSchedule(s, scheduleTarget({ user, unitDir: dir }));
      const r = await verifyUnits(added.files, user, runtime);
      expect(r, r.out).toEqual({ code: 0, out: '' });
    }
    // verify does reject a broken unit (so its silence above means something)
    const broken = path.join(unitDir, 'system', 'tidemark-backup-broken.timer');
    fs.writeFileSync(broken, fs.readFileSync(path.join(unitDir, 'system', 'tidemark-backup-lab-hourly.timer'), 'utf8').replace(/^OnCalendar=.*$/m, 'OnCalendar=every other tuesday'));
    const bad = await verifyUnits([broken], false, runtime);
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/calendar specification/i);
  });

  it('runs the generated service once by hand: backup, then prune by the policy', async () => {
    const dir = path.join(unitDir, 'run');
    const added = await addSchedule(spec, scheduleTarget({ user: false, unitDir: dir }));
    const service = added.files[0]!;
    const vmId = rig!.engine.vmId;
    for (let i = 0; i < 3; i++) {
      await rig!.shadow.write('vda', i * 2 * MiB, MiB, 0x40 + i);
      const runs = await runService(service);
      expect(runs.map((r) => r.code), runs.map((r) => r.out).join('\n')).toEqual([0, 0]);
      expect(runs[1]!.out).toMatch(/kept/);
      rig!.shadow.snapshot(`run${i}`);
    }
    const left = rig!.repo.list(vmId);
    expect(left).toHaveLength(2); // --keep-last 2
    const report = await verifyBackups(rig!.repo);
    expect(describeFailures(report)).toEqual([]);
    const newest = left[left.length - 1]!;
    const restored = path.join(rig!.root, 'newest.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', rig!.repo.imagePath(vmId, 'vda', newest.id), restored]);
    expect(compareWith(restored, 'raw', rig!.shadow.snapFile('run2', 'vda'))).toBe('');
  }, 300_000);

  it('refuses a run that overlaps a running backup, saying so, and does not prune', async () => {
    const vmId = rig!.engine.vmId;
    const before = rig!.repo.list(vmId).map((m) => m.id);
    const lock = BackupLock.acquire(rig!.repo, {
      backupId: '20990101-000000-000-0bad', vmId, endpoint: '', startedAt: Date.now(), phase: 'running', kind: 'incremental', executed: true, disks: [], progress: [], log: [],
    });
    try {
      const runs = await runService(path.join(unitDir, 'run', 'tidemark-backup-lab-hourly.service'));
      // Busy is exit 75, a success for systemd (SuccessExitStatus), so the prune runs next: it is
      // refused by the same lock, and nothing is pruned.
      expect(runs.map((r) => r.code)).toEqual([75, 75]);
      expect(runs[0]!.out).toMatch(/already running: backup 20990101-000000-000-0bad/);
      expect(runs[1]!.out).toMatch(/20990101-000000-000-0bad/);
    } finally {
      lock.release();
    }
    expect(rig!.repo.list(vmId).map((m) => m.id)).toEqual(before);
  }, 120_000);
});
