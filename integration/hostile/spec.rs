//! Hostile specs: what the process may do to its read-only root (capabilities), and a spec that
//! brings its own entry for the rootseal hook to rootseal-runtime.

use super::*;
use crate::harness::*;

/// Adds CAP_SYS_ADMIN to every capability set of the fixture's process.
fn with_sys_admin(f: &Fixture) {
    f.patch(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set].as_array_mut().unwrap().push("CAP_SYS_ADMIN".into());
        }
    });
}

/// Finding 3.9: with CAP_SYS_ADMIN the container remounts its read-only root read-write and
/// drifts at will; the read-only policy meant nothing.
#[test]
fn a_process_that_can_remount_the_root_is_blocked() {
    let f = Fixture::new();
    with_sys_admin(&f);
    assert_blocks(
        &f,
        &["holds bounding CAP_SYS_ADMIN, effective CAP_SYS_ADMIN, permitted CAP_SYS_ADMIN", "allow_remount"],
    );
}

/// Allowed by the image's rule: it runs, the reason is in the event, and the threat is real
/// (the container does remount its root read-write).
#[test]
fn control_a_rule_allows_remount_with_a_reason_logged_in_the_event() {
    let f = Fixture::new();
    with_sys_admin(&f);
    f.annotate("rootseal.dev/image", IMAGE);
    config(
        &f,
        &format!("[[rules]]\nname = \"admin-tools\"\nimages = [\"{IMAGE}\"]\nallow_remount = \"ticket OPS-1: the backup agent mounts snapshots\"\n"),
    );
    f.patch(|c| {
        c["process"]["args"] = serde_json::json!([
            "sh",
            "-c",
            "cat /etc/motd; busybox mount -o remount,rw / && touch /remounted && echo root remounted read-write"
        ])
    });
    let r = f.run("runc");
    r.assert_ran(MOTD);
    assert!(r.stdout().contains("root remounted read-write"), "CAP_SYS_ADMIN undoes root.readonly: {}", r.stdout());
    let events = std::fs::read_to_string(f.env.path("events.jsonl")).unwrap();
    let verified: serde_json::Value =
        serde_json::from_str(events.lines().find(|l| l.contains("\"verified\"")).expect("a verified event")).unwrap();
    assert_eq!(
        verified["allowances"][0].as_str().unwrap(),
        "bounding CAP_SYS_ADMIN, effective CAP_SYS_ADMIN, permitted CAP_SYS_ADMIN allowed by rule \"admin-tools\" (allow_remount: ticket OPS-1: the backup agent mounts snapshots)"
    );
}

fn wrapper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rootseal-runtime"))
}

/// Runs the fixture's bundle through rootseal-runtime (in front of runc), as containerd's shim
/// would, with the fixture's config.
fn run_wrapped(f: &Fixture) -> RunResult {
    let id = container_id("wrapped");
    let out = Command::new("timeout")
        .args(["-k", "5", "90"])
        .arg(wrapper())
        .args(["run", "--bundle"])
        .arg(&f.bundle)
        .arg(&id)
        .env("ROOTSEAL_CONFIG", f.env.config_path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = Command::new("runc").args(["delete", "--force", &id]).output();
    RunResult { id, out, hook_stderr: String::new(), runtime: "rootseal-runtime".into() }
}

/// Finding 3.4: a spec that already holds an entry for the rootseal binary was left alone by
/// rootseal-runtime, so the verifying hook never ran: here the createRuntime entry asks for
/// the `poststart` stage (which verifies nothing), and another entry points at an audit config.
#[test]
fn rootseal_runtime_replaces_a_spec_entry_for_the_hook_binary() {
    let f = Fixture::new();
    std::fs::write(f.rootfs.join("usr/sbin/ping"), "#!/bin/sh\necho tampered\n").unwrap();
    let audit = f.env.path("audit.toml");
    std::fs::write(&audit, "mode = \"audit\"\n").unwrap();
    let cfg = f.env.config_path();
    f.patch(|c| {
        c["hooks"] = serde_json::json!({
            "createRuntime": [{"path": bin(), "args": ["rootseal", "--config", cfg, "hook", "poststart"]}],
            "prestart": [{"path": bin(), "args": ["rootseal", "--config", audit, "hook", "prestart"]}],
        });
    });
    let r = run_wrapped(&f);
    let line = r.assert_blocked();
    assert!(line.contains("/usr/sbin/ping"), "blocked by the canonical hook, for the tampered file: {line}");
    let spec = f.config();
    let hooks = spec["hooks"].as_object().unwrap();
    assert_eq!(hooks["createRuntime"].as_array().unwrap().len(), 1);
    assert_eq!(hooks["createRuntime"][0]["args"].as_array().unwrap().last().unwrap(), "createRuntime");
    assert!(hooks.get("prestart").is_none(), "the audit entry is gone: {spec}");
}
