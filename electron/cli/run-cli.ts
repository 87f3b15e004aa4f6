// Runs the real `tidemark` CLI (bin/tidemark.js) as a child process, for the CLI's integration tests.

import { execFile } from 'node:child_process';
import * as path from 'node:path';

export const TIDEMARK_BIN = path.join(__dirname, '..', '..', 'bin', 'tidemark.js');

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
  const argv = [TIDEMARK_BIN, '--state-dir', stateDir, ...args];
  const [cmd, cmdArgs] = options.fileLimitKiB === undefined
    ? ['node', argv]
    : ['bash', ['-c', `trap "" XFSZ; ulimit -f ${options.fileLimitKiB}; exec node "$@"`, 'bash', ...argv]];
  return new Promise((resolve) => {
    execFile(cmd, cmdArgs, { env, timeout: options.timeoutMs ?? 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, out: stdout, err: stderr });
    });
  });
}
