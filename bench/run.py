"""rootseal's benchmark suite: one run, one table of ratios (see bench/run.sh).

Corpora (../shared/bench/mkrootfs.py, --busybox so they run as containers):
  big:   20 000 files, 1 GiB        small: 100 000 files, 200 MiB
Measured, page cache warm, in this order:
  digest    rootseal digest vs the SHA-256 limit (openssl speed -evp sha256, 16 KiB, x cores),
            vs find | xargs -P$(nproc) openssl dgst -sha256, vs mtree -c -K sha256digest
  hook      runc run without the hook, with it cold (verify = "full") and warm
            (verify = "cached", cache filled), alternating in one loop; overhead vs bare runc;
            then the same over a fresh overlay mount per start (as containerd and podman do):
            bare, "cached" (its cache does not carry across mounts) and "layers" (reuses the
            verification of the same lower layers)
  rss       peak RSS of the hook's decision (rootseal check) cold and warm, both corpora
  monitor   CPU per container per scan: cold, warm from the on-disk cache, and the daemon's
            in-memory rescans with 50 containers; the daemon's peak RSS
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RS, BIG, SMALL = sys.argv[1], sys.argv[2], sys.argv[3]
RUNS = int(os.environ.get("RUNS", "7"))
NCONT = int(os.environ.get("NCONT", "50"))
NPROC = os.cpu_count() or 1
rows = []


def row(group, what, value, ratio="", target=""):
    rows.append((group, what, value, ratio, target))
    print(f"  {group:8} {what:58} {value:>14} {ratio:>10} {target}", file=sys.stderr)


def sh(*args, env=None, check=True, **kw):
    return subprocess.run(args, env=env, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def timed(*args, env=None):
    """(wall s, cpu s, peak RSS KiB) of one command."""
    out = tempfile.mktemp()
    t0 = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", out, *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    u, s, m = open(out).read().split()[-3:]
    os.unlink(out)
    return wall, float(u) + float(s), int(m)


def files_bytes(root):
    seen, uniq, n = set(), 0, 0
    for d, _, fs in os.walk(root):
        for f in fs:
            st = os.lstat(os.path.join(d, f))
            if (st.st_mode & 0o170000) == 0o100000:
                n += 1
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    uniq += st.st_size
    return n, uniq


def alternate(kinds, bundle_for, tag):
    """`runc run` of bundle_for(kind, round) for each kind, RUNS + 1 rounds in alternating order;
    round 0 warms up and is dropped. Wall seconds per kind."""
    times = {k: [] for k in kinds}
    for i in range(RUNS + 1):
        for k in kinds if i % 2 == 0 else list(reversed(kinds)):
            b = bundle_for(k, i)
            cid = f"bench-{tag}-{k}-{os.getpid()}-{i}"
            t0 = time.perf_counter()
            r = subprocess.run(["runc", "run", "--bundle", b, cid], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            dt = time.perf_counter() - t0
            subprocess.run(["runc", "delete", "--force", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode != 0:
                sys.exit(f"bench: {tag} {k} run failed: {r.stderr.decode()}")
            if i > 0:
                times[k].append(dt)
    return times


def warm_cache(root):
    subprocess.run(f"find '{root}' -type f -print0 | xargs -0 cat > /dev/null", shell=True, check=True)


work = tempfile.mkdtemp(prefix="rootseal-bench-")
procs = []
try:
    # --- digest ----------------------------------------------------------------------------
    n, uniq = files_bytes(BIG)
    warm_cache(BIG)
    speed = sh("openssl", "speed", "-evp", "sha256", "-bytes", "16384", "-seconds", "3").stdout.decode()
    per_core = float([l for l in speed.splitlines() if l.startswith("sha256")][-1].split()[-1].rstrip("k")) * 1000
    limit = uniq / (per_core * NPROC)
    print(f"corpus big: {n} files, {uniq / 2**20:.0f} MiB unique; SHA-256 {per_core / 1e6:.0f} MB/s x {NPROC} cores "
          f"= limit {limit * 1000:.0f} ms", file=sys.stderr)
    d = [timed(RS, "digest", BIG) for _ in range(RUNS)]
    dig = statistics.median(x[0] for x in d)
    xa = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(f"find '{BIG}' -type f -print0 | xargs -0 -P{NPROC} -n500 openssl dgst -sha256 > /dev/null",
                       shell=True, check=True)
        xa.append(time.perf_counter() - t0)
    xa = statistics.median(xa)
    t0 = time.perf_counter()
    subprocess.run(["mtree", "-c", "-K", "sha256digest", "-p", BIG], stdout=subprocess.DEVNULL, check=True)
    mt = time.perf_counter() - t0
    row("digest", "rootseal digest, 1 GiB / 20k files", f"{dig * 1000:.0f} ms", f"{dig / limit:.2f}x limit", "<= 1.25x")
    row("digest", "xargs -P openssl dgst / rootseal digest", f"{xa * 1000:.0f} ms", f"{xa / dig:.2f}x", ">= 1.5x")
    row("digest", "mtree -K sha256digest / rootseal digest", f"{mt * 1000:.0f} ms", f"{mt / dig:.2f}x")
    row("rss", "rootseal digest, 1 GiB / 20k files", f"{max(x[2] for x in d) / 1024:.1f} MiB", "", "< 64 MiB")
    warm_cache(SMALL)
    ds = [timed(RS, "digest", SMALL) for _ in range(3)]
    row("digest", "rootseal digest, 200 MiB / 100k files", f"{statistics.median(x[0] for x in ds) * 1000:.0f} ms")
    row("rss", "rootseal digest, 200 MiB / 100k files", f"{max(x[2] for x in ds) / 1024:.1f} MiB", "", "< 64 MiB")

    # --- node setup --------------------------------------------------------------------------
    def node(name, verify):
        d = os.path.join(work, name)
        os.makedirs(d)
        cfg = os.path.join(d, "config.toml")
        with open(cfg, "w") as f:
            f.write(f'trust_dir = "{d}/trust"\nseal_dir = "{d}/seals"\nstate_dir = "{d}/state"\ncache_dir = "{d}/cache"\n'
                    f'[alerts]\nsyslog_socket = ""\nevents_file = "{d}/events.jsonl"\n[hook]\nverify = "{verify}"\n'
                    f'[monitor]\nwatch = false\ninterval = "1s"\nmetrics_file = "{d}/m.prom"\n')
        env = dict(os.environ, ROOTSEAL_CONFIG=cfg)
        return d, cfg, env

    keydir = os.path.join(work, "keys")
    os.makedirs(keydir)
    sh(RS, "keygen", "--out", f"{keydir}/ci")
    seals = {}
    for corpus in (BIG, SMALL):
        out = f"{work}/{os.path.basename(corpus)}.seal.json"
        sh(RS, "seal", corpus, "--key", f"{keydir}/ci.key", "--out", out)
        seals[corpus] = out
    nodes = {}
    for name, verify in (("full", "full"), ("cached", "cached")):
        d, cfg, env = node(name, verify)
        sh(RS, "trust", "add", f"{keydir}/ci.pub", env=env)
        for s in seals.values():
            sh(RS, "trust", "import", s, env=env)
        nodes[name] = (d, cfg, env)

    def bundle(name, corpus, cfg=None):
        b = os.path.join(work, "bundles", name)
        os.makedirs(b)
        subprocess.run(["runc", "spec", "--bundle", b], check=True)
        c = json.load(open(os.path.join(b, "config.json")))
        c["root"] = {"path": corpus, "readonly": True}
        c["process"]["terminal"] = False
        c["process"]["args"] = ["/bin/true"]
        if cfg:
            h = lambda st: {"path": RS, "args": ["rootseal", "--config", cfg, "hook", st]}
            c["hooks"] = {"prestart": [h("prestart")], "poststop": [h("poststop")]}
        json.dump(c, open(os.path.join(b, "config.json"), "w"))
        return b

    # Files changed in the last 2 s are never cached ("racily clean").
    time.sleep(2.1)

    # --- hook ----------------------------------------------------------------------------------
    bundles = {"bare": bundle("bare", BIG), "cold": bundle("cold", BIG, nodes["full"][1]),
               "warm": bundle("warm", BIG, nodes["cached"][1])}
    times = alternate(list(bundles), lambda k, i: bundles[k], "plain")
    bare = statistics.median(times["bare"])
    row("hook", "bare runc run, 1 GiB bundle", f"{bare * 1000:.1f} ms")
    for k, target in (("cold", ""), ("warm", "<= 25% (stretch 10%)")):
        m = statistics.median(times[k])
        row("hook", f"{k} hook overhead ({'verify = full' if k == 'cold' else 'verify = cached, warm'})",
            f"{(m - bare) * 1000:.1f} ms", f"{(m - bare) / bare * 100:.0f}%", target)

    # --- hook over overlay mounts, as containerd and podman run containers -----------------------
    # Every start gets a fresh overlay (lowerdir = the corpus, a new empty upper), mounted before
    # the timed `runc run`, as containerd mounts before it calls runc. "layers" reuses the layers'
    # verification; "cached" cannot reuse its per-file cache across mounts.
    d_l, cfg_l, env_l = node("layers", "layers")
    sh(RS, "trust", "add", f"{keydir}/ci.pub", env=env_l)
    sh(RS, "trust", "import", seals[BIG], env=env_l)
    ovs = []

    def overlay_bundle(k, i, cfg):
        base = os.path.join(work, "ov", f"{k}-{i}")
        for sub in ("upper", "work", "merged"):
            os.makedirs(os.path.join(base, sub))
        merged = os.path.join(base, "merged")
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={BIG},upperdir={base}/upper,workdir={base}/work", merged], check=True)
        ovs.append(merged)
        return bundle(f"ov-{k}-{i}", merged, cfg)

    ov_cfg = {"bare": None, "layers": cfg_l, "cached": nodes["cached"][1]}
    try:
        ov_times = alternate(list(ov_cfg), lambda k, i: overlay_bundle(k, i, ov_cfg[k]), "overlay")
    finally:
        for m in ovs:
            subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
    ov_bare = statistics.median(ov_times["bare"])
    row("hook", "bare runc run, new overlay over the 1 GiB corpus", f"{ov_bare * 1000:.1f} ms")
    for k, what, target in (("cached", "verify = cached, new container of a known image", ""),
                            ("layers", "verify = layers, new container of a known image", "<= 25% (stretch 10%)")):
        m = statistics.median(ov_times[k])
        row("hook", f"hook overhead ({what})", f"{(m - ov_bare) * 1000:.1f} ms",
            f"{(m - ov_bare) / ov_bare * 100:.0f}%", target)

    for corpus, label in ((BIG, "1 GiB / 20k"), (SMALL, "200 MiB / 100k")):
        for mode in ("full", "cached"):
            b = bundle(f"check-{mode}-{os.path.basename(corpus)}", corpus)
            env = nodes[mode][2]
            timed(RS, "check", b, env=env)  # fills the cache in cached mode
            if mode == "cached":
                time.sleep(0.1)
            w, c, rss = timed(RS, "check", b, env=env)
            row("rss", f"hook decision ({'cold' if mode == 'full' else 'warm'}), {label}",
                f"{rss / 1024:.1f} MiB", f"{w * 1000:.0f} ms", "< 64 MiB" if corpus == SMALL else "")

    # --- monitor -------------------------------------------------------------------------------
    d, cfg, env = nodes["cached"]
    b = bundle("mon", BIG)
    digest = sh(RS, "digest", BIG).stdout.decode().strip()
    os.makedirs(f"{d}/state/containers", exist_ok=True)

    def records(n):
        for f in os.listdir(f"{d}/state/containers"):
            os.unlink(f"{d}/state/containers/{f}")
        for i in range(n):
            p = subprocess.Popen(["sleep", "600"])
            procs.append(p)
            start = int(open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[19])
            rec = {"version": 1, "id": f"c{i}", "bundle": b, "rootfs": BIG, "image": None, "seal_digest": digest,
                   "seal_path": None, "pid": p.pid, "pid_start_time": start, "verdict": "verified", "mode": "enforce",
                   "time": "bench"}
            json.dump(rec, open(f"{d}/state/containers/c{i}.json", "w"))

    shutil.rmtree(f"{d}/cache", ignore_errors=True)
    records(1)
    _, cold, _ = timed(RS, "monitor", "--once", env=env)
    _, warm, _ = timed(RS, "monitor", "--once", env=env)
    row("monitor", "scan CPU, cold (no cache)", f"{cold * 1000:.0f} ms")
    row("monitor", "scan CPU, warm from the on-disk cache (new process)", f"{warm * 1000:.0f} ms")
    records(NCONT)
    mon = subprocess.Popen([RS, "monitor"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(mon)

    def snap():
        m = {}
        for l in open(f"{d}/m.prom"):
            if l.strip() and not l.startswith("#"):
                k, v = l.split()
                m[k] = float(v)
        return m["rootseal_monitor_scans_total"], m["rootseal_monitor_scan_cpu_seconds_total"]

    t0 = time.time()
    while not os.path.exists(f"{d}/m.prom") and time.time() - t0 < 120:
        time.sleep(0.5)
    s1, c1 = snap()
    time.sleep(10)
    s2, c2 = snap()
    rss = int([l for l in open(f"/proc/{mon.pid}/status") if l.startswith("VmHWM")][0].split()[1])
    row("monitor", f"rescan CPU, daemon with {NCONT} containers (in-memory cache)",
        f"{(c2 - c1) / (s2 - s1) * 1000:.1f} ms", "", "< 50 ms")
    row("rss", f"monitor daemon watching {NCONT} containers of the 1 GiB image", f"{rss / 1024:.1f} MiB")
    mon.terminate()
    mon.wait(timeout=20)
finally:
    for p in procs:
        p.kill()
    shutil.rmtree(work, ignore_errors=True)

print()
print(f"rootseal benchmarks, {time.strftime('%Y-%m-%d')}, {NPROC} cores, {os.uname().release}")
print()
print("| group | measurement | value | ratio | target |")
print("|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
