// electron-builder 26: Linux AppImage + deb of the built app (out/main, out/preload, out/renderer).
// The asar holds only those and package.json: main.js bundles the engine, renderer libraries are
// devDependencies, and `dependencies` (ws, saxes: used by the CLI and web host from a checkout)
// are kept out (files "!node_modules/**", and dropped from the packaged package.json), because
// the bundles need none of them. scripts/check-package.sh verifies the result.
//
// Offline dry run (CI, this machine): EB_OFFLINE_DRY_RUN=1 EB_ELECTRON_DIST=<dir with a stand-in
// "electron" executable> electron-builder --config electron-builder.config.cjs --linux --dir
// Fuses cannot be flipped on a stand-in (no sentinel), so they are left out then, and only then.
const fs = require('node:fs');
const path = require('node:path');

const offline = process.env.EB_OFFLINE_DRY_RUN === '1';
if (offline && !process.env.EB_ELECTRON_DIST) {
  throw new Error('EB_OFFLINE_DRY_RUN=1 needs EB_ELECTRON_DIST: a directory holding a stand-in "electron" executable');
}

/** [Desktop Entry] keys from build/tidemark.desktop (Exec and Icon are filled in by electron-builder). */
function desktopEntry(file = path.join(__dirname, 'build', 'tidemark.desktop')) {
  const entry = {};
  let inEntry = false;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const t = line.trim();
    if (t.startsWith('[')) inEntry = t === '[Desktop Entry]';
    else if (inEntry && t && !t.startsWith('#') && t.includes('=')) entry[t.slice(0, t.indexOf('='))] = t.slice(t.indexOf('=') + 1);
  }
  return entry;
}

/** Electron security checklist #19. */
const FUSES = {
  runAsNode: false,
  enableCookieEncryption: true,
  enableNodeOptionsEnvironmentVariable: false,
  enableNodeCliInspectArguments: false,
  enableEmbeddedAsarIntegrityValidation: true,
  onlyLoadAppFromAsar: true,
  grantFileProtocolExtraPrivileges: false,
};

/** @type {import('electron-builder').Configuration} */
const config = {
  appId: 'org.tidemark.app',
  productName: 'Tidemark',
  executableName: 'tidemark-desktop',
  directories: { output: 'release', buildResources: 'build' },
  files: ['out/main/**', 'out/preload/**', 'out/renderer/**', 'package.json', '!**/*.map', '!node_modules/**'],
  extraMetadata: { dependencies: null },
  asar: true,
  npmRebuild: false,
  nodeGypRebuild: false,
  linux: {
    target: ['AppImage', 'deb'],
    category: 'System',
    icon: 'build/icons',
    maintainer: 'Tidemark developers <dev@tidemark.invalid>',
    synopsis: 'QEMU dirty-bitmap checkpoints and incremental backups, made visible',
    desktop: { entry: desktopEntry() },
  },
  deb: { depends: ['qemu-utils', 'libgtk-3-0', 'libnss3', 'libxss1', 'libasound2'], recommends: ['qemu-system-x86'] },
  appImage: { artifactName: '${productName}-${version}-${arch}.AppImage' },
  ...(offline ? { electronDist: process.env.EB_ELECTRON_DIST } : { electronFuses: FUSES }),
};

module.exports = config;
