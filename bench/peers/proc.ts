// Child processes for the side-by-side bench: run one to its end and time it, check that a tool is
// installed, and settle writeback before a timed step. Figures only; nothing here decides anything.

import { execFile, execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { WallAndCpu } from '../measure';

export interface Ran {
  ms: number;
  stdout: string;
  stderr: string;
}

/**
 * A checkout's `tidemark` command as an admin runs it: bin/tidemark (the native thin client when a host
 * serves the state folder, else bin/tidemark.js), or bin/tidemark.js in a checkout from before it.
 */
export function tidemarkCommand(root: string): string {
  const front = path.join(root, 'bin', 'tidemark');
  return fs.existsSync(front) ? front : path.join(root, 'bin', 'tidemark.js');
}

/** Runs `cmd args` to its end; resolves with wall milliseconds (spawn → exit) and output; rejects naming the command on failure. */
export function run(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Ran> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env: options.env ?? process.env, cwd: options.cwd, timeout: options.timeoutMs ?? 600_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (err) reject(new Error(`${cmd} ${args.slice(0, 4).join(' ')}… failed: ${String(stderr || stdout || err.message).trim().split('\n').slice(-3).join(' | ')}`));
      else resolve({ ms, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/**
 * Runs `node args` under /usr/bin/time (its report goes to `timeFile`) and adds the wall and the CPU
 * milliseconds (user + system of the whole process tree: steadier than wall time on a loaded machine) to `into`.
 */
export async function runNodeTimed(args: string[], env: NodeJS.ProcessEnv | undefined, timeFile: string, into: WallAndCpu): Promise<Ran> {
  const r = await run('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, 'node', ...args], { env: { ...process.env, ...env } });
  const [user, sys] = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  into.wall.push(r.ms);
  into.cpu.push((user! + sys!) * 1000);
  return r;
}

/**
 * MiB of page cache written and dropped before each timed step (BENCH_WARM_MIB, 256 by default; 0 turns
 * it off). This machine is a PVM guest whose host backs guest memory only once it is touched: 64 MiB
 * written into the page cache took 8–10 ms from pages freed a moment before and 110–160 ms when it
 * needed pages not used yet, in some sittings (bench/README.md, "Phase 11"). A step that keeps what it
 * wrote (a Tidemark layer; the peers' outputs are deleted after their steps) left the next step, whoever's
 * it was, to pay that: the push's QEMU job took 110–250 ms instead of 25–50. With the pool every step of
 * every tool starts with the same backed free pages: the job by hand was 23–50 ms in 12 of 12 rounds.
 */
const WARM_MIB = Number(process.env.BENCH_WARM_MIB ?? 256);
let warmChunk: Buffer | undefined;

/** Writes WARM_MIB into a file and deletes it before it reaches the disk: that much backed memory goes back to the free lists. */
function warmFreePages(): void {
  if (!(WARM_MIB > 0)) return;
  warmChunk ??= Buffer.alloc(1024 * 1024, 0xa5);
  const file = path.join(os.tmpdir(), `tm-bench-warm-${process.pid}`);
  const fd = fs.openSync(file, 'w', 0o600);
  try {
    for (let i = 0; i < WARM_MIB; i++) fs.writeSync(fd, warmChunk);
  } finally {
    fs.closeSync(fd);
    fs.unlinkSync(file);
  }
}

/**
 * Flushes earlier writes and deletions before a timed step (see bench/backup-push.ts: without it each
 * step pays for the one before), then gives the step a pool of warm free pages (warmFreePages).
 */
export function settle(): void {
  execFileSync('sync');
  warmFreePages();
}

/** What settle() warms, for the report's header. */
export function warmPoolNote(): string {
  return WARM_MIB > 0 ? `every timed step starts after ${WARM_MIB} MiB written into the page cache and dropped (BENCH_WARM_MIB)` : 'no warm pool before the steps (BENCH_WARM_MIB=0)';
}

/**
 * The environment of the Node processes a step starts (Tidemark's CLI, `node -e 0`, the resident
 * host). Node reads and parses the file NODE_EXTRA_CA_CERTS names at every start, before any script
 * runs: on this machine, whose sandbox sets it to the system's bundle of ~140 certificates, that is ~40
 * of `node -e 0`'s ~100 ms. virsh and the Python peers never read it. The CLI, run as a program, leaves
 * it out itself (bin/tidemark.js's shebang, since phase 13); --no-extra-ca runs the other Node
 * processes without it too; by default they get the machine's environment as is.
 */
let withoutExtraCa = false;
export function runNodeWithoutExtraCa(on: boolean): void {
  withoutExtraCa = on;
}
/** The environment for a Node step; `withoutCa` picks the footing (default: the run's, --no-extra-ca). */
export function nodeEnv(extra: NodeJS.ProcessEnv = {}, withoutCa = withoutExtraCa): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  if (withoutCa) delete env.NODE_EXTRA_CA_CERTS;
  return env;
}
/** Which footing nodeEnv() gives, for the report's header. */
export function nodeEnvNote(): string {
  const ca = process.env.NODE_EXTRA_CA_CERTS;
  if (!ca) return 'Node processes: NODE_EXTRA_CA_CERTS is not set on this machine';
  const cli = 'the CLI runs as a program, whose shebang leaves NODE_EXTRA_CA_CERTS out';
  return withoutExtraCa
    ? `Node processes (node -e 0, the resident host) run without NODE_EXTRA_CA_CERTS (--no-extra-ca; the machine sets ${ca}); ${cli}`
    : `Node processes (node -e 0, the resident host) run with NODE_EXTRA_CA_CERTS=${ca} as the machine sets it (read at every Node start; --no-extra-ca leaves it out); ${cli}`;
}

/** True when Debian's python3 can import every module named. */
export function pythonHas(...modules: string[]): boolean {
  return spawnSync('/usr/bin/python3', ['-c', modules.map((m) => `import ${m}`).join('; ')], { stdio: 'ignore' }).status === 0;
}

/** Load averages, for every figure (the machine is shared). */
export function load(): string {
  return os.loadavg().map((l) => l.toFixed(1)).join(' ');
}

/** Pids of processes whose command line mentions `needle` (the bench's work directory): what a peer left running. */
export function pidsMentioning(needle: string, name: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(needle) && cmd.split('\0')[0]!.endsWith(name)) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}
