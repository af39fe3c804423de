#!/usr/bin/env bash
# Benchmark the hook's cost on container start: `runc run` of the sealed 1 GiB, 20 000-file
# busybox corpus with the rootseal prestart hook against the same bundle without it,
# alternating in one run. Prints the median overhead in ms and as a ratio.
#
#   bench/hook.sh [CORPUS_DIR]     (default bench/out/corpus; RUNS=15)
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${1:-bench/out/corpus}
RUNS=${RUNS:-15}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
command -v runc >/dev/null || { echo "bench: runc missing (scripts/setup-host.sh)" >&2; exit 2; }
cargo build --release --quiet
if [ ! -x "$CORPUS/bin/busybox" ]; then
  rm -rf "$CORPUS"
  python3 "$SHARED/bench/mkrootfs.py" "$CORPUS" --files "${FILES:-20000}" --mib "${MIB:-1024}" --busybox >&2
fi
exec python3 bench/hook_overhead.py "$PWD/target/release/rootseal" "$(cd "$CORPUS" && pwd)" "$RUNS"
