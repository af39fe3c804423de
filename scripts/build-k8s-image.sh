#!/usr/bin/env bash
# Builds the DaemonSet's image (packaging/kubernetes/daemonset.yaml) with buildah, from scratch:
# rootseal and rootseal-runtime, containerd's ctr (the sync container lists the node's images
# with it: this machine's, Debian's containerd package), the shared libraries they link (from
# this machine, by ldd), busybox-static for the shell and applets the install step uses, and the
# install step itself (packaging/kubernetes/image/rootseal-node-install). Writes an OCI archive; load it with
# `podman load -i`, or push it with `skopeo copy oci-archive:OUT docker://REGISTRY/REPO:TAG`.
#
#   scripts/build-k8s-image.sh [--bin-dir target/release] [--name NAME] --out OUT.tar
#
# As root (buildah's storage). Needs buildah and busybox-static (scripts/setup-host.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir=target/release
name=registry.example/rootseal/rootseal:$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out=
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "build-k8s-image: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "build-k8s-image: --out OUT.tar is required" >&2; exit 2; }
for b in rootseal rootseal-runtime; do
  [ -x "$bin_dir/$b" ] || { echo "build-k8s-image: $bin_dir/$b missing: cargo build --release first" >&2; exit 2; }
done
[ -x /bin/busybox ] || { echo "build-k8s-image: /bin/busybox missing (busybox-static)" >&2; exit 2; }
ctr_bin=$(command -v ctr) || { echo "build-k8s-image: ctr missing (containerd)" >&2; exit 2; }

stage=$(mktemp -d)
ctr=
cleanup() {
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$stage"
}
trap cleanup EXIT
mkdir -p "$stage/usr/bin" "$stage/bin" "$stage/etc" "$stage/tmp"
chmod 1777 "$stage/tmp"
cp "$bin_dir/rootseal" "$bin_dir/rootseal-runtime" "$ctr_bin" "$stage/usr/bin/"
cp packaging/kubernetes/image/rootseal-node-install "$stage/usr/bin/"
chmod 0755 "$stage/usr/bin/"*
cp /bin/busybox "$stage/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
done
# The dynamic loader and the libraries the binaries link, at the paths ldd names.
for lib in $(ldd "$bin_dir/rootseal" "$bin_dir/rootseal-runtime" "$ctr_bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $1 !~ /:$/ {print $1}' | sort -u); do
  mkdir -p "$stage$(dirname "$lib")"
  cp -L "$lib" "$stage$lib"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$stage/etc/passwd"

ctr=$(buildah from scratch)
buildah copy "$ctr" "$stage" / >/dev/null
buildah config --env PATH=/usr/bin:/bin --cmd /usr/bin/rootseal-node-install \
  --label org.opencontainers.image.title=rootseal \
  --label org.opencontainers.image.source=packaging/kubernetes "$ctr"
rm -f "$out"
buildah commit --quiet --rm "$ctr" "$name" >/dev/null
ctr=
buildah push --quiet "$name" "oci-archive:$out:$name"
buildah rmi "$name" >/dev/null 2>&1 || true
echo "build-k8s-image: $name -> $out"
