//! `verify = "layers"` through the real runc over real overlay mounts, as containerd and podman
//! build them: the sealed tree as the bottom lower layer, an empty layer above it, a fresh
//! upper directory per container. A start over layers verified before is not walked; anything
//! in the upper beyond mount points, an edited record, an expired one, a mount that no longer
//! hides what the record left unverified, or a seal revoked since sends it back to the walk.

use crate::harness::*;
use crate::util::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const LAYERS: &str = "[hook]\nverify = \"layers\"";

/// An overlay mount over `[layer-top, rootfs]` with its own upper, set as the bundle's root;
/// unmounted on drop.
struct Overlay {
    merged: PathBuf,
    upper: PathBuf,
}

impl Overlay {
    fn mount(f: &Fixture, tag: &str) -> Overlay {
        let base = f.env.path(&format!("ov-{tag}"));
        let top = f.env.path("layer-top");
        let (upper, work, merged) = (base.join("upper"), base.join("work"), base.join("merged"));
        for d in [&top, &upper, &work, &merged] {
            std::fs::create_dir_all(d).unwrap();
        }
        let opts = format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            top.display(),
            f.rootfs.display(),
            upper.display(),
            work.display()
        );
        sh(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &opts]).arg(&merged));
        let root = merged.display().to_string();
        f.patch(|c| c["root"]["path"] = root.into());
        Overlay { merged, upper }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.merged).status();
    }
}

/// This test's config: `verify = "layers"` (plus `hook`), an event for every verified start
/// (so a test can see whether the start walked), and `rest`.
fn write_config(f: &Fixture, hook: &str, rest: &str) {
    let d = f.env.tmp.path().display();
    let text = format!(
        "trust_dir = \"{d}/trust\"\nseal_dir = \"{d}/seals\"\nstate_dir = \"{d}/state\"\ncache_dir = \"{d}/cache\"\n{LAYERS}\n{hook}\n[alerts]\nsyslog_socket = \"\"\nevents_file = \"{d}/events.jsonl\"\nverified = true\n{rest}\n"
    );
    std::fs::write(f.env.config_path(), text).unwrap();
}

fn layers_fixture(rest: &str) -> Fixture {
    let f = Fixture::new();
    write_config(&f, "", rest);
    f
}

/// True when the last start passed without a walk.
fn reused(f: &Fixture) -> bool {
    let ev = f.last_event();
    assert_eq!(ev["event"], "verified", "{ev}");
    ev["message"].as_str().unwrap().contains("not walked")
}

fn records(f: &Fixture) -> Vec<PathBuf> {
    std::fs::read_dir(f.env.path("cache/layers")).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

/// First start walks and records the layers; a second container over the same layers (a new
/// overlay, new upper, runc's mount points in it) is not walked. The record is root-only.
#[test]
fn a_new_container_over_verified_layers_is_not_walked() {
    let f = layers_fixture("");
    {
        let _o = Overlay::mount(&f, "a");
        f.run("runc").assert_ran("hello from a sealed rootfs");
        assert!(!reused(&f), "the first start must walk");
    }
    let rec = records(&f);
    assert_eq!(rec.len(), 1, "{rec:?}");
    assert_eq!(std::fs::metadata(&rec[0]).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(f.env.path("cache/layers")).unwrap().permissions().mode() & 0o777, 0o700);
    for tag in ["b", "c"] {
        let o = Overlay::mount(&f, tag);
        f.run("runc").assert_ran("hello from a sealed rootfs");
        assert!(reused(&f), "a start over verified layers is not walked: {}", f.last_event());
        let msg = f.last_event()["message"].as_str().unwrap().to_string();
        assert!(msg.contains("layer-top and 1 more") && msg.contains("verified"), "{msg}");
        // runc created its mount points in this container's upper.
        assert!(o.upper.join("proc").is_dir() && o.upper.join("dev").is_dir(), "{:?}", listing(&o.upper));
    }
    // `cached` (the default) never uses a record.
    let d = f.env.tmp.path().display().to_string();
    let cached = std::fs::read_to_string(f.env.config_path()).unwrap().replace(LAYERS, "");
    assert!(cached.contains(&d));
    std::fs::write(f.env.config_path(), cached).unwrap();
    let _o = Overlay::mount(&f, "d");
    f.run("runc").assert_ran("hello from a sealed rootfs");
    assert!(!reused(&f));
}

/// Changes made in a new container's upper before it starts (a host process writing through
/// the merged directory) are never passed by the record: the walk decides, and blocks.
#[test]
fn an_upper_layer_with_more_than_mount_points_is_walked_and_blocked() {
    let f = layers_fixture("");
    {
        let _o = Overlay::mount(&f, "first");
        f.run("runc").assert_ran("hello from a sealed rootfs");
    }
    type Change = (&'static str, fn(&Path), &'static str);
    let cases: [Change; 5] = [
        ("added file", |m| std::fs::write(m.join("bin/evil"), b"x").unwrap(), "/bin/evil"),
        ("whiteout", |m| std::fs::remove_file(m.join("usr/sbin/su")).unwrap(), "/usr/sbin/su"),
        (
            "rewritten file",
            |m| std::fs::write(m.join("etc/motd"), b"hello from a sealed rootfs\nand more\n").unwrap(),
            "/etc/motd",
        ),
        (
            "chmod of a sealed directory",
            |m| std::fs::set_permissions(m.join("etc"), std::fs::Permissions::from_mode(0o777)).unwrap(),
            "/etc",
        ),
        (
            "opaque directory",
            |m| {
                std::fs::remove_dir_all(m.join("var")).unwrap();
                std::fs::create_dir(m.join("var")).unwrap();
            },
            "/var/motd",
        ),
    ];
    for (i, (what, change, path)) in cases.into_iter().enumerate() {
        let o = Overlay::mount(&f, &format!("case{i}"));
        change(&o.merged);
        let line = f.run("runc").assert_blocked();
        assert!(line.contains(path), "{what}: {line}");
        assert_eq!(f.last_event()["violations"][0]["code"], "tampered", "{what}");
    }
    // A clean upper over the same layers still passes without a walk afterwards.
    let _o = Overlay::mount(&f, "clean");
    f.run("runc").assert_ran("hello from a sealed rootfs");
    assert!(reused(&f));
}

/// An edited record, an expired one, and one whose walk left a path unverified (a mount
/// destination then) that this container no longer hides, are not used.
#[test]
fn a_record_is_used_only_when_intact_fresh_and_covering() {
    let f = layers_fixture("");
    {
        let _o = Overlay::mount(&f, "a");
        f.run("runc").assert_ran("hello from a sealed rootfs");
    }
    // Edited: one byte of the verified time.
    let rec = records(&f).pop().unwrap();
    let mut bytes = std::fs::read(&rec).unwrap();
    let at = bytes.windows(14).position(|w| w == b"\"verified_at\":").unwrap() + 14;
    bytes[at] = if bytes[at] == b'1' { b'2' } else { b'1' };
    std::fs::write(&rec, bytes).unwrap();
    {
        let _o = Overlay::mount(&f, "b");
        f.run("runc").assert_ran("hello from a sealed rootfs");
        assert!(!reused(&f), "an edited record is discarded");
    }
    // The walk rewrote it: used again.
    {
        let _o = Overlay::mount(&f, "c");
        f.run("runc").assert_ran("hello from a sealed rootfs");
        assert!(reused(&f));
    }
    // layer_ttl = 0s: never reused.
    write_config(&f, "layer_ttl = \"0s\"", "");
    {
        let _o = Overlay::mount(&f, "d");
        f.run("runc").assert_ran("hello from a sealed rootfs");
        assert!(!reused(&f));
    }
    write_config(&f, "", "");
    let _o = Overlay::mount(&f, "e");
    f.run("runc").assert_ran("hello from a sealed rootfs");
    assert!(reused(&f), "the TTL is read at each start");
}

/// A walk does not compare what a mount hides: its record says so, and a container that does
/// not hide the same paths is walked.
#[test]
fn a_record_covers_only_what_its_walk_compared() {
    // The operator lets a volume hide the image's /usr (else the mount is `shadowed`).
    let f = layers_fixture(
        "[readonly]\nshadow_destinations = [\"/proc\", \"/proc/**\", \"/sys\", \"/sys/**\", \"/dev\", \"/dev/**\", \"/usr\"]",
    );
    let with_volume = |on: bool| {
        f.patch(|c| {
            let mounts = c["mounts"].as_array_mut().unwrap();
            mounts.retain(|m| m["destination"] != "/usr");
            if on {
                mounts.push(serde_json::json!({"destination": "/usr", "type": "tmpfs", "source": "tmpfs"}));
            }
        })
    };
    with_volume(true);
    {
        let _o = Overlay::mount(&f, "a");
        f.run("runc").assert_ran("hello from a sealed rootfs");
        assert!(!reused(&f));
    }
    // Host root changes a file under /usr in the image layer itself.
    std::fs::write(f.rootfs.join("usr/sbin/ping"), b"#!/bin/sh\necho pwned\n").unwrap();
    {
        let _o = Overlay::mount(&f, "b");
        f.run("runc").assert_ran("hello from a sealed rootfs");
        assert!(reused(&f), "/usr is hidden by the volume, as when it was verified");
    }
    with_volume(false);
    let _o = Overlay::mount(&f, "c");
    let line = f.run("runc").assert_blocked();
    assert!(line.contains("/usr/sbin/ping"), "/usr is visible now and was never verified: {line}");
}

/// A record made without a mount at /bin never vouches for a container that mounts over the
/// sealed /bin: the record holds no files to check shadowing against, so the walk decides.
#[test]
fn a_new_mount_over_sealed_content_is_not_reused_and_is_blocked() {
    let f = layers_fixture("");
    {
        let _o = Overlay::mount(&f, "a");
        f.run("runc").assert_ran("hello from a sealed rootfs");
    }
    let other = f.env.path("other");
    busybox_rootfs(&other);
    f.patch(|c| {
        c["mounts"].as_array_mut().unwrap().push(
            serde_json::json!({"destination": "/bin", "type": "bind", "source": other.join("bin"), "options": ["rbind", "ro"]}),
        )
    });
    let _o = Overlay::mount(&f, "b");
    let line = f.run("runc").assert_blocked();
    assert!(line.contains("a mount at /bin hides sealed content"), "{line}");
}

/// Trust is judged at every start: a seal revoked after its layers were recorded blocks the
/// next container over them, and so does a key removed from the trust store.
#[test]
fn a_recorded_seal_is_judged_against_trust_now() {
    let f = layers_fixture("");
    {
        let _o = Overlay::mount(&f, "a");
        f.run("runc").assert_ran("hello from a sealed rootfs");
    }
    let digest = f.last_event()["seal"]["digest"].as_str().unwrap().to_string();
    f.env.expect(0, ["trust", "revoke", "--digest", &digest]);
    let _o = Overlay::mount(&f, "b");
    let line = f.run("runc").assert_blocked();
    assert!(line.contains("revoked"), "{line}");
    assert_eq!(f.last_event()["violations"][0]["code"], "digest-revoked");
}

/// The trust `layers` adds: a lower layer changed by host root after it was verified is not
/// seen at the next start within layer_ttl. The monitor's scan of a running container sees
/// it, alerts, and drops the record, so the start after that walks and blocks.
#[test]
fn a_lower_changed_after_verification_is_caught_by_the_monitor_which_drops_the_record() {
    let f = layers_fixture("[monitor]\ninterval = \"1s\"");
    {
        let _o = Overlay::mount(&f, "a");
        f.run("runc").assert_ran("hello from a sealed rootfs");
    }
    let o = Overlay::mount(&f, "running");
    let c = crate::monitor::run_detached(&f, "runc");
    assert!(reused(&f));
    let out = f.env.run(["monitor", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(records(&f).len(), 1);

    std::fs::write(f.rootfs.join("etc/passwd"), b"root::0:0:root:/root:/bin/sh\n").unwrap();
    // Within the TTL, a new container over the changed layer starts (the documented trade).
    {
        let _o = Overlay::mount(&f, "within-ttl");
        f.patch(|c| c["process"]["args"] = serde_json::json!(["cat", "/etc/passwd"]));
        f.run("runc").assert_ran("root::0:0");
        assert!(reused(&f));
    }
    let out = f.env.run(["monitor", "--once"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("/etc/passwd"), "{text}");
    assert!(records(&f).is_empty(), "drift through the layers drops their record");
    drop(c);
    drop(o);
    let _o = Overlay::mount(&f, "after");
    let line = f.run("runc").assert_blocked();
    assert!(line.contains("/etc/passwd"), "{line}");
}
