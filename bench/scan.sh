#!/usr/bin/env bash
# The scan gate's cost at start (bench/scan.py): a small busybox rootfs, warm hook with and
# without [scan] require and a 10 MiB report. As root (runc).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
cargo build --release --quiet
mkdir -p bench/out
if [ ! -x bench/out/scan-rootfs/bin/busybox ]; then
  rm -rf bench/out/scan-rootfs
  python3 "$SHARED/bench/mkrootfs.py" bench/out/scan-rootfs --files 2000 --mib 50 --busybox >&2
fi
exec python3 bench/scan.py "$PWD/target/release/rootseal" "$PWD/bench/out/scan-rootfs"
