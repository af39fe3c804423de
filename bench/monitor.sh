#!/usr/bin/env bash
# CPU time of monitor scans of unchanged containers built from the 1 GiB, 20 000-file corpus:
# one container, then 50 (all sharing the corpus as their rootfs), with `rootseal monitor
# --once`. Prints CPU seconds per container per scan: the first scan is cold (verify = "full"
# behaviour: no cache yet), the next ones are warm (the verification cache written by the
# first). Also the daemon's RSS while watching 50 containers.
#
#   bench/monitor.sh [CORPUS_DIR]     (default bench/out/corpus; N=50)
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=$(cd "${1:-bench/out/corpus}" && pwd)
N=${N:-50}
cargo build --release --quiet
RS=$PWD/target/release/rootseal
WORK=$(mktemp -d /tmp/rootseal-bench-mon.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
cat > "$WORK/config.toml" <<TOML
trust_dir = "$WORK/trust"
seal_dir = "$WORK/seals"
state_dir = "$WORK/state"
cache_dir = "$WORK/cache"
[alerts]
syslog_socket = ""
events_file = "$WORK/events.jsonl"
[monitor]
watch = false
TOML
export ROOTSEAL_CONFIG=$WORK/config.toml
"$RS" keygen --out "$WORK/ci" >/dev/null
"$RS" trust add "$WORK/ci.pub" >/dev/null
"$RS" seal "$CORPUS" --key "$WORK/ci.key" --out "$WORK/seal.json" 2>/dev/null
"$RS" trust import "$WORK/seal.json" >/dev/null
DIGEST=$("$RS" digest "$CORPUS")
mkdir -p "$WORK/bundle" "$WORK/state/containers"
printf '{"ociVersion":"1.0.2","root":{"path":"%s","readonly":true},"mounts":[{"destination":"/proc","type":"proc","source":"proc"}]}' "$CORPUS" > "$WORK/bundle/config.json"

record() { # id pid
  local start; start=$(awk '{print $22}' "/proc/$2/stat")
  printf '{"version":1,"id":"%s","bundle":"%s","rootfs":"%s","image":null,"seal_digest":"%s","seal_path":null,"pid":%s,"pid_start_time":%s,"verdict":"verified","mode":"enforce","time":"bench"}\n' \
    "$1" "$WORK/bundle" "$CORPUS" "$DIGEST" "$2" "$start" > "$WORK/state/containers/$1.json"
}
scan() { # n
  rm -f "$WORK"/state/containers/*.json
  for i in $(seq "$1"); do sleep 600 & pids+=($!); record "c$i" "$!"; done
  /usr/bin/time -f "%U %S %e" -o "$WORK/time" "$RS" monitor --once > "$WORK/out" || { cat "$WORK/out"; exit 1; }
  read -r u s e < "$WORK/time"
  python3 -c "n=$1; u=$u; s=$s; e=$e; print(f'{n:3d} container(s): {u+s:7.2f} s CPU ({u:.2f} user, {s:.2f} sys), {e:6.2f} s wall = {(u+s)/n*1000:6.0f} ms CPU per container per scan')"
  tail -1 "$WORK/out"
}
cat "$CORPUS"/* -r >/dev/null 2>&1 || true
sleep 2.1   # files younger than 2 s are never cached ("racily clean")
echo "cold (no cache):"; scan 1
echo "warm (cache from the cold scan):"; scan 1
scan "$N"
# The daemon with N containers: RSS after a few cycles of in-memory warm rescans.
cat >> "$WORK/config.toml" <<TOML
interval = "1s"
metrics_file = "$WORK/m.prom"
TOML
"$RS" monitor > /dev/null 2>&1 &
mon=$!
pids+=("$mon")
snap() { python3 -c "
import sys
m = dict(l.split() for l in open('$WORK/m.prom') if l.strip() and not l.startswith('#'))
print(m['rootseal_monitor_scans_total'], m['rootseal_monitor_scan_cpu_seconds_total'])"; }
for _ in $(seq 120); do [ -f "$WORK/m.prom" ] && break; sleep 0.5; done
read -r s1 c1 < <(snap)
sleep 10
read -r s2 c2 < <(snap)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$mon/status")
python3 -c "n=$N; ds=$s2-$s1; dc=$c2-$c1; print(f'daemon, {n} containers, 1 s interval, in-memory cache: {ds:.0f} rescans in 10 s, {dc/ds*1000:.1f} ms CPU per container per rescan; peak RSS {$rss/1024:.1f} MiB')"
kill -TERM "$mon"
