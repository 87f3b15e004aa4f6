#!/usr/bin/env bash
# Installs Debian packages for Tidemark's set-up and CI without starting system services:
#   bash scripts/apt-install.sh PKG...
# Installing libvirt-daemon-system or openssh-server would otherwise start daemons (an sshd on
# port 22 among them). A /usr/sbin/policy-rc.d that exits 101 stops that; Docker images ship one,
# and where it is missing this script puts one in place for the install and removes it afterwards.
# The libvirt daemons are started by scripts/libvirt-daemons.sh; tests start their own sshd on
# 127.0.0.1. Uses sudo when not root. Prints apt's output only when it fails.
set -euo pipefail
[ $# -gt 0 ] || exit 0
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
LOG=$(mktemp)
POLICY=/usr/sbin/policy-rc.d
made_policy=""

cleanup() {
  if [ -n "$made_policy" ]; then $SUDO rm -f "$POLICY"; fi
  rm -f "$LOG"
}
trap cleanup EXIT

if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# put here by Tidemark scripts/apt-install.sh for one install\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 0755 "$POLICY"
  made_policy=1
fi

had_sshd=""; [ -x /usr/sbin/sshd ] && had_sshd=1

if ! { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends "$@"; } >"$LOG" 2>&1; then
  tail -20 "$LOG" >&2
  exit 1
fi

# On a systemd machine, a newly installed openssh-server is enabled for the next boot: Tidemark only
# needs the binary, so do not leave a new network service behind.
if [ -z "$had_sshd" ] && [ -x /usr/sbin/sshd ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
  $SUDO systemctl disable ssh.service ssh.socket >/dev/null 2>&1 || true
  echo "note: openssh-server was installed for the tests only; its system service was left disabled"
fi
