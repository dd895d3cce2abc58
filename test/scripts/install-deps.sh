#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real, if any is missing: the SD-card image
# tools (mtools, e2fsprogs, qemu-user-static for the arm64 bundle) and the firmware toolchain
# (gcc-avr, simavr), network namespaces and Avahi for the discovery tests, Ansible and debootstrap for
# the provisioning tests, and Chromium for the dashboard's browser test. Used by `make deps` (so `make test`) and by CI.
set -euo pipefail
DEBS="make g++ python3 mtools dosfstools e2fsprogs fdisk xz-utils util-linux qemu-user-static \
  gcc-avr avr-libc arduino-core-avr simavr libsimavr-dev libelf-dev pkg-config \
  iproute2 avahi-utils avahi-daemon libnss-mdns ansible ansible-lint debootstrap openssh-server openssh-client \
  sshpass rsync chromium"
missing=""
# Node.js 20 is a prerequisite; Debian 12's own nodejs is too old, so it is installed only if absent.
command -v node >/dev/null || missing="nodejs npm"
for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "missing Debian packages:$missing (run as root: apt-get install$missing)" >&2; exit 1; }
  SUDO=sudo
fi
echo "installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
