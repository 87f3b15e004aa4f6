// The renderer's settings kept in the browser profile (localStorage, one JSON object): for now the
// fleet overview's backup-age limit. A missing, malformed or out-of-range value gives the default.

const KEY = 'tidemark.settings';

export interface Settings {
  /** A VM whose last backup is older than this is shown red in the fleet overview. */
  backupAgeLimitHours: number;
}

export const DEFAULT_SETTINGS: Settings = { backupAgeLimitHours: 24 };
export const MAX_AGE_LIMIT_HOURS = 24 * 366;

/** Accepts 1 … 8784 hours (a year); anything else is refused with why. */
export function checkAgeLimit(hours: number): string | undefined {
  if (!Number.isFinite(hours)) return 'Enter a number of hours.';
  if (hours < 1) return 'The limit must be at least 1 hour.';
  if (hours > MAX_AGE_LIMIT_HOURS) return `The limit must be at most ${MAX_AGE_LIMIT_HOURS} hours (a year).`;
  return undefined;
}

export function parseSettings(raw: string | null): Settings {
  try {
    const o = JSON.parse(raw ?? '{}') as Partial<Record<keyof Settings, unknown>>;
    const h = o.backupAgeLimitHours;
    return { backupAgeLimitHours: typeof h === 'number' && checkAgeLimit(h) === undefined ? h : DEFAULT_SETTINGS.backupAgeLimitHours };
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
}

export function loadSettings(storage: Pick<Storage, 'getItem'> | undefined = globalThis.localStorage): Settings {
  try {
    return parseSettings(storage?.getItem(KEY) ?? null);
  } catch {
    return { ...DEFAULT_SETTINGS }; // storage blocked (a sandboxed page)
  }
}

export function saveSettings(s: Settings, storage: Pick<Storage, 'setItem'> | undefined = globalThis.localStorage): void {
  try {
    storage?.setItem(KEY, JSON.stringify(s));
  } catch {
    // not persisted: the value still applies to this page
  }
}
