// The command table. Each group is one module, loaded only when one of its commands runs (or for
// `tidemark help`), so a command pays only for what it uses. A new group (or command) is one more
// entry (or name) here; a command missing from `names` still works, found by loading every group.

import type { Command, CommandGroup } from '../command';

export interface LazyGroup {
  name: string;
  /** The names of the group's commands, as in each Command's `name` ("lab write" for subcommands). */
  names: string[];
  load(): Promise<Command[]>;
}

export const GROUPS: LazyGroup[] = [
  { name: 'Domain', names: ['domain-info', 'list'], load: async () => (await import('./domain')).domainCommands },
  {
    name: 'Checkpoint',
    names: ['checkpoint-create-as', 'checkpoint-create', 'checkpoint-delete', 'checkpoint-dumpxml', 'checkpoint-info', 'checkpoint-list', 'checkpoint-parent'],
    load: async () => (await import('./checkpoint')).checkpointCommands,
  },
  {
    name: 'Backup',
    names: ['backup-begin', 'backup-list', 'backup-info', 'backup-verify', 'backup-delete', 'backup-status', 'backup-cancel', 'restore'],
    load: async () => (await import('./backup')).backupCommands,
  },
  { name: 'Retention', names: ['backup-prune', 'backup-merge'], load: async () => (await import('./retention')).retentionCommands },
  { name: 'Schedule', names: ['schedule add', 'schedule list', 'schedule remove'], load: async () => (await import('./schedule')).scheduleCommands },
  { name: 'Pull', names: ['backup-pull', 'backup-end', 'dirty-map'], load: async () => (await import('./pull')).pullCommands },
  { name: 'Demo VM', names: ['lab start', 'lab stop', 'lab status', 'lab write'], load: async () => (await import('./lab')).labCommands },
  { name: 'Web UI', names: ['serve'], load: async () => [(await import('./serve')).serveCommand] },
  { name: 'Resident host', names: ['host'], load: async () => [(await import('./host')).hostCommand] },
];

/** Every group with its commands (loads every module: for help and unknown names). */
export async function loadAllGroups(): Promise<CommandGroup[]> {
  return Promise.all(GROUPS.map(async (g) => ({ name: g.name, commands: await g.load() })));
}

/** The command called `name`, loading only its group's module when the table knows it. */
export async function loadCommand(name: string): Promise<Command | undefined> {
  const group = GROUPS.find((g) => g.names.includes(name));
  const found = group && (await group.load()).find((c) => c.name === name);
  if (found) return found;
  return (await loadAllGroups()).flatMap((g) => g.commands).find((c) => c.name === name);
}

/** Subcommands of `lab` (from the table: no module needs loading to name them). */
export function subcommandNames(prefix: string): string[] {
  return GROUPS.flatMap((g) => g.names).filter((n) => n.startsWith(`${prefix} `)).map((n) => n.slice(prefix.length + 1));
}
