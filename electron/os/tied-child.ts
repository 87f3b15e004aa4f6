// Child processes that die with this one. A `qemu-img convert` (a restore) or `commit` (a merge) left
// running after its Tidemark process was killed keeps writing, and holds the image's write lock, so
// the retry fails ("Failed to get write lock") until it ends. Linux can send a child a signal when its
// parent dies (PR_SET_PDEATHSIG); Node cannot set it, so the child is started through util-linux's
// `setpriv --pdeathsig KILL`, which sets it and execs the program under the same pid. Where setpriv
// is missing (it is in util-linux, essential on Debian and Ubuntu) the child is started as before.

import { findOnPath } from './find-on-path';

let setpriv: string | null | undefined;

function findSetpriv(): string | null {
  if (setpriv === undefined) setpriv = findOnPath('setpriv') ?? null;
  return setpriv;
}

/** The command line that runs `cmd args` killed with SIGKILL when this process dies. */
export function tiedToThisProcess(cmd: string, args: readonly string[]): { cmd: string; args: string[] } {
  const sp = findSetpriv();
  return sp ? { cmd: sp, args: ['--pdeathsig', 'KILL', '--', cmd, ...args] } : { cmd, args: [...args] };
}

/** True when a tied child ended because its program could not be started (setpriv's exit 127): not installed. */
export function tiedProgramMissing(code: number | null, stderr: string): boolean {
  return code === 127 && /^setpriv: failed to execute/m.test(stderr);
}
