// Compiles the native thin client, bin/tidemark-client.c, to out/cli/tidemark-client (what bin/tidemark
// runs first; without it, bin/tidemark.js runs as before, ~25 ms slower per command served by a host).
// Needs a C compiler (`cc`, Debian's gcc): where there is none it says so and builds nothing.
//   node scripts/build-native-client.mjs [OUTFILE]   (part of scripts/build-cli.mjs)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
export const NATIVE_CLIENT_SOURCE = path.join(root, 'bin', 'tidemark-client.c');

/** Builds `outfile` (atomically: a half-written program is never run); returns the compiler's warnings, or undefined with no compiler. */
export function buildNativeClient(outfile = path.join(root, 'out', 'cli', 'tidemark-client')) {
  fs.mkdirSync(path.dirname(outfile), { recursive: true });
  const tmp = `${outfile}.${process.pid}.tmp`;
  const cc = process.env.CC || 'cc';
  const r = spawnSync(cc, ['-O2', '-std=c11', '-Wall', '-Wextra', '-Wpedantic', '-o', tmp, NATIVE_CLIENT_SOURCE], { encoding: 'utf8' });
  if (r.error && r.error.code === 'ENOENT') return undefined;
  if (r.error || r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    throw new Error(`${cc} could not build ${path.relative(root, NATIVE_CLIENT_SOURCE)}:\n${r.stderr || r.error}`);
  }
  fs.renameSync(tmp, outfile);
  return r.stderr;
}

/** buildNativeClient, saying so when there is no compiler and passing on its warnings (the build scripts' way). */
export function buildNativeClientReporting(outfile) {
  const warnings = buildNativeClient(outfile);
  if (warnings === undefined) console.warn('note: no C compiler (cc): the native client is not built; bin/tidemark runs bin/tidemark.js (Node) for every command');
  else if (warnings !== '') console.warn(warnings);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  buildNativeClientReporting(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
}
