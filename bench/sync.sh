#!/usr/bin/env bash
# The sync benchmark (bench/sync.py): 200 images with seals in a local docker-registry, a cold
# and a warm `rootseal sync`, wall time and request counts. As root or any user; needs
# docker-registry (scripts/setup-host.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || { echo "bench: docker-registry is missing (run sudo scripts/setup-host.sh)" >&2; exit 2; }
cargo build --release --quiet
exec python3 bench/sync.py "$PWD/target/release/rootseal" "${N:-200}"
