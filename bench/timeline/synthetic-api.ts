// The synthetic AppApi of the timeline bench: what the Electron preload's window.api would answer for
// one VM with N checkpoints × D disks, generated in the page.

export interface SyntheticApiOptions {
  layout: 'independent' | 'chained';
  n: number;
  disks: number;
  /**
   * Hold the VM's data (HELD_CHANNELS: what the store's loadVm waits for) until the bench calls
   * window.__releaseData(): the answers are generated and cloned when asked, then wait. The bench
   * reads the CPU counters while the page is idle and releases them, so what follows is the
   * timeline's own first render from data in the page to the drawn frame.
   */
  hold?: boolean;
  /** Not held: the VM's data answers this long after it is asked (the host's own time; 0 at once). */
  answerMs?: number;
}

/** The answers a held run keeps back: the four loadVm awaits together. */
export const HELD_CHANNELS = ['vm:info', 'checkpoint:list', 'checkpoint:current', 'vm:health'];

/**
 * Runs in the page before the app (self-contained: Playwright ships its source): a synthetic AppApi
 * on window.api with N checkpoints × D disks.
 */
export function installSyntheticApi(opts: SyntheticApiOptions) {
  type Any = Record<string, unknown>;
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const now = Date.now();
  const t0 = now - 30 * 86400_000;
  const names = Array.from({ length: opts.disks }, (_, i) => `vd${String.fromCharCode(97 + i)}`);
  const GiB = 1024 ** 3;
  const cps: Any[] = [];
  for (let i = 0; i < opts.n; i++) {
    const time = t0 + (i / opts.n) * 30 * 86400_000 + rnd() * 600_000;
    // Mostly a line; now and then a branch from an earlier checkpoint.
    const parent = i === 0 ? undefined : rnd() < 0.04 ? `cp-${Math.floor(rnd() * i)}` : `cp-${i - 1}`;
    cps.push({ name: `cp-${i}`, parent, creationTime: Math.floor(time / 1000), createdAtMs: time, layout: opts.layout, disks: names.map((d) => ({ name: d, checkpoint: 'bitmap', bitmap: `cp-${i}` })) });
  }
  const current = cps[cps.length - 1]!;
  const bitmaps = (extra: number) => cps.map((c, i) => ({
    name: c.name, recording: opts.layout === 'independent' || c === current, persistent: true, busy: false, inconsistent: false,
    count: Math.floor((opts.layout === 'independent' ? (opts.n - i) * 1_000_000 : 2_000_000 * rnd()) / 65536) * 65536 + (c === current || opts.layout === 'independent' ? extra : 0), granularity: 65536,
  }));
  const disks = names.map((d) => ({ name: d, nodeName: `${d}-fmt`, format: 'qcow2', virtualSize: 64 * GiB, imageFile: `/vm/${d}.qcow2`, granularity: 65536, bitmapCapable: true, readOnly: false, bitmaps: bitmaps(0) }));
  const info = { id: 'bench', name: 'bench', endpoint: 'unix:/bench', status: 'running', qemuVersion: '7.2.22', disks };
  const backups = cps.filter((_, i) => i % 25 === 0).map((c, k) => ({
    format: 'tidemark-backup', version: 1, id: `b${k}`, vm: { id: 'bench' }, kind: k % 8 === 0 ? 'full' : 'incremental',
    since: k % 8 === 0 ? undefined : `cp-${(k - 1) * 25}`, checkpoint: c.name, startedAt: c.createdAtMs as number, completedAt: (c.createdAtMs as number) + 60_000,
    qemuVersion: '7.2.22', tool: 'bench', disks: names.map((d) => ({ name: d, kind: k % 8 === 0 ? 'full' : 'incremental', image: 'x', virtualSize: 64 * GiB, bytesCopied: 1e8, fileSize: 1e8, sha256: 'x', sourceImage: 'x', sourceFormat: 'qcow2', checkpointBitmap: true })),
  }));
  const listeners = new Map<string, Set<(p: unknown) => void>>();
  const w = window as unknown as Any;
  const answers: Record<string, (...a: unknown[]) => unknown> = {
    'vm:list': () => [{ id: 'bench', label: 'Bench VM', endpoint: 'unix:/bench', kind: 'endpoint', connection: 'connected' }],
    'lab:status': () => ({ running: false, qmp: '', qmpSecondary: '', disks: [] }),
    'job:list': () => [],
    'vm:info': () => info,
    'checkpoint:list': () => cps,
    'checkpoint:current': () => current,
    'vm:health': () => ({ vmId: 'bench', checkedAt: now, issues: [] }),
    'backup:list': () => ({ repo: '/bench/backups', backups, problems: [] }),
    'checkpoint:changes': (_vm, name) => ({ checkpoint: name, disks: names.map((d) => ({ disk: d, bytes: 1e6, granularity: 65536, virtualSize: 64 * GiB, usable: true })) }),
  };
  // Held answers (opts.hold): asked, generated and cloned, waiting for __releaseData.
  const held = ['vm:info', 'checkpoint:list', 'checkpoint:current', 'vm:health']; // = HELD_CHANNELS
  const waiting: (() => void)[] = [];
  w.__heldAsked = 0;
  w.__releaseData = () => {
    w.__dataReleasedAt = performance.now();
    for (const release of waiting.splice(0)) release();
  };
  w.api = {
    transport: 'memory',
    invoke: async (channel: string, ...args: unknown[]) => {
      const fn = answers[channel];
      if (!fn) throw new Error(`bench api: ${channel} not supported`);
      // structuredClone stands for the transport's deserialization.
      const answer = structuredClone(fn(...args));
      if (opts.hold && held.includes(channel)) {
        w.__heldAsked = (w.__heldAsked as number) + 1;
        w.__dataAskedAt = performance.now();
        await new Promise<void>((resolve) => waiting.push(resolve));
      } else if (opts.answerMs && held.includes(channel)) {
        await new Promise<void>((resolve) => setTimeout(resolve, opts.answerMs));
      }
      return answer;
    },
    on: (event: string, fn: (p: unknown) => void) => {
      const set = listeners.get(event) ?? new Set();
      listeners.set(event, set);
      set.add(fn);
      return () => set.delete(fn);
    },
  };
  // The bench drives live updates through this hook: one event with every bitmap of every disk.
  w.__emitBitmaps = (at: number, extra: number) => {
    const payload = { vmId: 'bench', at, disks: names.map((d) => ({ disk: d, bitmaps: bitmaps(extra) })) };
    for (const fn of listeners.get('vm:bitmaps') ?? []) fn(payload);
  };
}

