// Small runtime validators for the contract. Each validator returns the value typed, or throws a
// ValidationError whose message names the path and what was expected ("args[1].name: expected a string").

export class ValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValidationError';
  }
}

export type Validator<T> = (value: unknown, path: string) => T;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)?.slice(0, 40)}`;
}

function fail(path: string, expected: string, got: unknown): never {
  throw new ValidationError(`${path}: expected ${expected}, got ${describe(got)}`);
}

export const v = {
  string(opts: { max?: number; min?: number } = {}): Validator<string> {
    const max = opts.max ?? 4096;
    return (x, path) => {
      if (typeof x !== 'string') fail(path, 'a string', x);
      if (x.length > max) throw new ValidationError(`${path}: longer than ${max} characters`);
      if (opts.min !== undefined && x.length < opts.min) throw new ValidationError(`${path}: shorter than ${opts.min} characters`);
      return x;
    };
  },
  number(opts: { min?: number; max?: number; integer?: boolean } = {}): Validator<number> {
    return (x, path) => {
      if (typeof x !== 'number' || !Number.isFinite(x)) fail(path, 'a finite number', x);
      if (opts.integer && !Number.isInteger(x)) fail(path, 'an integer', x);
      if (opts.min !== undefined && x < opts.min) throw new ValidationError(`${path}: must be at least ${opts.min}`);
      if (opts.max !== undefined && x > opts.max) throw new ValidationError(`${path}: must be at most ${opts.max}`);
      return x;
    };
  },
  boolean(): Validator<boolean> {
    return (x, path) => (typeof x === 'boolean' ? x : fail(path, 'a boolean', x));
  },
  literal<T extends string>(...values: T[]): Validator<T> {
    return (x, path) => ((values as unknown[]).includes(x) ? (x as T) : fail(path, `one of ${values.map((s) => JSON.stringify(s)).join(', ')}`, x));
  },
  /** Absent, undefined or null (JSON turns an undefined argument into null) all mean "not given". */
  optional<T>(inner: Validator<T>): Validator<T | undefined> {
    return (x, path) => (x === undefined || x === null ? undefined : inner(x, path));
  },
  array<T>(inner: Validator<T>, opts: { max?: number } = {}): Validator<T[]> {
    const max = opts.max ?? 10_000;
    return (x, path) => {
      if (!Array.isArray(x)) fail(path, 'an array', x);
      if (x.length > max) throw new ValidationError(`${path}: more than ${max} items`);
      return x.map((item, i) => inner(item, `${path}[${i}]`));
    };
  },
  /** A plain object with exactly the given keys (unknown keys are an error). */
  object<S extends Record<string, Validator<unknown>>>(shape: S): Validator<{ [K in keyof S]: ReturnType<S[K]> }> {
    return (x, path) => {
      if (typeof x !== 'object' || x === null || Array.isArray(x)) fail(path, 'an object', x);
      const proto = Object.getPrototypeOf(x);
      if (proto !== Object.prototype && proto !== null) fail(path, 'a plain object', x);
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(x)) {
        if (!Object.prototype.hasOwnProperty.call(shape, key)) throw new ValidationError(`${path}: unexpected field "${key}"`);
      }
      for (const key of Object.keys(shape)) {
        const val = shape[key]!((x as Record<string, unknown>)[key], `${path}.${key}`);
        if (val !== undefined) out[key] = val;
      }
      return out as { [K in keyof S]: ReturnType<S[K]> };
    };
  },
  /** A fixed-length argument tuple; trailing optional arguments may be omitted. */
  tuple<T extends unknown[]>(...items: { [K in keyof T]: Validator<T[K]> }): Validator<T> {
    return (x, path) => {
      if (!Array.isArray(x)) fail(path, 'an argument list', x);
      if (x.length > items.length) throw new ValidationError(`${path}: expected at most ${items.length} arguments, got ${x.length}`);
      return items.map((item, i) => (item as Validator<unknown>)(x[i], `${path}[${i}]`)) as T;
    };
  },
};
