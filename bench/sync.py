"""The sync benchmark (issue 16, "Scale"): N images in a local registry (Debian's
docker-registry 2.8, plain HTTP on 127.0.0.1), each with one rootseal seal pushed next to it;
then `rootseal sync` on a node that lists all N in [registry] images:
  cold   the first sync: every seal fetched, verified and stored
  warm   a sync with no change (median of 3): what every timer tick costs a node
The images are listed pinned to their digests, as `sync` lists a node's images (a digest's
manifest is immutable: a warm sync asks only for the referrers). Prints wall time and registry requests (from the sync's summary line), requests per image,
the warm/cold ratios, and the fleet estimate for 1 000 nodes x N images every 5 minutes.

  python3 bench/sync.py target/release/rootseal [N]      (bench/sync.sh does the setup)
"""
import hashlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

RS = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 200


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.status, dict(r.headers), r.read()


def push_blob(base, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _, h, _ = http("POST", f"{base}/v2/{repo}/blobs/uploads/", b"")
    loc = h["Location"]
    loc = loc if loc.startswith("http") else base + loc
    sep = "&" if "?" in loc else "?"
    http("PUT", f"{loc}{sep}digest={digest}", data, {"Content-Type": "application/octet-stream"})
    return digest, len(data)


def main():
    work = tempfile.mkdtemp(prefix="rootseal-bench-sync.")
    port = free_port()
    host = f"127.0.0.1:{port}"
    base = f"http://{host}"
    with open(f"{work}/registry.yml", "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {work}/data\n"
                f"http:\n  addr: {host}\n")
    reg = subprocess.Popen(["docker-registry", "serve", f"{work}/registry.yml"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                http("GET", f"{base}/v2/")
                break
            except Exception:
                time.sleep(0.1)
        subprocess.run([RS, "keygen", "--out", f"{work}/ci"], check=True, stdout=subprocess.DEVNULL)
        os.makedirs(f"{work}/rootfs/etc")
        layer = b"layer"  # the blob's content does not matter to the registry or the sync
        t0 = time.time()
        images = []
        for i in range(N):
            repo = f"bench/app{i:03d}"
            ld, ls = push_blob(base, repo, layer)
            cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [ld]},
                              "config": {"Env": [f"I={i}"]}}).encode()
            cd, cs = push_blob(base, repo, cfg)
            man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                              "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                              "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]}).encode()
            http("PUT", f"{base}/v2/{repo}/manifests/1", man, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            ref = f"{host}/{repo}:1"
            # As a node lists its images: pinned to the digest it pulled.
            pinned = f"{ref}@sha256:{hashlib.sha256(man).hexdigest()}"
            with open(f"{work}/rootfs/etc/motd", "w") as f:
                f.write(f"image {i}\n")
            seal = f"{work}/seal{i}.json"
            subprocess.run([RS, "seal", f"{work}/rootfs", "--key", f"{work}/ci.key", "--name", ref, "--out", seal],
                           check=True, stderr=subprocess.DEVNULL)
            images.append((ref, seal, pinned))
        node = f"""trust_dir = "{work}/trust"
seal_dir = "{work}/seals"
state_dir = "{work}/state"
cache_dir = "{work}/cache"
[alerts]
syslog_socket = ""
events_file = "{work}/events.jsonl"
[registry]
auth_file = ""
plain_http = ["{host}"]
containerd_address = ""
podman = false
images = [{", ".join(json.dumps(p) for _, _, p in images)}]
"""
        with open(f"{work}/node.toml", "w") as f:
            f.write(node)
        os.chmod(f"{work}/node.toml", 0o600)
        for ref, seal, _ in images:
            subprocess.run([RS, "--config", f"{work}/node.toml", "push", ref, "--seal", seal], check=True,
                           stdout=subprocess.DEVNULL)
        subprocess.run([RS, "--config", f"{work}/node.toml", "trust", "add", f"{work}/ci.pub"], check=True,
                       stdout=subprocess.DEVNULL)
        print(f"bench: {N} images and seals pushed in {time.time() - t0:.1f} s", file=sys.stderr)

        def sync():
            t = time.time()
            p = subprocess.run([RS, "--config", f"{work}/node.toml", "sync"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
            wall = time.time() - t
            line = p.stdout.strip().splitlines()[-1]
            if p.returncode != 0:
                sys.exit(f"bench: sync failed ({p.returncode}): {line}\n{p.stderr[-2000:]}")
            m = re.search(r"(\d+) unchanged, (\d+) new seal\(s\), (\d+) failed; (\d+) registry request", line)
            return wall, int(m.group(1)), int(m.group(2)), int(m.group(4)), line

        cold = sync()
        assert cold[2] == N, cold[4]
        warms = [sync() for _ in range(3)]
        assert all(w[1] == N for w in warms), warms[-1][4]
        warm_wall = statistics.median(w[0] for w in warms)
        warm_req = warms[-1][3]
        per_image = warm_req / N
        fleet = 1000 * warm_req / 300
        rows = [
            ("sync", f"cold: {N} images, {N} new seals", f"{cold[0]*1000:.0f} ms", f"{cold[3]} req", f"{cold[3]/N:.2f} req/image"),
            ("sync", f"warm: {N} images, no change (median of 3)", f"{warm_wall*1000:.0f} ms", f"{warm_req} req",
             f"{per_image:.2f} req/image"),
            ("sync", "warm / cold", f"{warm_wall/cold[0]:.2f}x time", f"{warm_req/cold[3]:.2f}x req", ""),
            ("sync", f"fleet: 1000 nodes x {N} images, every 5 min", f"{fleet:.0f} req/s", "", "at the registry"),
        ]
        print("| group | measurement | value | requests | note |")
        print("|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    finally:
        reg.terminate()
        reg.wait()
        subprocess.run(["rm", "-rf", work])


main()
