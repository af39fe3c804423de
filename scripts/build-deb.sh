#!/usr/bin/env bash
# Builds target/debian/rootseal_VERSION_ARCH.deb with cargo-deb (cargo install cargo-deb).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || { echo "build-deb: cargo-deb is missing: cargo install --locked cargo-deb" >&2; exit 2; }
cargo build --release --quiet
mkdir -p target/package
for b in rootseal rootseal-runtime; do
  cp target/release/$b target/package/$b
  strip --strip-unneeded target/package/$b
done
gzip -9n < packaging/rootseal-runtime.1 > target/package/rootseal-runtime.1.gz
target/release/rootseal generate man | gzip -9n > target/package/rootseal.1.gz
target/release/rootseal generate completions-bash > target/package/rootseal.bash
cargo deb --no-build --quiet "$@"
ls target/debian/*.deb
