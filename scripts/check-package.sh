#!/usr/bin/env bash
# Offline packaging check: electron-builder --dir with a stand-in Electron (the real binary and
# the AppImage/deb tools are downloads this machine cannot make), then verify that app.asar holds
# only the built app. Exit 0 = the package would contain exactly what it should.
#   bash scripts/check-package.sh [--keep]    (--keep leaves the output in release/check/)
set -euo pipefail
cd "$(dirname "$0")/.."

for f in out/main/main.js out/preload/preload.js out/renderer/index.html; do
  if [ ! -f "$f" ]; then echo "==> $f is missing: building"; npm run --silent build; break; fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/tm-pkg-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/electron-dist"
# The stand-in: electron-builder copies and renames it; it must never be mistaken for Electron.
printf '#!/bin/sh\necho "stand-in for Electron (packaging dry run); not runnable" >&2\nexit 1\n' > "$work/electron-dist/electron"
chmod +x "$work/electron-dist/electron"
echo "45.4.1" > "$work/electron-dist/version"

out="$work/release"
[ "${1:-}" = "--keep" ] && out="$PWD/release/check" && rm -rf "$out"
echo "==> electron-builder --linux --dir (offline dry run, stand-in Electron)"
EB_OFFLINE_DRY_RUN=1 EB_ELECTRON_DIST="$work/electron-dist" \
  npx --no-install electron-builder --config electron-builder.config.cjs --linux --dir \
  -c.directories.output="$out" --publish never 2>&1 | sed 's/^/   /'

unpacked="$out/linux-unpacked"
[ -x "$unpacked/tidemark-desktop" ] || { echo "FAILED: $unpacked/tidemark-desktop (the renamed executable) is missing"; exit 1; }
echo "==> verifying $unpacked/resources/app.asar"
node scripts/verify-asar.mjs "$unpacked/resources/app.asar"
