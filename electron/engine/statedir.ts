// Where Tidemark keeps its state: --state-dir, else TIDEMARK_STATE_DIR, else $XDG_DATA_HOME/tidemark,
// else ~/.local/share/tidemark.

import * as os from 'node:os';
import * as path from 'node:path';

/** `cwd`: the folder relative paths are taken from (the caller's, when a resident host runs the command). */
export function resolveStateDir(explicit?: string, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (explicit && explicit.trim() !== '') return path.resolve(cwd, explicit);
  if (env.TIDEMARK_STATE_DIR && env.TIDEMARK_STATE_DIR.trim() !== '') return path.resolve(cwd, env.TIDEMARK_STATE_DIR);
  const xdg = env.XDG_DATA_HOME && path.isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : path.join(os.homedir(), '.local', 'share');
  return path.join(xdg, 'tidemark');
}
