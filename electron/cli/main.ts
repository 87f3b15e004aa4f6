// tidemark [--connect ENDPOINT] [--state-dir DIR] COMMAND [ARGS]
//
// Exit status: 0 success, 1 failure, 2 usage error, 75 (EX_TEMPFAIL) busy: a backup, prune or
// merge of the VM is running (schedules treat that as "try next time", not a failure). Errors are one line on stderr ("error: …");
// TIDEMARK_DEBUG=1 adds the stack. The process never lingers: connections are closed at the end.

import { escapeInvisible } from '../../shared/names';
import { parseArgs, UsageError } from './args';
import type { Command, CommandGroup } from './command';
import { loadAllGroups, loadCommand, subcommandNames } from './commands';
import { CliContext, type CliIo, type ServiceSource } from './context';
import { parseGlobal, type GlobalOptions } from './global-options';
import { RUN_LOCALLY } from './host-protocol';

/** For bin/tidemark.js: the optional parts of the code this run used (its V8 code cache is rewritten when they are new to it). */
export { codePaths } from '../os/code-paths';

/** sysexits.h: a temporary failure; the same run later may work. */
const EX_TEMPFAIL = 75;
/** Errors that mean "a backup, prune or merge of the VM is running" (by name: their modules load lazily). */
const BUSY_ERRORS = new Set(['BackupBusyError', 'RetentionBusyError']);

const GLOBAL_USAGE = 'tidemark [--connect ENDPOINT|URI] [--domain NAME|UUID] [--state-dir DIR] COMMAND [ARGS]...';


function generalHelp(groups: CommandGroup[]): string {
  let s = `Usage: ${GLOBAL_USAGE}\n\n`;
  s += 'Checkpoints and backups of a QEMU VM over QMP, in virsh\'s vocabulary.\n\n';
  s += '  -c, --connect ENDPOINT   the VM\'s QMP socket: unix:PATH, tcp:HOST:PORT or a path\n';
  s += '                           (default: the demo VM\'s second socket, when it runs),\n';
  s += '                           or a libvirt URI: qemu:///system, qemu+ssh://[user@]host[:port]/system, qemu+tls://…\n';
  s += '  --domain NAME|UUID       the domain of a libvirt connection (also after the command, as virsh)\n';
  s += '  --state-dir DIR          where metadata lives (default: $TIDEMARK_STATE_DIR,\n';
  s += '                           else $XDG_DATA_HOME/tidemark, else ~/.local/share/tidemark)\n';
  s += '  -h, --help               this help; COMMAND --help for one command\n\n';
  for (const g of groups) {
    s += ` ${g.name}:\n`;
    for (const c of g.commands) s += `    ${c.name.padEnd(30)} ${c.summary}\n`;
    s += '\n';
  }
  s += ' Output:\n';
  s += '    Text as virsh prints it; --json (where offered) prints every field for scripts.\n';
  s += '    Warnings (e.g. damaged checkpoints) go to stderr, so stdout stays parseable.\n\n';
  s += ' Exit status:\n';
  s += '    0 success; 1 the operation failed (one "error: ..." line on stderr, nothing changed);\n';
  s += '    2 usage error (unknown command or option, missing argument);\n';
  s += '    75 busy: a backup, prune or merge of the VM is running (try again later).\n\n';
  s += ' Environment:\n';
  s += '    TIDEMARK_STATE_DIR   default for --state-dir\n';
  s += '    TIDEMARK_DEBUG=1     print the stack trace after an error\n';
  s += '    TIDEMARK_HOST=off    run the command in this process even when `tidemark host` runs\n\n';
  s += "Run 'tidemark help COMMAND' (or COMMAND --help) for a command's options.\n";
  return s;
}

function synopsis(c: Command): string {
  const opts = c.options.map((o) => {
    const text = o.kind === 'flag' ? `--${o.name}` : `--${o.name} ${o.metavar ?? 'VALUE'}`;
    return `${o.required ? text : `[${text}]`}${o.kind === 'list' ? '...' : ''}`;
  });
  const pos = c.positionals.map((p) => (p.required ? p.name : `[${p.name}]`));
  return [c.name, ...pos, ...opts].join(' ');
}

export function commandHelp(c: Command): string {
  let s = `  NAME\n    ${c.name} - ${c.summary}\n\n  SYNOPSIS\n    ${synopsis(c)}\n\n`;
  if (c.description) s += `  DESCRIPTION\n${c.description.split('\n').map((l) => `    ${l}`).join('\n')}\n\n`;
  const rows = [
    ...c.positionals.map((p) => [p.name, p.help]),
    ...c.options.map((o) => [`--${o.name}${o.kind === 'flag' ? '' : ` ${o.metavar ?? 'VALUE'}`}`, o.help]),
  ];
  if (rows.length > 0) {
    const w = Math.max(...rows.map((r) => r[0]!.length));
    s += `  OPTIONS\n${rows.map(([a, b]) => `    ${a!.padEnd(w)}  ${b}`).join('\n')}\n\n`;
  }
  return s;
}

/** `tidemark help lab`: the subcommands of a command group with subcommands. */
async function subcommandHelp(prefix: string): Promise<string> {
  const cmds = (await loadAllGroups()).flatMap((g) => g.commands).filter((c) => c.name.startsWith(`${prefix} `));
  return `Usage: tidemark ${prefix} SUBCOMMAND [ARGS]...\n\n${cmds.map((c) => `    ${c.name.padEnd(30)} ${c.summary}\n`).join('')}\nRun 'tidemark help ${prefix} SUBCOMMAND' for its options.\n`;
}

async function findCommand(words: string[]): Promise<{ command: Command; rest: string[] }> {
  const [first, second] = words;
  const subs = subcommandNames(first!);
  if (subs.length > 0) {
    if (second === undefined || second.startsWith('-')) throw new UsageError(`${first} needs a subcommand: ${subs.join(', ')}`);
    const c = await loadCommand(`${first} ${second}`);
    if (!c) throw new UsageError(`unknown ${first} subcommand '${second}' (use one of: ${subs.join(', ')})`);
    return { command: c, rest: words.slice(2) };
  }
  const c = await loadCommand(first!);
  if (!c) throw new UsageError(`unknown command '${first}' (see: tidemark help)`);
  return { command: c, rest: words.slice(1) };
}

/** Takes virsh's `--domain NAME` (or `--domain=NAME`) out of a command's arguments: every domain command has it. */
export function takeDomain(rest: string[], global: GlobalOptions): string[] {
  const out: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--') {
      out.push(...rest.slice(i));
      break;
    }
    let value: string | undefined;
    if (a === '--domain') {
      if (i + 1 >= rest.length) throw new UsageError('option --domain needs a value (NAME|UUID)');
      value = rest[++i]!;
    } else if (a.startsWith('--domain=')) value = a.slice('--domain='.length);
    else {
      out.push(a);
      continue;
    }
    if (global.domain !== undefined && global.domain !== value) throw new UsageError(`--domain is given twice (${global.domain}, ${value})`);
    global.domain = value;
  }
  return out;
}

function oneLine(message: string): string {
  return message.split('\n').map((l) => l.trim()).filter((l) => l !== '').join(' | ');
}

/** Runs one CLI invocation; returns the exit status. `host`: a resident host runs it (host-server.ts). */
export async function runCli(argv: string[], io: CliIo, host?: { source: ServiceSource }): Promise<number> {
  let ctx: CliContext | undefined;
  try {
    const { global, help, words } = parseGlobal(argv);
    if (help || words[0] === 'help') {
      const topic = words[0] === 'help' ? words.slice(1) : words;
      if (topic.length === 0) io.stdout(generalHelp(await loadAllGroups()));
      else if (topic.length === 1 && subcommandNames(topic[0]!).length > 0) io.stdout(await subcommandHelp(topic[0]!));
      else io.stdout(commandHelp((await findCommand(topic)).command));
      return 0;
    }
    if (words.length === 0) throw new UsageError('no command given (see: tidemark help)');
    if (words.length >= 1 && subcommandNames(words[0]!).length > 0 && (words[1] === '--help' || words[1] === '-h')) {
      io.stdout(await subcommandHelp(words[0]!));
      return 0;
    }
    const found = await findCommand(words);
    const command = found.command;
    const rest = takeDomain(found.rest, global);
    const end = rest.indexOf('--');
    if ((end < 0 ? rest : rest.slice(0, end)).some((a) => a === '--help' || a === '-h')) {
      io.stdout(commandHelp(command));
      return 0;
    }
    const args = parseArgs(command.name, rest, command.options, command.positionals);
    if (host && command.resident === false) return RUN_LOCALLY;
    ctx = new CliContext(io, global, host?.source, runCli);
    if (command.needsService?.(args) !== false) {
      await ctx.load();
      await ctx.resolve();
    }
    await command.run(ctx, args);
    return 0;
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    // libvirt's own messages already begin with "error: " (virsh's words, kept whole).
    io.stderr(`error: ${escapeInvisible(oneLine(err.message || err.name).replace(/^error: /, ''))}\n`);
    if (io.env.TIDEMARK_DEBUG === '1' && err.stack) io.stderr(`${err.stack}\n`);
    return err instanceof UsageError ? 2 : BUSY_ERRORS.has(err.name) ? EX_TEMPFAIL : 1;
  } finally {
    await ctx?.close().catch(() => undefined);
  }
}

/** The process entry point (bin/tidemark.js calls this). */
export async function main(): Promise<void> {
  const code = await runCli(process.argv.slice(2), {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    isTTY: Boolean(process.stderr.isTTY),
    env: process.env,
  });
  process.exitCode = code;
  // Everything is closed by now; should anything still hold the event loop, do not hang on it.
  setTimeout(() => process.exit(code), 200).unref();
}

if (require.main === module) void main();
