// Where a program is on the PATH, as the absolute path a child process or a unit file can name.
// Only absolute PATH entries count: an empty or relative entry means "the current folder", which is
// not where a program Tidemark runs (or writes into a systemd unit) should come from.

import * as fs from 'node:fs';
import * as path from 'node:path';

/** The absolute path of the first `name` this process may execute in the folders of `env.PATH`, or undefined. */
export function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
