#!/usr/bin/env bash
# Benchmark `rootseal digest` against this machine's SHA-256 limit and two baselines, in one run.
#
#   bench/digest.sh [CORPUS_DIR]      (default bench/out/corpus; built if missing)
#
# Corpus: ../shared/bench/mkrootfs.py --files 20000 --mib 1024 (override FILES=, MIB=).
# Prints, with the page cache warm:
#   limit      = unique file bytes / (openssl speed -evp sha256, 16 KiB blocks, x nproc)
#   rootseal   = median wall time of `rootseal digest` (and its peak RSS)
#   xargs      = find -type f -print0 | xargs -0 -P$(nproc) -n500 openssl dgst -sha256
#   mtree      = mtree -c -K sha256digest
# Targets (issue 2): rootseal within 1.25x of the limit, peak RSS under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-20000}
MIB=${MIB:-1024}
RUNS=${RUNS:-5}
CORPUS=${1:-bench/out/corpus}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
NPROC=$(nproc)

for tool in openssl mtree python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install -y openssl mtree-netbsd time)" >&2; exit 2; }
done
cargo build --release --quiet
BIN=target/release/rootseal

if [ ! -d "$CORPUS" ] || [ -z "$(ls -A "$CORPUS" 2>/dev/null)" ]; then
  echo "building corpus: $FILES files, $MIB MiB in $CORPUS" >&2
  python3 "$SHARED/bench/mkrootfs.py" "$CORPUS" --files "$FILES" --mib "$MIB" --busybox >&2
fi

# Unique bytes (a hard-linked inode is hashed once) and all-path bytes.
read -r UNIQUE ALLPATHS NFILES < <(python3 - "$CORPUS" <<'PY'
import os, sys
seen, uniq, allb, n = set(), 0, 0, 0
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        st = os.lstat(os.path.join(d, f))
        if (st.st_mode & 0o170000) == 0o100000:
            n += 1; allb += st.st_size
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino)); uniq += st.st_size
print(uniq, allb, n)
PY
)

# Warm the page cache.
find "$CORPUS" -type f -print0 | xargs -0 cat > /dev/null

# openssl speed prints "sha256 ... <16384-byte rate>k" in its last line of the table.
SPEED_K=$(openssl speed -evp sha256 -bytes 16384 -seconds 3 2>/dev/null | awk '/^sha256/ {v=$NF} END {sub("k","",v); print v}')
PER_CORE=$(python3 -c "print(float('$SPEED_K') * 1000)")
LIMIT=$(python3 -c "print($UNIQUE / ($PER_CORE * $NPROC))")

median() { python3 -c "import sys, statistics; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
now() { date +%s.%N; }

rs=() ; xa=() ; rss=0
for i in $(seq "$RUNS"); do
  t0=$(now); /usr/bin/time -f %M -o bench/out/rss "$BIN" digest "$CORPUS" > bench/out/digest; t1=$(now)
  rs+=("$(python3 -c "print($t1 - $t0)")")
  r=$(cat bench/out/rss); [ "$r" -gt "$rss" ] && rss=$r
  t0=$(now); find "$CORPUS" -type f -print0 | xargs -0 -P"$NPROC" -n500 openssl dgst -sha256 > /dev/null; t1=$(now)
  xa+=("$(python3 -c "print($t1 - $t0)")")
done
t0=$(now); mtree -c -K sha256digest -p "$CORPUS" > /dev/null; t1=$(now)
MT=$(python3 -c "print($t1 - $t0)")
RS=$(median "${rs[@]}"); XA=$(median "${xa[@]}")

python3 - <<PY
nproc, uniq, allb, n = $NPROC, $UNIQUE, $ALLPATHS, $NFILES
per_core, limit, rs, xa, mt, rss = $PER_CORE, $LIMIT, $RS, $XA, $MT, $rss
print(f"corpus: {n} files, {allb/2**20:.0f} MiB ({uniq/2**20:.0f} MiB unique), digest $(cat bench/out/digest)")
print(f"sha256 limit: {per_core/1e6:.0f} MB/s per core x {nproc} cores = {limit*1000:.0f} ms")
print(f"rootseal digest  {rs*1000:8.0f} ms   {rs/limit:5.2f}x the limit (target <= 1.25x)   peak RSS {rss/1024:.1f} MiB (target < 64)")
print(f"xargs openssl    {xa*1000:8.0f} ms   {xa/limit:5.2f}x the limit   rootseal is {xa/rs:.2f}x faster")
print(f"mtree sha256     {mt*1000:8.0f} ms   {mt/limit:5.2f}x the limit   rootseal is {mt/rs:.2f}x faster")
PY
