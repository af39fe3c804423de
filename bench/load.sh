#!/usr/bin/env bash
# The hook's latency outside the test harness, on a release build: the measurement of
# integration/load.rs (which runs the debug binary beside other tests). As root (runc).
#
#   bench/load.sh            N=200 runs of each by default
#
# On a small sealed busybox bundle (the integration fixture's rootfs), interleaved so that
# background load hits all of them alike:
#   - `runc run` of the bundle without hooks (the baseline);
#   - `runc run` of the same bundle with the hook (prestart and poststop), warm cache;
#   - `rootseal hook prestart` invoked directly with the OCI state on stdin, as runc does it
#     (then a poststop, not timed);
#   - `runc run` of a tampered copy, blocked by the hook.
# Prints p50/p99/max of each (ms) and the hook's overhead over bare runc at p50.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
N=${N:-200}
for tool in runc jq prlimit; do
  command -v "$tool" >/dev/null || { echo "load: $tool is missing (run sudo scripts/setup-host.sh)" >&2; exit 2; }
done
[ -x /bin/busybox ] || { echo "load: /bin/busybox (busybox-static) is missing" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "load: run as root (runc)" >&2; exit 2; }
cargo build --release --quiet
RS="$PWD/target/release/rootseal"
W=$(mktemp -d /tmp/rootseal-load.XXXXXX)
cleanup() {
  runc list -q 2>/dev/null | grep "^rsload-$$-" | xargs -r -n1 runc delete --force >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

# The rootfs of integration/harness.rs: busybox, applets, a setuid file, a capability xattr.
R="$W/rootfs"
mkdir -p "$R"/{bin,etc,usr/sbin,var}
cp /bin/busybox "$R/bin/busybox"
for a in sh echo cat ls touch id sleep true; do ln -s busybox "$R/bin/$a"; done
printf 'hello from a sealed rootfs\n' > "$R/etc/motd"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf '#!/bin/sh\necho ping\n' > "$R/usr/sbin/ping" && chmod 0755 "$R/usr/sbin/ping"
printf '#!/bin/sh\n' > "$R/usr/sbin/su" && chmod 4755 "$R/usr/sbin/su"
ln -s /etc/motd "$R/var/motd"

cat > "$W/node.toml" <<TOML
mode = "enforce"
trust_dir = "$W/node/trust"
seal_dir = "$W/node/seals"
state_dir = "$W/node/state"
cache_dir = "$W/node/cache"
[alerts]
syslog_socket = ""
events_file = "$W/node/events.jsonl"
TOML
rs() { "$RS" --config "$W/node.toml" "$@"; }
rs keygen --out "$W/ci" >/dev/null
rs trust add "$W/ci.pub" --name ci >/dev/null
rs seal "$R" --key "$W/ci.key" --name test.local/rootseal/app:1 --out "$W/app.seal.json" 2>/dev/null
rs trust import "$W/app.seal.json" >/dev/null
cp -a "$R" "$W/tampered"
printf 'pwned\n' > "$W/tampered/etc/motd"

runc spec --bundle "$W"
mv "$W/config.json" "$W/spec.json"
bundle() { # DIR ROOTFS HOOKS(0|1)
  mkdir -p "$1"
  jq --arg root "$2" --arg rs "$RS" --arg cfg "$W/node.toml" --argjson hooks "$3" '
    .root = {path: $root, readonly: true}
    | .process.terminal = false
    | .process.args = ["cat", "/etc/motd"]
    | if $hooks == 1 then .hooks = {
        prestart: [{path: $rs, args: ["rootseal", "--config", $cfg, "hook", "prestart"], timeout: 30}],
        poststop: [{path: $rs, args: ["rootseal", "--config", $cfg, "hook", "poststop"], timeout: 30}]
      } else . end' "$W/spec.json" > "$1/config.json"
}
bundle "$W/bare" "$R" 0
bundle "$W/hooked" "$R" 1
bundle "$W/blocked" "$W/tampered" 1

# Past the 2 s racy window, so that the hook's cache covers the rootfs (a node that has run
# the image before).
sleep 2.2
now() { echo "$EPOCHREALTIME"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'; }
run_bare() { runc run --bundle "$W/bare" "rsload-$$-b$1" </dev/null >"$W/out" 2>&1; }
run_hooked() { runc run --bundle "$W/hooked" "rsload-$$-h$1" </dev/null >"$W/out" 2>&1; }
run_blocked() { ! runc run --bundle "$W/blocked" "rsload-$$-x$1" </dev/null >"$W/out" 2>&1; }
state() { printf '{"ociVersion":"1.0.2","id":"rsload-%s-d%s","status":"%s","pid":%s,"bundle":"%s"}' "$$" "$1" "$2" "$$" "$W/hooked" > "$W/state.$2"; }
run_direct() { rs hook prestart < "$W/state.creating" >/dev/null 2>"$W/out"; }

for i in 1 2 3; do run_bare w$i; run_hooked w$i; done # warm-up
: > "$W/bare.ms"; : > "$W/hooked.ms"; : > "$W/direct.ms"; : > "$W/blocked.ms"
for i in $(seq "$N"); do
  t0=$(now); run_bare "$i" || { cat "$W/out"; exit 1; }; t1=$(now); ms "$t0" "$t1" >> "$W/bare.ms"
  t0=$(now); run_hooked "$i" || { cat "$W/out"; exit 1; }; t1=$(now); ms "$t0" "$t1" >> "$W/hooked.ms"
  grep -q 'hello from a sealed rootfs' "$W/out" || { echo "load: the sealed container did not run" >&2; exit 1; }
  state "$i" creating; state "$i" stopped
  t0=$(now); run_direct || { cat "$W/out"; exit 1; }; t1=$(now); ms "$t0" "$t1" >> "$W/direct.ms"
  rs hook poststop < "$W/state.stopped"
  if [ $((i % 4)) = 0 ]; then
    t0=$(now); run_blocked "$i" || { echo "load: the tampered container ran" >&2; exit 1; }; t1=$(now)
    grep -q 'rootseal: blocked' "$W/out" || { cat "$W/out"; exit 1; }
    ms "$t0" "$t1" >> "$W/blocked.ms"
  fi
done
left=$(find "$W/node/state/containers" -type f | wc -l)
[ "$left" = 0 ] || { echo "load: $left state record(s) left behind" >&2; exit 1; }

stats() { # FILE -> "p50 p99 max" (nearest rank)
  sort -n "$1" | awk '{ v[NR] = $1 } END {
    r50 = int(NR * 0.50); if (r50 < NR * 0.50) r50++; if (r50 < 1) r50 = 1
    r99 = int(NR * 0.99); if (r99 < NR * 0.99) r99++; if (r99 < 1) r99 = 1
    printf "%.1f %.1f %.1f", v[r50], v[r99], v[NR] }'
}
printf '| %-48s | %4s | %7s | %7s | %7s |\n' "measurement (release build, ms)" n p50 p99 max
printf '|---|---|---|---|---|\n'
for row in "bare:runc run, no hook (baseline)" "hooked:runc run + hook (pass, warm cache)" \
           "blocked:runc run + hook (tampered, blocked)" "direct:rootseal hook prestart, direct (warm cache)"; do
  f=${row%%:*}; what=${row#*:}
  read -r p50 p99 max <<< "$(stats "$W/$f.ms")"
  printf '| %-48s | %4s | %7s | %7s | %7s |\n' "$what" "$(wc -l < "$W/$f.ms")" "$p50" "$p99" "$max"
done
read -r b50 _ _ <<< "$(stats "$W/bare.ms")"
read -r h50 _ _ <<< "$(stats "$W/hooked.ms")"
awk -v b="$b50" -v h="$h50" 'BEGIN { printf "\nhook overhead at p50: %.1f ms (%.0f%% of bare runc run)\n", h - b, (h - b) / b * 100 }'
