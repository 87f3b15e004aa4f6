import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRetentionFlags, retentionFlags } from '../retention/policy-args';
import { checkCalendar, cronSchedule, findSystemdAnalyze, nextSimple, parseSimpleCalendar } from './calendar';
import { defaultScheduleId, parseExecStart, runCommands, shellArg, systemdArg, validateSchedule, type ScheduleSpec } from './spec';
import { addSchedule, listSchedules, removeSchedule, scheduleTarget, type ScheduleHost } from './store';
import { cronFile, readMarker, serviceUnit, timerUnit } from './units';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tm-sched-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const spec = (over: Partial<ScheduleSpec> = {}): ScheduleSpec => ({
  format: 'tidemark-schedule', version: 1, id: 'web-daily', vm: { id: 'uuid-1', name: 'web 100%' }, every: 'daily',
  connect: 'unix:/run/vm/qmp sock', stateDir: '/var/lib/tide mark', repo: '/srv/backups/$repo', mode: 'push',
  policy: { last: 3, daily: 7 }, maxChain: 20, user: false, command: ['/usr/bin/node', '/opt/tidemark/bin/tidemark.js'], createdAt: 1, ...over,
});

describe('schedule commands and quoting', () => {
  it('quotes arguments for ExecStart= and reads them back', () => {
    for (const a of ['plain', 'a b', '100%', '%h', '$HOME', '${X}', '"q"', 'back\\slash', ';', '', "it's", 'tab\tnot', 'x;y']) {
      if (a.includes('\t')) {
        expect(() => systemdArg(a)).toThrow(/control character/);
        continue;
      }
      expect(parseExecStart(`${systemdArg(a)} ${systemdArg('next')}`)).toEqual([a, 'next']);
    }
    expect(systemdArg('100%')).toBe('100%%');
    expect(systemdArg('$HOME')).toBe('$$HOME');
  });

  it('quotes arguments for /bin/sh (cron) so the shell sees them unchanged', () => {
    const args = ['plain', 'a b', "it's", '$HOME', '`id`', 'x;y', '*', ''];
    const out = execFileSync('/bin/sh', ['-c', `printf '%s\\n' ${args.map(shellArg).join(' ')}`], { encoding: 'utf8' });
    expect(out.split('\n').slice(0, -1)).toEqual(args);
    expect(shellArg('100%')).toBe("'100\\%'"); // cron turns an unescaped % into a newline
  });

  it('runs backup-begin then backup-prune with the same connection, state and repository', () => {
    const [begin, prune] = runCommands(spec({ mode: 'pull' }));
    expect(begin).toEqual(['/usr/bin/node', '/opt/tidemark/bin/tidemark.js', '--connect', 'unix:/run/vm/qmp sock', '--state-dir', '/var/lib/tide mark', 'backup-begin', '--repo', '/srv/backups/$repo', '--mode', 'pull']);
    expect(prune).toEqual(['/usr/bin/node', '/opt/tidemark/bin/tidemark.js', '--connect', 'unix:/run/vm/qmp sock', '--state-dir', '/var/lib/tide mark', 'backup-prune', '--repo', '/srv/backups/$repo', '--keep-last', '3', '--keep-daily', '7', '--max-chain', '20']);
    expect(runCommands(spec({ policy: undefined, maxChain: undefined }))).toHaveLength(1);
    expect(parseRetentionFlags(prune!.slice(6))).toEqual({ policy: { last: 3, daily: 7 }, maxChain: 20, rest: ['backup-prune', '--repo', '/srv/backups/$repo'] });
    expect(retentionFlags({ policy: { yearly: 2, last: 1, weekly: 0 } })).toEqual(['--keep-last', '1', '--keep-yearly', '2']);
    expect(() => parseRetentionFlags(['--keep-daily', 'seven'])).toThrow(/--keep-daily must be a whole number/);
    expect(() => parseRetentionFlags(['--max-chain=0'])).toThrow(/--max-chain must be a whole number of layers from 1/);
  });

  it('refuses what would make a broken or unsafe unit', () => {
    expect(() => validateSchedule(spec({ id: 'Web' }))).toThrow(/schedule id "Web"/);
    expect(() => validateSchedule(spec({ stateDir: 'state' }))).toThrow(/--state-dir "state" must be an absolute path/);
    expect(() => validateSchedule(spec({ repo: '/a\nb' }))).toThrow(/control character/);
    expect(() => validateSchedule(spec({ connect: '/run/qmp.sock' }))).toThrow(/must be unix:PATH or tcp:HOST:PORT/);
    expect(() => validateSchedule(spec({ command: ['tidemark'] }))).toThrow(/absolute program path/);
    expect(() => validateSchedule(spec({ policy: { daily: -1 } }))).toThrow(/--keep-daily/);
    expect(defaultScheduleId('Web Server #1', 'daily')).toBe('web-server-1-daily');
    expect(defaultScheduleId('db', 'Mon 02:00')).toBe('db-custom');
  });

  it('writes a oneshot service and a persistent timer that carry the schedule', () => {
    const svc = serviceUnit(spec());
    const timer = timerUnit(spec());
    const execs = svc.split('\n').filter((l) => l.startsWith('ExecStart=')).map((l) => parseExecStart(l.slice('ExecStart='.length)));
    expect(execs).toEqual(runCommands(spec()));
    expect(svc).toMatch(/^Type=oneshot$/m);
    expect(svc).toMatch(/^SuccessExitStatus=75$/m);
    expect(svc).toMatch(/^Description=Tidemark backup of VM web 100_ \(schedule web-daily, daily\)$/m);
    expect(timer).toMatch(/^OnCalendar=daily$/m);
    expect(timer).toMatch(/^Persistent=true$/m);
    expect(timer).toMatch(/^Unit=tidemark-backup-web-daily\.service$/m);
    expect(timer).toMatch(/^WantedBy=timers\.target$/m);
    expect(readMarker(svc, 'x.service')).toEqual(spec());
    expect(readMarker(timer, 'x.timer')).toEqual(spec());
    expect(() => readMarker('[Unit]\n', 'foreign.service')).toThrow(/foreign.service was not written by Tidemark/);
    expect(() => readMarker('# tidemark-schedule: {"format":"tidemark-schedule","version":2}', 'old.service')).toThrow(/damaged: .*version 2/);
  });

  it('writes a cron line for hosts without systemd', () => {
    const line = cronFile(spec({ every: 'Mon 02:30' }), { system: true }).trim().split('\n').pop()!;
    expect(line).toMatch(/^30 2 \* \* 1 root \{ \/usr\/bin\/node \/opt\/tidemark\/bin\/tidemark\.js --connect 'unix:\/run\/vm\/qmp sock' .* backup-begin .* && .* backup-prune .*; \} 2>&1 \| logger -t tidemark-backup-web-daily$/);
    expect(cronSchedule('hourly')).toBe('0 * * * *');
    expect(cronSchedule('daily')).toBe('0 0 * * *');
    expect(cronSchedule('weekly')).toBe('0 0 * * 1');
    expect(cronSchedule('monthly')).toBe('0 0 1 * *');
    expect(cronSchedule('*-*-* 04:15:00')).toBe('15 4 * * *');
    expect(() => cronSchedule('Mon..Fri 02:00')).toThrow(/cannot be written as a cron schedule/);
    expect(() => cronSchedule('*-*-* 04:15:30')).toThrow(/cron/);
  });
});

describe('calendar', () => {
  const base = Date.UTC(2024, 2, 9, 13, 47, 12); // a Saturday
  it('computes the next run of the common forms', () => {
    const next = (e: string) => new Date(nextSimple(parseSimpleCalendar(e)!, base)).toISOString();
    if (new Date(base).getTimezoneOffset() !== 0) return; // the expectations are in UTC
    expect(next('hourly')).toBe('2024-03-09T14:00:00.000Z');
    expect(next('daily')).toBe('2024-03-10T00:00:00.000Z');
    expect(next('weekly')).toBe('2024-03-11T00:00:00.000Z');
    expect(next('monthly')).toBe('2024-04-01T00:00:00.000Z');
    expect(next('Sat 13:47')).toBe('2024-03-16T13:47:00.000Z');
    expect(next('*-*-* 13:47:13')).toBe('2024-03-09T13:47:13.000Z');
    expect(parseSimpleCalendar('Mon..Fri 02:00')).toBeUndefined();
    expect(parseSimpleCalendar('25:00')).toBeUndefined();
  });

  const analyze = findSystemdAnalyze();
  it.skipIf(!analyze)('agrees with systemd-analyze calendar (skipped where systemd-analyze is not installed)', async () => {
    for (const e of ['hourly', 'daily', 'weekly', 'monthly', 'Tue 04:05', '*-*-* 23:59:59', 'Sunday *-*-* 00:30']) {
      const viaSystemd = await checkCalendar(e, { now: base });
      const ours = await checkCalendar(e, { now: base, systemdAnalyze: null });
      expect(ours.next, e).toBe(viaSystemd.next);
    }
    await expect(checkCalendar('every other tuesday', { now: base })).rejects.toThrow(/is not a calendar expression systemd accepts/);
    expect((await checkCalendar('Mon..Fri 02:30', { now: base })).normalized).toBe('Mon..Fri *-*-* 02:30:00');
  });
});

describe('schedule store', () => {
  const fakeHost = (running: boolean, fail?: string): ScheduleHost & { calls: string[] } => {
    const calls: string[] = [];
    return {
      calls, env: { HOME: '/home/u', XDG_CONFIG_HOME: '/home/u/.cfg' }, systemdRunning: () => running,
      run: async (cmd, args) => {
        calls.push([cmd, ...args].join(' '));
        return fail && args.includes(fail) ? { code: 1, out: '', err: `Failed to ${fail} unit` } : { code: 0, out: '', err: '' };
      },
    };
  };

  it('picks systemd folders, cron, or the given --unit-dir', () => {
    expect(scheduleTarget({ user: false }, fakeHost(true))).toEqual({ kind: 'systemd', dir: '/etc/systemd/system', user: false, manage: true });
    expect(scheduleTarget({ user: true }, fakeHost(true))).toEqual({ kind: 'systemd', dir: '/home/u/.cfg/systemd/user', user: true, manage: true });
    expect(scheduleTarget({ user: false }, fakeHost(false))).toEqual({ kind: 'cron', dir: '/etc/cron.d', user: false, manage: false });
    expect(scheduleTarget({ user: true }, fakeHost(false))).toEqual({ kind: 'cron', dir: '/home/u/.cfg/tidemark/cron', user: true, manage: false });
    expect(scheduleTarget({ user: false, unitDir: '/pkg/units' }, fakeHost(true))).toEqual({ kind: 'systemd', dir: '/pkg/units', user: false, manage: false });
    expect(() => scheduleTarget({ user: false, unitDir: 'units' })).toThrow(/must be an absolute path/);
  });

  it('adds, lists and removes schedules in a unit folder; refuses duplicates and leaves foreign files alone', async () => {
    const dir = tmp();
    const t = scheduleTarget({ user: false, unitDir: dir });
    const host = fakeHost(false);
    const added = await addSchedule(spec(), t, host);
    expect(added.files.map((f) => path.basename(f))).toEqual(['tidemark-backup-web-daily.service', 'tidemark-backup-web-daily.timer']);
    expect(added.todo[0]).toMatch(/systemctl daemon-reload && systemctl enable --now tidemark-backup-web-daily\.timer/);
    expect(fs.statSync(added.files[0]!).mode & 0o777).toBe(0o644);
    await expect(addSchedule(spec(), t, host)).rejects.toThrow(/schedule web-daily already exists/);
    await addSchedule(spec({ id: 'db-hourly', every: 'hourly', vm: { id: 'db' } }), t, host);
    fs.writeFileSync(path.join(dir, 'tidemark-backup-foreign.service'), '[Service]\nExecStart=/bin/true\n');
    const listed = await listSchedules(t, { now: Date.UTC(2024, 0, 1, 12) });
    expect(listed.schedules.map((s) => s.spec.id)).toEqual(['db-hourly', 'web-daily']);
    expect(listed.schedules[0]!.next).toBeGreaterThan(Date.UTC(2024, 0, 1, 12));
    expect(listed.problems).toEqual([expect.objectContaining({ message: expect.stringMatching(/not written by Tidemark/) })]);
    await expect(removeSchedule('foreign', t, host)).rejects.toThrow(/not written by Tidemark/);
    expect(fs.existsSync(path.join(dir, 'tidemark-backup-foreign.service'))).toBe(true);
    expect((await removeSchedule('web-daily', t, host)).removed).toHaveLength(2);
    await expect(removeSchedule('web-daily', t, host)).rejects.toThrow(/there is no schedule "web-daily"/);
    expect(host.calls).toEqual([]); // --unit-dir never calls systemctl
    await expect(addSchedule(spec({ id: 'bad', every: 'every other tuesday' }), t, host)).rejects.toThrow(/every other tuesday/);
    expect(fs.existsSync(path.join(dir, 'tidemark-backup-bad.service'))).toBe(false);
  });

  it('enables the timer through systemctl, and takes the files back when that fails', async () => {
    const dir = tmp();
    const host = fakeHost(true);
    const t = { ...scheduleTarget({ user: true }, host), dir };
    await addSchedule(spec({ user: true }), t, host);
    expect(host.calls).toEqual(['systemctl --user daemon-reload', 'systemctl --user enable --now tidemark-backup-web-daily.timer']);
    await removeSchedule('web-daily', t, host);
    expect(host.calls.slice(2)).toEqual(['systemctl --user disable --now tidemark-backup-web-daily.timer', 'systemctl --user daemon-reload']);
    const failing = fakeHost(true, 'enable');
    await expect(addSchedule(spec({ user: true }), t, failing)).rejects.toThrow(/systemctl --user enable --now tidemark-backup-web-daily.timer failed: Failed to enable unit/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('writes a cron file without systemd', async () => {
    const dir = tmp();
    const t = { ...scheduleTarget({ user: false }, fakeHost(false)), dir };
    const added = await addSchedule(spec({ every: 'weekly' }), t, fakeHost(false));
    expect(added.files.map((f) => path.basename(f))).toEqual(['tidemark-backup-web-daily']); // cron.d ignores names with dots
    expect(fs.readFileSync(added.files[0]!, 'utf8')).toMatch(/^0 0 \* \* 1 root \{/m);
    expect((await listSchedules(t)).schedules.map((s) => s.spec.every)).toEqual(['weekly']);
    await expect(addSchedule(spec({ id: 'x', every: 'Mon..Fri 02:00' }), t, fakeHost(false))).rejects.toThrow(/cron/);
  });
});
