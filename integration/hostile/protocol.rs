//! The hook protocol with input runc never sends (fed to the binary as runc runs it), bad
//! bundles and root paths, hostile container ids, and a hostile hook environment (through
//! runc: a hook's environment is the `env` of its entry in config.json).

use super::*;
use crate::harness::*;

fn id() -> String {
    container_id("proto")
}

fn prestart_with(f: &Fixture, stdin: &[u8]) -> HookRun {
    hook(f, "prestart", Some(stdin), &[])
}

#[test]
fn an_empty_or_blank_state_is_blocked() {
    let f = Fixture::new();
    prestart_with(&f, b"").assert_blocked("no OCI state on stdin (empty input)");
    prestart_with(&f, b" \n\t\r\n").assert_blocked("no OCI state on stdin (empty input)");
}

#[test]
fn a_truncated_state_is_blocked() {
    let f = Fixture::new();
    let full = state(&id(), &f.bundle);
    for cut in [1, full.len() / 2, full.len() - 1] {
        prestart_with(&f, &full[..cut]).assert_blocked("OCI state on stdin is not valid");
    }
}

#[test]
fn an_oversized_state_is_blocked_unread() {
    let f = Fixture::new();
    // Valid JSON, a state with a 2 MiB annotation: refused by size before parsing.
    let big = serde_json::to_vec(&serde_json::json!({
        "ociVersion": "1.0.2", "id": id(), "status": "creating", "bundle": f.bundle,
        "annotations": {"x": "a".repeat(2 << 20)}
    }))
    .unwrap();
    let r = prestart_with(&f, &big);
    r.assert_blocked("OCI state on stdin is larger than 1048576 bytes");
    assert!(r.elapsed < HANG, "never hangs the start: {:?}", r.elapsed);
}

#[test]
fn a_deeply_nested_state_is_blocked_without_overflowing_the_stack() {
    let f = Fixture::new();
    let arrays = "[".repeat(500_000);
    prestart_with(&f, arrays.as_bytes()).assert_blocked("OCI state on stdin is not valid");
    let objects = "{\"a\":".repeat(200_000);
    prestart_with(&f, objects.as_bytes()).assert_blocked("OCI state on stdin is not valid");
    // Nested just under the 1 MiB cap inside a field the hook does not use.
    let inner = "[".repeat(300_000) + &"]".repeat(300_000);
    let st = format!(
        r#"{{"ociVersion":"1.0.2","id":"{}","status":"creating","bundle":"{}","x":{inner}}}"#,
        id(),
        f.bundle.display()
    );
    prestart_with(&f, st.as_bytes()).assert_blocked("OCI state on stdin is not valid");
}

#[test]
fn a_state_with_an_escaped_duplicate_id_is_blocked() {
    let f = Fixture::new();
    let st = format!(
        r#"{{"ociVersion":"1.0.2","id":"good","i\u0064":"../../etc","status":"creating","bundle":"{}"}}"#,
        f.bundle.display()
    );
    prestart_with(&f, st.as_bytes()).assert_blocked("OCI state on stdin is not valid: duplicate key \"id\"");
}

#[test]
fn stdin_held_open_is_blocked_well_before_the_deadline() {
    let f = Fixture::new();
    config(&f, "[hook]\ndeadline = \"2s\"");
    let r = hook(&f, "prestart", None, &[]);
    r.assert_blocked("OCI state on stdin did not end within 1s (stdin held open)");
    // stdin gets half the budget: the reason is stdin's ("within 1s"), not the watchdog's.
    assert!(r.elapsed < HANG, "never hangs the start: {:?}", r.elapsed);
}

#[test]
fn a_relative_or_empty_bundle_is_blocked() {
    let f = Fixture::new();
    for bundle in ["bundle", "./bundle", "../../etc", ""] {
        let st = serde_json::to_vec(
            &serde_json::json!({"ociVersion": "1.0.2", "id": id(), "status": "creating", "bundle": bundle}),
        )
        .unwrap();
        prestart_with(&f, &st).assert_blocked("a relative or empty bundle path");
    }
    let no_bundle =
        serde_json::to_vec(&serde_json::json!({"ociVersion": "1.0.2", "id": id(), "status": "creating"})).unwrap();
    prestart_with(&f, &no_bundle).assert_blocked("OCI state has a relative or empty bundle path \"\"");
}

#[test]
fn a_missing_bundle_is_blocked() {
    let f = Fixture::new();
    let gone = f.env.path("no-such-bundle");
    prestart_with(&f, &state(&id(), &gone)).assert_blocked("no-such-bundle/config.json: No such file or directory");
}

#[test]
fn a_symlinked_config_json_is_blocked() {
    let f = Fixture::new();
    std::fs::rename(f.bundle.join("config.json"), f.env.path("real-config.json")).unwrap();
    std::os::unix::fs::symlink(f.env.path("real-config.json"), f.bundle.join("config.json")).unwrap();
    prestart(&f).assert_blocked("config.json: is a symlink");
}

#[test]
fn a_fifo_config_json_never_hangs_the_hook() {
    let f = Fixture::new();
    std::fs::remove_file(f.bundle.join("config.json")).unwrap();
    nix::unistd::mkfifo(&f.bundle.join("config.json"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let r = prestart(&f);
    r.assert_blocked("config.json: not a valid OCI config");
    assert!(r.elapsed < HANG, "never hangs the start: {:?}", r.elapsed);
}

#[test]
fn a_sparse_1tib_config_json_is_refused_unread() {
    let f = Fixture::new();
    let p = f.bundle.join("config.json");
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(1 << 40).unwrap();
    let r = prestart(&f);
    r.assert_blocked("config.json is larger than 16777216 bytes");
    assert!(r.elapsed < HANG, "never hangs the start: {:?}", r.elapsed);
}

#[test]
fn a_config_json_with_an_escaped_duplicate_key_is_blocked() {
    let f = Fixture::new();
    // A second "root", spelled with an escape, that a last-wins parser would take: writable.
    let text = std::fs::read_to_string(f.bundle.join("config.json")).unwrap();
    let text =
        text.replacen("\"root\": {", "\"ro\\u006ft\": {\"path\": \"rootfs\", \"readonly\": false}, \"root\": {", 1);
    std::fs::write(f.bundle.join("config.json"), text).unwrap();
    prestart(&f).assert_blocked("duplicate key \"root\"");
}

#[test]
fn a_root_path_symlink_to_the_host_root_is_blocked() {
    let f = Fixture::new();
    std::fs::rename(&f.rootfs, f.bundle.join("real-rootfs")).unwrap();
    std::os::unix::fs::symlink("/", &f.rootfs).unwrap();
    prestart(&f).assert_blocked("/rootfs is a symlink; give the real directory");
}

#[test]
fn a_root_path_climbing_to_the_host_root_is_blocked() {
    let f = Fixture::new();
    config(&f, "[hook]\ndeadline = \"2s\"");
    f.patch(|c| c["root"]["path"] = "../../../../../../../../../../..".into());
    // The host's / is no sealed image (and has mount points below it): blocked, in time.
    let r = prestart(&f);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.starts_with("rootseal: blocked container") && r.stderr.lines().count() == 1, "{}", r.stderr);
    assert!(r.elapsed < HANG, "never hangs the start: {:?}", r.elapsed);
}

#[test]
fn an_unknown_status_or_stage_is_blocked() {
    let f = Fixture::new();
    let paused = serde_json::to_vec(
        &serde_json::json!({"ociVersion": "1.0.2", "id": id(), "status": "paused", "bundle": f.bundle}),
    )
    .unwrap();
    let r = run_hook_without_stage(&f, &paused);
    // oci-spec knows the four statuses of the runtime spec only: anything else is unparseable.
    r.assert_blocked("OCI state on stdin is not valid: unknown variant `paused`");
    hook(&f, "prestart ", Some(&state(&id(), &f.bundle)), &[]).assert_blocked("unknown hook stage \"prestart \"");
    hook(&f, "PRESTART", Some(&state(&id(), &f.bundle)), &[]).assert_blocked("unknown hook stage \"PRESTART\"");
}

/// `rootseal --config CFG hook` with no stage (as the hooks.d file runs it).
fn run_hook_without_stage(f: &Fixture, stdin: &[u8]) -> HookRun {
    use std::io::Write as _;
    let start = std::time::Instant::now();
    let mut child = Command::new("/usr/bin/timeout")
        .args(["-k", "5", "60"])
        .arg(bin())
        .arg("--config")
        .arg(f.env.config_path())
        .arg("hook")
        .env_clear()
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    HookRun {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

const HOSTILE_IDS: &[&str] =
    &["../../etc", "../victim", "..", "a/b", ".hidden", "a\nb", "x\u{1b}]0;owned\u{7}", "bad\u{7f}"];

#[test]
fn hostile_ids_at_poststop_touch_nothing_outside_the_state_dir() {
    let f = Fixture::new();
    // Files where each hostile id would land if it were joined to the state dir.
    std::fs::create_dir_all(f.env.path("state/containers")).unwrap();
    for (p, body) in [("etc.json", "etc"), ("state/victim.json", "victim"), ("state/containers/a/b.json", "nested")] {
        std::fs::create_dir_all(f.env.path(p).parent().unwrap()).unwrap();
        std::fs::write(f.env.path(p), body).unwrap();
    }
    let before = listing(f.env.tmp.path());
    let long = "a".repeat(129);
    for id in HOSTILE_IDS.iter().copied().chain([long.as_str()]) {
        let st = serde_json::to_vec(
            &serde_json::json!({"ociVersion": "1.0.2", "id": id, "status": "stopped", "bundle": f.bundle}),
        )
        .unwrap();
        let r = hook(&f, "poststop", Some(&st), &[]);
        assert_eq!(r.code, Some(1), "{id:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{id:?}: one line: {:?}", r.stderr);
        assert!(r.stderr.contains("is not safe as a file name"), "{id:?}: {}", r.stderr);
        assert!(!r.stderr.chars().any(|c| c.is_control() && c != '\n'), "{id:?}: {:?}", r.stderr);
    }
    assert_eq!(listing(f.env.tmp.path()), before, "poststop with hostile ids changed files");
    assert_eq!(std::fs::read_to_string(f.env.path("etc.json")).unwrap(), "etc");
    assert_eq!(std::fs::read_to_string(f.env.path("state/victim.json")).unwrap(), "victim");
    assert_eq!(std::fs::read_to_string(f.env.path("state/containers/a/b.json")).unwrap(), "nested");
}

#[test]
fn hostile_ids_at_prestart_are_blocked_on_one_line_and_record_nothing() {
    let f = Fixture::new();
    for id in HOSTILE_IDS {
        let r = hook(&f, "prestart", Some(&state(id, &f.bundle)), &[]);
        let line = r.assert_blocked("is not safe as a file name");
        assert!(!line.chars().any(|c| c.is_control()), "{id:?}: {line:?}");
    }
    assert!(names(&f.env.path("state/containers")).is_empty(), "{:?}", names(&f.env.path("state/containers")));
}

#[test]
fn poststop_removes_a_symlinked_record_not_what_it_points_at() {
    let f = Fixture::new();
    let victim = f.env.path("victim");
    std::fs::write(&victim, b"keep").unwrap();
    std::fs::create_dir_all(f.env.path("state/containers")).unwrap();
    std::os::unix::fs::symlink(&victim, f.env.path("state/containers/c1.json")).unwrap();
    let st = serde_json::to_vec(
        &serde_json::json!({"ociVersion": "1.0.2", "id": "c1", "status": "stopped", "bundle": f.bundle}),
    )
    .unwrap();
    let r = hook(&f, "poststop", Some(&st), &[]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(f.env.path("state/containers/c1.json").symlink_metadata().is_err());
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
}

/// Sets the environment runc gives the prestart hook (its `env` in config.json), and
/// optionally replaces its arguments.
fn hook_env(f: &Fixture, env: &[&str], args: Option<&[&str]>) {
    f.patch(|c| {
        let h = &mut c["hooks"]["prestart"][0];
        h["env"] = serde_json::json!(env);
        if let Some(a) = args {
            h["args"] = serde_json::json!(a);
        }
    });
}

fn tamper(f: &Fixture) {
    std::fs::write(f.rootfs.join("etc/motd"), b"tampered\n").unwrap();
}

#[test]
fn ld_preload_of_a_missing_library_changes_no_verdict() {
    let f = Fixture::new();
    hook_env(&f, &["LD_PRELOAD=/nonexistent/libhook.so"], None);
    assert_runs(&f);
    tamper(&f);
    assert_blocks(&f, &["/etc/motd content differs from seal"]);
}

#[test]
fn ld_preload_and_ld_library_path_of_harmless_libraries_change_no_verdict() {
    let f = Fixture::new();
    let libm = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("libm");
    let empty = f.env.path("empty-libs");
    std::fs::create_dir(&empty).unwrap();
    hook_env(
        &f,
        &[&format!("LD_PRELOAD={libm}"), &format!("LD_LIBRARY_PATH={}:/nonexistent", empty.display()), "LD_BIND_NOW=1"],
        None,
    );
    assert_runs(&f);
    tamper(&f);
    assert_blocks(&f, &["/etc/motd content differs from seal"]);
}

#[test]
fn rust_and_process_variables_change_no_verdict() {
    let f = Fixture::new();
    let env = [
        "RUST_LOG=trace",
        "RUST_BACKTRACE=full",
        "RUST_MIN_STACK=4096",
        "PATH=/nonexistent",
        "HOME=/nonexistent",
        "TMPDIR=/nonexistent",
        "TZ=:/etc/passwd",
        "LANG=xx_XX.UTF-8",
        "NOTIFY_SOCKET=/nonexistent",
    ];
    hook_env(&f, &env, None);
    assert_runs(&f);
    tamper(&f);
    assert_blocks(&f, &["/etc/motd content differs from seal"]);
    let envs: Vec<(&str, &str)> = env.iter().map(|e| e.split_once('=').unwrap()).collect();
    let r = hook(&f, "prestart", Some(&state(&id(), &f.bundle)), &envs);
    r.assert_blocked("/etc/motd content differs from seal");
}

#[test]
fn rootseal_config_in_the_environment_never_overrides_config() {
    let f = Fixture::new();
    // A permissive config elsewhere: audit mode, no read-only policy.
    let lax = f.env.path("lax.toml");
    let d = f.env.tmp.path().display();
    std::fs::write(
        &lax,
        format!("mode = \"audit\"\ntrust_dir = \"{d}/trust\"\nseal_dir = \"{d}/seals\"\n[readonly]\nenabled = false\n"),
    )
    .unwrap();
    hook_env(&f, &[&format!("ROOTSEAL_CONFIG={}", lax.display())], None);
    tamper(&f);
    assert_blocks(&f, &["/etc/motd content differs from seal"]);
}

#[test]
fn rootseal_config_without_config_pointing_at_a_missing_file_fails_closed() {
    let f = Fixture::new();
    // As the hooks.d file runs it (no --config): $ROOTSEAL_CONFIG is the documented source.
    hook_env(&f, &["ROOTSEAL_CONFIG=/nonexistent/rootseal.toml"], Some(&["rootseal", "hook", "prestart"]));
    assert_blocks(&f, &["config /nonexistent/rootseal.toml", "fails closed"]);
}

/// Documented precedence (docs/config.md, "Where the file comes from"), pinned here because it
/// is the one variable that changes a verdict: without `--config`, `$ROOTSEAL_CONFIG` picks
/// the file. A hook's environment is set by whoever defines the hook (config.json `env`, the
/// hooks.d file), the same party that chooses its arguments, so this gives them nothing new;
/// the runtime's own environment never reaches a hook.
#[test]
fn rootseal_config_without_config_selects_the_file_as_documented() {
    let f = Fixture::new();
    let lax = f.env.path("lax.toml");
    let d = f.env.tmp.path().display();
    std::fs::write(&lax, format!("mode = \"audit\"\ntrust_dir = \"{d}/trust\"\nseal_dir = \"{d}/seals\"\nstate_dir = \"{d}/state\"\ncache_dir = \"{d}/cache\"\n[alerts]\nsyslog_socket = \"\"\nevents_file = \"\"\n")).unwrap();
    hook_env(&f, &[&format!("ROOTSEAL_CONFIG={}", lax.display())], Some(&["rootseal", "hook", "prestart"]));
    tamper(&f);
    let r = f.run("runc");
    r.assert_ran("tampered");
    let r = hook(&f, "prestart", Some(&state(&id(), &f.bundle)), &[("ROOTSEAL_CONFIG", lax.to_str().unwrap())]);
    // hook() passes --config: the environment is ignored then.
    r.assert_blocked("/etc/motd content differs from seal");
}

#[test]
fn rootseal_trace_changes_no_verdict() {
    let f = Fixture::new();
    hook_env(&f, &["ROOTSEAL_TRACE=1"], None);
    assert_runs(&f);
    tamper(&f);
    assert_blocks(&f, &["/etc/motd content differs from seal"]);
}
