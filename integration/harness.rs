//! Bundles and images built by the tests themselves: a busybox-static rootfs, sealed with a
//! fresh key, the hook wired into config.json, run by the real runc or crun.
#![allow(dead_code)]

use crate::util::*;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const IMAGE: &str = "test.local/rootseal/app:1";

/// How long a hook run may take before a test calls it a hang. Tests bound time only to catch
/// hangs (a loaded 2-core CI machine misses tight limits); how fast things are is measured by
/// bench/, not asserted here.
pub const HANG: std::time::Duration = std::time::Duration::from_secs(30);

/// A unique container id for this process.
pub fn container_id(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("rs-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Writes a busybox-static root filesystem with a setuid binary, a capability xattr, a symlink
/// and a config file.
pub fn busybox_rootfs(root: &Path) {
    for d in ["bin", "etc", "usr/sbin", "var"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "busybox-static is not installed: run scripts/setup-host.sh");
    std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat", "ls", "touch", "id", "sleep", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/motd"), b"hello from a sealed rootfs\n").unwrap();
    std::fs::write(root.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("usr/sbin/ping"), b"#!/bin/sh\necho ping\n").unwrap();
    std::fs::set_permissions(root.join("usr/sbin/ping"), std::fs::Permissions::from_mode(0o755)).unwrap();
    set_xattr(&root.join("usr/sbin/ping"), "security.capability", &cap_net_bind());
    std::fs::write(root.join("usr/sbin/su"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("usr/sbin/su"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("/etc/motd", root.join("var/motd")).unwrap();
}

/// One sealed bundle with the hook wired in, in its own temp dir with its own trust store.
pub struct Fixture {
    pub env: Env,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub key: PathBuf,
    pub public: PathBuf,
    pub seal: PathBuf,
}

impl Fixture {
    /// Builds, seals (as IMAGE), trusts and imports; config.json from `runc spec`.
    pub fn new() -> Fixture {
        let env = Env::new();
        let bundle = env.path("bundle");
        let rootfs = bundle.join("rootfs");
        busybox_rootfs(&rootfs);
        let (key, public) = env.keygen("ci-2026");
        env.expect(0, [OsStr::new("trust"), OsStr::new("add"), public.as_os_str()]);
        let seal = env.path("app.seal.json");
        env.seal(&rootfs, &key, &seal, &["--name", IMAGE]);
        env.expect(0, [OsStr::new("trust"), OsStr::new("import"), seal.as_os_str()]);
        sh(Command::new("runc").arg("spec").arg("--bundle").arg(&bundle));
        let f = Fixture { env, bundle, rootfs, key, public, seal };
        let cfg = f.env.config_path();
        let stderr_log = f.env.path("hook-stderr.log");
        f.patch(|c| {
            c["process"]["terminal"] = false.into();
            c["process"]["args"] = serde_json::json!(["cat", "/etc/motd"]);
            let hook = |stage: &str| {
                serde_json::json!({
                    "path": bin(),
                    "args": ["rootseal", "--config", cfg, "hook", stage],
                    "timeout": 30,
                })
            };
            c["hooks"] = serde_json::json!({ "prestart": [hook("prestart")], "poststop": [hook("poststop")] });
            // crun discards a hook's stderr unless told where to write it.
            c["annotations"] = serde_json::json!({ "run.oci.hooks.stderr": stderr_log });
        });
        f
    }

    pub fn config(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.bundle.join("config.json")).unwrap()).unwrap()
    }

    pub fn patch(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let mut c = self.config();
        f(&mut c);
        std::fs::write(self.bundle.join("config.json"), serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    pub fn annotate(&self, key: &str, value: &str) {
        self.patch(|c| {
            c["annotations"][key] = value.into();
        });
    }

    /// Seals the current rootfs again (after an intended change) as IMAGE; returns the seal file
    /// (not imported: callers import it when the test needs that).
    pub fn reseal(&self, extra: &[&str]) -> PathBuf {
        let seal = self.env.path("reseal.json");
        let mut args = vec!["--name", IMAGE];
        args.extend_from_slice(extra);
        self.env.seal(&self.rootfs, &self.key, &seal, &args);
        seal
    }

    /// Runs the bundle with `runtime` (runc or crun); returns its output.
    pub fn run(&self, runtime: &str) -> RunResult {
        let id = container_id(runtime);
        let _ = std::fs::remove_file(self.env.path("hook-stderr.log"));
        let out = Command::new("timeout")
            .args(["-k", "5", "90", runtime, "run", "--bundle"])
            .arg(&self.bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .expect("run runtime");
        // Make sure nothing is left behind whatever happened.
        let _ = Command::new(runtime).args(["delete", "--force", &id]).output();
        let hook_stderr = std::fs::read_to_string(self.env.path("hook-stderr.log")).unwrap_or_default();
        RunResult { id, out, hook_stderr, runtime: runtime.into() }
    }

    /// The events written so far (JSON lines).
    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.env.path("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("events are JSON lines"))
            .collect()
    }

    pub fn last_event(&self) -> serde_json::Value {
        self.events().pop().expect("an event was written")
    }
}

pub struct RunResult {
    pub id: String,
    pub out: Output,
    /// What the hook wrote on stderr, where the runtime does not show it (crun).
    pub hook_stderr: String,
    pub runtime: String,
}

impl RunResult {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    pub fn assert_ran(&self, expect_stdout: &str) {
        assert!(
            self.out.status.success() && self.stdout().contains(expect_stdout),
            "{} should have run the container\nstatus: {:?}\nstdout: {}\nstderr: {}\nhook: {}",
            self.runtime,
            self.out.status,
            self.stdout(),
            self.stderr(),
            self.hook_stderr
        );
    }

    /// Asserts the container was blocked and returns the hook's one-line reason (from the
    /// runtime's error for runc, from the hook's stderr file for crun).
    pub fn assert_blocked(&self) -> String {
        assert!(
            !self.out.status.success(),
            "{} should have blocked the container\nstdout: {}\nstderr: {}",
            self.runtime,
            self.stdout(),
            self.stderr()
        );
        assert!(!self.stdout().contains("hello from a sealed rootfs"), "the container process must not run");
        let all = format!("{}\n{}", self.stderr(), self.hook_stderr);
        let line = all
            .lines()
            .flat_map(|l| l.split("stderr: "))
            .flat_map(|l| l.split("\\n"))
            .find(|l| l.starts_with("rootseal: blocked"))
            .unwrap_or_else(|| panic!("{}: no rootseal line in:\n{all}", self.runtime))
            .trim_end_matches("\\n\"")
            .to_string();
        line
    }
}

/// True when `runtime` works on this machine (crun needs the hugetlb fix of setup-host.sh).
pub fn runtime_ok(runtime: &str) -> bool {
    Command::new(runtime).arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

/// One run of `rootseal hook STAGE`, as a runtime runs it.
pub struct HookRun {
    pub code: Option<i32>,
    pub stderr: String,
    pub elapsed: std::time::Duration,
}

impl HookRun {
    /// Exit 1 and exactly one line on stderr, a block containing `expect`.
    pub fn assert_blocked(&self, expect: &str) -> &str {
        assert_eq!(self.code, Some(1), "stderr: {}", self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "exactly one line on stderr: {:?}", self.stderr);
        assert!(
            lines[0].starts_with("rootseal: blocked") && lines[0].contains(expect),
            "expected {expect:?}: {}",
            self.stderr
        );
        lines[0]
    }
}

/// The OCI state runc passes at prestart.
pub fn prestart_state(id: &str, bundle: &Path) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ociVersion": "1.0.2-dev", "id": id, "status": "creating", "pid": std::process::id(), "bundle": bundle
    }))
    .unwrap()
}

/// Spawns a hook command with `stdin` written then closed (None: held open and never written
/// until the hook exits) and waits for it.
pub fn feed_hook(cmd: &mut Command, stdin: Option<&[u8]>) -> HookRun {
    use std::io::Write as _;
    let start = std::time::Instant::now();
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let holder = match stdin {
        Some(bytes) => {
            // The hook may stop reading early (oversized input): a failed write is fine.
            let _ = pipe.write_all(bytes);
            drop(pipe);
            None
        }
        None => Some(pipe),
    };
    let out = child.wait_with_output().unwrap();
    drop(holder);
    HookRun {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// A hooks.d directory in the test's temp dir holding `rootseal hooks-json` for this binary and
/// the test's config, as podman's `--hooks-dir` reads it.
pub fn hooks_dir(env: &Env) -> PathBuf {
    let dir = env.path("hooks.d");
    std::fs::create_dir(&dir).unwrap();
    let (json, _) = env.expect(
        0,
        [
            OsStr::new("hooks-json"),
            OsStr::new("--binary"),
            bin().as_os_str(),
            OsStr::new("--hook-config"),
            env.config_path().as_os_str(),
        ],
    );
    std::fs::write(dir.join("rootseal.json"), json).unwrap();
    dir
}
