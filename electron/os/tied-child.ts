// Child processes that die with this one. A `qemu-img convert` (a restore) or `commit` (a merge) left
// running after its Tidemark process was killed keeps writing, and holds the image's write lock, so
// the retry fails ("Failed to get write lock") until it ends. Linux can send a child a signal when its
// parent dies (PR_SET_PDEATHSIG); Node cannot set it, so the child is started through util-linux's
// `setpriv --pdeathsig KILL`, which sets it and execs the program under the same pid. Where setpriv
// is missing (it is in util-linux, essential on Debian and Ubuntu) the child is started as before.
//
// A parent that dies after the fork but before setpriv arms the signal sends none: setpriv would then
// run the program as an orphan, which created the retry's partial file by its path and wrote it too.
// So setpriv execs a shell that first checks its parent is still this process, then execs the program
// (same pid again); a parent that dies after that check is covered by the armed signal.

import * as fs from 'node:fs';
import { findOnPath } from './find-on-path';

let setpriv: string | null | undefined;

function findSetpriv(): string | null {
  if (setpriv === undefined) setpriv = (fs.existsSync('/bin/sh') && findOnPath('setpriv')) || null;
  return setpriv;
}

/** The command line that runs `cmd args` only while `parentPid` is its parent, killed with SIGKILL when that parent dies. */
export function tiedCommand(cmd: string, args: readonly string[], parentPid: number): { cmd: string; args: string[] } {
  const sp = findSetpriv();
  if (!sp) return { cmd, args: [...args] };
  return { cmd: sp, args: ['--pdeathsig', 'KILL', '--', '/bin/sh', '-c', 'test "$PPID" = "$0" && exec "$@"', String(parentPid), cmd, ...args] };
}

/** The command line that runs `cmd args` killed with SIGKILL when this process dies. */
export function tiedToThisProcess(cmd: string, args: readonly string[]): { cmd: string; args: string[] } {
  return tiedCommand(cmd, args, process.pid);
}

/** True when a tied child ended because its program could not be started (exit 127 from the shell's exec, or setpriv's): not installed. */
export function tiedProgramMissing(code: number | null, stderr: string): boolean {
  return code === 127 && /^(setpriv: failed to execute|.*\bexec: .*: not found$)/m.test(stderr);
}
