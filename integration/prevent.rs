//! Drift prevention (src/monitor/prevent/) against real runc containers: the monitor marks the
//! container's mounts and answers every exec; what is not in the seal at its path, with its
//! sealed content, does not run (enforce) or runs and is reported (audit).

use crate::harness::*;
use crate::monitor::*;
use crate::util::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A fixture whose container has a tmpfs at /tmp and a writable volume (a bind of a host
/// directory) at /data, run detached by runc, with the monitor's config (`monitor_extra` in
/// `[monitor]`, `rules` at the top level).
fn protected_container(monitor_extra: &str, rules: &str) -> (Fixture, Running) {
    protected_container_on("runc", monitor_extra, rules)
}

/// [`protected_container`] run by `runtime` (runc or crun).
fn protected_container_on(runtime: &str, monitor_extra: &str, rules: &str) -> (Fixture, Running) {
    let f = Fixture::new();
    let vol = f.env.path("vol");
    std::fs::create_dir(&vol).unwrap();
    let extra = format!("{rules}\n[readonly]\nwritable_sources = [\"{}\"]\n", vol.display());
    monitor_config_with(&f, &extra, monitor_extra);
    f.annotate("rootseal.dev/image", IMAGE);
    f.patch(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777"]
        }));
        mounts.push(serde_json::json!({
            "destination": "/data", "type": "bind", "source": vol, "options": ["rbind", "rw"]
        }));
    });
    let c = run_detached(&f, runtime);
    (f, c)
}

/// The container's init pid, from `runc state` (or crun's).
fn init_pid(c: &Running) -> i32 {
    let out = sh(Command::new(&c.runtime).args(["state", &c.id]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["pid"].as_i64().unwrap() as i32
}

/// `runc exec ID sh -c SCRIPT` (or crun's): (exit code, stdout + stderr).
fn exec_in(c: &Running, script: &str) -> (Option<i32>, String) {
    let out = Command::new("timeout")
        .args(["-k", "5", "60", &c.runtime, "exec", &c.id, "/bin/sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// Copies the host's busybox (the very bytes sealed at /bin/busybox) to `to`, executable. Named
/// `busybox`, a copy runs the applet its first argument names.
fn plant(to: &Path) {
    std::fs::copy("/bin/busybox", to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn prevention(f: &Fixture, c: &Running) -> serde_json::Value {
    first_status(f, &c.id)["prevention"].clone()
}

fn exec_events<'a>(events: &'a [serde_json::Value], kind: &str, path: &str) -> Vec<&'a serde_json::Value> {
    events.iter().filter(|e| e["event"] == kind && e["violations"][0]["paths"][0]["path"] == path).collect()
}

fn wait_protected(f: &Fixture, c: &Running) {
    wait_for("prevention to be active", Duration::from_secs(30), || prevention(f, c)["active"] == true);
}

#[test]
fn prevent_enforce_blocks_every_exec_outside_the_seal_and_the_container_keeps_running() {
    // The container starts before the monitor: its first scan attaches it.
    let (f, c) = protected_container("prevent = \"enforce\"", "");
    let mon = MonitorProc::start(&f.env);
    wait_protected(&f, &c);
    let st = prevention(&f, &c);
    assert_eq!(st["mode"], "enforce", "{st}");
    let mounts: Vec<&str> = st["mounts"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    for m in ["/", "/tmp", "/data"] {
        assert!(mounts.contains(&m), "{m} is marked: {mounts:?}");
    }

    // Sealed binaries run: /bin/sh and /bin/echo resolve to the sealed /bin/busybox, and the
    // sealed script /usr/sbin/ping (its interpreter too).
    let (code, out) = exec_in(&c, "echo sealed-ok; /bin/true && /usr/sbin/ping");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("sealed-ok") && out.contains("ping"), "{out}");

    // The same bytes at paths the seal does not list: a tmpfs, a volume, the rootfs itself
    // (written from the host: the container's root is read-only to it).
    let pid = init_pid(&c);
    plant(&Path::new(&format!("/proc/{pid}/root/tmp")).join("busybox"));
    plant(&f.env.path("vol/busybox"));
    plant(&f.rootfs.join("usr/busybox"));
    for path in ["/tmp/busybox", "/data/busybox", "/usr/busybox"] {
        let (code, out) = exec_in(&c, &format!("{path} echo ran-{path}; echo rc=$?"));
        assert_eq!(code, Some(0), "{out}");
        assert!(!out.contains(&format!("ran-{path}")), "{path} must not run: {out}");
        assert!(out.contains("rc=126"), "{path}: exec fails (EPERM): {out}");
    }
    // The same copy, run directly by runc exec (runc's init execs it): refused too.
    let direct = Command::new("timeout")
        .args(["-k", "5", "60", "runc", "exec", &c.id, "/tmp/busybox", "true"])
        .output()
        .unwrap();
    assert!(!direct.status.success(), "runc exec of /tmp/busybox must fail");

    // A script run directly is an exec of the script (judged: refused); handed to an
    // interpreter it is a read (not judged: the documented limit, as with fapolicyd).
    let script = Path::new(&format!("/proc/{pid}/root/tmp")).join("s.sh");
    std::fs::write(&script, b"#!/bin/sh\necho script-ran\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_, out) = exec_in(&c, "/tmp/s.sh; echo rc=$?");
    assert!(!out.contains("script-ran") && out.contains("rc=126"), "{out}");
    let (_, out) = exec_in(&c, "sh /tmp/s.sh");
    assert!(out.contains("script-ran"), "an interpreter's read is not an exec: {out}");

    // A host process reaching the same file through /proc/PID/root is not the container's:
    // allowed.
    let host = Command::new(format!("/proc/{pid}/root/tmp/busybox"))
        .arg0("busybox")
        .args(["echo", "host-ran"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&host.stdout).contains("host-ran"), "{host:?}");

    // A sealed file changed on the host after the start: same size, other content.
    std::fs::write(f.rootfs.join("usr/sbin/ping"), b"#!/bin/sh\necho evil\n").unwrap();
    let (_, out) = exec_in(&c, "/usr/sbin/ping; echo rc=$?");
    assert!(!out.contains("evil") && out.contains("rc=126"), "{out}");

    // Each refusal is an exec-blocked event naming the container, the path and the process.
    wait_for("four exec-blocked events", Duration::from_secs(10), || {
        let ev = monitor_events(&f);
        ["/tmp/busybox", "/data/busybox", "/usr/busybox", "/usr/sbin/ping"]
            .iter()
            .all(|p| !exec_events(&ev, "exec-blocked", p).is_empty())
    });
    let ev = monitor_events(&f);
    let e = exec_events(&ev, "exec-blocked", "/tmp/busybox")[0];
    assert_eq!(e["container"]["id"], c.id.as_str(), "{e}");
    assert_eq!(e["mode"], "enforce");
    assert_eq!(e["violations"][0]["code"], "exec-not-sealed");
    assert_eq!(e["violations"][0]["paths"][0]["changes"][0], "not-in-seal", "{e}");
    assert!(e["process"]["pid"].as_i64().unwrap() > 0 && e["process"]["comm"].as_str().is_some(), "{e}");
    assert!(e["message"].as_str().unwrap().contains("/tmp/busybox"), "{e}");
    let e = exec_events(&ev, "exec-blocked", "/usr/sbin/ping")[0];
    assert_eq!(e["violations"][0]["paths"][0]["changes"][0], "content", "{e}");
    // Nothing sealed was refused.
    assert!(exec_events(&ev, "exec-blocked", "/bin/busybox").is_empty(), "{ev:?}");

    // The container was never stopped, and still runs sealed binaries.
    assert_eq!(container_state("runc", &c.id), "running");
    let (code, out) = exec_in(&c, "echo still-here");
    assert!(code == Some(0) && out.contains("still-here"), "{out}");
    wait_for("the status to count the refusals", Duration::from_secs(10), || {
        prevention(&f, &c)["denied"].as_u64().unwrap_or(0) >= 5
    });
    // The Prometheus textfile counts them (written with the status).
    let prom = std::fs::read_to_string(f.env.path("rootseal.prom")).unwrap();
    assert!(prom.contains("rootseal_monitor_prevention_containers 1"), "{prom}");
    let denied = prom
        .lines()
        .find_map(|l| l.strip_prefix("rootseal_monitor_execs_total{verdict=\"denied\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(denied.is_some_and(|d| d >= 5), "{prom}");
    // rootseal status says so in its line for the container.
    let text = String::from_utf8_lossy(&f.env.run(["status"]).stdout).into_owned();
    assert!(text.contains("prevent enforce (") && text.contains(" denied"), "{text}");
    // rootseal doctor names the protection.
    let doctor = f.env.run(["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("prevention") && text.contains("1 of 1"), "{text}");

    // Documented: with the monitor gone, the kernel allows every exec (the group is closed).
    mon.signal("-KILL");
    wait_for("the monitor to be gone", Duration::from_secs(10), || {
        let (_, out) = exec_in(&c, "/tmp/busybox echo ran-after-monitor");
        out.contains("ran-after-monitor")
    });
    drop(mon);
}

/// Under crun (the hook's other runtime): sealed binaries run; a copy in the container's /tmp
/// (tmpfs) and one in its volume cannot, and `crun exec` of the copy itself fails.
#[test]
fn prevent_enforce_under_crun() {
    assert!(runtime_ok("crun"), "crun is not usable: run scripts/setup-host.sh");
    let (f, c) = protected_container_on("crun", "prevent = \"enforce\"", "");
    let mon = MonitorProc::start(&f.env);
    wait_protected(&f, &c);
    let (code, out) = exec_in(&c, "echo sealed-ok; /bin/true");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("sealed-ok"), "{out}");
    let pid = init_pid(&c);
    plant(&Path::new(&format!("/proc/{pid}/root/tmp")).join("busybox"));
    plant(&f.env.path("vol/busybox"));
    for path in ["/tmp/busybox", "/data/busybox"] {
        let (code, out) = exec_in(&c, &format!("{path} echo ran-{path}; echo rc=$?"));
        assert_eq!(code, Some(0), "{out}");
        assert!(!out.contains(&format!("ran-{path}")), "{path} must not run: {out}");
        assert!(out.contains("rc=126"), "{path}: exec fails (EPERM): {out}");
    }
    let direct = Command::new("timeout")
        .args(["-k", "5", "60", "crun", "exec", &c.id, "/tmp/busybox", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!direct.status.success(), "crun exec of /tmp/busybox must fail");
    wait_for("exec-blocked events", Duration::from_secs(10), || {
        !exec_events(&monitor_events(&f), "exec-blocked", "/data/busybox").is_empty()
    });
    let ev = monitor_events(&f);
    let e = exec_events(&ev, "exec-blocked", "/tmp/busybox")[0];
    assert_eq!(e["container"]["id"], c.id.as_str());
    assert_eq!(container_state("crun", &c.id), "running");
    assert_eq!(mon.stop(), Some(0));
}

#[test]
fn prevent_audit_allows_and_alerts_and_allow_exec_is_silent() {
    let rules = format!(
        "[[rules]]\nname = \"app\"\nimages = [\"{IMAGE}\"]\nprevent = \"audit\"\nallow_exec = [\"/data/tools/**\"]"
    );
    // The node says enforce; the rule says audit for this image.
    let (f, c) = protected_container("prevent = \"enforce\"", &rules);
    let mon = MonitorProc::start(&f.env);
    wait_protected(&f, &c);
    assert_eq!(prevention(&f, &c)["mode"], "audit");
    let pid = init_pid(&c);
    plant(&Path::new(&format!("/proc/{pid}/root/tmp")).join("busybox"));
    std::fs::create_dir(f.env.path("vol/tools")).unwrap();
    plant(&f.env.path("vol/tools/busybox"));
    let (code, out) = exec_in(&c, "/tmp/busybox echo audit-ran; /data/tools/busybox echo tool-ran");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("audit-ran") && out.contains("tool-ran"), "{out}");
    wait_for("an exec-audit event", Duration::from_secs(10), || {
        !exec_events(&monitor_events(&f), "exec-audit", "/tmp/busybox").is_empty()
    });
    let ev = monitor_events(&f);
    let e = exec_events(&ev, "exec-audit", "/tmp/busybox")[0];
    assert_eq!(e["mode"], "audit");
    assert_eq!(e["container"]["id"], c.id.as_str());
    assert!(e["action"].is_null(), "audit takes no action: {e}");
    assert!(exec_events(&ev, "exec-blocked", "/tmp/busybox").is_empty());
    // allow_exec: neither refused nor reported.
    assert!(ev.iter().all(|e| e["violations"][0]["paths"][0]["path"] != "/data/tools/busybox"), "{ev:?}");
    assert_eq!(mon.stop(), Some(0));
}

#[test]
fn prevent_off_marks_nothing() {
    let (f, c) = protected_container("", "");
    let mon = MonitorProc::start(&f.env);
    wait_for("a first clean scan", Duration::from_secs(30), || first_status(&f, &c.id)["result"] == "clean");
    assert!(prevention(&f, &c).is_null(), "{}", first_status(&f, &c.id));
    let pid = init_pid(&c);
    plant(&Path::new(&format!("/proc/{pid}/root/tmp")).join("busybox"));
    let (_, out) = exec_in(&c, "/tmp/busybox echo ran-unprotected");
    assert!(out.contains("ran-unprotected"), "{out}");
    assert_eq!(mon.stop(), Some(0));
}

/// The same under containerd (rootseal-runtime, an overlay rootfs, `ctr task exec`): a binary
/// written into the container's /run (tmpfs) and one added to the image's top snapshot (an
/// overlay lower layer, changed on the host) cannot run; sealed ones do.
#[test]
fn prevent_enforce_under_containerd() {
    let n = crate::containerd::node("prevent");
    n.env.write_config("[monitor]\ninterval = \"1s\"\nprevent = \"enforce\"");
    let id = crate::harness::container_id("ctrprev");
    n.containerd.run_detached(&n.reference, &id);
    let mon = MonitorProc::start(&n.env);
    let prevention = || {
        let out = n.env.run(["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["containers"][0]["prevention"].clone()
    };
    wait_for("prevention to be active", Duration::from_secs(30), || prevention()["active"] == true);
    let exec = |n_: &str, script: &str| {
        let o = n.containerd.ctr(&["task", "exec", "--exec-id", n_, &id, "/bin/sh", "-c", script]);
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let out = exec("e1", "echo sealed-ok; /bin/busybox true && echo busybox-ok");
    assert!(out.contains("sealed-ok") && out.contains("busybox-ok"), "{out}");
    // Written from inside: /run is a tmpfs of containerd's default spec.
    let out = exec(
        "e2",
        "cat /bin/busybox > /run/busybox && /bin/busybox chmod 755 /run/busybox && /run/busybox echo ran-run; echo rc=$?",
    );
    assert!(!out.contains("ran-run") && out.contains("rc=126"), "{out}");
    // Added to the image's top snapshot on the host: visible in the container's overlay.
    let dir = n.containerd.top_snapshot_file("usr/sbin");
    plant(&dir.join("busybox"));
    let out = exec("e3", "/usr/sbin/busybox echo ran-layer; echo rc=$?");
    assert!(!out.contains("ran-layer") && out.contains("rc=126"), "{out}");
    wait_for("exec-blocked events for both", Duration::from_secs(10), || {
        let ev: Vec<serde_json::Value> = std::fs::read_to_string(n.env.path("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        !exec_events(&ev, "exec-blocked", "/run/busybox").is_empty()
            && !exec_events(&ev, "exec-blocked", "/usr/sbin/busybox").is_empty()
    });
    let out = exec("e4", "echo still-running");
    assert!(out.contains("still-running"), "{out}");
    assert_eq!(mon.stop(), Some(0));
    n.containerd.remove(&id);
}

/// Every exec is answered in bounded time: a sealed file too large to hash within
/// `prevent_deadline` is refused by the deadline (enforce), and runs once the hashing that went
/// on after the answer has cached its digest.
#[test]
fn prevent_deadline_answers_by_the_mode_and_the_digest_is_cached_for_the_next_exec() {
    let f = Fixture::new();
    std::fs::create_dir(f.rootfs.join("opt")).unwrap();
    let big = f.rootfs.join("opt/busybox");
    let mut bytes = std::fs::read("/bin/busybox").unwrap();
    bytes.resize(bytes.len() + (32 << 20), 0);
    std::fs::write(&big, &bytes).unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o755)).unwrap();
    let seal = f.reseal(&[]);
    f.env.expect(0, [std::ffi::OsStr::new("trust"), std::ffi::OsStr::new("import"), seal.as_os_str()]);
    monitor_config_with(&f, "", "prevent = \"enforce\"\nprevent_deadline = \"10ms\"");
    let c = run_detached(&f, "runc");
    let mon = MonitorProc::start(&f.env);
    wait_protected(&f, &c);
    let run = || {
        Command::new("timeout")
            .args(["-k", "5", "60", "runc", "exec", &c.id, "/opt/busybox", "true"])
            .output()
            .unwrap()
            .status
            .success()
    };
    // 32 MiB is not hashed in 10 ms: refused by the deadline, not hung.
    let start = std::time::Instant::now();
    assert!(!run(), "the first exec of the large sealed binary is refused by the deadline");
    assert!(start.elapsed() < HANG, "answered, not hung");
    wait_for("an undecided exec-blocked event", Duration::from_secs(10), || {
        exec_events(&monitor_events(&f), "exec-blocked", "/opt/busybox")
            .iter()
            .any(|e| e["violations"][0]["paths"][0]["changes"][0] == "undecided")
    });
    // The hash went on after the answer: once cached (the file is older than the 2 s racy
    // window by then), the same exec runs.
    wait_for("the sealed binary to run once its digest is cached", Duration::from_secs(60), run);
    assert_eq!(container_state("runc", &c.id), "running");
    assert_eq!(mon.stop(), Some(0));
}

/// The same under podman (hooks.d, runc underneath, an overlay from containers/storage): a
/// binary written into the container's /tmp (podman's read-only tmpfs) by `podman exec` cannot
/// run; sealed ones do.
#[test]
fn prevent_enforce_under_podman() {
    let f = Fixture::new();
    // Content of its own: podman's `rmi -f` removes an image id under every name, and the
    // other podman tests load the same busybox rootfs (integration/containerd.rs says more).
    std::fs::write(f.rootfs.join("etc/prevent-test"), b"podman prevention test\n").unwrap();
    let seal = f.reseal(&[]);
    f.env.expect(0, [std::ffi::OsStr::new("trust"), std::ffi::OsStr::new("import"), seal.as_os_str()]);
    monitor_config_with(&f, "", "prevent = \"enforce\"");
    let image = format!("test.local/rootseal/prevent:{}", std::process::id());
    let archive = crate::podman::oci_archive(&f.rootfs, f.env.tmp.path(), &image);
    sh(Command::new("podman").arg("load").arg("-i").arg(&archive));
    let hooks = hooks_dir(&f.env);
    let name = container_id("podprev");
    let podman = |args: &[&str]| {
        Command::new("timeout")
            .args(["-k", "5", "120", "podman", "--hooks-dir"])
            .arg(&hooks)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("podman").args(["rm", "-f", "-t", "0", &self.0]).output();
            let _ = Command::new("podman").args(["rmi", "-f", &self.1]).output();
        }
    }
    let _cleanup = Cleanup(name.clone(), image.clone());
    let o = podman(&[
        "run",
        "-d",
        "--read-only",
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=1000:1000",
        "--name",
        &name,
        &image,
        "sleep",
        "300",
    ]);
    assert!(o.status.success(), "podman run -d: {}", String::from_utf8_lossy(&o.stderr));
    let mon = MonitorProc::start(&f.env);
    let prevention = || {
        status(&f)["containers"].as_array().and_then(|c| c.first().cloned()).unwrap_or_default()["prevention"].clone()
    };
    wait_for("prevention to be active", Duration::from_secs(30), || prevention()["active"] == true);
    let exec = |script: &str| {
        let o = podman(&["exec", &name, "/bin/sh", "-c", script]);
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };
    let out = exec("echo sealed-ok; /bin/busybox true && echo busybox-ok");
    assert!(out.contains("sealed-ok") && out.contains("busybox-ok"), "{out}");
    let out = exec(
        "cat /bin/busybox > /tmp/busybox && /bin/busybox chmod 755 /tmp/busybox && /tmp/busybox echo ran-tmp; echo rc=$?",
    );
    assert!(!out.contains("ran-tmp") && out.contains("rc=126"), "{out}");
    wait_for("an exec-blocked event", Duration::from_secs(10), || {
        !exec_events(&monitor_events(&f), "exec-blocked", "/tmp/busybox").is_empty()
    });
    assert!(exec("echo still-running").contains("still-running"));
    assert_eq!(mon.stop(), Some(0));
}

/// A container started while the monitor runs is attached within a scan of its start.
#[test]
fn prevent_attaches_a_container_started_after_the_monitor() {
    let f = Fixture::new();
    monitor_config_with(&f, "", "prevent = \"enforce\"");
    f.patch(|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]
        }));
    });
    let mon = MonitorProc::start(&f.env);
    wait_for("the monitor's first status", Duration::from_secs(30), || !status(&f).is_null());
    let c = run_detached(&f, "runc");
    wait_protected(&f, &c);
    let pid = init_pid(&c);
    plant(&Path::new(&format!("/proc/{pid}/root/tmp")).join("busybox"));
    let (_, out) = exec_in(&c, "/tmp/busybox echo ran-late; echo rc=$?");
    assert!(!out.contains("ran-late") && out.contains("rc=126"), "{out}");
    assert_eq!(mon.stop(), Some(0));
}
