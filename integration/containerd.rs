//! A real containerd per test (own root, state and socket, stopped at the end) running images
//! through rootseal-runtime (`ctr run --runc-binary`), images built and sealed from archives by
//! the test.

use crate::images::*;
use crate::util::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn wrapper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rootseal-runtime"))
}

pub(crate) struct Containerd {
    child: Child,
    dir: PathBuf,
    sock: PathBuf,
    rootseal_config: PathBuf,
}

impl Containerd {
    pub(crate) fn start(env: &Env) -> Containerd {
        Containerd::start_with(env, "containerd", "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n")
    }

    /// A containerd in `env`'s directory `name`, on the config `text`.
    pub(crate) fn start_with(env: &Env, name: &str, text: &str) -> Containerd {
        Containerd::start_in(&env.path(name), text, &env.config_path())
    }

    /// A containerd in `dir` (its config.toml, root, state and socket), on the config `text`,
    /// with `ROOTSEAL_CONFIG=rootseal_config` in its environment (and so its shims').
    pub(crate) fn start_in(dir: &Path, text: &str, rootseal_config: &Path) -> Containerd {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), text).unwrap();
        let sock = dir.join("c.sock");
        let child = Containerd::spawn(&dir, &sock, rootseal_config);
        let c = Containerd { child, dir, sock, rootseal_config: rootseal_config.to_path_buf() };
        c.wait_ready();
        c
    }

    fn spawn(dir: &Path, sock: &Path, rootseal_config: &Path) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("containerd.log")).unwrap();
        Command::new("containerd")
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--address")
            .arg(sock)
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("ROOTSEAL_CONFIG", rootseal_config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is installed (scripts/setup-host.sh)")
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            if self.sock.exists() && self.ctr(&["version"]).status.success() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "containerd did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the daemon (SIGTERM, as `systemctl restart` does) and starts it again on the same
    /// directories and config; running tasks keep running under their shims.
    pub(crate) fn restart(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
        self.child = Containerd::spawn(&self.dir, &self.sock, &self.rootseal_config);
        self.wait_ready();
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// containerd's socket (its --address).
    pub(crate) fn socket(&self) -> &Path {
        &self.sock
    }

    /// containerd's --root directory (snapshots under io.containerd.snapshotter.v1.overlayfs/).
    pub(crate) fn root_dir(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// containerd's --state directory (task bundles under io.containerd.runtime.v2.task/).
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub(crate) fn ctr<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        Command::new("timeout")
            .args(["-k", "5", "120", "ctr", "-a"])
            .arg(&self.sock)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub(crate) fn import(&self, archive: &Path) {
        let o = self.ctr(&[OsStr::new("images"), OsStr::new("import"), archive.as_os_str()]);
        assert!(o.status.success(), "ctr import: {}", text(&o));
    }

    /// `ctr images pull REFERENCE` from a registry into this containerd (fetched and unpacked).
    /// `plain_http` talks HTTP instead of HTTPS; `hosts_dir` is a containerd hosts directory
    /// (`<dir>/<host:port>/ca.crt` or `hosts.toml`, as `registry_env::write_certs_d` writes);
    /// `creds` is sent as basic auth. Returns ctr's output: callers assert success or failure.
    pub(crate) fn pull(
        &self,
        reference: &str,
        plain_http: bool,
        hosts_dir: Option<&Path>,
        creds: Option<(&str, &str)>,
    ) -> Output {
        let mut args: Vec<std::ffi::OsString> = vec!["images".into(), "pull".into()];
        if plain_http {
            args.push("--plain-http".into());
        }
        if let Some(dir) = hosts_dir {
            args.push("--hosts-dir".into());
            args.push(dir.into());
        }
        if let Some((user, password)) = creds {
            args.push("--user".into());
            args.push(format!("{user}:{password}").into());
        }
        args.push(reference.into());
        self.ctr(&args)
    }

    /// The manifest digest under which `reference` is listed in `ctr images ls`, if it is.
    pub(crate) fn image_digest(&self, reference: &str) -> Option<String> {
        let o = self.ctr(&["images", "ls"]);
        assert!(o.status.success(), "ctr images ls: {}", text(&o));
        // Columns: REF TYPE DIGEST SIZE PLATFORMS LABELS (SIZE holds a space: "1.0 MiB").
        String::from_utf8_lossy(&o.stdout).lines().skip(1).find_map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next() == Some(reference)).then(|| cols.nth(1).map(str::to_string)).flatten()
        })
    }

    /// `ctr run --rm` through rootseal-runtime.
    pub(crate) fn run(&self, image: &str, read_only: bool, cmd: &[&str]) -> Output {
        let id = crate::harness::container_id("ctr");
        let mut args: Vec<&OsStr> = vec![OsStr::new("run"), OsStr::new("--rm")];
        if read_only {
            args.push(OsStr::new("--read-only"));
        }
        let w = wrapper();
        args.extend([OsStr::new("--runc-binary"), w.as_os_str(), OsStr::new(image), OsStr::new(&id)]);
        args.extend(cmd.iter().map(OsStr::new));
        let o = self.ctr(&args);
        // A blocked create can leave the container record behind.
        let _ = self.ctr(&["containers", "rm", &id]);
        o
    }

    /// The committed snapshot directories (layers), oldest first.
    /// `ctr run -d --read-only` through rootseal-runtime: `sleep 300` in the background.
    pub(crate) fn run_detached(&self, image: &str, id: &str) {
        let w = wrapper();
        let o = self.ctr(&[
            OsStr::new("run"),
            OsStr::new("-d"),
            OsStr::new("--read-only"),
            OsStr::new("--runc-binary"),
            w.as_os_str(),
            OsStr::new(image),
            OsStr::new(id),
            OsStr::new("sleep"),
            OsStr::new("300"),
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }

    /// Kills a detached container's task and removes it and the container. `task delete
    /// --force` kills the task and waits for it to exit (WithProcessKill), so no guess at how
    /// long a kill takes.
    pub(crate) fn remove(&self, id: &str) {
        let o = self.ctr(&["task", "delete", "--force", id]);
        assert!(o.status.success(), "ctr task delete --force {id}: {}", text(&o));
        let o = self.ctr(&["containers", "delete", id]);
        assert!(o.status.success(), "ctr containers delete {id}: {}", text(&o));
    }

    /// The topmost committed snapshot's copy of `rel` (a lower directory of every container).
    pub(crate) fn top_snapshot_file(&self, rel: &str) -> PathBuf {
        self.snapshot_dirs()
            .into_iter()
            .rev()
            .map(|d| d.join(rel))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("a snapshot holds {rel}"))
    }

    fn snapshot_dirs(&self) -> Vec<PathBuf> {
        let base = self.dir.join("root/io.containerd.snapshotter.v1.overlayfs/snapshots");
        let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(&base)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse().ok().map(|n: u64| (n, e.path().join("fs"))))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(_, p)| p).collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Unmount anything containerd left under its directories, deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&*self.dir.to_string_lossy()))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").args(["-l", p]).status();
        }
    }
}

/// `podman run --rm --read-only IMAGE cat /etc/motd` through runc, with the test's hooks.d.
///
/// Once, in a CI run with every test in parallel on 2 cores, podman 4.3 exited 0 with empty
/// stdout and stderr: the container ran (a block exits non-zero and says why) but its output
/// was lost on the way back through conmon's attach. Such a run is tried once more; a block or
/// an error is never retried.
fn podman_cat_motd(hooks: &Path, image: &str) -> Output {
    let run = || {
        Command::new("timeout")
            .args(["-k", "5", "120", "podman", "--hooks-dir"])
            .arg(hooks)
            .args(["run", "--rm", "--read-only", "--runtime", "runc"])
            .args(["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"])
            .arg(image)
            .args(["cat", "/etc/motd"])
            .output()
            .unwrap()
    };
    let o = run();
    if o.status.success() && o.stdout.is_empty() && o.stderr.is_empty() {
        eprintln!("podman run exited 0 with no output at all; trying once more");
        return run();
    }
    o
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A node: trust store with a key, an image archive sealed and imported, containerd running.
pub(crate) struct Node {
    pub(crate) env: Env,
    archive: PathBuf,
    pub(crate) reference: String,
    pub(crate) containerd: Containerd,
}

pub(crate) fn node(tag: &str) -> Node {
    node_with(tag, "hello from layer 2\n")
}

/// A node whose image's top layer has this /etc/motd. Tests that load the image into podman
/// need their own content: podman's `rmi -f` of one name removes an image with the same id
/// under every name, from under a test running in parallel.
fn node_with(tag: &str, motd: &str) -> Node {
    let env = Env::new();
    let (key, public) = env.keygen("ci-2026");
    env.expect(0, [OsStr::new("trust"), OsStr::new("add"), public.as_os_str()]);
    let reference = format!("test.local/rootseal/{tag}:{}", std::process::id());
    let archive = multi_layer_archive(env.tmp.path(), &reference, motd);
    let seal = env.path("image.seal.json");
    env.expect(
        0,
        [
            OsStr::new("seal"),
            archive.as_os_str(),
            OsStr::new("--key"),
            key.as_os_str(),
            OsStr::new("--out"),
            seal.as_os_str(),
        ],
    );
    env.expect(0, [OsStr::new("trust"), OsStr::new("import"), seal.as_os_str()]);
    let containerd = Containerd::start(&env);
    containerd.import(&archive);
    Node { env, archive, reference, containerd }
}

impl Node {
    fn last_event(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.env.path("events.jsonl")).unwrap_or_default();
        serde_json::from_str(text.lines().last().expect("an event")).unwrap()
    }
}

#[test]
fn a_sealed_multi_layer_image_runs_under_containerd_and_podman() {
    let n = node("multi");
    // The seal names the image and its manifest digest.
    let seal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(n.env.path("image.seal.json")).unwrap()).unwrap();
    use base64::Engine as _;
    let st: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD.decode(seal["payload"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(st["subject"][0]["name"], n.reference.as_str());
    assert!(st["predicate"]["image"]["manifestDigest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(st["predicate"]["image"]["layers"], 2);

    let o = n.containerd.run(
        &n.reference,
        true,
        &[
            "sh",
            "-c",
            "cat /etc/motd; ls /opt/old; ls /var/cache; ls -l /usr/sbin/su; touch /x 2>/dev/null || echo read-only; sleep 0.3",
        ],
    );
    assert!(o.status.success(), "{}\ncontainerd: {}", text(&o), n.containerd.log());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("hello from layer 2") && out.contains("read-only"), "{out}");
    assert!(out.contains('c') && !out.contains("\na\n"), "opaque dir keeps only layer 2's c: {out}");
    assert!(out.contains("-rwsr-xr-x"), "setuid kept: {out}");

    // The same archive through podman's storage verifies against the same seal.
    let name = n.reference.clone();
    let load = Command::new("podman").arg("load").arg("-i").arg(&n.archive).output().unwrap();
    assert!(load.status.success(), "{}", text(&load));
    let hooks = crate::harness::hooks_dir(&n.env);
    let o = podman_cat_motd(&hooks, &name);
    let _ = Command::new("podman").args(["rmi", "-f", &name]).output();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("hello from layer 2"),
        "podman: {}",
        text(&o)
    );
}

#[test]
fn a_file_changed_in_a_snapshot_blocks_the_next_start() {
    let n = node("tamper");
    let o = n.containerd.run(&n.reference, true, &["cat", "/etc/motd"]);
    assert!(o.status.success(), "{}", text(&o));
    // The top layer's copy of /etc/motd, in containerd's committed snapshot (a lower dir).
    let motd = n.containerd.top_snapshot_file("etc/motd");
    std::fs::write(&motd, b"changed in the snapshot\n").unwrap();
    let o = n.containerd.run(&n.reference, true, &["cat", "/etc/motd"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("changed in the snapshot"));
    assert!(
        err.contains("rootseal: blocked container") && err.contains("/etc/motd content differs from seal"),
        "{}",
        text(&o)
    );
    assert_eq!(n.last_event()["violations"][0]["paths"][0]["path"], "/etc/motd");
}

#[test]
fn an_unsealed_image_is_blocked_under_containerd() {
    let n = node("unsealed-base");
    let other = format!("test.local/rootseal/never-sealed:{}", std::process::id());
    let archive = multi_layer_archive(n.env.tmp.path(), &other, "a different image\n");
    n.containerd.import(&archive);
    let o = n.containerd.run(&other, true, &["cat", "/etc/motd"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("rootseal: blocked container"), "{}", text(&o));
    // Sketch similarity finds the sealed image it resembles and names the difference.
    assert!(err.contains("/etc/motd") || err.contains("no seal in"), "{err}");
}

#[test]
fn a_writable_spec_is_blocked_or_made_read_only_per_policy() {
    let n = node("writable");
    let o = n.containerd.run(&n.reference, false, &["cat", "/etc/motd"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("root filesystem is writable"), "{}", text(&o));

    n.env.write_config("[runtime]\nmake_readonly = true");
    let o = n.containerd.run(
        &n.reference,
        false,
        &[
            "sh",
            "-c",
            "cat /etc/motd; touch /x 2>/dev/null || echo read-only; touch /tmp/ok && echo tmp-writable; sleep 0.3",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.contains("hello from layer 2") && out.contains("read-only") && out.contains("tmp-writable"), "{out}");
}

#[test]
fn wrapper_errors_start_nothing_and_write_nothing() {
    let env = Env::new();
    let bundle = env.path("bundle");
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    let id = crate::harness::container_id("wrap");
    let run = |env: &Env| {
        Command::new(wrapper())
            .arg("--log")
            .arg(bundle.join("log.json"))
            .args(["--log-format", "json", "create", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .env("ROOTSEAL_CONFIG", env.config_path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // A config.json that is not JSON.
    std::fs::write(bundle.join("config.json"), b"{ not json").unwrap();
    let o = run(&env);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("rootseal-runtime: bundle") && err.contains("config.json"), "{err}");
    assert_eq!(std::fs::read(bundle.join("config.json")).unwrap(), b"{ not json");
    let log = std::fs::read_to_string(bundle.join("log.json")).unwrap();
    assert!(log.contains("\"level\":\"error\"") && log.contains("rootseal-runtime"), "{log}");
    // An unreachable real runtime: nothing written, nothing run.
    std::fs::remove_file(bundle.join("config.json")).unwrap();
    sh(Command::new("runc").arg("spec").arg("--bundle").arg(&bundle));
    let before = std::fs::read(bundle.join("config.json")).unwrap();
    env.write_config("[runtime]\nruntime = \"/nonexistent/runc\"");
    let o = run(&env);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/runc"), "{}", text(&o));
    assert_eq!(std::fs::read(bundle.join("config.json")).unwrap(), before, "nothing written");
    let list = Command::new("runc").args(["list", "-q"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&id));
    // A real runtime: the hooks are added, and a second pass adds nothing.
    env.write_config("[runtime]\nruntime = \"/bin/true\"");
    let o = run(&env);
    assert!(o.status.success(), "{}", text(&o));
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["hooks"]["createRuntime"][0]["args"][3], "hook");
    let once = std::fs::read(bundle.join("config.json")).unwrap();
    assert!(run(&env).status.success());
    assert_eq!(std::fs::read(bundle.join("config.json")).unwrap(), once, "idempotent");
}

#[test]
fn docker_archive_and_multi_platform_index_give_the_same_digest() {
    let env = Env::new();
    let reference = format!("test.local/rootseal/formats:{}", std::process::id());
    // docker-archives cannot hold zstd layers: gzip both.
    let archive = oci_archive(
        env.tmp.path(),
        &reference,
        vec![(busybox_layer().finish(), Compression::Gzip), (feature_layer("formats\n").finish(), Compression::Gzip)],
    );
    let digest_of = |p: &Path, extra: &[&str]| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("digest"), p.as_os_str()];
        args.extend(extra.iter().map(OsStr::new));
        env.expect(0, &args).0.trim().to_string()
    };
    let oci = digest_of(&archive, &[]);
    // docker-archive written by podman from the same image.
    let load = Command::new("podman").arg("load").arg("-i").arg(&archive).output().unwrap();
    assert!(load.status.success(), "{}", text(&load));
    let docker = env.path("docker.tar");
    let save = Command::new("podman")
        .args(["save", "--format", "docker-archive", "-o"])
        .arg(&docker)
        .arg(&reference)
        .output()
        .unwrap();
    let _ = Command::new("podman").args(["rmi", "-f", &reference]).output();
    assert!(save.status.success(), "{}", text(&save));
    assert_eq!(digest_of(&docker, &[]), oci, "docker-archive and OCI archive of one image");

    // An OCI layout whose index points at a multi-platform index: amd64 is this image, arm64
    // another; --platform picks.
    let layout =
        env.tmp.path().join(format!("layout-{}", reference.replace(|c: char| !c.is_ascii_alphanumeric(), "_")));
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let amd64 = index["manifests"][0].clone();
    let other = multi_layer_archive(env.tmp.path(), "test.local/other:1", "arm64 build\n");
    let other_layout = env.tmp.path().join("layout-test_local_other_1");
    let other_index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(other_layout.join("index.json")).unwrap()).unwrap();
    for e in std::fs::read_dir(other_layout.join("blobs/sha256")).unwrap().flatten() {
        std::fs::copy(e.path(), layout.join("blobs/sha256").join(e.file_name())).unwrap();
    }
    let mut arm = other_index["manifests"][0].clone();
    arm["platform"] = serde_json::json!({"os": "linux", "architecture": "arm64"});
    let mut amd = amd64.clone();
    amd["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    let nested = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [arm, amd]})).unwrap();
    use sha2::Digest as _;
    let hex = format!("{:x}", sha2::Sha256::digest(&nested));
    std::fs::write(layout.join("blobs/sha256").join(&hex), &nested).unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": format!("sha256:{hex}"), "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": reference}}]}))
        .unwrap(),
    )
    .unwrap();
    drop(other);
    assert_eq!(digest_of(&layout, &["--platform", "linux/amd64"]), oci);
    // The arm64 manifest's config says amd64 (the test reuses one builder): asking for arm64
    // picks the arm64 manifest, whose config disagrees, which is refused.
    let (_, err) =
        env.expect(2, [OsStr::new("digest"), layout.as_os_str(), OsStr::new("--platform"), OsStr::new("linux/arm64")]);
    assert!(err.contains("the image is linux/amd64 but linux/arm64 was asked for"), "{err}");
    let (_, err) =
        env.expect(2, [OsStr::new("digest"), layout.as_os_str(), OsStr::new("--platform"), OsStr::new("linux/s390x")]);
    assert!(err.contains("has no manifest for linux/s390x"), "{err}");
}

#[test]
fn the_monitor_sees_a_snapshot_change_in_a_running_containerd_container() {
    let n = node("monitored");
    n.env.write_config("[monitor]\ninterval = \"1s\"");
    let id = crate::harness::container_id("ctrmon");
    n.containerd.run_detached(&n.reference, &id);
    let mon = crate::monitor::MonitorProc::start(&n.env);
    let status = || {
        let out = n.env.run(["status", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    let start = Instant::now();
    while status()["containers"][0]["result"] != "clean" {
        assert!(start.elapsed() < Duration::from_secs(15), "no clean scan: {}", status());
        std::thread::sleep(Duration::from_millis(100));
    }
    let motd = n.containerd.top_snapshot_file("etc/motd");
    std::fs::write(&motd, b"changed under a running container\n").unwrap();
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(n.env.path("events.jsonl")).unwrap_or_default();
        let drift = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["source"] == "monitor" && e["event"] == "drift");
        if let Some(e) = drift {
            assert_eq!(e["violations"][0]["paths"][0]["path"], "/etc/motd", "{e}");
            assert_eq!(e["container"]["id"], id.as_str());
            break;
        }
        // Generous on a loaded machine: the event is what is tested, not the scan latency.
        assert!(start.elapsed() < Duration::from_secs(60), "no drift event within 60 s: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(mon.stop(), Some(0));
    n.containerd.remove(&id);
}

/// `verify = "layers"` under the real containerd overlayfs snapshotter: the second container of
/// an image is not walked (its lowers are the image's committed snapshots, verified by the first
/// start); a snapshot changed afterwards is caught by the monitor, which drops the record, and
/// the start after that walks and blocks.
#[test]
fn a_second_containerd_container_of_an_image_reuses_the_verified_snapshots() {
    let n = node_with("layers", "hello from the layers test\n");
    let d = n.env.tmp.path().display();
    std::fs::write(
        n.env.config_path(),
        format!(
            "trust_dir = \"{d}/trust\"\nseal_dir = \"{d}/seals\"\nstate_dir = \"{d}/state\"\ncache_dir = \"{d}/cache\"\n[hook]\nverify = \"layers\"\n[alerts]\nsyslog_socket = \"\"\nevents_file = \"{d}/events.jsonl\"\nverified = true\n"
        ),
    )
    .unwrap();
    let message = |n: &Node| n.last_event()["message"].as_str().unwrap_or_default().to_string();
    let o = n.containerd.run(&n.reference, true, &["cat", "/etc/motd"]);
    assert!(o.status.success(), "{}\ncontainerd: {}", text(&o), n.containerd.log());
    assert!(!message(&n).contains("not walked"), "{}", message(&n));
    let o = n.containerd.run(&n.reference, true, &["cat", "/etc/motd"]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("hello from the layers test"),
        "{}",
        text(&o)
    );
    let m = message(&n);
    assert!(m.contains("not walked") && m.contains("io.containerd.snapshotter.v1.overlayfs/snapshots/"), "{m}");

    // podman: its own storage, its own overlay per container, the same hook.
    let load = Command::new("podman").arg("load").arg("-i").arg(&n.archive).output().unwrap();
    assert!(load.status.success(), "{}", text(&load));
    let hooks = crate::harness::hooks_dir(&n.env);
    let first = podman_cat_motd(&hooks, &n.reference);
    let first_msg = message(&n);
    let second = podman_cat_motd(&hooks, &n.reference);
    let second_msg = message(&n);
    let _ = Command::new("podman").args(["rmi", "-f", &n.reference]).output();
    assert!(first.status.success() && second.status.success(), "{}\n{}", text(&first), text(&second));
    assert!(!first_msg.contains("not walked"), "{first_msg}");
    assert!(second_msg.contains("not walked"), "{second_msg}");

    // A running container, a snapshot changed under it: the monitor's scan drops the record.
    let id = crate::harness::container_id("ctrlayers");
    n.containerd.run_detached(&n.reference, &id);
    let motd = n.containerd.top_snapshot_file("etc/motd");
    std::fs::write(&motd, b"changed in the snapshot\n").unwrap();
    let out = n.env.run(["monitor", "--once"]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    n.containerd.remove(&id);
    let o = n.containerd.run(&n.reference, true, &["cat", "/etc/motd"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("/etc/motd content differs from seal"), "{}", text(&o));
}
