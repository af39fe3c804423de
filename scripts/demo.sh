#!/usr/bin/env bash
# The main job on a small built-in example: build rootseal, make a tiny root filesystem, generate
# a key, seal the tree, verify it, tamper with one file, and watch verification fail.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
RS="$PWD/target/release/rootseal"
WORK=$(mktemp -d /tmp/rootseal-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "a small root filesystem in $WORK/rootfs"
mkdir -p "$WORK/rootfs"/{bin,etc,proc,sys,dev,tmp}
if [ -x /bin/busybox ]; then cp /bin/busybox "$WORK/rootfs/bin/busybox"; else printf 'not busybox\n' > "$WORK/rootfs/bin/busybox"; fi
ln -s busybox "$WORK/rootfs/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$WORK/rootfs/etc/passwd"
printf 'hello from a sealed image\n' > "$WORK/rootfs/etc/motd"
chmod 1777 "$WORK/rootfs/tmp"

step "rootseal keygen --out ci"
"$RS" keygen --out "$WORK/ci"
step "rootseal digest"
"$RS" digest "$WORK/rootfs" --json
step "rootseal seal --name demo/app:1 --expires 30d"
"$RS" seal "$WORK/rootfs" --key "$WORK/ci.key" --name demo/app:1 --expires 30d --out "$WORK/app.seal.json"
step "rootseal verify (expect: verified)"
"$RS" verify "$WORK/rootfs" --seal "$WORK/app.seal.json" --key "$WORK/ci.pub"

step "tamper: change /etc/motd, chmod u+s /bin/busybox"
cp "$WORK/rootfs/etc/motd" "$WORK/motd.orig"
printf 'pwned\n' > "$WORK/rootfs/etc/motd"
chmod u+s "$WORK/rootfs/bin/busybox"
step "rootseal verify (expect: failure, exit 1, naming both paths)"
set +e
"$RS" verify "$WORK/rootfs" --seal "$WORK/app.seal.json" --key "$WORK/ci.pub"
code=$?
set -e
echo "exit code: $code"
[ "$code" = 1 ] || { echo "demo: expected exit 1" >&2; exit 1; }
cp "$WORK/motd.orig" "$WORK/rootfs/etc/motd"
chmod u-s "$WORK/rootfs/bin/busybox"

if ! command -v runc >/dev/null || [ "$(id -u)" != 0 ] || [ ! -x /bin/busybox ]; then
  echo; echo "demo: OK (skipping the container part: it needs root, runc and busybox-static; run sudo scripts/setup-host.sh)"
  exit 0
fi

step "a node: trust store, seal store and the OCI hook in a runc bundle"
cat > "$WORK/config.toml" <<TOML
mode = "enforce"
trust_dir = "$WORK/node/trust"
seal_dir = "$WORK/node/seals"
state_dir = "$WORK/node/state"
cache_dir = "$WORK/node/cache"
[alerts]
syslog_socket = ""
events_file = "$WORK/node/events.jsonl"
TOML
export ROOTSEAL_CONFIG="$WORK/config.toml"
"$RS" trust add "$WORK/ci.pub" --name ci-2026
"$RS" trust import "$WORK/app.seal.json"
mkdir -p "$WORK/bundle"
runc spec --bundle "$WORK/bundle"
python3 - "$WORK" "$RS" <<'PY'
import json, sys
work, rs = sys.argv[1], sys.argv[2]
p = f"{work}/bundle/config.json"
c = json.load(open(p))
c["root"] = {"path": f"{work}/rootfs", "readonly": True}
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/sh", "-c", "cat /etc/motd"]
hook = lambda st: {"path": rs, "args": ["rootseal", "--config", f"{work}/config.toml", "hook", st], "timeout": 30}
c["hooks"] = {"prestart": [hook("prestart")], "poststop": [hook("poststop")]}
json.dump(c, open(p, "w"), indent=1)
PY
step "runc run: the sealed rootfs runs"
runc run --bundle "$WORK/bundle" "demo-$$-1"
step "tamper on the host, runc run again (expect: blocked, naming the path)"
printf 'pwned\n' > "$WORK/rootfs/etc/motd"
set +e
runc run --bundle "$WORK/bundle" "demo-$$-2"
code=$?
set -e
runc delete --force "demo-$$-2" >/dev/null 2>&1 || true
echo "exit code: $code"
[ "$code" != 0 ] || { echo "demo: the tampered container should have been blocked" >&2; exit 1; }
step "the alert in the events file"
tail -n 1 "$WORK/node/events.jsonl"
echo
echo "demo: OK"
