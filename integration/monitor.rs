//! The drift monitor as a background process against long-running containers started through
//! the hook (runc directly, and containerd through rootseal-runtime).

use crate::harness::*;
use crate::util::*;
use std::ffi::OsStr;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A detached runc container, killed and deleted on drop.
pub struct Running {
    pub id: String,
    pub runtime: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new(&self.runtime).args(["kill", &self.id, "KILL"]).output();
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new(&self.runtime).args(["delete", "--force", &self.id]).output();
    }
}

pub fn run_detached(f: &Fixture, runtime: &str) -> Running {
    f.patch(|c| c["process"]["args"] = serde_json::json!(["sleep", "300"]));
    let id = container_id("mon");
    // Not a pipe: the detached container keeps its stdio open, so output() would never end.
    let err_path = f.env.path(&format!("{id}.stderr"));
    let status = Command::new("timeout")
        .args(["-k", "5", "60", runtime, "run", "--detach", "--bundle"])
        .arg(&f.bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "{runtime} run -d: {}", std::fs::read_to_string(&err_path).unwrap_or_default());
    Running { id, runtime: runtime.into() }
}

pub fn container_state(runtime: &str, id: &str) -> String {
    let o = Command::new(runtime).args(["state", id]).output().unwrap();
    if !o.status.success() {
        return "gone".into();
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["status"].as_str().unwrap_or("?").to_string()
}

/// `rootseal monitor` in the background; SIGTERM on drop (and it must exit 0).
pub struct MonitorProc {
    child: Option<Child>,
}

impl MonitorProc {
    pub fn start(env: &Env) -> MonitorProc {
        let child = env
            .cmd(["monitor"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(env.path("monitor.stderr")).unwrap())
            .spawn()
            .unwrap();
        MonitorProc { child: Some(child) }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    /// SIGTERM and wait: returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            if start.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for MonitorProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn monitor_config(f: &Fixture, extra: &str) -> (UnixDatagram, PathBuf) {
    monitor_config_with(f, extra, "")
}

pub fn monitor_config_with(f: &Fixture, extra: &str, monitor_extra: &str) -> (UnixDatagram, PathBuf) {
    let sock_path = f.env.path("syslog.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let d = f.env.tmp.path().display().to_string();
    std::fs::write(
        f.env.config_path(),
        format!(
            "trust_dir = \"{d}/trust\"\nseal_dir = \"{d}/seals\"\nstate_dir = \"{d}/state\"\ncache_dir = \"{d}/cache\"\n{extra}\n[alerts]\nsyslog_socket = \"{}\"\nevents_file = \"{d}/events.jsonl\"\n[monitor]\ninterval = \"1s\"\nmetrics_file = \"{d}/rootseal.prom\"\n{monitor_extra}\n",
            sock_path.display()
        ),
    )
    .unwrap();
    (sock, sock_path)
}

pub fn monitor_events(f: &Fixture) -> Vec<serde_json::Value> {
    f.events().into_iter().filter(|e| e["source"] == "monitor").collect()
}

/// Waits for `check` to hold. The timeout is at least 60 s: a wait ends on the event, and only a
/// hang should fail it (a loaded 2-core CI machine misses tight limits; latency is benchmarked).
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let timeout = timeout.max(Duration::from_secs(60));
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `rootseal_monitor_scans_total` from the monitor's Prometheus textfile (0 before the first).
pub fn scans_total(f: &Fixture) -> u64 {
    std::fs::read_to_string(f.env.path("rootseal.prom"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("rootseal_monitor_scans_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn status(f: &Fixture) -> serde_json::Value {
    let out = f.env.run(["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

pub fn first_status(f: &Fixture, id: &str) -> serde_json::Value {
    status(f)["containers"].as_array().and_then(|cs| cs.iter().find(|c| c["id"] == id).cloned()).unwrap_or_default()
}

#[test]
fn drift_is_reported_within_two_intervals_and_recovery_too() {
    let f = Fixture::new();
    let (sock, _) = monitor_config(&f, "");
    let c = run_detached(&f, "runc");
    let mon = MonitorProc::start(&f.env);
    wait_for("a first clean scan", Duration::from_secs(15), || first_status(&f, &c.id)["result"] == "clean");

    std::fs::write(f.rootfs.join("etc/motd"), b"hot-fixed on the host\n").unwrap();
    std::fs::write(f.rootfs.join("etc/added"), b"new").unwrap();
    std::fs::remove_file(f.rootfs.join("etc/passwd")).unwrap();
    wait_for("a drift event naming all three paths", Duration::from_secs(5), || {
        monitor_events(&f).iter().any(|e| {
            e["event"] == "drift" && {
                let paths: Vec<&str> = e["violations"][0]["paths"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["path"].as_str().unwrap())
                    .collect();
                paths.contains(&"/etc/motd") && paths.contains(&"/etc/added") && paths.contains(&"/etc/passwd")
            }
        })
    });
    let mut buf = [0u8; 16384];
    let mut got = String::new();
    wait_for("the drift at the syslog socket", Duration::from_secs(5), || {
        while let Ok(n) = sock.recv(&mut buf) {
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        got.contains("event=\"drift\"")
    });
    assert!(got.contains(&format!("container=\"{}\"", c.id)), "{got}");

    // Restoring everything: one recovered event.
    std::fs::write(f.rootfs.join("etc/motd"), b"hello from a sealed rootfs\n").unwrap();
    std::fs::remove_file(f.rootfs.join("etc/added")).unwrap();
    std::fs::write(f.rootfs.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n").unwrap();
    wait_for("a recovered event", Duration::from_secs(5), || {
        monitor_events(&f).iter().any(|e| e["event"] == "recovered")
    });
    let drift_events = monitor_events(&f).iter().filter(|e| e["event"] == "drift").count();

    // The metrics file counts it.
    let prom = std::fs::read_to_string(f.env.path("rootseal.prom")).unwrap();
    assert!(
        prom.contains("rootseal_monitor_containers 1") && prom.contains("rootseal_monitor_drift_detected_total"),
        "{prom}"
    );

    // Stopping the container drops it from the watch list (poststop removes the record).
    drop(c);
    wait_for("the stopped container to be dropped", Duration::from_secs(5), || {
        status(&f)["containers"].as_array().is_some_and(|c| c.is_empty())
    });
    assert_eq!(mon.stop(), Some(0), "clean shutdown on SIGTERM");
    // Intermediate states of the three edits may each be reported, but never more than that.
    assert!(drift_events <= 3, "{drift_events} drift events");
}

#[test]
fn an_untouched_container_raises_nothing_over_many_scans() {
    let f = Fixture::new();
    monitor_config(&f, "");
    let c = run_detached(&f, "runc");
    let mon = MonitorProc::start(&f.env);
    // Several scan cycles (a loaded CI machine may take longer than the interval suggests).
    let scans = || scans_total(&f);
    wait_for("three scan cycles", Duration::from_secs(30), || scans() >= 3);
    assert!(monitor_events(&f).is_empty(), "{:?}", monitor_events(&f));
    assert_eq!(first_status(&f, &c.id)["result"], "clean");
    // SIGHUP reloads without losing the watch list.
    let before = scans();
    mon.signal("-HUP");
    wait_for("two scans after the reload", Duration::from_secs(30), || scans() >= before + 2);
    assert_eq!(first_status(&f, &c.id)["result"], "clean");
    assert!(monitor_events(&f).is_empty());
    assert_eq!(mon.stop(), Some(0));
}

#[test]
fn the_kill_policy_stops_the_container_and_says_so() {
    let f = Fixture::new();
    monitor_config(&f, &format!("[[rules]]\nname = \"strict\"\nimages = [\"{IMAGE}\"]\ndrift_action = \"kill\""));
    f.annotate("rootseal.dev/image", IMAGE);
    let c = run_detached(&f, "runc");
    let mon = MonitorProc::start(&f.env);
    wait_for("a first clean scan", Duration::from_secs(15), || first_status(&f, &c.id)["result"] == "clean");
    std::fs::write(f.rootfs.join("etc/motd"), b"tampered\n").unwrap();
    wait_for("a drift event with the kill", Duration::from_secs(5), || {
        monitor_events(&f)
            .iter()
            .any(|e| e["event"] == "drift" && e["action"].as_str().is_some_and(|a| a.starts_with("killed")))
    });
    wait_for("the container to stop", Duration::from_secs(5), || container_state("runc", &c.id) != "running");
    drop(mon);
}

#[test]
fn a_reused_pid_is_not_touched() {
    let f = Fixture::new();
    monitor_config_with(&f, "", "action = \"kill\"");
    // An innocent process, and a record claiming it is a (drifted) container, with a start
    // time that is not its own: as after the container died and its pid was reused.
    let mut innocent = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = innocent.id() as i32;
    let start = rootseal::state::pid_start_time(pid).unwrap();
    std::fs::write(f.rootfs.join("etc/motd"), b"drifted\n").unwrap();
    let digest = f.env.expect(0, [OsStr::new("digest"), f.rootfs.as_os_str()]).0;
    let rec = rootseal::state::Record {
        version: 1,
        id: "ghost".into(),
        bundle: f.bundle.clone(),
        rootfs: f.rootfs.clone(),
        image: Some(IMAGE.into()),
        seal_digest: Some(digest.trim().into()),
        seal_path: None,
        pid: Some(pid),
        pid_start_time: Some(start + 1),
        verdict: "verified".into(),
        mode: "enforce".into(),
        time: "t".into(),
        mount_destinations: None,
        manager: None,
        root: None,
        pod: None,
    };
    rootseal::state::write(&f.env.path("state"), &rec).unwrap();
    let out = f.env.run(["monitor", "--once"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("another process"), "{text}");
    assert!(text.contains("0 container(s) watched"), "{text}");
    assert!(innocent.try_wait().unwrap().is_none(), "the innocent process is alive");
    let _ = innocent.kill();
    let _ = innocent.wait();
}

#[test]
fn once_reports_drift_in_its_exit_code() {
    let f = Fixture::new();
    monitor_config(&f, "");
    let c = run_detached(&f, "runc");
    let out = f.env.run(["monitor", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    std::fs::write(f.rootfs.join("bin/dropped"), b"x").unwrap();
    let out = f.env.run(["monitor", "--once"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("/bin/dropped added"), "{text}");
    // A seal that vanished from the store is a scan failure, never a silent skip.
    std::fs::remove_dir_all(f.env.path("seals")).unwrap();
    let out = f.env.run(["monitor", "--once"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(monitor_events(&f).iter().any(|e| e["event"] == "scan-failed"));
    drop(c);
}

#[test]
fn the_systemd_unit_verifies_and_matches_the_generator() {
    let env = Env::new();
    let (unit, _) =
        env.expect(0, [OsStr::new("generate"), OsStr::new("monitor-unit"), OsStr::new("--binary"), bin().as_os_str()]);
    let path = env.path("rootseal-monitor.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&path).output().unwrap();
    assert!(out.status.success(), "systemd-analyze verify: {}", String::from_utf8_lossy(&out.stderr));
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/systemd/rootseal-monitor.service"))
            .unwrap();
    assert_eq!(env.expect(0, ["generate", "monitor-unit"]).0, committed);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/tmpfiles.d/rootseal.conf")).unwrap();
    assert_eq!(env.expect(0, ["generate", "tmpfiles"]).0, committed);
}

#[test]
fn the_freeze_policy_pauses_the_container() {
    let f = Fixture::new();
    monitor_config(&f, &format!("[[rules]]\nname = \"freeze\"\nimages = [\"{IMAGE}\"]\ndrift_action = \"freeze\""));
    f.annotate("rootseal.dev/image", IMAGE);
    let c = run_detached(&f, "runc");
    let mon = MonitorProc::start(&f.env);
    wait_for("a first clean scan", Duration::from_secs(15), || first_status(&f, &c.id)["result"] == "clean");
    std::fs::write(f.rootfs.join("etc/motd"), b"tampered\n").unwrap();
    wait_for("a drift event with the freeze", Duration::from_secs(5), || {
        monitor_events(&f)
            .iter()
            .any(|e| e["event"] == "drift" && e["action"].as_str().is_some_and(|a| a.starts_with("frozen")))
    });
    wait_for("runc to report the container paused", Duration::from_secs(5), || {
        container_state("runc", &c.id) == "paused"
    });
    let _ = Command::new("runc").args(["resume", &c.id]).output();
    assert_eq!(mon.stop(), Some(0));
}

fn drift_paths(e: &serde_json::Value) -> Vec<String> {
    e["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| v["paths"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["path"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_mount_added_to_config_json_after_start_hides_no_drift() {
    let f = Fixture::new();
    monitor_config(&f, "");
    let c = run_detached(&f, "runc");
    // After the start: a mount entry over /etc that runc never made, and a tampered /etc/motd.
    // A monitor (re)started now must still exclude only what the hook excluded.
    f.patch(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}))
    });
    std::fs::write(f.rootfs.join("etc/motd"), b"tampered under a claimed mount\n").unwrap();
    let mon = MonitorProc::start(&f.env);
    wait_for("a drift event naming /etc/motd", Duration::from_secs(15), || {
        monitor_events(&f).iter().any(|e| e["event"] == "drift" && drift_paths(e).iter().any(|p| p == "/etc/motd"))
    });
    assert_eq!(first_status(&f, &c.id)["result"], "drift");
    assert_eq!(mon.stop(), Some(0));
}

#[test]
fn a_rootfs_renamed_away_and_replaced_by_a_clean_copy_is_reported() {
    let f = Fixture::new();
    monitor_config(&f, "");
    let c = run_detached(&f, "runc");
    let mon = MonitorProc::start(&f.env);
    wait_for("a first clean scan", Duration::from_secs(15), || first_status(&f, &c.id)["result"] == "clean");
    // A pristine copy at the old path; the tree the container runs in is moved away and tampered.
    let pristine = f.env.path("pristine");
    sh(Command::new("cp").arg("-a").arg(&f.rootfs).arg(&pristine));
    let moved = f.bundle.join("rootfs.moved");
    std::fs::rename(&f.rootfs, &moved).unwrap();
    std::fs::rename(&pristine, &f.rootfs).unwrap();
    std::fs::write(moved.join("etc/motd"), b"tampered where the container runs\n").unwrap();
    let drift = || monitor_events(&f).into_iter().filter(|e| e["event"] == "drift").collect::<Vec<_>>();
    wait_for("a drift event naming the replacement and /etc/motd", Duration::from_secs(15), || {
        drift().iter().any(|e| {
            let codes: Vec<&str> =
                e["violations"].as_array().unwrap().iter().filter_map(|v| v["code"].as_str()).collect();
            codes.contains(&"rootfs-replaced") && drift_paths(e).iter().any(|p| p == "/etc/motd")
        })
    });
    let st = first_status(&f, &c.id);
    assert!(st["rootfs_replaced"].as_str().is_some_and(|r| r.contains("no longer names")), "{st}");
    assert_eq!(mon.stop(), Some(0));
}

/// The container's processes as runc lists them (`runc ps`), with their start times.
fn container_processes(id: &str) -> Vec<(u32, u64)> {
    let out = Command::new("runc").args(["ps", "--format", "json", id]).output().unwrap();
    let pids: Vec<u32> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    pids.into_iter().filter_map(|p| rootseal::state::pid_start_time(p as i32).map(|s| (p, s))).collect()
}

/// Gone, a zombie, or another process by now.
fn ended(pid: u32, start: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => {
            let rest = &s[s.rfind(')').unwrap() + 2..];
            rest.starts_with('Z') || rest.starts_with('X') || rootseal::state::pid_start_time(pid as i32) != Some(start)
        }
    }
}

/// A container whose init starts a background child, tampered with `drift_action = "kill"`:
/// every one of its processes ends. `own_pid_namespace: false` removes the PID namespace from
/// config.json (as a pod sharing its process namespace does): killing init alone leaves the
/// child running.
fn kill_ends_every_process(own_pid_namespace: bool) {
    let f = Fixture::new();
    monitor_config_with(&f, "", "action = \"kill\"");
    // The container's init starts a child first, then becomes a sleep itself.
    f.patch(|c| {
        c["process"]["args"] = serde_json::json!(["sh", "-c", "sleep 1000 & exec sleep 1001"]);
        if !own_pid_namespace {
            c["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "pid");
        }
    });
    let id = container_id("kill");
    let err_path = f.env.path("kill.stderr");
    let status = Command::new("timeout")
        .args(["-k", "5", "60", "runc", "run", "--detach", "--bundle"])
        .arg(&f.bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "runc run -d: {}", std::fs::read_to_string(&err_path).unwrap_or_default());
    let c = Running { id, runtime: "runc".into() };
    let mut members = Vec::new();
    wait_for("the container's init and its background child", Duration::from_secs(10), || {
        members = container_processes(&c.id);
        members.len() >= 2
    });
    let mon = MonitorProc::start(&f.env);
    wait_for("a first clean scan", Duration::from_secs(15), || first_status(&f, &c.id)["result"] == "clean");
    std::fs::write(f.rootfs.join("etc/motd"), b"tampered\n").unwrap();
    wait_for("a drift event with the kill", Duration::from_secs(10), || {
        monitor_events(&f)
            .iter()
            .any(|e| e["event"] == "drift" && e["action"].as_str().is_some_and(|a| a.starts_with("killed")))
    });
    wait_for("every process of the container to end", Duration::from_secs(10), || {
        members.iter().all(|&(p, start)| ended(p, start))
    });
    drop(mon);
}

#[test]
fn the_kill_policy_ends_every_process_of_the_container() {
    kill_ends_every_process(true);
}

#[test]
fn the_kill_policy_ends_every_process_of_a_container_sharing_a_pid_namespace() {
    kill_ends_every_process(false);
}

#[test]
fn full_rehash_scans_read_every_file_on_their_period_and_zero_turns_them_off() {
    let f = Fixture::new();
    monitor_config_with(&f, "[hook]\nverify = \"cached\"", "full_rehash = \"2s\"");
    let c = run_detached(&f, "runc");
    let mon = MonitorProc::start(&f.env);
    let full = |f: &Fixture| first_status(f, &c.id)["full_scans"].as_u64().unwrap_or(0);
    wait_for("two full re-hash scans", Duration::from_secs(20), || full(&f) >= 2);
    assert_eq!(first_status(&f, &c.id)["result"], "clean");
    assert!(monitor_events(&f).is_empty(), "{:?}", monitor_events(&f));
    assert_eq!(mon.stop(), Some(0));

    // Off: many cached scans, not one full one.
    std::fs::remove_file(f.env.path("syslog.sock")).unwrap();
    monitor_config_with(&f, "[hook]\nverify = \"cached\"", "full_rehash = \"0\"");
    let _ = std::fs::remove_file(f.env.path("rootseal.prom"));
    let mon = MonitorProc::start(&f.env);
    let scans = || scans_total(&f);
    wait_for("four scans", Duration::from_secs(30), || scans() >= 4);
    assert_eq!(full(&f), 0);
    assert_eq!(mon.stop(), Some(0));
}

#[test]
fn a_process_still_in_the_hosts_root_is_not_judged_before_it_enters_the_rootfs() {
    let f = Fixture::new();
    monitor_config_with(&f, "", "action = \"kill\"");
    // As between the hook (prestart) and runc's pivot_root: the recorded process's root is
    // still the host's /. A scan then must neither walk the host nor call it replaced.
    let mut init = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = init.id() as i32;
    let hook = |stage: &str, status: &str| {
        let st = serde_json::to_vec(&serde_json::json!({
            "ociVersion": "1.0.2", "id": "early", "status": status, "pid": pid, "bundle": f.bundle
        }))
        .unwrap();
        feed_hook(&mut f.env.cmd(["hook", stage]), Some(&st))
    };
    let r = hook("prestart", "creating");
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let out = f.env.run(["monitor", "--once"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("early\tnot scanned"), "{text}");
    assert!(text.contains("1 container(s) watched, 0 drifted, 0 scan failure(s)"), "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(monitor_events(&f).is_empty(), "{:?}", monitor_events(&f));
    assert!(init.try_wait().unwrap().is_none(), "the process was not killed");
    let _ = init.kill();
    let _ = init.wait();
    assert_eq!(hook("poststop", "stopped").code, Some(0));
}

/// Issue 14, items 3 and 4: a monitor run by hand without syslog says it started and prints one
/// line per event on stderr; once it is gone, `rootseal status` says the data is stale and
/// exits non-zero.
#[test]
fn a_foreground_monitor_speaks_and_a_dead_one_reads_stale() {
    let f = Fixture::new();
    monitor_config(&f, "");
    // No syslog: the socket path is there but nobody listens on it any more.
    let text = std::fs::read_to_string(f.env.config_path()).unwrap();
    std::fs::write(
        f.env.config_path(),
        text.replace(&format!("syslog_socket = \"{}\"", f.env.path("syslog.sock").display()), "syslog_socket = \"\""),
    )
    .unwrap();
    let c = run_detached(&f, "runc");
    let mon = MonitorProc::start(&f.env);
    let stderr = || std::fs::read_to_string(f.env.path("monitor.stderr")).unwrap_or_default();
    wait_for("the start line", Duration::from_secs(30), || stderr().contains("rootseal monitor: started (pid"));
    assert!(stderr().contains("and here (syslog unreachable)"), "{}", stderr());
    wait_for("a first clean scan", Duration::from_secs(15), || first_status(&f, &c.id)["result"] == "clean");
    let o = f.env.run(["status"]);
    assert_eq!(o.status.code(), Some(0), "a live monitor: {}", String::from_utf8_lossy(&o.stdout));
    std::fs::write(f.rootfs.join("etc/motd"), b"changed while running\n").unwrap();
    wait_for("a drift line on stderr", Duration::from_secs(15), || {
        stderr().lines().any(|l| l.contains(" ERR drift container ") && l.contains("/etc/motd"))
    });
    assert_eq!(mon.stop(), Some(0));
    let o = f.env.run(["status"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "a stopped monitor: {out}");
    assert!(out.starts_with("STALE: monitor pid") && out.contains("is not running"), "{out}");
    let v = status(&f);
    assert!(v["stale"].as_str().is_some_and(|s| s.contains("is not running")), "{v}");
    drop(c);
}

/// Issue 13, finding 3.1 in the monitor: a container that runs (audit mode) with a destination
/// that is not clean is never scanned as clean: where runc mounted it is unknown.
#[test]
fn the_monitor_refuses_an_unclean_recorded_destination() {
    let f = Fixture::new();
    monitor_config(&f, "mode = \"audit\"");
    f.patch(|c| {
        c["mounts"].as_array_mut().unwrap().push(
            serde_json::json!({"destination": "/usr/../mnt", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]}),
        )
    });
    let c = run_detached(&f, "runc");
    let mon = MonitorProc::start(&f.env);
    wait_for("a scan failure naming the destination", Duration::from_secs(15), || {
        first_status(&f, &c.id)["result"] == "failed"
            && first_status(&f, &c.id)["error"]
                .as_str()
                .is_some_and(|e| e.contains("\"/usr/../mnt\" has a `..` component"))
    });
    assert_eq!(mon.stop(), Some(0));
}
