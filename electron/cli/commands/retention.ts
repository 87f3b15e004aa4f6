// backup-prune and backup-merge: keep rules (restic/borg/PBS vocabulary) and forever-forward merging
// of one VM's backups, without breaking a chain (docs/retention.md). --dry-run prints the table the
// app's simulator shows; --json prints the report (at least kept, removed and merged).

import type { KeepPolicy, RetentionReport } from '../../../shared/contract';
import { formatRetentionTable } from '../../engine/retention/preview';
import { UsageError, type OptionSpec, type ParsedArgs } from '../args';
import { JSON_OPTION, type Command } from '../command';
import type { CliContext } from '../context';
import { REPO_OPTION, repoOf } from '../backup-options';
import { formatBytes } from '../format';

const RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const satisfies readonly (keyof KeepPolicy)[];
const RULE_HELP: Record<(typeof RULES)[number], string> = {
  last: 'keep the N newest points',
  hourly: 'keep the newest point of each of the N newest hours that have one',
  daily: 'keep the newest point of each of the N newest days that have one',
  weekly: 'keep the newest point of each of the N newest ISO weeks that have one',
  monthly: 'keep the newest point of each of the N newest months that have one',
  yearly: 'keep the newest point of each of the N newest years that have one',
};

export const KEEP_OPTIONS: OptionSpec[] = RULES.map((r) => ({ name: `keep-${r}`, kind: 'value', metavar: 'N', help: RULE_HELP[r] }));
export const MAX_CHAIN_OPTION: OptionSpec = { name: 'max-chain', kind: 'value', metavar: 'N', help: 'forever-forward: fold the oldest layers so no chain is longer than N layers' };
const DRY_RUN_OPTION: OptionSpec = { name: 'dry-run', kind: 'flag', help: 'show what would be kept, removed and merged; change nothing' };

/** A whole number from an option value, or a UsageError naming the option. */
function count(args: ParsedArgs, name: string, min: number): number | undefined {
  const raw = args.values.get(name);
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < min || Number(raw) > 1_000_000) {
    throw new UsageError(`option --${name} must be a whole number${min > 0 ? ` from ${min}` : ''} up to 1000000, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

/** --keep-* as a policy (undefined when none is given). */
export function keepPolicyOf(args: ParsedArgs): KeepPolicy | undefined {
  const policy: KeepPolicy = {};
  for (const r of RULES) {
    const n = count(args, `keep-${r}`, 0);
    if (n !== undefined) policy[r] = n;
  }
  return Object.keys(policy).length > 0 ? policy : undefined;
}

export function maxChainOf(args: ParsedArgs): number | undefined {
  return count(args, 'max-chain', 1);
}

function printReport(ctx: CliContext, r: RetentionReport): void {
  let s = '';
  if (r.finishedEarlier) s += `Finished an interrupted ${r.finishedEarlier.what} first (${r.finishedEarlier.stepsRun} of ${r.finishedEarlier.stepsTotal} steps)\n\n`;
  s += `${formatRetentionTable(r.preview).join('\n')}\n`;
  const merged = r.merged.reduce((n, m) => n + m.layers.length, 0);
  if (r.dryRun) s += `\nDry run: nothing changed. ${r.what}\n`;
  else {
    s += `\n${r.what[0]!.toUpperCase()}${r.what.slice(1)} done: ${r.kept.length} kept, ${r.removed.length} removed, ${merged} layer(s) merged, ${r.rebased.length} rebased`;
    s += `; ${formatBytes(Math.max(0, r.result?.bytesFreed ?? 0))} freed\n`;
  }
  ctx.virshOut(s);
}

const prune: Command = {
  name: 'backup-prune',
  summary: 'Remove backup points a keep policy does not keep, without breaking a chain',
  description:
    'Per VM, in the vocabulary of restic, borg and Proxmox Backup Server: a point kept by any rule is kept.\n' +
    'Points that go but that kept points build on are folded into their child (qemu-img commit) or the child\n' +
    'is rebased, so every kept point restores the same bytes. --max-chain N also bounds every chain\n' +
    '(forever-forward). Checkpoints only removed points used are listed, never deleted.\n' +
    'Crash-safe: an interrupted run is finished by the next prune, merge or backup-begin (or --finish).\n' +
    'Exit status 75 when a backup, prune or merge of the VM is running (try again later).',
  positionals: [],
  options: [REPO_OPTION, ...KEEP_OPTIONS, MAX_CHAIN_OPTION, DRY_RUN_OPTION, { name: 'finish', kind: 'flag', help: 'only finish an interrupted prune or merge' }, JSON_OPTION],
  async run(ctx, args) {
    const policy = keepPolicyOf(args);
    const maxChain = maxChainOf(args);
    const repo = repoOf(args, ctx.cwd);
    const vmId = ctx.vmId({ recorded: true });
    if (args.flags.has('finish')) {
      if (policy || maxChain !== undefined || args.flags.has('dry-run')) throw new UsageError('--finish takes no keep rules, --max-chain or --dry-run');
      const r = await ctx.call('backup:finish-retention', vmId, repo);
      if (args.flags.has('json')) return ctx.json(r);
      return ctx.virshOut(r.finished ? `Finished the interrupted ${r.finished.what}: ${r.finished.stepsRun} step(s) run, ${r.finished.removed.length} point(s) removed` : 'No interrupted prune or merge');
    }
    if (!policy && maxChain === undefined) {
      throw new UsageError('backup-prune needs keep rules (--keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly N) and/or --max-chain N');
    }
    if (policy && Object.values(policy).every((n) => n === 0) && maxChain === undefined) {
      throw new UsageError('every keep rule is 0: that policy would remove every backup; give at least one count above 0');
    }
    const r = await ctx.call('backup:prune', vmId, {
      ...(repo !== undefined ? { repo } : {}), ...(policy ? { policy } : {}), ...(maxChain !== undefined ? { maxChain } : {}), dryRun: args.flags.has('dry-run'),
    });
    if (args.flags.has('json')) return ctx.json(r);
    printReport(ctx, r);
  },
};

const merge: Command = {
  name: 'backup-merge',
  summary: 'Forever-forward: fold the oldest layers so no chain is longer than N',
  description:
    'Keeps every point the chain length allows: the oldest points of a longer chain are folded into the\n' +
    'layer above them (qemu-img commit) and disappear as points of their own; every remaining point\n' +
    'restores the same bytes. Exit status 75 when a backup, prune or merge of the VM is running.',
  positionals: [],
  options: [REPO_OPTION, { ...MAX_CHAIN_OPTION, required: true }, DRY_RUN_OPTION, JSON_OPTION],
  async run(ctx, args) {
    const maxChain = maxChainOf(args)!;
    const repo = repoOf(args, ctx.cwd);
    const r = await ctx.call('backup:merge', ctx.vmId({ recorded: true }), { ...(repo !== undefined ? { repo } : {}), maxChain, dryRun: args.flags.has('dry-run') });
    if (args.flags.has('json')) return ctx.json(r);
    printReport(ctx, r);
  },
};

export const retentionCommands: Command[] = [prune, merge];
