#!/usr/bin/env bash
# The benchmark suite in one command: builds the corpora, runs everything, prints one table
# (markdown, for docs/performance.md). Under 10 minutes on a 2-core machine. As root (runc).
#
#   bench/run.sh            RUNS=7 NCONT=50 by default
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
for tool in runc openssl mtree python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (run sudo scripts/setup-host.sh)" >&2; exit 2; }
done
cargo build --release --quiet
mkdir -p bench/out
if [ ! -x bench/out/corpus/bin/busybox ]; then
  rm -rf bench/out/corpus
  python3 "$SHARED/bench/mkrootfs.py" bench/out/corpus --files 20000 --mib 1024 --busybox >&2
fi
if [ ! -x bench/out/small/bin/busybox ]; then
  rm -rf bench/out/small
  python3 "$SHARED/bench/mkrootfs.py" bench/out/small --files 100000 --mib 200 --busybox >&2
fi
exec python3 bench/run.py "$PWD/target/release/rootseal" "$PWD/bench/out/corpus" "$PWD/bench/out/small"
