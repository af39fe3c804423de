//! The hook protocol, driven directly with what a runtime could hand it: every bad input is a
//! block with a reason in enforce mode and an alert in audit mode; nothing hangs.

use crate::harness::*;
use crate::util::*;
use std::process::Command;

/// Runs `rootseal hook [stage]` with `stdin` (None: stdin held open and never written).
fn hook(f: &Fixture, stage: Option<&str>, stdin: Option<&[u8]>) -> HookRun {
    let mut args = vec!["hook"];
    args.extend(stage);
    feed_hook(&mut f.env.cmd(&args), stdin)
}

fn state(id: &str, bundle: &std::path::Path) -> Vec<u8> {
    prestart_state(id, bundle)
}

fn audit(f: &Fixture) {
    let d = f.env.tmp.path().display().to_string();
    f.env.write_config("mode = \"audit\"");
    assert!(std::fs::read_to_string(f.env.config_path()).unwrap().contains(&d));
}

fn assert_blocked(r: &HookRun, expect: &str) {
    assert_eq!(r.code, Some(1), "stderr: {}", r.stderr);
    let line = r.stderr.lines().last().unwrap_or_default();
    assert!(line.starts_with("rootseal: blocked") && line.contains(expect), "expected {expect:?}: {}", r.stderr);
}

fn assert_audit_allowed(f: &Fixture, r: &HookRun, code: &str) {
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    assert!(r.stderr.contains("audit: would block"), "{}", r.stderr);
    let ev = f.last_event();
    assert_eq!(ev["event"], "audit");
    assert_eq!(ev["violations"][0]["code"], code, "{ev}");
}

#[test]
fn a_valid_state_passes_and_records_state() {
    let f = Fixture::new();
    // The container's init: it stops before poststop runs (poststop removes only the record of
    // a container whose process is gone, src/node/state.rs).
    let mut init = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let st = serde_json::to_vec(&serde_json::json!({
        "ociVersion": "1.0.2-dev", "id": "c1", "status": "creating", "pid": init.id(), "bundle": f.bundle
    }))
    .unwrap();
    let r = hook(&f, Some("prestart"), Some(&st));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(rootseal::state::path_for(&f.env.path("state"), "c1", &f.bundle).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["verdict"], "verified");
    assert_eq!(rec["image"], serde_json::Value::Null);
    assert!(rec["seal_digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(rec["pid_start_time"].as_u64().is_some());
    // Stage inferred from status "stopped": poststop removes the record (runc names no pid).
    init.kill().unwrap();
    init.wait().unwrap();
    let stopped = serde_json::to_vec(
        &serde_json::json!({"ociVersion": "1.0.2", "id": "c1", "status": "stopped", "bundle": f.bundle}),
    )
    .unwrap();
    let r = hook(&f, None, Some(&stopped));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!rootseal::state::path_for(&f.env.path("state"), "c1", &f.bundle).unwrap().exists());
}

#[test]
fn garbage_empty_and_oversized_state() {
    let f = Fixture::new();
    assert_blocked(&hook(&f, Some("prestart"), Some(b"")), "no OCI state on stdin");
    assert_blocked(&hook(&f, Some("prestart"), Some(b"\x00\xffgarbage{")), "not valid");
    assert_blocked(
        &hook(&f, Some("prestart"), Some(br#"{"id":"a","id":"b","status":"creating","bundle":"/x"}"#)),
        "duplicate key",
    );
    let big = vec![b' '; 2 << 20];
    assert_blocked(&hook(&f, Some("prestart"), Some(&big)), "larger than");
    let deep = "[".repeat(100_000);
    assert_blocked(&hook(&f, Some("prestart"), Some(deep.as_bytes())), "not valid");
    assert_blocked(
        &hook(&f, Some("prestart"), Some(br#"{"id":"a","status":"creating","bundle":"relative/b"}"#)),
        "relative",
    );

    audit(&f);
    assert_audit_allowed(&f, &hook(&f, Some("prestart"), Some(b"garbage")), "state");
    assert_audit_allowed(&f, &hook(&f, Some("prestart"), Some(b"")), "state");
}

#[test]
fn stdin_held_open_never_hangs_the_start() {
    let f = Fixture::new();
    f.env.write_config("[hook]\ndeadline = \"1s\"");
    let r = hook(&f, Some("prestart"), None);
    assert_blocked(&r, "did not end");
    assert!(r.elapsed < HANG, "never hangs the start: {:?}", r.elapsed);
}

#[test]
fn missing_config_json() {
    let f = Fixture::new();
    std::fs::remove_file(f.bundle.join("config.json")).unwrap();
    assert_blocked(&hook(&f, Some("prestart"), Some(&state("c2", &f.bundle))), "config.json");
    audit(&f);
    assert_audit_allowed(&f, &hook(&f, Some("prestart"), Some(&state("c2", &f.bundle))), "bundle");
}

#[test]
fn rootfs_symlink() {
    let f = Fixture::new();
    std::fs::rename(&f.rootfs, f.bundle.join("real")).unwrap();
    std::os::unix::fs::symlink("/", &f.rootfs).unwrap();
    assert_blocked(&hook(&f, Some("prestart"), Some(&state("c3", &f.bundle))), "is a symlink");
    audit(&f);
    assert_audit_allowed(&f, &hook(&f, Some("prestart"), Some(&state("c3", &f.bundle))), "rootfs");
}

#[test]
fn hostile_container_ids() {
    let f = Fixture::new();
    // A record outside the state directory must never be touched.
    let victim = f.env.path("victim.json");
    std::fs::write(&victim, b"keep").unwrap();
    for id in ["../victim", "../../etc/passwd", "a\nb", "x\u{1b}[2J"] {
        let st = serde_json::to_vec(
            &serde_json::json!({"ociVersion": "1.0.2", "id": id, "status": "stopped", "bundle": f.bundle}),
        )
        .unwrap();
        let r = hook(&f, Some("poststop"), Some(&st));
        assert_eq!(r.code, Some(1), "{id:?}: {}", r.stderr);
        assert!(r.stderr.contains("not safe as a file name") && !r.stderr.contains('\u{1b}'), "{}", r.stderr);
        let r = hook(&f, Some("prestart"), Some(&state(id, &f.bundle)));
        assert_eq!(r.code, Some(1), "{id:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "one line even for ids with newlines: {}", r.stderr);
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
}

#[test]
fn a_broken_config_fails_closed() {
    let f = Fixture::new();
    std::fs::write(f.env.config_path(), "mode = \"audti\"\n").unwrap();
    let r = hook(&f, Some("prestart"), Some(&state("c4", &f.bundle)));
    assert_blocked(&r, "config.toml");
    assert!(r.stderr.contains("fails closed"), "{}", r.stderr);
}

#[test]
fn an_empty_trust_store_blocks_everything() {
    let f = Fixture::new();
    std::fs::remove_file(f.env.path("trust/ci-2026.pub")).unwrap();
    assert_blocked(&hook(&f, Some("prestart"), Some(&state("c5", &f.bundle))), "not signed by any trusted key");
    std::fs::remove_dir_all(f.env.path("trust")).unwrap();
    assert_blocked(&hook(&f, Some("prestart"), Some(&state("c5", &f.bundle))), "trust store");
}

#[test]
fn check_decides_offline() {
    let f = Fixture::new();
    let (out, _) = f.env.expect(0, [std::ffi::OsStr::new("check"), f.bundle.as_os_str()]);
    assert!(out.contains("verified container bundle against seal sha256:"), "{out}");
    std::fs::write(f.rootfs.join("etc/motd"), b"x").unwrap();
    f.patch(|c| c["root"]["readonly"] = false.into());
    let (out, _) =
        f.env.expect(1, [std::ffi::OsStr::new("check"), f.bundle.as_os_str(), std::ffi::OsStr::new("--json")]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["allowed"], false);
    let codes: Vec<&str> =
        v["event"]["violations"].as_array().unwrap().iter().map(|v| v["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["writable-root", "tampered"]);
    assert_eq!(v["event"]["violations"][1]["paths"][0]["path"], "/etc/motd");
}

#[test]
fn the_hook_never_runs_over_its_deadline() {
    let f = Fixture::new();
    // 40 000 files to walk with a 300 ms budget.
    for d in 0..40 {
        let dir = f.rootfs.join(format!("var/many{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..1000 {
            std::fs::write(dir.join(i.to_string()), b"x").unwrap();
        }
    }
    f.env.write_config("[hook]\ndeadline = \"300ms\"");
    let r = hook(&f, Some("prestart"), Some(&state("c6", &f.bundle)));
    assert_blocked(&r, "deadline");
    assert!(r.elapsed < HANG, "never hangs the start: {:?}", r.elapsed);
}

#[test]
fn committed_hooks_json_is_what_the_binary_generates() {
    let out = Command::new(bin()).arg("hooks-json").output().unwrap();
    let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/hooks/rootseal.json")).unwrap();
    assert_eq!(out.stdout, committed, "regenerate with: rootseal hooks-json > hooks/rootseal.json");
}

/// Regression: a seal that does not verify (or does not match) must never pick a laxer rule.
/// Before the fix, a tampered rootfs pointed at a validly signed seal of an audit-mode image
/// ran in audit mode on an enforce node.
#[test]
fn a_failing_candidate_never_relaxes_the_mode() {
    let f = Fixture::new();
    // A dev image, sealed and trusted, whose rule is audit.
    let dev_root = f.env.path("dev-rootfs");
    busybox_rootfs(&dev_root);
    std::fs::write(dev_root.join("etc/motd"), b"dev image\n").unwrap();
    let dev_seal = f.env.path("dev.json");
    f.env.seal(&dev_root, &f.key, &dev_seal, &["--name", "dev.example/tool:1"]);
    f.env.expect(0, [std::ffi::OsStr::new("trust"), std::ffi::OsStr::new("import"), dev_seal.as_os_str()]);
    f.env
        .write_config("mode = \"enforce\"\n[[rules]]\nname = \"dev\"\nimages = [\"dev.example/**\"]\nmode = \"audit\"");
    let dev_digest = f.env.expect(0, [std::ffi::OsStr::new("digest"), dev_root.as_os_str()]).0;
    // The prod bundle, tampered, pointing at the dev seal.
    std::fs::write(f.rootfs.join("etc/motd"), b"tampered prod\n").unwrap();
    f.annotate("rootseal.dev/seal", dev_digest.trim());
    let r = hook(&f, Some("prestart"), Some(&state("c7", &f.bundle)));
    assert_blocked(&r, "differs from seal");
}

/// Finding 3.8: `rootseal.dev/image` is set by whoever creates the container; it selected an
/// audit rule (or an exemption by image) for a tampered container, which then ran. A name the
/// creator sets can only make the decision stricter; the CRI runtimes' own annotation, which
/// they set from the image they pulled, still selects the audit rule.
#[test]
fn a_creator_set_image_name_never_relaxes_the_decision() {
    let f = Fixture::new();
    f.env.write_config(
        "mode = \"enforce\"\n[[rules]]\nname = \"dev\"\nimages = [\"dev.example/**\"]\nmode = \"audit\"\n[[exempt]]\nname = \"tools\"\nimages = [\"tools.example/**\"]",
    );
    std::fs::write(f.rootfs.join("etc/motd"), b"tampered\n").unwrap();
    f.annotate("rootseal.dev/image", "dev.example/tool:1");
    assert_blocked(&hook(&f, Some("prestart"), Some(&state("c10", &f.bundle))), "/etc/motd");
    f.annotate("rootseal.dev/image", "tools.example/x:1");
    assert_blocked(&hook(&f, Some("prestart"), Some(&state("c11", &f.bundle))), "/etc/motd");
    // The runtime's own name relaxes as configured.
    f.annotate("io.kubernetes.cri.image-name", "dev.example/tool:1");
    let r = hook(&f, Some("prestart"), Some(&state("c12", &f.bundle)));
    assert_eq!(r.code, Some(0), "audit rule by the runtime's image name: {}", r.stderr);
    assert!(r.stderr.contains("audit: would block"), "{}", r.stderr);
}

#[test]
fn a_rule_requiring_another_key_blocks() {
    let f = Fixture::new();
    f.env.write_config(&format!("[[rules]]\nname = \"prod\"\nimages = [\"{}\"]\nkeys = [\"release-key\"]", IMAGE));
    let r = hook(&f, Some("prestart"), Some(&state("c8", &f.bundle)));
    assert_blocked(&r, "requires one of release-key");
}

#[test]
fn a_broken_config_at_poststop_does_not_claim_a_block() {
    let f = Fixture::new();
    std::fs::write(f.env.config_path(), "mode = \"audti\"\n").unwrap();
    let stopped = serde_json::to_vec(
        &serde_json::json!({"ociVersion": "1.0.2", "id": "c9", "status": "stopped", "bundle": f.bundle}),
    )
    .unwrap();
    let r = hook(&f, None, Some(&stopped));
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("poststop of container c9") && !r.stderr.contains("blocked"), "{}", r.stderr);
    let r = hook(&f, Some("poststart"), Some(&stopped));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

/// Regression (review): a symlink planted at a mount destination would make runc mount over
/// the sealed file it points to; the destination must resolve on disk as it does in the seal.
#[test]
fn a_symlink_at_a_mount_destination_is_refused() {
    let f = Fixture::new();
    let hosts = f.env.path("hosts");
    std::fs::write(&hosts, b"127.0.0.1 localhost\n").unwrap();
    f.patch(|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/etc/hosts", "type": "bind", "source": hosts, "options": ["rbind", "ro"]
        }))
    });
    assert_eq!(hook(&f, Some("prestart"), Some(&state("c10", &f.bundle))).code, Some(0), "clean first");
    std::os::unix::fs::symlink("/usr/sbin/ping", f.rootfs.join("etc/hosts")).unwrap();
    assert_blocked(&hook(&f, Some("prestart"), Some(&state("c11", &f.bundle))), "resolves to /usr/sbin/ping on disk");
}
