// Schemas (valibot) for everything that crosses a trust boundary: contract arguments, the backup
// manifest, checkpoint metadata files. One schema gives both the runtime check and the TypeScript
// type (v.InferOutput). This module holds the few building blocks the schemas share and turns
// valibot's first issue into one line naming the path and what was expected:
//   checkpoint:create[1].name: expected a string, got number 5
// Why valibot and not zod: DEVELOPERS.md, "Layering".

import * as v from 'valibot';

export class ValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValidationError';
  }
}

/** A check that returns the value typed or throws a ValidationError naming `path`. */
export type Validator<T> = (value: unknown, path: string) => T;

type AnySchema = v.GenericSchema;

/** The value in a few words: `number 5`, `string "abc"`, `an object`, `nothing` (undefined: JSON has no undefined). */
export function describeValue(x: unknown): string {
  if (x === undefined) return 'nothing';
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  if (typeof x === 'object') return 'an object';
  if (typeof x === 'string') return `string ${JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}…` : x)}`;
  if (typeof x === 'number' || typeof x === 'boolean') return `${typeof x} ${String(x)}`;
  return typeof x;
}

const expected = (what: string, got: unknown) => `expected ${what}, got ${describeValue(got)}`;

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x) as unknown;
  return proto === Object.prototype || proto === null;
}

// ---------------------------------------------------------------- building blocks

/** A string of at most `max` characters (default 4096) and, if given, at least `min`. */
export function text(opts: { min?: number; max?: number } = {}) {
  const max = opts.max ?? 4096;
  return opts.min ? v.pipe(v.string(), v.minLength(opts.min), v.maxLength(max)) : v.pipe(v.string(), v.maxLength(max));
}

/** A string matching `re`; `what` says in words what it must look like ("a backup id"). */
export function matching(re: RegExp, what: string, max = 4096) {
  return v.pipe(
    v.string(),
    v.maxLength(max),
    v.regex(re, (issue) => expected(what, issue.input)),
  );
}

/** A finite number, optionally an integer within [min, max]. */
export function num(opts: { min?: number; max?: number; integer?: boolean } = {}) {
  const { min, max, integer } = opts;
  const actions = [
    v.finite(),
    ...(integer ? [v.integer()] : []),
    ...(min !== undefined ? [v.minValue(min)] : []),
    ...(max !== undefined ? [v.maxValue(max)] : []),
  ] as v.PipeItem<number, number, v.BaseIssue<unknown>>[];
  return v.pipe(v.number(), ...actions);
}

/** Whole bytes, counts, milliseconds: an integer ≥ 0. */
export const size = () => num({ min: 0, integer: true });

/** One of the given strings. */
export function oneOf<const T extends readonly [string, ...string[]]>(...values: T) {
  return v.picklist(values, (issue) => expected(`one of ${values.map((s) => JSON.stringify(s)).join(', ')}`, issue.input));
}

/** An array of at most `max` items (default 10 000). */
export function list<S extends AnySchema>(item: S, opts: { min?: number; max?: number } = {}) {
  const max = opts.max ?? 10_000;
  return opts.min ? v.pipe(v.array(item), v.minLength(opts.min), v.maxLength(max)) : v.pipe(v.array(item), v.maxLength(max));
}

/** A plain object with exactly these fields: unknown fields, arrays and class instances are refused. */
export function record<E extends v.ObjectEntries>(entries: E) {
  return v.pipe(
    v.custom<Record<string, unknown>>(isPlainObject, (issue) =>
      expected(typeof issue.input === 'object' && issue.input !== null && !Array.isArray(issue.input) ? 'a plain object' : 'an object', issue.input)),
    v.strictObject(entries),
  );
}

/** An optional argument or argument field: absent, undefined or null (JSON turns undefined into null) mean "not given". */
export function optionalArg<S extends AnySchema>(schema: S) {
  return v.pipe(v.nullish(schema), v.transform((x): v.InferOutput<S> | undefined => x ?? undefined));
}

/** Trailing elements that may be undefined become optional, so `invoke('job:list')` needs no `undefined`. */
export type OptionalTail<T extends readonly unknown[]> =
  T extends readonly [...infer H, infer L] ? (undefined extends L ? [...OptionalTail<H>, Exclude<L, undefined>?] : [...T]) : [...T];

/** A channel's argument list: a fixed-length tuple; trailing optional arguments may be omitted. */
export function args<const T extends AnySchema[]>(...items: T) {
  const tuple = v.strictTuple(items, (issue) => {
    const given = issue.path?.[0]?.type === 'array' ? issue.path[0].input.length : undefined;
    if (given === undefined) return expected('an argument list', issue.input);
    return `expected at most ${items.length} argument${items.length === 1 ? '' : 's'}, got ${given}`;
  });
  return tuple as unknown as v.GenericSchema<unknown, OptionalTail<v.InferOutput<typeof tuple>>>;
}

// ---------------------------------------------------------------- checking

/** The one-line message for valibot's issue; `root` names the value ("manifest", "vm:info"). */
export function describeIssue(issue: v.BaseIssue<unknown>, root: string): string {
  const items = issue.path ?? [];
  const last = items[items.length - 1];
  // Unknown and missing fields, and surplus arguments, are named at their parent.
  const keyIssue = last?.origin === 'key' || (issue.type === 'strict_tuple' && issue.expected === 'never');
  let where = root;
  for (const item of keyIssue ? items.slice(0, -1) : items) {
    where += typeof item.key === 'number' ? `[${item.key}]` : `.${String(item.key)}`;
  }
  if (keyIssue && last && issue.type === 'strict_object') {
    const field = JSON.stringify(String(last.key)).slice(0, 80);
    return `${where}: ${issue.expected === 'never' ? 'unexpected' : 'missing'} field ${field}`;
  }
  // A message set where the schema was built (oneOf, matching, record, args, checks) is already the phrase.
  if (issue.message) return `${where}: ${issue.message}`;
  const got = issue.input;
  const n = issue.requirement as number;
  switch (issue.type) {
    case 'string': return `${where}: ${expected('a string', got)}`;
    case 'number': case 'finite': return `${where}: ${expected('a finite number', got)}`;
    case 'integer': return `${where}: ${expected('an integer', got)}`;
    case 'boolean': return `${where}: ${expected('a boolean', got)}`;
    case 'array': return `${where}: ${expected('an array', got)}`;
    case 'strict_object': return `${where}: ${expected('an object', got)}`;
    case 'min_length': return `${where}: ${n === 1 ? 'must not be empty' : typeof got === 'string' ? `shorter than ${n} characters` : `fewer than ${n} items`}`;
    case 'max_length': return `${where}: ${typeof got === 'string' ? `longer than ${n} characters` : `more than ${n} items`}`;
    case 'min_value': return `${where}: must be at least ${n}`;
    case 'max_value': return `${where}: must be at most ${n}`;
    case 'literal': return `${where}: ${expected(String(issue.expected), got)}`;
    default: return `${where}: ${expected(issue.expected ?? issue.type, got)}`;
  }
}

// Issues without a message of their own get '' here, so describeIssue can tell them apart.
const CONFIG = { abortEarly: true, message: () => '' } as const;

/** The value checked against `schema` and typed, or a ValidationError naming `path`. */
export function check<S extends AnySchema>(schema: S, value: unknown, path: string): v.InferOutput<S> {
  const result = v.safeParse(schema, value, CONFIG);
  if (result.success) return result.output;
  throw new ValidationError(describeIssue(result.issues[0], path));
}

/** `check` bound to one schema, for code that passes validators around. */
export function validator<S extends AnySchema>(schema: S): Validator<v.InferOutput<S>> {
  return (value, path) => check(schema, value, path);
}
