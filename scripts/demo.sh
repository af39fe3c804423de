#!/usr/bin/env bash
# The main job on a small built-in example: build rootseal, make a tiny root filesystem, generate
# a key, seal the tree, verify it, tamper with one file, and watch verification fail.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
RS="$PWD/target/release/rootseal"
WORK=$(mktemp -d /tmp/rootseal-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "a small root filesystem in $WORK/rootfs"
mkdir -p "$WORK/rootfs"/{bin,etc,proc,sys,dev,tmp}
if [ -x /bin/busybox ]; then cp /bin/busybox "$WORK/rootfs/bin/busybox"; else printf 'not busybox\n' > "$WORK/rootfs/bin/busybox"; fi
ln -s busybox "$WORK/rootfs/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$WORK/rootfs/etc/passwd"
printf 'hello from a sealed image\n' > "$WORK/rootfs/etc/motd"
chmod 1777 "$WORK/rootfs/tmp"

step "rootseal keygen --out ci"
"$RS" keygen --out "$WORK/ci"
step "rootseal digest"
"$RS" digest "$WORK/rootfs" --json
step "rootseal seal --name demo/app:1 --expires 30d"
"$RS" seal "$WORK/rootfs" --key "$WORK/ci.key" --name demo/app:1 --expires 30d --out "$WORK/app.seal.json"
step "rootseal verify (expect: verified)"
"$RS" verify "$WORK/rootfs" --seal "$WORK/app.seal.json" --key "$WORK/ci.pub"

step "tamper: change /etc/motd, chmod u+s /bin/busybox"
printf 'pwned\n' > "$WORK/rootfs/etc/motd"
chmod u+s "$WORK/rootfs/bin/busybox"
step "rootseal verify (expect: failure, exit 1, naming both paths)"
set +e
"$RS" verify "$WORK/rootfs" --seal "$WORK/app.seal.json" --key "$WORK/ci.pub"
code=$?
set -e
echo "exit code: $code"
[ "$code" = 1 ] || { echo "demo: expected exit 1" >&2; exit 1; }
echo
echo "demo: OK"
