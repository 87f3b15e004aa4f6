// `--host`: the bench's Tidemark rows with a resident host running (`tidemark host`, as libvirtd runs
// for virsh): started on the bench's state folder once the lab VM runs, stopped at the end. Every
// `node bin/tidemark.js` of the run then hands its command to it (electron/cli/host-client.ts).

import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { runInHost, type ClientIo } from '../../electron/cli/host-client';

const BIN = path.join(__dirname, '..', '..', 'bin', 'tidemark.js');
const TRACE_PRELOAD = path.join(__dirname, '..', 'profile', 'trace.cjs');

export interface RunningHost {
  stop(): Promise<void>;
}

/** Starts `tidemark --state-dir STATE host` and waits for its banner (or fails with its output). */
export function startHost(stateDir: string): Promise<RunningHost> {
  // BENCH_HOST_CPU_PROF=DIR: the host writes a V8 CPU profile there when it stops (where its time goes).
  const prof = process.env.BENCH_HOST_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_HOST_CPU_PROF] : [];
  // BENCH_HOST_TRACE=FILE: the host runs compiled (one module per source, so the steps can be wrapped) under
  // the profile's trace preload and writes its spans there at exit.
  const trace = process.env.BENCH_HOST_TRACE ? ['-r', TRACE_PRELOAD] : [];
  const env = { ...process.env, TIDEMARK_DEBUG: '', ...(process.env.BENCH_HOST_TRACE ? { TIDEMARK_TRACE: process.env.BENCH_HOST_TRACE, TIDEMARK_CLI_MODE: 'compiled' } : {}) };
  const child: ChildProcess = spawn('node', [...prof, ...trace, BIN, '--state-dir', stateDir, 'host'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tidemark host did not start within 30 s: ${output.trim()}`)), 30_000);
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      if (!output.includes('Tidemark host: running')) return;
      clearTimeout(timer);
      resolve({
        stop: () => new Promise<void>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done(); // a Ctrl-C reached it already
          child.once('exit', () => done());
          child.kill('SIGINT');
        }),
      });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tidemark host exited (${code}): ${output.trim()}`));
    });
  });
}

/**
 * Tidemark's footing beside the libvirt helper's in-process pull: one command handed straight to the
 * resident host over its socket (electron/cli/host-client.ts, as the thin client does), timed from the
 * request to the host's exit frame. What the CLI adds on top is Node's start, ~100 ms here.
 */
export async function timedInHost(argv: string[]): Promise<{ ms: number; stdout: string }> {
  let stdout = '';
  let stderr = '';
  const io: ClientIo = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    isTTY: false,
    env: { ...process.env, TIDEMARK_DEBUG: '' },
    cwd: process.cwd(),
    onInterrupt: () => () => undefined,
  };
  const t0 = process.hrtime.bigint();
  const code = await runInHost(argv, io);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (code === undefined) throw new Error(`no resident host took \`tidemark ${argv.join(' ')}\``);
  if (code !== 0) throw new Error(`tidemark ${argv.slice(0, 6).join(' ')}… in the host failed (${code}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return { ms, stdout };
}
