#!/usr/bin/env node
// The `tidemark` command. Runs the compiled CLI (out/node/electron/cli/main.js) when every source
// it is built from has an up-to-date compiled file; otherwise runs the TypeScript sources through
// tsx, so `npx tidemark …` works in a checkout without a build.
'use strict';

const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const outDir = path.join(root, 'out', 'node');

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

/** True when each non-test .ts under electron/ and shared/ has a newer .js in out/node. */
function compiledIsFresh() {
  const excluded = new Set([path.join('electron', 'main.ts'), path.join('electron', 'preload.ts')]);
  const stack = ['electron', 'shared'];
  while (stack.length > 0) {
    const rel = stack.pop();
    let entries;
    try {
      entries = fs.readdirSync(path.join(root, rel), { withFileTypes: true });
    } catch {
      return false;
    }
    for (const e of entries) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) {
        stack.push(r);
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !/\.i?test\.ts$/.test(e.name) && !excluded.has(r)) {
        const js = path.join(outDir, r.replace(/\.ts$/, '.js'));
        if (mtime(js) < mtime(path.join(root, r))) return false;
      }
    }
  }
  return true;
}

const compiled = path.join(outDir, 'electron', 'cli', 'main.js');
if (process.env.TIDEMARK_CLI_MODE !== 'tsx' && (process.env.TIDEMARK_CLI_MODE === 'compiled' || compiledIsFresh()) && fs.existsSync(compiled)) {
  require(compiled).main();
} else {
  // Both of tsx's hooks: the CLI loads its command modules with import() (lazily, one group per run).
  require('tsx/cjs');
  import('tsx/esm').then(() => require(path.join(root, 'electron', 'cli', 'main.ts')).main());
}
