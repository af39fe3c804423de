//! The Debian package on this machine: build it, lintian it, install it with dpkg, ask
//! `rootseal doctor`, run the hook end to end through the installed paths (podman with the
//! distribution hooks.d directory), purge it and check nothing is left but the trust store.

use crate::harness::busybox_rootfs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd`; a dpkg that finds its lock held (apt or unattended-upgrades at work on the
/// machine) is run again, for up to two minutes, instead of failing the test.
fn run(cmd: &mut Command) -> std::process::Output {
    let start = std::time::Instant::now();
    loop {
        let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let locked = String::from_utf8_lossy(&o.stderr).contains("lock was locked by another process");
        if o.status.success() || !locked || start.elapsed() > std::time::Duration::from_secs(120) {
            return o;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

fn ok(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const INSTALLED: &[&str] = &[
    "/usr/bin/rootseal",
    "/usr/bin/rootseal-runtime",
    "/usr/share/containers/oci/hooks.d/rootseal.json",
    "/lib/systemd/system/rootseal-monitor.service",
    "/lib/systemd/system/rootseal-sync.service",
    "/lib/systemd/system/rootseal-sync.timer",
    "/usr/lib/tmpfiles.d/rootseal.conf",
    "/usr/share/man/man1/rootseal.1.gz",
    "/usr/share/bash-completion/completions/rootseal",
    "/etc/rootseal/config.toml",
];

const PURGED: &[&str] =
    &["/etc/rootseal/config.toml", "/run/rootseal", "/var/cache/rootseal", "/var/lib/rootseal", "/var/log/rootseal"];

#[test]
fn the_debian_package_installs_protects_and_purges() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    ok(&mut Command::new(root.join("scripts/build-deb.sh")));
    let deb: PathBuf = std::fs::read_dir(root.join("target/debian"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .expect("a .deb was built");

    // lintian: no errors (warnings go to the issue note).
    let lint = run(Command::new("lintian").arg(&deb));
    let text = String::from_utf8_lossy(&lint.stdout);
    assert!(!text.lines().any(|l| l.starts_with("E:")), "lintian errors:\n{text}");

    ok(Command::new("dpkg").arg("-i").arg(&deb));
    for p in INSTALLED {
        assert!(Path::new(p).exists(), "{p} installed");
    }
    let t = tempfile::tempdir().unwrap();

    // doctor: the fresh node is not protected yet, and says why, item by item.
    let o = run(Command::new("/usr/bin/rootseal").args(["doctor", "--json"]));
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stdout));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let status = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status("config"), "ok", "{v}");
    assert_eq!(status("mode"), "warn", "installs in audit mode: {v}");
    assert_eq!(status("trust store"), "fail", "no key yet: {v}");
    // podman is covered by the hooks.d file; containerd is installed here without a rootseal
    // runtime entry, and doctor says so.
    assert_eq!(status("runtime integration"), "warn", "{v}");
    let detail = |name: &str| {
        v["checks"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(detail("runtime integration").contains("covered: podman (OCI hook"), "{v}");
    assert!(detail("runtime integration").contains("NOT covered: containerd"), "{v}");
    assert_eq!(status("monitor"), "fail", "no systemd here to start it: {v}");

    // The hook through the installed paths: podman reads /usr/share/containers/oci/hooks.d.
    let result = std::panic::catch_unwind(|| {
        end_to_end(t.path());
        removal_with_tasks_under_the_wrapper_is_refused(t.path());
    });

    ok(Command::new("dpkg").args(["--purge", "rootseal"]));
    for p in INSTALLED.iter().chain(PURGED) {
        assert!(!Path::new(p).exists(), "{p} left behind after purge");
    }
    assert!(Path::new("/etc/rootseal/trust").is_dir(), "purge keeps the trust store (policy)");
    let _ = std::fs::remove_dir_all("/etc/rootseal");
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn end_to_end(work: &Path) {
    let rs = "/usr/bin/rootseal";
    let prefix = work.join("ci");
    ok(Command::new(rs).arg("keygen").arg("--out").arg(&prefix));
    ok(Command::new(rs).args(["trust", "add"]).arg(work.join("ci.pub")).args(["--name", "ci-2026"]));
    let rootfs = work.join("rootfs");
    busybox_rootfs(&rootfs);
    let name = format!("test.local/rootseal/deb:{}", std::process::id());
    let archive = crate::podman::oci_archive(&rootfs, work, &name);
    let seal = work.join("seal.json");
    ok(Command::new(rs).arg("seal").arg(&archive).arg("--key").arg(work.join("ci.key")).arg("--out").arg(&seal));
    ok(Command::new(rs).args(["trust", "import"]).arg(&seal));
    let cfg =
        std::fs::read_to_string("/etc/rootseal/config.toml").unwrap().replace("mode = \"audit\"", "mode = \"enforce\"");
    std::fs::write("/etc/rootseal/config.toml", cfg).unwrap();
    ok(Command::new("podman").arg("load").arg("-i").arg(&archive));
    let podman = |extra: &[&str]| {
        run(Command::new("timeout")
            .args(["-k", "5", "120", "podman", "run", "--rm", "--read-only", "--runtime", "runc"])
            .args(["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"])
            .args(extra)
            .arg(&name)
            .args(["cat", "/etc/motd"]))
    };
    let o = podman(&[]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let layer =
        ok(Command::new("podman").args(["image", "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}"]).arg(&name));
    std::fs::write(Path::new(layer.trim()).join("etc/motd"), b"changed after pull\n").unwrap();
    let o2 = podman(&[]);
    let _ = Command::new("podman").args(["rmi", "-f", &name]).output();
    assert!(o.status.success() && out.contains("hello from a sealed rootfs"), "sealed image: {out}\n{err}");
    let err2 = String::from_utf8_lossy(&o2.stderr);
    assert!(!o2.status.success() && err2.contains("/etc/motd content differs from seal"), "tampered: {err2}");
    let events = std::fs::read_to_string("/var/log/rootseal/events.jsonl").unwrap();
    assert!(events.contains("\"event\":\"blocked\""), "{events}");
}

/// Issue 14, item 2: a containerd task started through rootseal-runtime needs the binary to be
/// killed and deleted (its shim keeps the path). Removing the package while one exists is
/// refused, naming the task and what to do; once the task is gone, removal goes ahead.
fn removal_with_tasks_under_the_wrapper_is_refused(work: &Path) {
    let env = crate::util::Env::new();
    env.write_config("mode = \"audit\"");
    let c = crate::containerd::Containerd::start(&env);
    let rootfs = work.join("ctr-rootfs");
    busybox_rootfs(&rootfs);
    let dir = work.join("ctr-image");
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("test.local/rootseal/deb-ctr:{}", std::process::id());
    c.import(&crate::podman::oci_archive(&rootfs, &dir, &name));
    let id = crate::harness::container_id("deb");
    let o = c.ctr(&["run", "-d", "--runc-binary", "/usr/bin/rootseal-runtime", &name, &id, "sleep", "300"]);
    assert!(o.status.success(), "ctr run: {}", String::from_utf8_lossy(&o.stderr));
    let o = run(Command::new("dpkg").args(["-r", "rootseal"]).env("ROOTSEAL_CONTAINERD_STATE", c.state_dir()));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "dpkg -r must refuse: {err}");
    assert!(err.contains(&format!("default/{id}")) && err.contains("removal refused"), "{err}");
    assert!(Path::new("/usr/bin/rootseal-runtime").exists(), "the wrapper stays");
    let o = c.ctr(&["task", "delete", "--force", &id]);
    assert!(o.status.success(), "the task can still be ended: {}", String::from_utf8_lossy(&o.stderr));
    let o = c.ctr(&["containers", "delete", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(Command::new("dpkg").args(["-r", "rootseal"]).env("ROOTSEAL_CONTAINERD_STATE", c.state_dir()));
}
