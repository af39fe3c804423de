//! Rollback protection through the real runc: once a node has started a newer seal of an image
//! name, an older (validly signed, matching) seal of the same name is refused until an operator
//! allows the rollback.

use crate::harness::*;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const V1: &str = "2026-01-01T00:00:00Z";
const V2: &str = "2026-06-01T00:00:00Z";

/// Seals the fixture's rootfs as IMAGE created at `created`, imports it; returns the digest.
fn seal_at(f: &Fixture, created: &str, out: &str) -> String {
    let seal = f.env.path(out);
    let (_, err) = f.env.seal(&f.rootfs, &f.key, &seal, &["--name", IMAGE, "--created", created]);
    let digest = err.split_whitespace().find(|w| w.starts_with("sha256:")).expect("seal prints its digest").to_string();
    f.env.expect(0, [OsStr::new("trust"), OsStr::new("import"), seal.as_os_str()]);
    digest
}

fn set_motd(f: &Fixture, text: &str) {
    std::fs::write(f.rootfs.join("etc/motd"), text).unwrap();
}

fn watermark_files(f: &Fixture) -> Vec<PathBuf> {
    let dir = f.env.path("seals/accepted");
    std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect())
        .unwrap_or_default()
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Finding 3.8: watermarks were per signed name, so an old, once-signed *tag* of the same
/// repository started after a newer one ran. Now the repository is guarded across tags.
#[test]
fn an_older_tag_of_the_same_repository_is_a_rollback() {
    let f = Fixture::new();
    set_motd(&f, "version two\n");
    let seal = f.env.path("v2.json");
    f.env.seal(&f.rootfs, &f.key, &seal, &["--name", "test.local/rootseal/app:2", "--created", V2]);
    f.env.expect(0, [OsStr::new("trust"), OsStr::new("import"), seal.as_os_str()]);
    f.run("runc").assert_ran("version two");
    set_motd(&f, "version one\n");
    let old = f.env.path("v1.json");
    f.env.seal(&f.rootfs, &f.key, &old, &["--name", "test.local/rootseal/app:1", "--created", V1]);
    f.env.expect(0, [OsStr::new("trust"), OsStr::new("import"), old.as_os_str()]);
    let line = f.run("runc").assert_blocked();
    assert!(line.contains("a rollback") && line.contains("2026-06-01T00:00:00Z"), "{line}");
    // Per tag, on request.
    f.env.write_config("[hook]\nrollback_scope = \"name\"\n");
    f.run("runc").assert_ran("version one");
}

/// v1 runs, v2 runs, v1 again is refused (naming both seals and the override), the operator
/// allows it, v1 runs, v2 still runs (newer), and the watermark rises back.
#[test]
fn an_older_seal_is_refused_after_a_newer_one_ran() {
    let f = Fixture::new();
    set_motd(&f, "version one\n");
    let d1 = seal_at(&f, V1, "v1.json");
    f.run("runc").assert_ran("version one");
    set_motd(&f, "version two\n");
    let d2 = seal_at(&f, V2, "v2.json");
    f.run("runc").assert_ran("version two");

    set_motd(&f, "version one\n");
    // Re-importing the old seal says what will happen.
    let (_, err) = f.env.expect(0, [OsStr::new("trust"), OsStr::new("import"), f.env.path("v1.json").as_os_str()]);
    assert!(err.contains("will be refused as a rollback"), "{err}");
    let line = f.run("runc").assert_blocked();
    assert!(line.contains("a rollback") && line.contains(&d1[7..19]), "{line}");
    assert!(line.contains("rootseal rollback allow") && line.contains(&format!("--seal {d1}")), "{line}");
    assert!(line.contains(&d2[7..19]) && line.contains("2026-06-01T00:00:00Z"), "names the accepted seal: {line}");
    let ev = f.last_event();
    assert_eq!(ev["violations"][0]["code"], "rollback", "{ev}");

    let (out, _) = f.env.expect(0, ["rollback", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["watermarks"][0]["name"], "test.local/rootseal/app", "one watermark per repository");
    assert_eq!(v["watermarks"][0]["seal"], d2.as_str());
    assert_eq!(v["watermarks"][0]["created"], "2026-06-01T00:00:00Z");
    assert_eq!(v["watermarks"][0]["by"], "start");

    let (out, _) = f.env.expect(0, ["rollback", "allow", IMAGE, "--seal", &d1]);
    assert!(out.contains("rollback allowed") && out.contains(&d2), "{out}");
    f.run("runc").assert_ran("version one");

    set_motd(&f, "version two\n");
    f.run("runc").assert_ran("version two");
    let (out, _) = f.env.expect(0, ["rollback", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["watermarks"][0]["seal"], d2.as_str(), "a start of the newer seal raised it again");

    // Root-only, persisted beside the seal store.
    assert_eq!(mode_of(&f.env.path("seals/accepted")), 0o700);
    let files = watermark_files(&f);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(mode_of(&files[0]), 0o600);
}

#[test]
fn allow_refuses_a_seal_of_another_name_or_not_in_the_store() {
    let f = Fixture::new();
    let d1 = seal_at(&f, V1, "v1.json");
    let (_, err) = f.env.expect(2, ["rollback", "allow", "other/image:1", "--seal", &d1]);
    assert!(err.contains("is for") && err.contains(IMAGE), "{err}");
    let missing = format!("sha256:{}", "ab".repeat(32));
    let (_, err) = f.env.expect(2, ["rollback", "allow", IMAGE, "--seal", &missing]);
    assert!(err.contains("import it first"), "{err}");
    let (_, err) = f.env.expect(2, ["rollback", "allow", IMAGE, "--seal", "sha256:xyz"]);
    assert!(err.contains("is not sha256:"), "{err}");
    assert!(watermark_files(&f).is_empty(), "nothing written on a refused allow");
}

#[test]
fn audit_mode_allows_a_rollback_and_alerts() {
    let f = Fixture::new();
    set_motd(&f, "version one\n");
    seal_at(&f, V1, "v1.json");
    set_motd(&f, "version two\n");
    seal_at(&f, V2, "v2.json");
    f.run("runc").assert_ran("version two");
    f.env.write_config("mode = \"audit\"");
    set_motd(&f, "version one\n");
    f.run("runc").assert_ran("version one");
    let ev = f.last_event();
    assert_eq!(ev["event"], "audit", "{ev}");
    assert_eq!(ev["violations"][0]["code"], "rollback", "{ev}");
    // An allowed-with-violations start never lowers the watermark.
    let (out, _) = f.env.expect(0, ["rollback", "list"]);
    assert!(out.contains("2026-06-01T00:00:00Z"), "{out}");
}

#[test]
fn protection_can_be_switched_off_and_a_corrupt_watermark_fails_closed() {
    let f = Fixture::new();
    set_motd(&f, "version one\n");
    seal_at(&f, V1, "v1.json");
    set_motd(&f, "version two\n");
    seal_at(&f, V2, "v2.json");
    f.run("runc").assert_ran("version two");
    set_motd(&f, "version one\n");

    f.env.write_config("[hook]\nrollback_protection = false");
    f.run("runc").assert_ran("version one");

    f.env.write_config("");
    let files = watermark_files(&f);
    std::fs::write(&files[0], b"{\"version\": 1, \"name\":").unwrap();
    let line = f.run("runc").assert_blocked();
    assert!(line.contains("cannot check for a rollback") && line.contains("rollback forget"), "{line}");

    // A watermark directory others can write is not trusted either.
    std::fs::remove_file(&files[0]).unwrap();
    std::fs::set_permissions(f.env.path("seals/accepted"), std::fs::Permissions::from_mode(0o777)).unwrap();
    let line = f.run("runc").assert_blocked();
    assert!(line.contains("writable by group or others"), "{line}");
    std::fs::set_permissions(f.env.path("seals/accepted"), std::fs::Permissions::from_mode(0o700)).unwrap();
    f.run("runc").assert_ran("version one");
    let (out, _) = f.env.expect(0, ["rollback", "forget", IMAGE]);
    assert!(out.contains("forgot"), "{out}");
}

#[test]
fn source_date_epoch_sets_the_creation_time() {
    let f = Fixture::new();
    let out = f
        .env
        .cmd([
            OsStr::new("seal"),
            f.rootfs.as_os_str(),
            OsStr::new("--key"),
            f.key.as_os_str(),
            OsStr::new("--name"),
            OsStr::new(IMAGE),
        ])
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let env: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD.decode(env["payload"].as_str().unwrap()).unwrap();
    let st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(st["predicate"]["created"], "2026-01-01T00:00:00Z");
}
