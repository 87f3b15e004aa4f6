// PURE: what a backup schedule is, how it is checked, and the two commands its run executes:
//   tidemark --connect C --state-dir S backup-begin --repo R [--mode pull]
//   tidemark --connect C --state-dir S backup-prune --repo R --keep-… N … [--max-chain N]
// (the prune only when the schedule has a policy or a chain limit). Both name the same VM
// (the connection), state and repository. Overlap is refused by the repository's backup lock,
// which backup-begin and backup-prune both take.

import * as path from 'node:path';
import { retentionFlags } from '../retention/policy-args';
import { policyIsEmpty, validatePolicy, type KeepPolicy } from '../retention/policy';
import { validateMaxChain } from '../retention/selection';

export const SCHEDULE_FORMAT = 'tidemark-schedule';
export const SHORTHANDS = ['hourly', 'daily', 'weekly', 'monthly'] as const;

export interface ScheduleSpec {
  format: typeof SCHEDULE_FORMAT;
  version: 1;
  /** Lower-case letters, digits and "-"; the units are tidemark-backup-<id>.{service,timer}. */
  id: string;
  vm: { id: string; name?: string };
  /** hourly | daily | weekly | monthly | a systemd calendar expression (OnCalendar=). */
  every: string;
  /** --connect of the VM (unix:PATH or tcp:HOST:PORT). */
  connect: string;
  /** Absolute --state-dir (a system service runs as root, whose default state dir is elsewhere). */
  stateDir: string;
  /** Absolute --repo (absent: the state dir's default repository). */
  repo?: string;
  mode: 'push' | 'pull';
  policy?: KeepPolicy;
  maxChain?: number;
  /** Installed for the user's service manager (systemd --user) rather than the system's. */
  user: boolean;
  /** How to run Tidemark: an absolute program and its leading arguments (e.g. node and bin/tidemark.js). */
  command: string[];
  createdAt: number;
}

export const SCHEDULE_ID_RE = /^[a-z0-9][a-z0-9-]{0,47}$/;

export function unitName(id: string, kind: 'service' | 'timer'): string {
  return `tidemark-backup-${id}.${kind}`;
}

/** A schedule id from a VM name and the period: "web-01-daily" (lower-case, safe as a unit name). */
export function defaultScheduleId(vmName: string, every: string): string {
  const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  const period = (SHORTHANDS as readonly string[]).includes(every) ? every : 'custom';
  return `${slug(vmName).slice(0, 32) || 'vm'}-${period}`.replace(/^-+/, '');
}

function noControl(what: string, s: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(s)) throw new Error(`${what} ${JSON.stringify(s)} contains a control character`);
  return s;
}

/** Checks every field a unit or cron line is made from; returns the spec. */
export function validateSchedule(s: ScheduleSpec): ScheduleSpec {
  if (s.format !== SCHEDULE_FORMAT || s.version !== 1) throw new Error(`not a version 1 ${SCHEDULE_FORMAT}`);
  if (!SCHEDULE_ID_RE.test(s.id)) throw new Error(`schedule id ${JSON.stringify(s.id)} must be 1–48 lower-case letters, digits and "-", starting with a letter or digit`);
  noControl('VM id', s.vm.id);
  if (s.vm.name !== undefined) noControl('VM name', s.vm.name);
  noControl('--every', s.every);
  if (s.every.trim() === '' || s.every.length > 200) throw new Error('--every needs hourly, daily, weekly, monthly or a calendar expression (systemd OnCalendar= syntax)');
  noControl('--connect', s.connect);
  if (!/^(unix:|tcp:)/.test(s.connect)) throw new Error(`--connect ${JSON.stringify(s.connect)} must be unix:PATH or tcp:HOST:PORT for a schedule`);
  for (const [what, p] of [['--state-dir', s.stateDir], ['--repo', s.repo]] as const) {
    if (p === undefined) continue;
    noControl(what, p);
    if (!path.isAbsolute(p)) throw new Error(`${what} ${JSON.stringify(p)} must be an absolute path in a schedule (the service does not run in this folder)`);
  }
  if (s.mode !== 'push' && s.mode !== 'pull') throw new Error(`--mode must be push or pull, got ${JSON.stringify(s.mode)}`);
  if (s.policy !== undefined) validatePolicy(s.policy);
  if (s.maxChain !== undefined) validateMaxChain(s.maxChain);
  if (s.command.length === 0 || !path.isAbsolute(s.command[0]!)) throw new Error(`the Tidemark command must start with an absolute program path, got ${JSON.stringify(s.command[0] ?? '')}`);
  for (const a of s.command) noControl('command argument', a);
  return s;
}

function globalArgs(s: ScheduleSpec): string[] {
  return [...s.command, '--connect', s.connect, '--state-dir', s.stateDir];
}

/** The argv lists one run executes, in order (the second only when there is something to prune or merge). */
export function runCommands(s: ScheduleSpec): string[][] {
  const repo = s.repo !== undefined ? ['--repo', s.repo] : [];
  const out = [[...globalArgs(s), 'backup-begin', ...repo, ...(s.mode === 'pull' ? ['--mode', 'pull'] : [])]];
  if (!policyIsEmpty(s.policy ?? {}) || s.maxChain !== undefined) {
    out.push([...globalArgs(s), 'backup-prune', ...repo, ...retentionFlags({ policy: s.policy ?? {}, maxChain: s.maxChain })]);
  }
  return out;
}

/** One argument in systemd's ExecStart= syntax: % and $ doubled, quoted when needed. */
export function systemdArg(a: string): string {
  noControl('argument', a);
  const s = a.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return s === '' || /[\s"'\\;]/.test(s) ? `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"` : s;
}

/** Inverse of systemdArg for one ExecStart= line (the subset of systemd's rules that systemdArg writes). */
export function parseExecStart(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length) break;
    let arg = '';
    if (line[i] === '"') {
      for (i++; i < line.length && line[i] !== '"'; i++) arg += line[i] === '\\' ? line[++i] : line[i];
      if (line[i] !== '"') throw new Error(`unterminated quote in ${line}`);
      i++;
    } else {
      for (; i < line.length && line[i] !== ' '; i++) arg += line[i];
    }
    out.push(arg.replace(/%%/g, '%').replace(/\$\$/g, '$'));
  }
  return out;
}

/** One argument for /bin/sh (cron): single-quoted unless plainly safe; % escaped for crontab. */
export function shellArg(a: string): string {
  noControl('argument', a);
  const q = /^[A-Za-z0-9_./:=@+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
  return q.replace(/%/g, '\\%');
}
