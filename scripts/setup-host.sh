#!/usr/bin/env bash
# Prepares this machine for rootseal's demo and test suite (Debian 12, as root). Idempotent.
set -euo pipefail
# Works as root (a Debian server has no sudo) and for a user with sudo (it elevates itself).
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then exec sudo --preserve-env=PATH "$0" "$@"; fi
  echo "setup-host: run as root" >&2; exit 2
fi
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in runc crun containerd podman openssl busybox-static mtree-netbsd rsyslog attr libcap2-bin time lintian python3-cryptography; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "setup-host: installing ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# crun refuses hybrid cgroup layouts where hugetlb sits on the v2 hierarchy (RUNTIME-FACTS.md):
# give hugetlb its own v1 mount.
if grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi
# cargo-deb builds the Debian package (the package test in integration/deb.rs).
if ! command -v cargo-deb >/dev/null 2>&1 && command -v cargo >/dev/null 2>&1; then
  echo "setup-host: installing cargo-deb"
  cargo install --locked --quiet cargo-deb
fi
echo "setup-host: ready ($(runc --version | head -1); $(crun --version | head -1); $(podman --version))"
