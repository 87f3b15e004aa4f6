// Finds an Electron executable WITHOUT require('electron') (which downloads one lazily and fails
// offline): $ELECTRON_BINARY (or $ELECTRON_EXEC_PATH), else node_modules/electron/path.txt + dist/,
// which exist only after the electron package's download succeeded. Used by bin/start.js and
// e2e/electron.spec.ts.
const fs = require('node:fs');
const path = require('node:path');

/** @returns {{ path?: string, reason: string }} */
function findElectronBinary(env = process.env, projectRoot = path.join(__dirname, '..')) {
  const fromEnv = env.ELECTRON_BINARY || env.ELECTRON_EXEC_PATH;
  if (fromEnv) {
    return fs.existsSync(fromEnv) ? { path: fromEnv, reason: `ELECTRON_BINARY=${fromEnv}` } : { reason: `ELECTRON_BINARY=${fromEnv} does not exist` };
  }
  const pkgDir = path.join(projectRoot, 'node_modules', 'electron');
  const pathTxt = path.join(pkgDir, 'path.txt');
  if (!fs.existsSync(pathTxt)) return { reason: 'no Electron binary (node_modules/electron was installed without its download); set ELECTRON_BINARY to use one' };
  const exe = path.join(env.ELECTRON_OVERRIDE_DIST_PATH || path.join(pkgDir, 'dist'), fs.readFileSync(pathTxt, 'utf8').trim());
  return fs.existsSync(exe) ? { path: exe, reason: exe } : { reason: `Electron binary ${exe} is missing` };
}

module.exports = { findElectronBinary };
