// Options shared by the backup commands (push in commands/backup.ts, pull in commands/pull.ts).

import * as path from 'node:path';
import type { OptionSpec, ParsedArgs } from './args';

export const REPO_OPTION: OptionSpec = { name: 'repo', kind: 'value', metavar: 'DIR', help: 'backup repository (default: STATE/backups)' };

/** What a backup starts from and what it marks: the same for push and pull. */
export const BACKUP_POINT_OPTIONS: OptionSpec[] = [
  { name: 'full', kind: 'flag', help: 'full backup of every disk' },
  { name: 'since', kind: 'value', metavar: 'CHECKPOINT', help: 'changes since this checkpoint (incremental or differential)' },
  { name: 'checkpoint', kind: 'value', metavar: 'NAME', help: 'name of the checkpoint created with the backup (default: the backup id)' },
  { name: 'no-checkpoint', kind: 'flag', help: 'create no checkpoint (the backup cannot be a base for later ones)' },
  { name: 'disk', kind: 'list', metavar: 'DISK', help: 'back up only this disk (repeatable; default: all)' },
];

/** The --repo value as an absolute path, or undefined for the default repository. */
export function repoOf(args: ParsedArgs): string | undefined {
  const r = args.values.get('repo');
  return r === undefined ? undefined : path.resolve(r);
}
