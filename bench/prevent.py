"""Drift prevention's cost (issue 20), on one runc container started through the hook:
  loop        `runc exec` of a shell running EXECS x `/bin/busybox true` (a real execve each:
              a command with a slash is exec'd, not run as a built-in applet), minus the same
              shell with no loop; alternating ROUNDS times with the monitor in prevent = "off"
              (no marks) and in "enforce" (warm: the sealed binary's digest is cached); the
              median of each round's ratio is the figure to quote on a busy machine
  opens       the same with `/bin/busybox cat /etc/passwd >/dev/null`, with marks for execs
              only and with FAN_OPEN_PERM too (ROOTSEAL_BENCH_OPEN_PERM): what judging every
              open (the only way to see libraries) would cost
  first exec  `runc exec` of a 64 MiB sealed binary (/opt/busybox: busybox padded with zeros), the first
              time (its content is hashed while the exec waits) and again (cached)
  monitor     its CPU time per judged exec, and its RSS, with this one container attached
The monitor's own counters (status file) confirm every exec of the loop was judged.

  python3 bench/prevent.py target/release/rootseal      (bench/prevent.sh builds it)
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RS = os.path.abspath(sys.argv[1])
EXECS = int(os.environ.get("EXECS", "1000"))
ROUNDS = int(os.environ.get("ROUNDS", "11"))
BIG_MIB = 64


def sh(*args, env=None, check=True):
    return subprocess.run(args, env=env, check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def rootfs(root):
    os.makedirs(f"{root}/bin")
    shutil.copy("/bin/busybox", f"{root}/bin/busybox")
    for a in ("sh", "true", "sleep", "echo"):
        os.symlink("busybox", f"{root}/bin/{a}")
    # Named busybox, the copy runs the applet its first argument names.
    os.makedirs(f"{root}/opt")
    with open("/bin/busybox", "rb") as src, open(f"{root}/opt/busybox", "wb") as dst:
        dst.write(src.read())
        dst.write(b"\0" * (BIG_MIB << 20))
    os.chmod(f"{root}/opt/busybox", 0o755)


def timed(argv):
    t = time.perf_counter()
    sh(*argv)
    return time.perf_counter() - t


def monitor_stats(pid):
    # Time on CPU of every thread, in nanoseconds (schedstat), not clock ticks.
    cpu = 0.0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                cpu += int(f.read().split()[0]) / 1e9
        except OSError:
            pass
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return cpu, rss


def marks(pid):
    """The masks of the fanotify marks a process holds (fdinfo: `fanotify mnt_id:N ... mask:M`)."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            for line in open(f"/proc/{pid}/fdinfo/{fd}"):
                if line.startswith("fanotify mnt_id:"):
                    out.add(next(f for f in line.split() if f.startswith("mask:")))
        except OSError:
            pass
    return out


def status(env, cid, pid=None):
    """The container's prevention status, as written by monitor `pid` (any, when None): the
    file outlives a stopped monitor."""
    out = sh(RS, "status", "--json", env=env, check=False).stdout
    try:
        st = json.loads(out)
        if pid is not None and st["pid"] != pid:
            return {}
        for c in st["containers"]:
            if c["id"] == cid:
                return c.get("prevention") or {}
    except (ValueError, KeyError):
        pass
    return {}


def main():
    work = tempfile.mkdtemp(prefix="rootseal-bench-prevent.")
    cid = f"rs-bench-prevent-{os.getpid()}"
    mon = None
    try:
        root = f"{work}/bundle/rootfs"
        rootfs(root)
        cfg = f"{work}/config.toml"
        with open(cfg, "w") as f:
            f.write(f'trust_dir = "{work}/trust"\nseal_dir = "{work}/seals"\nstate_dir = "{work}/state"\n'
                    f'cache_dir = "{work}/cache"\n[alerts]\nsyslog_socket = ""\nevents_file = "{work}/events.jsonl"\n'
                    f'verified = false\n[monitor]\ninterval = "60s"\nprevent = "enforce"\n')
        os.chmod(cfg, 0o600)
        # The baseline runs a monitor too, with prevention off: the same process, scans and
        # status writes, no marks; only fanotify's cost differs.
        cfg_off = f"{work}/config-off.toml"
        with open(cfg, encoding="utf-8") as src, open(cfg_off, "w") as dst:
            dst.write(src.read().replace('prevent = "enforce"', 'prevent = "off"'))
        os.chmod(cfg_off, 0o600)
        env = dict(os.environ, ROOTSEAL_CONFIG=cfg)
        sh(RS, "keygen", "--out", f"{work}/ci")
        sh(RS, "trust", "add", f"{work}/ci.pub", env=env)
        sh(RS, "seal", root, "--key", f"{work}/ci.key", "--name", "bench/app:1", "--out", f"{work}/seal.json")
        sh(RS, "trust", "import", f"{work}/seal.json", env=env)
        b = f"{work}/bundle"
        sh("runc", "spec", "--bundle", b)
        c = json.load(open(f"{b}/config.json"))
        c["root"] = {"path": "rootfs", "readonly": True}
        c["process"]["terminal"] = False
        c["process"]["args"] = ["/bin/sleep", "3600"]
        h = lambda st: {"path": RS, "args": ["rootseal", "--config", cfg, "hook", st]}
        c["hooks"] = {"prestart": [h("prestart")], "poststop": [h("poststop")]}
        json.dump(c, open(f"{b}/config.json", "w"))
        subprocess.run(["runc", "run", "--detach", "--bundle", b, cid], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        loop = ["runc", "exec", cid, "/bin/sh", "-c",
                f"i=0; while [ $i -lt {EXECS} ]; do /bin/busybox true; i=$((i+1)); done"]
        empty = ["runc", "exec", cid, "/bin/sh", "-c", "i=0"]

        def per_exec():
            return (timed(loop) - timed(empty)) / EXECS

        def watched(pid):
            out = sh(RS, "status", "--json", env=env, check=False).stdout
            try:
                st = json.loads(out)
                return st["pid"] == pid and any(c["id"] == cid and c["result"] == "clean" for c in st["containers"])
            except (ValueError, KeyError):
                return False

        def start_monitor(prevent=True):
            m = subprocess.Popen([RS, "--config", cfg if prevent else cfg_off, "monitor"], env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=open(f"{work}/monitor.stderr", "a"))
            t = time.time()
            while not (status(env, cid, m.pid).get("active") if prevent else watched(m.pid)):
                if time.time() - t > 60:
                    raise SystemExit("the monitor did not attach the container: " + open(f"{work}/monitor.stderr").read())
                time.sleep(0.1)
            return m

        def stop_monitor(m):
            m.terminate()
            m.wait(timeout=30)

        off, on = [], []
        per_exec()  # warm the page cache and runc
        first = again = None
        judged = cpu_per_exec = rss = None
        for r in range(ROUNDS):
            mon = start_monitor(prevent=False)
            per_exec()  # the same warm-up as below
            off.append(per_exec())
            stop_monitor(mon)
            mon = start_monitor()
            if r == 0:
                first = timed(["runc", "exec", cid, "/opt/busybox", "true"])
                again = timed(["runc", "exec", cid, "/opt/busybox", "true"])
                base = timed(["runc", "exec", cid, "/bin/busybox", "true"])
            per_exec()  # warm: /bin/busybox's digest in the cache
            time.sleep(1.5)  # a status written after the warm-up
            before = status(env, cid, mon.pid).get("allowed", 0)
            cpu0, _ = monitor_stats(mon.pid)
            on.append(per_exec())
            cpu1, rss = monitor_stats(mon.pid)
            # The status file is rewritten every cycle (about a second).
            t = time.time()
            while status(env, cid, mon.pid).get("allowed", 0) - before < EXECS and time.time() - t < 5:
                time.sleep(0.2)
            judged = status(env, cid, mon.pid).get("allowed", 0) - before
            cpu_per_exec = (cpu1 - cpu0) / max(judged, 1)
            print(f"round {r}: off {off[-1] * 1e6:.0f} us, on {on[-1] * 1e6:.0f} us, judged {judged}, "
                  f"monitor cpu {cpu1 - cpu0:.3f} s", file=sys.stderr)
            stop_monitor(mon)
            mon = None
        # What judging libraries would cost: every open waits for the monitor as well
        # (ROOTSEAL_BENCH_OPEN_PERM, marks.rs), on a loop of `/bin/busybox cat /etc/passwd`
        # (an exec and, with FAN_OPEN_PERM, three more events each: the exec's own open, the file
        # and /dev/null).
        cat = ["runc", "exec", cid, "/bin/sh", "-c",
               f"i=0; while [ $i -lt {EXECS} ]; do /bin/busybox cat /etc/passwd >/dev/null; i=$((i+1)); done"]
        cat_exec, cat_open = [], []
        for r in range(ROUNDS):
            for opens, out in ((False, cat_exec), (True, cat_open)):
                if opens:
                    env["ROOTSEAL_BENCH_OPEN_PERM"] = "1"
                mon = start_monitor()
                env.pop("ROOTSEAL_BENCH_OPEN_PERM", None)
                if r == 0:
                    print(f"fanotify marks (opens judged: {opens}): {sorted(marks(mon.pid))}", file=sys.stderr)
                timed(cat)  # warm
                out.append((timed(cat) - timed(empty)) / EXECS)
                stop_monitor(mon)
                mon = None
        ce, co = statistics.median(cat_exec), statistics.median(cat_open)
        o, n = statistics.median(off), statistics.median(on)
        # Each round's pair ran back to back: their ratio cancels the machine's load drifting.
        paired = statistics.median(b / a for a, b in zip(off, on))
        rows = [
            ("loop", f"exec, monitor with prevent = off ({EXECS} x, median of {ROUNDS})", f"{o * 1e6:.0f} us", "", ""),
            ("loop", "exec, prevent = enforce, warm", f"{n * 1e6:.0f} us", f"{n / o:.3f}x",
             f"{(n - o) / o * 100:+.1f}% (target <= 10%)"),
            ("loop", f"paired ratio (median of {ROUNDS} back-to-back pairs)", f"{(paired - 1) * o * 1e6:+.0f} us",
             f"{paired:.3f}x", f"{(paired - 1) * 100:+.1f}% (target <= 10%)"),
            ("loop", "execs judged by the monitor (last round)", f"{judged}", "", f"of {EXECS + 2} (loop + shell)"),
            ("opens", f"exec + cat of a file, execs judged ({EXECS} x, median of {ROUNDS})", f"{ce * 1e6:.0f} us", "", ""),
            ("opens", "the same with every open judged too (FAN_OPEN_PERM)", f"{co * 1e6:.0f} us", f"{co / ce:.3f}x",
             f"{(co - ce) / 3 * 1e6:+.0f} us per open (3 more events per iteration)"),
            ("first", f"runc exec of a {BIG_MIB} MiB sealed binary, first (hashed)", f"{first * 1e3:.0f} ms", "", ""),
            ("first", "the same, again (cached)", f"{again * 1e3:.0f} ms", "", ""),
            ("first", "runc exec of /bin/busybox (reference)", f"{base * 1e3:.0f} ms", "", ""),
            ("monitor", "CPU per judged exec", f"{cpu_per_exec * 1e6:.0f} us", "", "on-CPU time of all its threads (schedstat)"),
            ("monitor", "RSS with 1 container attached", f"{rss:.1f} MiB", "", ""),
        ]
        print(f"load average (1 min) at the end: {open('/proc/loadavg').read().split()[0]} on {os.cpu_count()} cores")
        print("| group | measurement | value | ratio | note |")
        print("|---|---|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    finally:
        if mon:
            mon.kill()
        sh("runc", "kill", cid, "KILL", check=False)
        time.sleep(0.3)
        sh("runc", "delete", "--force", cid, check=False)
        shutil.rmtree(work, ignore_errors=True)


main()
