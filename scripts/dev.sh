#!/usr/bin/env bash
# One entry point behind the README's two commands:
#   bash scripts/dev.sh start   set up (apt packages, npm packages, build), then run the app on the demo VM
#   bash scripts/dev.sh test    set up, then run every test (typecheck, lint, unit, real-QEMU, e2e, packaging)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(qemu-system-x86 qemu-utils libnbd-bin nbdkit chromium xvfb p7zip-full coreutils
  libvirt-daemon-system libvirt-clients openssh-server openssl gcc libc6-dev)

need_apt=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing apt packages: ${need_apt[*]}"
  bash scripts/apt-install.sh "${need_apt[@]}" # without starting system services
fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "error: Tidemark needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "==> installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

case "${1:-}" in
  start) shift; echo "==> building"; npm run --silent build; exec node bin/start.js "$@" ;;
  test) shift
    echo "==> starting libvirt's daemons (the libvirt tests use qemu:///system)"
    bash scripts/libvirt-daemons.sh start
    exec bash scripts/test-all.sh "$@" ;; # builds as its first counted step
  *) echo "usage: bash scripts/dev.sh start|test" >&2; exit 2 ;;
esac
