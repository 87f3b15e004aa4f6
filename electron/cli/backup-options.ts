// Options shared by the backup commands (push in commands/backup.ts, pull in commands/pull.ts).

import * as path from 'node:path';
import { UsageError, type OptionSpec, type ParsedArgs } from './args';

export const REPO_OPTION: OptionSpec = { name: 'repo', kind: 'value', metavar: 'DIR', help: 'backup repository (default: STATE/backups)' };

/** What a backup starts from and what it marks: the same for push and pull. */
export const BACKUP_POINT_OPTIONS: OptionSpec[] = [
  { name: 'full', kind: 'flag', help: 'full backup of every disk' },
  { name: 'since', kind: 'value', metavar: 'CHECKPOINT', help: 'changes since this checkpoint (incremental or differential)' },
  { name: 'checkpoint', kind: 'value', metavar: 'NAME', help: 'name of the checkpoint created with the backup (default: the backup id)' },
  { name: 'no-checkpoint', kind: 'flag', help: 'create no checkpoint (the backup cannot be a base for later ones)' },
  { name: 'disk', kind: 'list', metavar: 'DISK', help: 'back up only this disk (repeatable; default: all)' },
];

/** Guest agent freeze around the one transaction (checkpoint-create-as, backup-begin). */
export const QUIESCE_OPTIONS: OptionSpec[] = [
  { name: 'quiesce', kind: 'flag', help: 'freeze the guest\'s file systems (QEMU guest agent) just for the transaction' },
  { name: 'agent', kind: 'value', metavar: 'unix:PATH', help: 'with --quiesce: the guest agent\'s socket (default: the VM\'s org.qemu.guest_agent.0 channel)' },
];

/** --quiesce [--agent unix:PATH] as the contract's option (undefined without --quiesce). */
export function quiesceOf(args: ParsedArgs, cwd: string): { agent?: string } | undefined {
  const agent = args.values.get('agent');
  if (!args.flags.has('quiesce')) {
    if (agent !== undefined) throw new UsageError('--agent only applies with --quiesce');
    return undefined;
  }
  if (agent === undefined) return {};
  if (!agent.startsWith('unix:') || agent.length === 5) throw new UsageError(`--agent ${JSON.stringify(agent)}: give the guest agent's socket as unix:PATH`);
  return { agent: `unix:${path.resolve(cwd, agent.slice(5))}` };
}

/** The --repo value as an absolute path (relative to the caller's folder `cwd`), or undefined for the default repository. */
export function repoOf(args: ParsedArgs, cwd: string): string | undefined {
  const r = args.values.get('repo');
  return r === undefined ? undefined : path.resolve(cwd, r);
}
