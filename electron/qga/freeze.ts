// Quiesce: freeze the guest's file systems through the guest agent just before `fn` (the checkpoint
// transaction) and thaw them right after, so the point in time is file-system consistent. The thaw
// is guaranteed: after fn succeeds, after fn throws, after fn overruns the freeze limit (the guest
// is thawed at the limit, while fn still runs), and after a freeze that timed out or lost the
// connection (the guest may be frozen without our knowing). A thaw is retried; if it still fails,
// the error says loudly that the guest may be frozen and how to thaw it by hand.

import { AgentCommandError } from './errors';

export interface FreezeAgent {
  readonly socketPath: string;
  fsfreezeStatus(options?: { timeoutMs?: number }): Promise<'thawed' | 'frozen'>;
  fsfreezeFreeze(options?: { timeoutMs?: number }): Promise<number>;
  fsfreezeThaw(options?: { timeoutMs?: number }): Promise<number>;
}

export interface FreezeOptions {
  /** Time guest-fsfreeze-freeze may take (it syncs the guest's caches first); default 30 s. */
  freezeTimeoutMs?: number;
  /** Time per guest-fsfreeze-thaw attempt; default 10 s. */
  thawTimeoutMs?: number;
  thawAttempts?: number;
  /** Longest the guest stays frozen around fn before it is thawed regardless; default 10 s. */
  maxFrozenMs?: number;
  log?: (line: string) => void;
}

export interface FrozenRun<T> {
  value: T;
  /** File systems frozen and thawed (the agent's counts). */
  frozen: number;
  thawed: number;
  /** From the freeze request to the end of the thaw. */
  frozenMs: number;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Quiesce cannot even start: no agent, or the file systems are already frozen by someone else. */
export class QuiesceRefusedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'QuiesceRefusedError';
  }
}

/** The freeze failed; the guest is thawed again and fn did not run. */
export class FreezeFailedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FreezeFailedError';
  }
}

/** fn did not finish within maxFrozenMs: the guest was thawed at the limit; fn's late outcome is attached. */
export class FrozenTooLongError extends Error {
  constructor(message: string, readonly outcome: Outcome<unknown>) {
    super(message);
    this.name = 'FrozenTooLongError';
  }
}

/** The thaw failed: the guest may still be frozen. The message says what the admin must do. */
export class ThawFailedError extends Error {
  constructor(socket: string, cause: unknown, readonly outcome?: Outcome<unknown>) {
    super(
      `THE GUEST'S FILE SYSTEMS MAY STILL BE FROZEN: guest-fsfreeze-thaw through ${socket} failed (${(cause as Error).message}). ` +
        'Writes inside the guest hang until they are thawed. Thaw them now: `virsh domfsthaw DOMAIN` where libvirt manages the VM; ' +
        `or send {"execute":"guest-fsfreeze-thaw"} to the agent, e.g. printf '\\xff{"execute":"guest-fsfreeze-thaw"}\\n' | socat - UNIX-CONNECT:${socket}; ` +
        'or inside the guest run `fsfreeze -u MOUNTPOINT` for each frozen file system.',
      { cause },
    );
    this.name = 'ThawFailedError';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function thaw(agent: FreezeAgent, o: FreezeOptions): Promise<number> {
  const attempts = o.thawAttempts ?? 3;
  let last: unknown;
  for (let i = 1; i <= attempts; i++) {
    try {
      return await agent.fsfreezeThaw({ timeoutMs: o.thawTimeoutMs ?? 10_000 });
    } catch (e) {
      last = e;
      o.log?.(`guest-fsfreeze-thaw attempt ${i} of ${attempts} failed: ${(e as Error).message}`);
      if (i < attempts) await sleep(200 * i);
    }
  }
  // Someone else may have thawed them meanwhile: that is all we need.
  const status = await agent.fsfreezeStatus({ timeoutMs: o.thawTimeoutMs ?? 10_000 }).catch(() => undefined);
  if (status === 'thawed') return 0;
  throw last;
}

/** Freezes the guest's file systems, runs fn, thaws them (see the top of this file). */
export async function withFrozenFilesystems<T>(agent: FreezeAgent, fn: (signal: AbortSignal) => Promise<T>, o: FreezeOptions = {}): Promise<FrozenRun<T>> {
  let status: 'thawed' | 'frozen';
  try {
    status = await agent.fsfreezeStatus({ timeoutMs: 5000 });
  } catch (e) {
    throw new QuiesceRefusedError(`quiesce needs the QEMU guest agent: ${(e as Error).message}. Install and start qemu-guest-agent in the guest, or run without --quiesce (crash-consistent)`, { cause: e });
  }
  if (status === 'frozen') {
    throw new QuiesceRefusedError(`the guest's file systems are already frozen (not by this run); Tidemark neither freezes nor thaws them. Thaw them first (guest-fsfreeze-thaw), or run without --quiesce`);
  }
  const t0 = Date.now();
  let frozen: number;
  try {
    frozen = await agent.fsfreezeFreeze({ timeoutMs: o.freezeTimeoutMs ?? 30_000 });
  } catch (e) {
    if (e instanceof AgentCommandError) {
      // "On error, all filesystems will be thawed" (qga/qapi-schema.json): the agent undid it.
      throw new FreezeFailedError(`quiesce failed: ${e.message}; the guest thawed its file systems again, nothing was done`, { cause: e });
    }
    // A timeout or a lost connection: the guest may be frozen (or still freezing). Thaw.
    o.log?.(`guest-fsfreeze-freeze did not complete (${(e as Error).message}); thawing to be safe`);
    try {
      await thaw(agent, o);
    } catch (t) {
      throw new ThawFailedError(agent.socketPath, t);
    }
    throw new FreezeFailedError(`quiesce failed: ${(e as Error).message}; the guest's file systems were thawed again, nothing was done`, { cause: e });
  }
  o.log?.(`froze ${frozen} guest file system(s)`);

  const limit = o.maxFrozenMs ?? 10_000;
  const ac = new AbortController();
  const settled: Promise<Outcome<T>> = Promise.resolve()
    .then(() => fn(ac.signal))
    .then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
  let timer: NodeJS.Timeout | undefined;
  const first = await Promise.race([settled, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), limit)))]);
  clearTimeout(timer);
  if (first === 'timeout') ac.abort(new Error(`the guest stayed frozen ${limit} ms; it is being thawed`));
  // Thaw now, before waiting any longer for fn.
  let thawed = 0;
  let thawError: unknown;
  try {
    thawed = await thaw(agent, o);
  } catch (e) {
    thawError = e;
  }
  const frozenMs = Date.now() - t0;
  const outcome = first === 'timeout' ? await settled : first;
  if (thawError !== undefined) throw new ThawFailedError(agent.socketPath, thawError, outcome);
  o.log?.(`thawed ${thawed} guest file system(s) after ${frozenMs} ms`);
  if (first === 'timeout') {
    throw new FrozenTooLongError(
      `quiesce: the operation did not finish within ${limit} ms of freezing, so the guest was thawed at the limit; ` +
        `the operation ${outcome.ok ? 'finished after the thaw and is not quiesced' : `failed: ${(outcome.error as Error).message}`}`,
      outcome,
    );
  }
  if (!outcome.ok) throw outcome.error;
  if (thawed !== frozen) o.log?.(`warning: ${frozen} file system(s) were frozen but ${thawed} thawed; some were thawed by someone else meanwhile`);
  return { value: outcome.value, frozen, thawed, frozenMs };
}
