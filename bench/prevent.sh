#!/usr/bin/env bash
# Drift prevention's cost (bench/prevent.py): an exec loop inside one runc container with and
# without the monitor's fanotify marks, the first exec of a large sealed binary, and the
# monitor's CPU and memory. As root (runc, busybox-static).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 bench/prevent.py "$PWD/target/release/rootseal"
