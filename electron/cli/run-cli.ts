// Runs the real `tidemark` command (bin/tidemark, which runs the native thin client or bin/tidemark.js)
// as a child process, for the CLI's integration tests.

import { execFile } from 'node:child_process';
import * as path from 'node:path';

/** The Node launcher, for tests that start it with Node's own options. */
export const TIDEMARK_BIN = path.join(__dirname, '..', '..', 'bin', 'tidemark.js');
/** The command as users run it (package.json "bin"). */
export const TIDEMARK_COMMAND = path.join(__dirname, '..', '..', 'bin', 'tidemark');

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

/**
 * `tidemark --state-dir STATE ARGS…`; resolves with its exit code and output (never rejects).
 * TIDEMARK_DEBUG is cleared so errors stay one line; `fileLimitKiB` runs it under `ulimit -f`.
 */
export function runTidemark(
  stateDir: string, args: string[],
  options: { env?: NodeJS.ProcessEnv; fileLimitKiB?: number; timeoutMs?: number } = {},
): Promise<CliRun> {
  const env = { ...process.env, ...options.env };
  delete env.TIDEMARK_DEBUG;
  const argv = ['--state-dir', stateDir, ...args];
  const [cmd, cmdArgs] = options.fileLimitKiB === undefined
    ? [TIDEMARK_COMMAND, argv]
    : ['bash', ['-c', `trap "" XFSZ; ulimit -f ${options.fileLimitKiB}; exec "$@"`, 'bash', TIDEMARK_COMMAND, ...argv]];
  return new Promise((resolve) => {
    execFile(cmd, cmdArgs, { env, timeout: options.timeoutMs ?? 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, out: stdout, err: stderr });
    });
  });
}
