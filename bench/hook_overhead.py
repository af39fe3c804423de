"""Alternating runc runs of one bundle with and without the rootseal hook (see hook.sh)."""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

rootseal, corpus, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
work = tempfile.mkdtemp(prefix="rootseal-bench-")
try:
    cfg = os.path.join(work, "config.toml")
    with open(cfg, "w") as f:
        f.write(f'trust_dir = "{work}/trust"\nseal_dir = "{work}/seals"\nstate_dir = "{work}/state"\ncache_dir = "{work}/cache"\n'
                f'[alerts]\nsyslog_socket = ""\nevents_file = "{work}/events.jsonl"\n')
    env = dict(os.environ, ROOTSEAL_CONFIG=cfg)
    run = lambda *a: subprocess.run(a, check=True, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run(rootseal, "keygen", "--out", f"{work}/ci")
    run(rootseal, "trust", "add", f"{work}/ci.pub")
    t0 = time.perf_counter()
    run(rootseal, "seal", corpus, "--key", f"{work}/ci.key", "--name", "bench/corpus:1", "--out", f"{work}/seal.json")
    seal_s = time.perf_counter() - t0
    run(rootseal, "trust", "import", f"{work}/seal.json")
    bundles = {}
    for name in ("plain", "hook"):
        b = os.path.join(work, name)
        os.makedirs(b)
        subprocess.run(["runc", "spec", "--bundle", b], check=True)
        with open(os.path.join(b, "config.json")) as f:
            c = json.load(f)
        c["root"] = {"path": corpus, "readonly": True}
        c["process"]["terminal"] = False
        c["process"]["args"] = ["/bin/true"]
        if name == "hook":
            h = lambda st: {"path": rootseal, "args": ["rootseal", "--config", cfg, "hook", st]}
            c["hooks"] = {"prestart": [h("prestart")], "poststop": [h("poststop")]}
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(c, f)
        bundles[name] = b
    times = {"plain": [], "hook": []}
    for i in range(runs + 1):
        for name in ("plain", "hook") if i % 2 == 0 else ("hook", "plain"):
            cid = f"bench-{name}-{os.getpid()}-{i}"
            t0 = time.perf_counter()
            r = subprocess.run(["runc", "run", "--bundle", bundles[name], cid], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            dt = time.perf_counter() - t0
            subprocess.run(["runc", "delete", "--force", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode != 0:
                sys.exit(f"bench: {name} run failed: {r.stderr.decode()}")
            if i > 0:  # the first round warms the page cache
                times[name].append(dt)
    p, h = statistics.median(times["plain"]), statistics.median(times["hook"])
    print(f"corpus: {corpus} (sealed in {seal_s*1000:.0f} ms)")
    print(f"runc run, no hook:   median {p*1000:7.1f} ms  (n={len(times['plain'])}, min {min(times['plain'])*1000:.1f})")
    print(f"runc run, with hook: median {h*1000:7.1f} ms  (n={len(times['hook'])}, min {min(times['hook'])*1000:.1f})")
    print(f"hook overhead: {(h-p)*1000:.1f} ms = {(h-p)/p*100:.0f}% of a bare runc run (start with hook / without: {h/p:.2f}x)")
finally:
    shutil.rmtree(work, ignore_errors=True)
