//! State records under hostile ids: container ids are unique only per runc root, so a
//! container started under another root with the id (and even the bundle) of a running one
//! must not end the monitoring of that one (src/node/state.rs).

use super::*;
use crate::monitor::*;
use std::time::Duration;

/// Starts the victim (detached, with the hook) and the monitor, and waits for a clean scan.
fn victim(f: &Fixture) -> (Running, MonitorProc, PathBuf) {
    monitor_config(f, "");
    let v = run_detached(f, "runc");
    let rec = rootseal::state::path_for(&f.env.path("state"), &v.id, &f.bundle).unwrap();
    assert!(rec.exists(), "the victim's record {}", rec.display());
    let mon = MonitorProc::start(&f.env);
    wait_for("a first clean scan of the victim", Duration::from_secs(15), || {
        first_status(f, &v.id)["result"] == "clean"
    });
    (v, mon, rec)
}

/// The victim is still watched: a change to its rootfs is reported as its drift.
fn assert_still_watched(f: &Fixture, v: &Running) {
    std::fs::write(f.rootfs.join("etc/motd"), b"changed after the attack\n").unwrap();
    wait_for("a drift event for the victim", Duration::from_secs(10), || {
        monitor_events(f).iter().any(|e| e["event"] == "drift" && e["container"]["id"] == v.id.as_str())
    });
}

#[test]
fn a_blocked_container_with_a_running_containers_id_leaves_its_record() {
    let f = Fixture::new();
    let (v, mon, rec) = victim(&f);
    let before = std::fs::read_to_string(&rec).unwrap();
    // The attacker's bundle: a tampered copy, run under another runc root with the victim's id.
    let evil = f.env.path("evil");
    sh(Command::new("cp").arg("-a").arg(&f.bundle).arg(&evil));
    std::fs::write(evil.join("rootfs/etc/motd"), b"tampered\n").unwrap();
    // A witness that runc ran the attacker's poststop: junk at the id's version 1 record name,
    // which the poststop of that id removes (nothing of value is there). (Before records were
    // keyed by bundle, that name was the victim's record itself: its removal was the finding.)
    let witness = f.env.path(&format!("state/containers/{}.json", v.id));
    if !witness.exists() {
        std::fs::write(&witness, b"not a record").unwrap();
    }
    let root2 = f.env.path("runc-root-2");
    let out = Command::new("timeout")
        .args(["-k", "5", "60", "runc", "--root"])
        .arg(&root2)
        .args(["run", "--bundle"])
        .arg(&evil)
        .arg(&v.id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new("runc").arg("--root").arg(&root2).args(["delete", "--force", &v.id]).output();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("rootseal: blocked container"), "the attacker is blocked: {err}");
    assert!(!witness.exists(), "runc ran the blocked container's poststop hook");
    assert_eq!(std::fs::read_to_string(&rec).ok(), Some(before), "the victim's record is intact");
    assert_still_watched(&f, &v);
    drop(mon);
}

#[test]
fn poststop_and_prestart_with_a_running_containers_id_and_bundle_leave_its_record() {
    let f = Fixture::new();
    let (v, mon, rec) = victim(&f);
    let before = std::fs::read_to_string(&rec).unwrap();
    // Same id, same bundle (another runc root running the victim's bundle): runc's poststop
    // state names no pid (the container has stopped).
    let stopped = serde_json::to_vec(
        &serde_json::json!({"ociVersion": "1.0.2", "id": v.id, "status": "stopped", "bundle": f.bundle}),
    )
    .unwrap();
    let r = hook(&f, "poststop", Some(&stopped), &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&rec).ok().as_ref(),
        Some(&before),
        "poststop removed a running container's record"
    );
    // A prestart for another process with that id and bundle is refused, and writes nothing.
    let mut other = Command::new("sleep").arg("60").spawn().unwrap();
    let st = serde_json::to_vec(&serde_json::json!({
        "ociVersion": "1.0.2", "id": v.id, "status": "creating", "pid": other.id(), "bundle": f.bundle
    }))
    .unwrap();
    let r = hook(&f, "prestart", Some(&st), &[]);
    let _ = other.kill();
    let _ = other.wait();
    r.assert_blocked("another running container");
    assert_eq!(std::fs::read_to_string(&rec).ok(), Some(before), "prestart overwrote a running container's record");
    assert_still_watched(&f, &v);
    drop(mon);
}
