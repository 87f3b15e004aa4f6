#!/usr/bin/env node
// `npm start`: the desktop app when an Electron binary exists (and there is a display), else the
// web host on 127.0.0.1 with its URL printed. Builds first when the build is missing or older
// than the sources. Either way the demo VM starts when no VM is configured yet.
// Arguments are passed on: npm start -- --state-dir DIR  (web host also: --port N, --no-open)
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { findElectronBinary } = require('../scripts/electron-binary');

const root = path.join(__dirname, '..');
const OUTPUTS = ['out/node/electron/cli/commands/serve.js', 'out/renderer/index.html', 'out/main/main.js', 'out/preload/preload.js'];
const SOURCES = ['electron', 'shared', 'renderer', 'package.json', 'electron.vite.config.mts'];

function newest(p) {
  const st = fs.statSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.mtimeMs;
  let t = st.mtimeMs;
  for (const name of fs.readdirSync(p)) if (name !== 'node_modules') t = Math.max(t, newest(path.join(p, name)));
  return t;
}

function buildIfNeeded() {
  // tsc -b rewrites only what changed, but the bundlers rewrite their outputs on every build: the
  // newest output is when the last build ran.
  const times = OUTPUTS.map((f) => fs.statSync(path.join(root, f), { throwIfNoEntry: false })?.mtimeMs ?? 0);
  const built = times.includes(0) ? 0 : Math.max(...times);
  const sources = Math.max(...SOURCES.map((s) => newest(path.join(root, s))));
  if (built > 0 && built >= sources) return;
  console.log(built === 0 ? 'tidemark: building (first run)…' : 'tidemark: sources changed, rebuilding…');
  const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('tidemark: the build failed (see above); fix it and run npm start again');
    process.exit(r.status ?? 1);
  }
}

function startDesktop(electron, args) {
  const env = { ...process.env };
  delete env.ELECTRON_RUN_AS_NODE; // would make Electron a plain Node
  const child = spawn(electron, [root, ...args], { cwd: root, stdio: 'inherit', env });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => {
    console.error(`tidemark: cannot run Electron (${electron}): ${e.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

function startWebHost(args) {
  const { runServe } = require(path.join(root, 'out/node/electron/cli/commands/serve.js'));
  runServe(args).then((code) => process.exit(code));
}

function main() {
  const args = process.argv.slice(2);
  buildIfNeeded();
  const electron = findElectronBinary();
  const display = process.env.DISPLAY || process.env.WAYLAND_DISPLAY;
  if (electron.path && display) return startDesktop(electron.path, args);
  const why = electron.path ? `no display for Electron (${electron.path})` : electron.reason;
  console.log(`tidemark: ${why}; starting the web host instead.`);
  startWebHost(args);
}

main();
