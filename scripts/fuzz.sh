#!/usr/bin/env bash
# Builds every cargo-fuzz target in fuzz/ and runs each for SECONDS (default 10) from the
# committed seeds, one after the other; prints one line per target and exits 1 if any crashed,
# naming the crash artifact. See fuzz/README.md.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
# Env:   FUZZ_TARGETS="state layer"  only these targets (default: all of them)
#        FUZZ_SANITIZER=none         no AddressSanitizer (default: address)
#        FUZZ_CORPUS=DIR             where corpora grow (default: fuzz/corpus, git-ignored)
#        FUZZ_TARGET_DIR=DIR         cargo's target directory (default: fuzz/target; cache it in CI)
#
# Only the stable toolchain is needed: cargo-fuzz passes -Zsanitizer=address, which stable
# rustc accepts with RUSTC_BOOTSTRAP=1 (cargo-fuzz itself and libfuzzer-sys come from crates.io).
set -euo pipefail
SECS=${1:-10}
case $SECS in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/../fuzz"
FUZZ=$PWD
SAN=${FUZZ_SANITIZER:-address}
CORPUS=${FUZZ_CORPUS:-$FUZZ/corpus}
build=(-s "$SAN")
[ -n "${FUZZ_TARGET_DIR:-}" ] && build+=(--target-dir "$FUZZ_TARGET_DIR")
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

start=$(date +%s)
targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
# One build for all targets: they share every dependency.
cargo fuzz build "${build[@]}"
echo "fuzz: built $(echo $targets | wc -w) targets in $(($(date +%s) - start))s (sanitizer: $SAN)"

failed=0
summary=()
for t in $targets; do
    mkdir -p "$CORPUS/$t" "$FUZZ/artifacts/$t"
    log=$(mktemp "/tmp/rootseal-fuzz-$t.XXXXXX")
    # The scratch corpus comes first: libFuzzer writes new inputs there, and only reads the
    # seeds, so a run never changes a committed file.
    set +e
    cargo fuzz run "${build[@]}" "$t" "$CORPUS/$t" "$FUZZ/seeds/$t" -- \
        -max_total_time="$SECS" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    units=$(find "$CORPUS/$t" -type f | wc -l)
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    if [ "$rc" = 0 ]; then
        line="fuzz: $t: ${execs:-?} execs (${rate:-?}/s), corpus $units, crashes 0"
        rm -f "$log"
    else
        failed=1
        line="fuzz: $t: CRASHED after ${execs:-?} execs (exit $rc): ${artifact:-no artifact, see $log}"
        # The panic and its message (the line after), or the sanitizer's report.
        awk '/panicked at/ && !p {p=1; print; getline; print} /^==[0-9]+==ERROR|^SUMMARY/' "$log" | head -6 >&2 || true
        echo "fuzz: $t: full log $log; reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s $SAN $t ${artifact:-ARTIFACT})" >&2
    fi
    echo "$line"
    summary+=("$line")
done

echo "fuzz: done in $(($(date +%s) - start))s"
printf '%s\n' "${summary[@]}"
exit "$failed"
