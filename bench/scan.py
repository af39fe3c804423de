"""The scan gate's cost at container start (issue 17): `runc run` of one bundle through the hook
on two nodes that differ only in `[scan] require`, alternating, RUNS rounds:
  warm        verify = "cached", warm cache, no scan policy (today's warm start)
  warm+scan   the same with [scan] require = true and a passing 10 MiB Trivy report
              (20 000 findings under the threshold) imported as a signed attestation
Also the hook decision's peak RSS (rootseal check) on both. Prints a table with the added time
as a ratio of the warm overhead.

  python3 bench/scan.py target/release/rootseal ROOTFS     (bench/scan.sh does the setup)
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

RS, ROOTFS = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
RUNS = int(os.environ.get("RUNS", "15"))


def sh(*args, env=None):
    return subprocess.run(args, env=env, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def report(path, n):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    vulns = [{"VulnerabilityID": f"CVE-2026-{i:05d}", "PkgName": f"pkg{i % 500}", "InstalledVersion": "1.0.0",
              "FixedVersion": "1.0.1", "Severity": "MEDIUM" if i % 2 else "LOW",
              "Title": "a vulnerability title of realistic length for the benchmark",
              "Description": "x" * 380} for i in range(n)]
    doc = {"SchemaVersion": 2, "CreatedAt": now, "ArtifactName": "bench", "ArtifactType": "filesystem",
           "Results": [{"Target": "bench", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vulns}]}
    with open(path, "w") as f:
        json.dump(doc, f)
    return os.path.getsize(path)


def bundle(b, cfg):
    """A runc bundle running /bin/true on ROOTFS (read-only), through the hook when cfg is given."""
    os.makedirs(b)
    sh("runc", "spec", "--bundle", b)
    c = json.load(open(f"{b}/config.json"))
    c["root"] = {"path": ROOTFS, "readonly": True}
    c["process"]["terminal"] = False
    c["process"]["args"] = ["/bin/true"]
    if cfg:
        h = lambda st: {"path": RS, "args": ["rootseal", "--config", cfg, "hook", st]}
        c["hooks"] = {"prestart": [h("prestart")], "poststop": [h("poststop")]}
    json.dump(c, open(f"{b}/config.json", "w"))
    return b


def main():
    work = tempfile.mkdtemp(prefix="rootseal-bench-scan.")
    try:
        sh(RS, "keygen", "--out", f"{work}/ci")
        sh(RS, "keygen", "--out", f"{work}/scanner")
        sh(RS, "seal", ROOTFS, "--key", f"{work}/ci.key", "--name", "bench/app:1", "--out", f"{work}/seal.json")
        size = report(f"{work}/report.json", 20000)
        sh(RS, "attest", "scan", f"{work}/report.json", "--key", f"{work}/scanner.key", "--seal", f"{work}/seal.json",
           "--out", f"{work}/scan.json")
        nodes = {}
        for name, scan in (("warm", ""), ("warm+scan", '[scan]\nrequire = true\nmax_severity = "high"\nkeys = ["scanner"]\n')):
            d = f"{work}/{name}"
            os.makedirs(d)
            cfg = f"{d}/config.toml"
            with open(cfg, "w") as f:
                f.write(f'trust_dir = "{d}/trust"\nseal_dir = "{d}/seals"\nstate_dir = "{d}/state"\ncache_dir = "{d}/cache"\n'
                        f'[alerts]\nsyslog_socket = ""\nevents_file = "{d}/events.jsonl"\nverified = false\n'
                        f'[hook]\nverify = "cached"\n{scan}')
            os.chmod(cfg, 0o600)
            env = dict(os.environ, ROOTSEAL_CONFIG=cfg)
            sh(RS, "trust", "add", f"{work}/ci.pub", env=env)
            sh(RS, "trust", "add", f"{work}/scanner.pub", env=env)
            sh(RS, "trust", "import", f"{work}/seal.json", env=env)
            if scan:
                sh(RS, "trust", "import", f"{work}/scan.json", env=env)
            nodes[name] = (cfg, bundle(f"{d}/bundle", cfg), env)
        bare = bundle(f"{work}/bare", None)
        time.sleep(2.1)  # past the racy window, so that the cache fills
        for name, (cfg, b, env) in nodes.items():
            r = subprocess.run([RS, "check", b], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                sys.exit(f"bench: {name}: check failed: {r.stdout}{r.stderr}")
        kinds = ["bare"] + list(nodes)
        times = {k: [] for k in kinds}
        for i in range(RUNS + 1):
            for k in kinds if i % 2 == 0 else list(reversed(kinds)):
                b = bare if k == "bare" else nodes[k][1]
                cid = f"bench-scan-{k.replace('+', '-')}-{os.getpid()}-{i}"
                t0 = time.perf_counter()
                r = subprocess.run(["runc", "run", "--bundle", b, cid], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                dt = time.perf_counter() - t0
                subprocess.run(["runc", "delete", "--force", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if r.returncode != 0:
                    sys.exit(f"bench: {k}: runc run failed: {r.stderr.decode()}")
                if i > 0:
                    times[k].append(dt)
        med = {k: statistics.median(v) for k, v in times.items()}
        # The decision alone (rootseal check runs the hook's steps 3 to 7), alternating, 3x the
        # runs: a finer view than runc's whole start.
        checks = {k: [] for k in nodes}
        for i in range(3 * RUNS):
            for k in nodes if i % 2 == 0 else list(reversed(list(nodes))):
                cfg, b, env = nodes[k]
                t0 = time.perf_counter()
                subprocess.run([RS, "check", b], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                checks[k].append(time.perf_counter() - t0)
        cmed = {k: statistics.median(v) for k, v in checks.items()}
        rss = {}
        for name, (cfg, b, env) in nodes.items():
            r = subprocess.run(["/usr/bin/time", "-f", "%M", RS, "check", b], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
            rss[name] = int(r.stderr.strip().splitlines()[-1])
        warm = med["warm"] - med["bare"]
        scan = med["warm+scan"] - med["bare"]
        print(f"| group | measurement | value | ratio | target |")
        print(f"|---|---|---|---|---|")
        print(f"| scan | bare runc run ({RUNS} runs, median) | {med['bare'] * 1000:.1f} ms |  |  |")
        print(f"| scan | warm hook overhead, no scan policy | {warm * 1000:.1f} ms | {warm / med['bare'] * 100:.0f}% |  |")
        print(f"| scan | warm hook overhead, [scan] require, {size / 2**20:.1f} MiB report | {scan * 1000:.1f} ms | "
              f"{scan / med['bare'] * 100:.0f}% |  |")
        print(f"| scan | added by the scan gate | {(scan - warm) * 1000:.1f} ms | {scan / warm:.2f}x warm | within the budget |")
        print(f"| scan | hook decision (rootseal check), no scan policy / with | {cmed['warm'] * 1000:.1f} / "
              f"{cmed['warm+scan'] * 1000:.1f} ms | +{(cmed['warm+scan'] - cmed['warm']) * 1000:.1f} ms |  |")
        print(f"| rss | hook decision, no scan policy / with | {rss['warm'] / 1024:.1f} / {rss['warm+scan'] / 1024:.1f} MiB |  | < 64 MiB |")
    finally:
        subprocess.run(["rm", "-rf", work])


main()
