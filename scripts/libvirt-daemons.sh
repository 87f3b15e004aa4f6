#!/usr/bin/env bash
# Makes sure libvirt's daemons run, for CI, for the libvirt tests and for humans:
#   bash scripts/libvirt-daemons.sh start     start what is missing, then wait until qemu:///system answers
#   bash scripts/libvirt-daemons.sh restart   restart libvirtd only (running domains keep running)
#   bash scripts/libvirt-daemons.sh status
# With systemd (a desktop), systemctl starts them. Without it (containers, CI), they are started by
# hand as root: virtlogd, virtlockd, then libvirtd, each with --daemon. Needs root (sudo otherwise).
set -euo pipefail

URI=qemu:///system
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

answers() { timeout 10 virsh -c "$URI" version >/dev/null 2>&1; }

# alive NAME: the pid in /run/NAME.pid is a running NAME
alive() {
  local pid
  pid=$($SUDO cat "/run/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$($SUDO cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ]
}

wait_ready() {
  for _ in $(seq 1 150); do answers && return 0; sleep 0.2; done
  echo "error: libvirtd did not answer on $URI within 30 s" >&2
  return 1
}

has_systemd() { [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; }

# Without systemd there is no udev to give /dev/kvm the group and mode Debian's rules give it (root:kvm
# 0660); a container may hand it over as root:root 0600. libvirt's QEMU probe then finds KVM enabled, its
# check that the qemu user can open /dev/kvm finds it closed, and libvirtd probes every QEMU binary again at
# every connection: ~4 s per virsh call, and the restart tests time out. Only the group and mode udev would set.
kvm_as_udev_sets_it() {
  [ -c /dev/kvm ] && getent group kvm >/dev/null || return 0
  [ "$(stat -c %G:%a /dev/kvm)" = "kvm:660" ] && return 0
  echo "note: /dev/kvm is $(stat -c %U:%G\ %a /dev/kvm); setting it to root:kvm 0660, as udev does (libvirt's qemu user must open it)"
  # Best effort: the daemons work without it, only slowly, so a /dev that refuses the change stops nothing.
  $SUDO chgrp kvm /dev/kvm && $SUDO chmod 0660 /dev/kvm ||
    echo "warning: could not set /dev/kvm to root:kvm 0660; libvirtd may probe QEMU again at every connection (seconds each)" >&2
}

start() {
  has_systemd || kvm_as_udev_sets_it
  if answers; then return 0; fi
  for d in libvirtd virtlogd virtlockd; do
    command -v "$d" >/dev/null || [ -x "/usr/sbin/$d" ] || { echo "error: $d is not installed (apt-get install libvirt-daemon-system)" >&2; return 1; }
  done
  if has_systemd; then
    $SUDO systemctl start virtlogd.socket virtlockd.socket libvirtd.service
  else
    for d in virtlogd virtlockd libvirtd; do
      alive "$d" || $SUDO "/usr/sbin/$d" --daemon
    done
  fi
  wait_ready
}

restart() {
  if has_systemd; then
    $SUDO systemctl restart libvirtd.service
  else
    kvm_as_udev_sets_it
    if alive libvirtd; then
      pid=$($SUDO cat /run/libvirtd.pid)
      $SUDO kill -TERM "$pid"
      for _ in $(seq 1 150); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      if [ -d "/proc/$pid" ]; then echo "error: libvirtd ($pid) did not stop within 15 s" >&2; return 1; fi
    fi
    for d in virtlogd virtlockd libvirtd; do
      alive "$d" || $SUDO "/usr/sbin/$d" --daemon
    done
  fi
  wait_ready
}

case "${1:-start}" in
  start) start ;;
  restart) restart ;;
  status) if answers; then echo "libvirtd answers on $URI"; else echo "libvirtd does not answer on $URI"; exit 1; fi ;;
  *) echo "usage: bash scripts/libvirt-daemons.sh start|restart|status" >&2; exit 2 ;;
esac
