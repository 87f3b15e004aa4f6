// One CLI command: its name (virsh's, where virsh has one), options, positionals and what it runs.
// Commands live in commands/<group>.ts and are listed (by name, loaded lazily) in commands/index.ts.

import type { OptionSpec, ParsedArgs, PositionalSpec } from './args';
import type { CliContext } from './context';

export interface Command {
  /** e.g. "checkpoint-list", or "lab write" for a subcommand. */
  name: string;
  /** One line for `tidemark help`. */
  summary: string;
  /** Longer text for `tidemark help COMMAND`. */
  description?: string;
  options: OptionSpec[];
  positionals: PositionalSpec[];
  /** False when this invocation needs no VM and no service (e.g. --print-xml); default true. */
  needsService?(args: ParsedArgs): boolean;
  run(ctx: CliContext, args: ParsedArgs): Promise<void>;
  /**
   * False: never run by a resident host (host-server.ts), always in the caller's process: commands
   * that start or stop long-lived processes, or write files whose place comes from the caller's
   * environment (serve, host, lab start/stop, schedules).
   */
  resident?: false;
}

export interface CommandGroup {
  name: string;
  commands: Command[];
}

export const JSON_OPTION: OptionSpec = { name: 'json', kind: 'flag', help: 'print the result as JSON (all fields)' };
