//! podman with the hooks.d JSON (`--hooks-dir`), an image loaded from an OCI archive the test
//! builds: the rootfs podman unpacks must verify against the seal of the directory it came
//! from, and a change to the unpacked image on the host must be blocked.

use crate::harness::*;
use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Packs `rootfs` as a one-layer OCI archive named `reference` (GNU tar keeps the capability
/// xattr).
pub fn oci_archive(rootfs: &Path, work: &Path, reference: &str) -> PathBuf {
    let layer = work.join("layer.tar");
    sh(Command::new("tar")
        .arg("-C")
        .arg(rootfs)
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=security.capability", "-cf"])
        .arg(&layer)
        .arg("."));
    let bytes = std::fs::read(&layer).unwrap();
    crate::images::oci_archive(work, reference, vec![(bytes, crate::images::Compression::None)])
}

struct Image {
    name: String,
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("podman").args(["rmi", "-f", &self.name]).output();
    }
}

struct PodmanFixture {
    f: Fixture,
    image: Image,
    hooks_dir: PathBuf,
}

fn podman_fixture(tag: &str) -> PodmanFixture {
    let f = Fixture::new();
    let name = format!("test.local/rootseal/{tag}:{}", std::process::id());
    let archive = oci_archive(&f.rootfs, f.env.tmp.path(), &name);
    sh(Command::new("podman").arg("load").arg("-i").arg(&archive));
    let hooks_dir = hooks_dir(&f.env);
    PodmanFixture { f, image: Image { name }, hooks_dir }
}

impl PodmanFixture {
    fn run(&self, extra: &[&str], cmd: &[&str]) -> Output {
        Command::new("timeout")
            .args(["-k", "5", "120", "podman", "--hooks-dir"])
            .arg(&self.hooks_dir)
            .args(["run", "--rm", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"])
            .arg("--annotation")
            .arg(format!("run.oci.hooks.stderr={}", self.f.env.path("hook-stderr.log").display()))
            .args(extra)
            .arg(&self.image.name)
            .args(cmd)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The image's unpacked layer on the host (what containers/storage made of the archive).
    fn layer_dir(&self) -> PathBuf {
        let out = sh(Command::new("podman")
            .args(["image", "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}"])
            .arg(&self.image.name));
        PathBuf::from(out.trim())
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_sealed_image_runs_read_only_under_podman() {
    let p = podman_fixture("runs");
    let o = p.run(&["--read-only"], &["sh", "-c", "cat /etc/motd; touch /x 2>/dev/null || echo read-only"]);
    assert!(
        o.status.success(),
        "{}\nhook stderr: {}\nevents: {:#?}",
        text(&o),
        std::fs::read_to_string(p.f.env.path("hook-stderr.log")).unwrap_or_default(),
        p.f.events()
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("hello from a sealed rootfs") && out.contains("read-only"), "{}", text(&o));
    assert!(p.f.events().iter().all(|e| e["event"] == "verified"), "a pass raises no alert: {:?}", p.f.events());
}

#[test]
fn podman_without_read_only_is_blocked() {
    let p = podman_fixture("rw");
    let o = p.run(&["--runtime", "runc"], &["cat", "/etc/motd"]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rootseal: blocked container") && err.contains("root filesystem is writable"), "{}", text(&o));
}

#[test]
fn a_change_to_the_unpacked_image_is_blocked_under_podman() {
    let p = podman_fixture("tampered");
    let layer = p.layer_dir();
    std::fs::write(layer.join("etc/motd"), b"changed on the host after pull\n").unwrap();
    // podman's default runtime here is crun, which keeps hook stderr to itself: the reason is
    // in the events file. With runc underneath, podman shows it to the user.
    let o = p.run(&["--read-only"], &["cat", "/etc/motd"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("changed on the host"));
    let ev = p.f.last_event();
    assert_eq!(ev["event"], "blocked");
    assert_eq!(ev["violations"][0]["paths"][0]["path"], "/etc/motd", "{ev}");
    let o = p.run(&["--read-only", "--runtime", "runc"], &["cat", "/etc/motd"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("/etc/motd content differs from seal"), "{}", text(&o));
}

#[test]
fn an_unsealed_image_is_blocked_under_podman() {
    let p = podman_fixture("unsealed");
    std::fs::remove_dir_all(p.f.env.path("seals")).unwrap();
    let o = p.run(&["--read-only", "--runtime", "runc"], &["cat", "/etc/motd"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no seal in"), "{}", text(&o));
}
