// schedule add|list|remove: unattended backups (backup-begin, then backup-prune with the schedule's
// policy) as a systemd timer and service, or a cron line where systemd is not the init system.

import type { ScheduleInfo } from '../../../shared/contract';
import { UsageError, type OptionSpec, type ParsedArgs } from '../args';
import { JSON_OPTION, type Command } from '../command';
import { REPO_OPTION, repoOf } from '../backup-options';
import { formatTable, formatTime } from '../format';
import { KEEP_OPTIONS, keepPolicyOf, MAX_CHAIN_OPTION, maxChainOf } from './retention';

const WHERE_OPTIONS: OptionSpec[] = [
  { name: 'user', kind: 'flag', help: 'the user\'s service manager (systemd --user) instead of the system\'s' },
  { name: 'unit-dir', kind: 'value', metavar: 'DIR', help: 'write the unit files into DIR only (packaging, tests): systemctl is not called' },
];

function whereOf(args: ParsedArgs) {
  const unitDir = args.values.get('unit-dir');
  return { ...(args.flags.has('user') ? { user: true } : {}), ...(unitDir !== undefined ? { unitDir } : {}) };
}

function policyText(s: ScheduleInfo): string {
  const rules = Object.entries(s.policy ?? {}).filter(([, n]) => n).map(([k, n]) => `keep-${k} ${n}`);
  if (s.maxChain !== undefined) rules.push(`max-chain ${s.maxChain}`);
  return rules.join(', ') || '-';
}

const add: Command = {
  name: 'schedule add',
  resident: false,
  summary: 'Back up (and prune) the VM on a schedule: a systemd timer, or cron',
  description:
    'Installs tidemark-backup-ID.service and .timer (system: /etc/systemd/system; --user: ~/.config/systemd/user;\n' +
    '--unit-dir: there, files only). Each run: backup-begin, then backup-prune with the keep rules and\n' +
    '--max-chain given here (only when some are). Same VM (--connect), state folder and repository as now.\n' +
    'A run that finds a backup or prune of the VM running is refused and logged (exit 75, not a failure);\n' +
    'a run missed while the machine was off happens once at boot (Persistent=true).',
  positionals: [],
  options: [
    { name: 'every', kind: 'value', metavar: 'WHEN', required: true, help: 'hourly, daily, weekly, monthly or a systemd calendar expression ("Mon..Fri 02:30")' },
    { name: 'id', kind: 'value', metavar: 'ID', help: 'schedule id (default: the VM\'s name and the period, e.g. web-01-daily)' },
    REPO_OPTION,
    { name: 'mode', kind: 'value', metavar: 'push|pull', help: 'backup mode of each run (default push)' },
    ...KEEP_OPTIONS,
    MAX_CHAIN_OPTION,
    ...WHERE_OPTIONS,
    JSON_OPTION,
  ],
  async run(ctx, args) {
    const mode = args.values.get('mode');
    if (mode !== undefined && mode !== 'push' && mode !== 'pull') throw new UsageError(`--mode ${JSON.stringify(mode)}: use push or pull`);
    const policy = keepPolicyOf(args);
    const maxChain = maxChainOf(args);
    if (policy && Object.values(policy).every((n) => n === 0)) throw new UsageError('every keep rule is 0: that policy would remove every backup; give at least one count above 0');
    const repo = repoOf(args, ctx.cwd);
    const id = args.values.get('id');
    const r = await ctx.call('schedule:add', ctx.vmId({ recorded: true }), {
      every: args.values.get('every')!,
      ...(id !== undefined ? { id } : {}),
      ...(repo !== undefined ? { repo } : {}),
      ...(mode !== undefined ? { mode: mode as 'push' | 'pull' } : {}),
      ...(policy ? { policy } : {}),
      ...(maxChain !== undefined ? { maxChain } : {}),
      ...whereOf(args),
    });
    if (args.flags.has('json')) return ctx.json(r);
    const s = r.schedule;
    let out = `Schedule ${s.id} added: ${s.mode} backup of ${s.vm.name ?? s.vm.id} ${s.every} (${r.normalized})`;
    out += s.policy || s.maxChain !== undefined ? `, then prune (${policyText(s)})\n` : ', no pruning\n';
    if (s.next !== undefined) out += `Next run: ${formatTime(Math.floor(s.next / 1000))}\n`;
    out += s.files.map((f) => `Wrote ${f}\n`).join('');
    out += r.todo.map((t) => `To do: ${t}\n`).join('');
    ctx.virshOut(out);
  },
};

const list: Command = {
  name: 'schedule list',
  resident: false,
  summary: 'List backup schedules with their next run',
  positionals: [],
  options: [...WHERE_OPTIONS, JSON_OPTION],
  async run(ctx, args) {
    const r = await ctx.call('schedule:list', whereOf(args));
    for (const p of r.problems) ctx.io.stderr(`warning: ${p.file}: ${p.message}\n`);
    if (args.flags.has('json')) return ctx.json(r);
    const rows = r.schedules.map((s) => [
      s.id, s.vm.name ?? s.vm.id, s.every, s.mode, policyText(s), s.next !== undefined ? formatTime(Math.floor(s.next / 1000)) : '-', s.repo ?? `${s.stateDir}/backups`,
    ]);
    ctx.virshOut(formatTable(['Id', 'VM', 'Every', 'Mode', 'Prune', 'Next run', 'Repository'], rows));
  },
};

const remove: Command = {
  name: 'schedule remove',
  resident: false,
  summary: 'Stop and remove a backup schedule (only files Tidemark wrote)',
  positionals: [{ name: 'ID', required: true, help: 'schedule id (see schedule list)' }],
  options: [...WHERE_OPTIONS, JSON_OPTION],
  async run(ctx, args) {
    const r = await ctx.call('schedule:remove', args.positionals[0]!, whereOf(args));
    if (args.flags.has('json')) return ctx.json(r);
    ctx.virshOut(`Schedule ${r.id} removed\n${r.removed.map((f) => `Deleted ${f}\n`).join('')}`);
  },
};

export const scheduleCommands: Command[] = [add, list, remove];
