// Command-line parsing for one command: flags, options with a value (--opt VALUE or --opt=VALUE),
// repeatable options, positionals, and `--` to end options. Anything unknown is a UsageError.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OptionSpec {
  /** Long name without dashes, e.g. "no-domain". */
  name: string;
  /** Single-letter alias without the dash. */
  short?: string;
  /** flag: boolean; value: one string; list: repeatable string. */
  kind: 'flag' | 'value' | 'list';
  metavar?: string;
  help: string;
  /** A value option the command cannot run without (shown without brackets in the synopsis). */
  required?: boolean;
}

export interface PositionalSpec {
  name: string;
  required: boolean;
  help: string;
}

export interface ParsedArgs {
  flags: Set<string>;
  values: Map<string, string>;
  lists: Map<string, string[]>;
  positionals: string[];
}

/** Parses `argv` (the arguments after the command name) against the command's options. */
export function parseArgs(command: string, argv: string[], options: OptionSpec[], positionals: PositionalSpec[]): ParsedArgs {
  const out: ParsedArgs = { flags: new Set(), values: new Map(), lists: new Map(), positionals: [] };
  const byName = new Map(options.map((o) => [o.name, o]));
  const byShort = new Map(options.filter((o) => o.short).map((o) => [o.short!, o]));
  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (onlyPositionals || arg === '-' || !arg.startsWith('-')) {
      out.positionals.push(arg);
      continue;
    }
    if (arg === '--') {
      onlyPositionals = true;
      continue;
    }
    let opt: OptionSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      if (eq >= 0) inline = arg.slice(eq + 1);
      opt = byName.get(name);
      if (!opt) throw new UsageError(`unknown option --${name} for ${command}`);
    } else {
      opt = byShort.get(arg.slice(1));
      if (!opt || arg.length !== 2) throw new UsageError(`unknown option ${arg} for ${command}`);
    }
    if (opt.kind === 'flag') {
      if (inline !== undefined) throw new UsageError(`option --${opt.name} takes no value`);
      out.flags.add(opt.name);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`option --${opt.name} needs a value (${opt.metavar ?? 'VALUE'})`);
      value = argv[++i]!;
    }
    if (opt.kind === 'value') {
      if (out.values.has(opt.name)) throw new UsageError(`option --${opt.name} is given twice`);
      out.values.set(opt.name, value);
    } else {
      out.lists.set(opt.name, [...(out.lists.get(opt.name) ?? []), value]);
    }
  }
  if (out.positionals.length > positionals.length) {
    const extra = out.positionals[positionals.length]!;
    throw new UsageError(`unexpected argument ${JSON.stringify(extra)} for ${command}`);
  }
  const missing = positionals.slice(out.positionals.length).find((p) => p.required);
  if (missing) throw new UsageError(`${command} needs ${missing.name}`);
  const missingOpt = options.find((o) => o.required && !out.values.has(o.name) && !out.lists.has(o.name));
  if (missingOpt) throw new UsageError(`${command} needs --${missingOpt.name} ${missingOpt.metavar ?? 'VALUE'}`);
  return out;
}

/** virsh's wording for options that cannot be combined. */
export function exclusive(args: ParsedArgs, ...names: string[]): void {
  const given = names.filter((n) => args.flags.has(n) || args.values.has(n));
  if (given.length > 1) throw new UsageError(`Options --${given[0]} and --${given[1]} are mutually exclusive`);
}

/** A positive number from an option value, or a UsageError naming the option. */
export function positiveNumber(args: ParsedArgs, name: string, opts: { integer?: boolean } = {}): number | undefined {
  const raw = args.values.get(name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  // Plain decimals only: Number() would also take "0x10", "0b1" and "1e3" and silently mean 16, 1, 1000.
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !Number.isFinite(n) || n <= 0 || (opts.integer && !Number.isInteger(n))) {
    throw new UsageError(`option --${name} must be a positive ${opts.integer ? 'integer' : 'number'}, got ${JSON.stringify(raw)}`);
  }
  return n;
}
