// Installing, listing and removing schedules. Where: the systemd unit folder (system:
// /etc/systemd/system; --user: $XDG_CONFIG_HOME/systemd/user), or `--unit-dir DIR` for packaging
// and tests (files only, systemctl is not called); where systemd is not the init system, a cron
// file (/etc/cron.d/tidemark-backup-<id>; --user: a file under $XDG_CONFIG_HOME/tidemark/cron
// whose line the user adds with `crontab -e`). Files are written atomically; only files that carry
// Tidemark's schedule line are ever removed.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../../os/atomic-file';
import { checkCalendar, cronSchedule } from './calendar';
import { unitName, validateSchedule, type ScheduleSpec } from './spec';
import { cronFile, readMarker, serviceUnit, timerUnit } from './units';

export interface ScheduleTarget {
  kind: 'systemd' | 'cron';
  dir: string;
  user: boolean;
  /** Call systemctl (systemd: the real unit folder of a running systemd). */
  manage: boolean;
}

export interface ScheduleHost {
  /** True when systemd is the running init system (sd_booted: /run/systemd/system exists). */
  systemdRunning(): boolean;
  run(cmd: string, args: string[]): Promise<{ code: number; out: string; err: string }>;
  env: NodeJS.ProcessEnv;
}

export const realHost: ScheduleHost = {
  systemdRunning: () => fs.existsSync('/run/systemd/system'),
  run: (cmd, args) => new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: String(stdout), err: String(stderr) });
    });
  }),
  env: process.env,
};

function configHome(env: NodeJS.ProcessEnv): string {
  return env.XDG_CONFIG_HOME && path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : path.join(env.HOME ?? os.homedir(), '.config');
}

/** Where schedules go for these options. */
export function scheduleTarget(options: { user: boolean; unitDir?: string; cron?: boolean }, host: ScheduleHost = realHost): ScheduleTarget {
  if (options.unitDir !== undefined) {
    if (!path.isAbsolute(options.unitDir)) throw new Error(`--unit-dir ${JSON.stringify(options.unitDir)} must be an absolute path`);
    return { kind: options.cron ? 'cron' : 'systemd', dir: options.unitDir, user: options.user, manage: false };
  }
  if (!options.cron && host.systemdRunning()) {
    return { kind: 'systemd', dir: options.user ? path.join(configHome(host.env), 'systemd', 'user') : '/etc/systemd/system', user: options.user, manage: true };
  }
  return options.user
    ? { kind: 'cron', dir: path.join(configHome(host.env), 'tidemark', 'cron'), user: true, manage: false }
    : { kind: 'cron', dir: '/etc/cron.d', user: false, manage: false };
}

function filesOf(t: ScheduleTarget, id: string): string[] {
  return t.kind === 'systemd' ? [path.join(t.dir, unitName(id, 'service')), path.join(t.dir, unitName(id, 'timer'))] : [path.join(t.dir, `tidemark-backup-${id}`)];
}

async function systemctl(t: ScheduleTarget, host: ScheduleHost, args: string[]): Promise<void> {
  const argv = [...(t.user ? ['--user'] : []), ...args];
  const r = await host.run('systemctl', argv);
  if (r.code !== 0) throw new Error(`systemctl ${argv.join(' ')} failed: ${(r.err || r.out).trim().split('\n').pop() ?? `exit ${r.code}`}`);
}

export interface AddResult {
  spec: ScheduleSpec;
  files: string[];
  /** systemd's normalized form of the calendar expression (or ours without systemd). */
  normalized: string;
  next?: number;
  /** What remains for the admin (packaging, cron --user); empty when the schedule is active. */
  todo: string[];
}

export async function addSchedule(spec: ScheduleSpec, t: ScheduleTarget, host: ScheduleHost = realHost, options: { now?: number } = {}): Promise<AddResult> {
  validateSchedule(spec);
  if (spec.user !== t.user) throw new Error('internal: schedule and target disagree about --user');
  const cal = await checkCalendar(spec.every, { now: options.now });
  if (t.kind === 'cron') cronSchedule(spec.every);
  const files = filesOf(t, spec.id);
  const existing = files.filter((f) => fs.existsSync(f));
  if (existing.length > 0) throw new Error(`schedule ${spec.id} already exists (${existing.join(', ')}); remove it first with: tidemark schedule remove ${spec.id}`);
  fs.mkdirSync(t.dir, { recursive: true });
  // Unit and cron files are read by the service manager or cron, and hold no secrets: 0644.
  const contents = t.kind === 'systemd' ? [serviceUnit(spec), timerUnit(spec)] : [cronFile(spec, { system: !t.user })];
  const written: string[] = [];
  try {
    files.forEach((f, i) => {
      writeFileAtomic(f, contents[i]!, { mode: 0o644 });
      written.push(f);
    });
    if (t.manage) {
      await systemctl(t, host, ['daemon-reload']);
      await systemctl(t, host, ['enable', '--now', unitName(spec.id, 'timer')]);
    }
  } catch (e) {
    for (const f of written) fs.rmSync(f, { force: true });
    if (t.manage) await systemctl(t, host, ['daemon-reload']).catch(() => undefined);
    throw e;
  }
  const todo: string[] = [];
  const sc = t.user ? 'systemctl --user' : 'systemctl';
  if (t.kind === 'systemd' && !t.manage) todo.push(`copy ${files.join(' and ')} into the ${t.user ? 'user' : 'system'} unit folder, then: ${sc} daemon-reload && ${sc} enable --now ${unitName(spec.id, 'timer')}`);
  if (t.kind === 'cron' && t.user) todo.push(`add this line with crontab -e: ${contents[0]!.trim().split('\n').pop()}`);
  return { spec, files, normalized: cal.normalized, ...(cal.next !== undefined ? { next: cal.next } : {}), todo };
}

export interface ListedSchedule {
  spec: ScheduleSpec;
  files: string[];
  /** The calendar's next elapse (undefined when it cannot be computed here). */
  next?: number;
}

/** The schedules in the target folder, plus files that look like ours but cannot be read. */
export async function listSchedules(t: ScheduleTarget, options: { now?: number } = {}): Promise<{ schedules: ListedSchedule[]; problems: { file: string; message: string }[] }> {
  const schedules: ListedSchedule[] = [];
  const problems: { file: string; message: string }[] = [];
  let names: string[] = [];
  try {
    names = fs.readdirSync(t.dir).sort();
  } catch {
    return { schedules, problems };
  }
  const main = t.kind === 'systemd' ? /^tidemark-backup-([a-z0-9-]+)\.service$/ : /^tidemark-backup-([a-z0-9-]+)$/;
  for (const name of names) {
    const m = main.exec(name);
    if (!m) continue;
    const file = path.join(t.dir, name);
    try {
      const spec = readMarker(fs.readFileSync(file, 'utf8'), file);
      if (spec.id !== m[1]) throw new Error(`${file} describes schedule ${spec.id}, not ${m[1]}`);
      const files = filesOf(t, spec.id).filter((f) => fs.existsSync(f));
      if (t.kind === 'systemd' && files.length < 2) problems.push({ file, message: `its timer ${unitName(spec.id, 'timer')} is missing: the schedule never runs` });
      const next = await checkCalendar(spec.every, { now: options.now }).then((c) => c.next, () => undefined);
      schedules.push({ spec, files, ...(next !== undefined ? { next } : {}) });
    } catch (e) {
      problems.push({ file, message: (e as Error).message });
    }
  }
  return { schedules, problems };
}

/** Stops and removes one schedule's files (only files carrying its Tidemark schedule line). */
export async function removeSchedule(id: string, t: ScheduleTarget, host: ScheduleHost = realHost): Promise<{ removed: string[] }> {
  const files = filesOf(t, id).filter((f) => fs.existsSync(f));
  if (files.length === 0) throw new Error(`there is no schedule ${JSON.stringify(id)} in ${t.dir} (see schedule list${t.user ? ' --user' : ''})`);
  for (const f of files) {
    const spec = readMarker(fs.readFileSync(f, 'utf8'), f);
    if (spec.id !== id) throw new Error(`${f} describes schedule ${spec.id}, not ${id}; left alone`);
  }
  if (t.manage) await systemctl(t, host, ['disable', '--now', unitName(id, 'timer')]);
  // The timer first: a service without its timer never runs.
  for (const f of [...files].reverse()) fs.rmSync(f, { force: true });
  if (t.manage) await systemctl(t, host, ['daemon-reload']);
  return { removed: files };
}
