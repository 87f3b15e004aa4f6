// The command table. A new group (backups: backup-begin, domjobinfo, restore …) is one more
// module in this directory and one more entry here.

import type { CommandGroup } from '../command';
import { backupCommands } from './backup';
import { checkpointCommands } from './checkpoint';
import { domainCommands } from './domain';
import { labCommands } from './lab';
import { serveCommand } from '../../host/serve-cli';

export const COMMAND_GROUPS: CommandGroup[] = [
  { name: 'Domain', commands: domainCommands },
  { name: 'Checkpoint', commands: checkpointCommands },
  { name: 'Backup', commands: backupCommands },
  { name: 'Demo VM', commands: labCommands },
  { name: 'Web UI', commands: [serveCommand] },
];

export const COMMANDS = COMMAND_GROUPS.flatMap((g) => g.commands);
