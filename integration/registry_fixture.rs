//! The two sides of registry.rs's tests: CI (a key, an image pushed with skopeo, seals made
//! and pushed with rootseal) and a node (only the public key trusted, an empty seal store,
//! `[registry]` reaching the test's registry, its own containerd and podman store, runc bundles
//! over the images containerd pulled).

use crate::containerd::Containerd;
use crate::harness::{container_id, hooks_dir};
use crate::images::{busybox_layer, feature_layer, oci_archive, Compression};
use crate::registry_env::{ctr_pull, podman_pull, push_archive, write_auth_json, Podman, Registry};
use crate::util::*;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

pub(super) fn next() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub(super) fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub(super) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(super) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// RFC 3339, `secs` seconds ago: seals made in one test get distinct, ordered creation times.
pub(super) fn ago(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(secs)).to_string()
}

/// The manifest digest an OCI archive's index.json names.
pub(super) fn archive_digest(archive: &Path) -> String {
    let index = sh(Command::new("tar").arg("-xOf").arg(archive).arg("./index.json"));
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_string()
}

/// The `[registry]` table that reaches `registry`: its host as plain HTTP, or its `certs.d`
/// (the CA) and an auth file in `dir`, holding its credentials when `creds`.
pub(super) fn registry_table(registry: &Registry, dir: &Path, creds: bool) -> String {
    let auth = dir.join("auth.json");
    let mut t = format!("[registry]\ntimeout = \"30s\"\nauth_file = \"{}\"\n", auth.display());
    match registry.certs_d() {
        None => {
            t.push_str(&format!("plain_http = [\"{}\"]\ncerts_dir = \"{}\"\n", registry.host(), dir.display()));
        }
        Some(certs_d) => {
            t.push_str(&format!("certs_dir = \"{}\"\n", certs_d.display()));
            if creds {
                let (user, password) = registry.creds().unwrap();
                write_auth_json(&auth, &registry.host(), user, password);
            }
        }
    }
    t
}

/// An image in the registry.
pub(super) struct Image {
    /// `127.0.0.1:PORT/repo:tag`.
    pub(super) reference: String,
    pub(super) repo: String,
    pub(super) archive: PathBuf,
    /// The manifest digest in the registry (the archive's).
    pub(super) digest: String,
}

impl Image {
    /// `docker://127.0.0.1:PORT/repo@DIGEST`-style names for skopeo: `suffix` is `:tag` or
    /// `@digest`.
    pub(super) fn docker(&self, registry: &Registry, suffix: &str) -> String {
        format!("docker://{}/{}{suffix}", registry.host(), self.repo)
    }

    /// The referrers tag schema's tag of this image: `sha256-<hex>`.
    pub(super) fn referrers_tag(&self) -> String {
        self.digest.replacen(':', "-", 1)
    }
}

/// The CI side: a key pair and a config that reaches the registry (credentials included).
pub(super) struct Ci {
    pub(super) env: Env,
    pub(super) key: PathBuf,
    pub(super) public: PathBuf,
}

impl Ci {
    pub(super) fn new(registry: &Registry) -> Ci {
        let env = Env::new();
        let (key, public) = env.keygen("ci-2026");
        env.write_config(&registry_table(registry, env.tmp.path(), true));
        Ci { env, key, public }
    }

    /// Builds a two-layer image (busybox, then whiteouts, an opaque dir, a hard link, setuid
    /// and a capability) named `registry/repo_tag` with `motd`, and pushes it with skopeo.
    pub(super) fn push_image(&self, registry: &Registry, repo_tag: &str, motd: &str) -> Image {
        let reference = registry.reference(repo_tag);
        // gzip layers go up as they are, so the registry's manifest is the archive's and a seal
        // of the archive names the pushed digest (uncompressed layers would be recompressed).
        let archive = oci_archive(
            self.env.tmp.path(),
            &reference,
            vec![(busybox_layer().finish(), Compression::Gzip), (feature_layer(motd).finish(), Compression::Gzip)],
        );
        let digest = push_archive(registry, &archive, repo_tag);
        assert_eq!(digest, archive_digest(&archive), "skopeo kept the archive's manifest");
        let repo = repo_tag.split(':').next().unwrap().to_string();
        Image { reference, repo, archive, digest }
    }

    /// `rootseal seal ARCHIVE --key KEY --name REFERENCE --created CREATED`; the seal's path.
    pub(super) fn seal(&self, image: &Image, key: &Path, created: &str) -> PathBuf {
        let out = self.env.path(&format!("seal-{}.json", next()));
        self.env.seal(&image.archive, key, &out, &["--name", &image.reference, "--created", created]);
        out
    }

    /// `rootseal push REFERENCE --seal SEAL`; the artifact's digest.
    pub(super) fn push(&self, image: &Image, seal: &Path) -> String {
        let (out, _) = self
            .env
            .expect(0, [OsStr::new("push"), OsStr::new(&image.reference), OsStr::new("--seal"), seal.as_os_str()]);
        artifact_of(&out, image)
    }
}

/// The artifact digest in `push`'s line: "pushed seal to NAME@DIGEST (subject ..., indexed by
/// tag sha256-...; N requests)". distribution 2.8 has no referrers API: the tag schema it is.
pub(super) fn artifact_of(push_stdout: &str, image: &Image) -> String {
    let line =
        push_stdout.lines().find(|l| l.starts_with("pushed seal to ")).unwrap_or_else(|| panic!("{push_stdout}"));
    assert!(
        line.contains(&format!("subject {}", image.digest))
            && line.contains(&format!("indexed by tag {}", image.referrers_tag())),
        "{line}"
    );
    let artifact = line.split('@').nth(1).and_then(|s| s.split(' ').next()).unwrap().to_string();
    assert!(artifact.starts_with("sha256:") && artifact.len() == 71, "{line}");
    artifact
}

/// Makes `env` a node: enforce mode, only `public` trusted, an empty seal store, and
/// `[registry]` reaching `registry` plus `extra` lines of that table.
pub(super) fn configure_node(env: &Env, registry: &Registry, public: &Path, creds: bool, extra: &str) {
    env.expect(0, [OsStr::new("trust"), OsStr::new("add"), public.as_os_str()]);
    let table = registry_table(registry, env.tmp.path(), creds);
    env.write_config(&format!("mode = \"enforce\"\n{table}{extra}"));
    assert!(stored_seals(env).is_empty());
}

/// A node that syncs only `[registry] images` (no containerd, no podman).
pub(super) fn bare_node(registry: &Registry, public: &Path, images: &[&str]) -> Env {
    let env = Env::new();
    let list: Vec<String> = images.iter().map(|i| format!("\"{i}\"")).collect();
    let extra = format!("containerd_address = \"\"\npodman = false\nimages = [{}]\n", list.join(", "));
    configure_node(&env, registry, public, false, &extra);
    env
}

/// The seals in the node's seal store (`seals/*.json`), sorted.
pub(super) fn stored_seals(env: &Env) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(env.path("seals"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .map(|e| std::fs::read(e.path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Every file under the seal store with its bytes: "untouched" means equal snapshots.
pub(super) fn seal_store_snapshot(env: &Env) -> BTreeMap<String, Vec<u8>> {
    let dir = env.path("seals");
    listing(&dir).into_iter().filter_map(|rel| std::fs::read(dir.join(&rel)).ok().map(|b| (rel, b))).collect()
}

pub(super) fn events(env: &Env) -> Vec<serde_json::Value> {
    std::fs::read_to_string(env.path("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The sync's summary line (the last line of stdout).
pub(super) fn summary(o: &Output) -> String {
    stdout(o).lines().last().unwrap_or_default().to_string()
}

/// `reference` with its tag replaced by `tag`.
pub(super) fn retag(reference: &str, tag: &str) -> String {
    format!("{}:{tag}", reference.rsplit_once(':').unwrap().0)
}

/// A prestart hook: the program and its argv.
pub(super) struct Hook {
    pub(super) path: PathBuf,
    pub(super) args: Vec<OsString>,
}

/// A node with its own containerd (rootseal-runtime reads the node's config) and podman store.
pub(super) struct Node {
    pub(super) env: Env,
    pub(super) containerd: Containerd,
    pub(super) podman: Podman,
    pub(super) hooks: PathBuf,
}

impl Node {
    pub(super) fn new(registry: &Registry, public: &Path, creds: bool) -> Node {
        let env = Env::new();
        let containerd = Containerd::start(&env);
        let podman = Podman::new(env.tmp.path());
        let extra = format!("containerd_address = \"{}\"\npodman = true\n", containerd.socket().display());
        configure_node(&env, registry, public, creds, &extra);
        let hooks = hooks_dir(&env);
        Node { env, containerd, podman, hooks }
    }

    /// Pulls `repo_tag` into containerd's `default` and `k8s.io` namespaces and into podman,
    /// and tags it `:k8s` in `k8s.io` and `:podman` in podman: each store then holds a name
    /// only it has, and the sync's targets show that each store was listed.
    pub(super) fn pull(&self, registry: &Registry, repo_tag: &str) {
        let o = ctr_pull(&self.containerd, registry, repo_tag);
        assert!(o.status.success(), "ctr pull: {}", text(&o));
        let mut args: Vec<OsString> = vec!["-n".into(), "k8s.io".into(), "images".into(), "pull".into()];
        if registry.is_plain_http() {
            args.push("--plain-http".into());
        }
        if let Some(d) = registry.certs_d() {
            args.extend(["--hosts-dir".into(), d.into()]);
        }
        if let Some((u, p)) = registry.creds() {
            args.extend(["--user".into(), format!("{u}:{p}").into()]);
        }
        let reference = registry.reference(repo_tag);
        args.push(reference.clone().into());
        let o = self.containerd.ctr(&args);
        assert!(o.status.success(), "ctr -n k8s.io pull: {}", text(&o));
        let o = self.containerd.ctr(&["-n", "k8s.io", "images", "tag", &reference, &retag(&reference, "k8s")]);
        assert!(o.status.success(), "ctr -n k8s.io tag: {}", text(&o));
        let o = podman_pull(&self.podman, registry, repo_tag);
        assert!(o.status.success(), "podman pull: {}", text(&o));
        let o = self.podman.cmd().args(["tag", &reference, &retag(&reference, "podman")]).output().unwrap();
        assert!(o.status.success(), "podman tag: {}", text(&o));
    }

    /// `rootseal sync --verbose`, seeing the test's podman store.
    pub(super) fn sync(&self) -> Output {
        self.env.cmd(["sync", "--verbose"]).envs(self.podman.envs()).output().unwrap()
    }

    pub(super) fn hook(&self) -> Hook {
        Hook {
            path: bin(),
            args: [
                "rootseal".into(),
                "--config".into(),
                self.env.config_path().into(),
                "hook".into(),
                "prestart".into(),
            ]
            .into(),
        }
    }

    /// `ctr run --rm --read-only` through rootseal-runtime.
    pub(super) fn run_containerd(&self, image: &Image) -> Output {
        self.containerd.run(&image.reference, true, &["cat", "/etc/motd"])
    }

    /// `podman run --rm --read-only` with the node's hooks.d, runc underneath (it shows the
    /// hook's stderr).
    pub(super) fn run_podman(&self, image: &Image) -> Output {
        self.podman
            .cmd()
            .arg("--hooks-dir")
            .arg(&self.hooks)
            .args(["run", "--rm", "--read-only", "--runtime", "runc", &image.reference, "cat", "/etc/motd"])
            .output()
            .unwrap()
    }

    /// A runc bundle whose rootfs is the pulled image, mounted by containerd (`ctr images mount
    /// --rw`: runc creates its mount points in the snapshot's upper dir), read-only in the
    /// container, with `hook` at prestart.
    pub(super) fn runc_bundle(&self, image: &Image, hook: Hook) -> Bundle {
        let dir = self.env.path(&format!("bundle-{}", next()));
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        let o = self.containerd.ctr(&[
            OsStr::new("images"),
            OsStr::new("mount"),
            OsStr::new("--rw"),
            OsStr::new(&image.reference),
            rootfs.as_os_str(),
        ]);
        assert!(o.status.success(), "ctr images mount: {}", text(&o));
        let bundle = Bundle { dir: dir.clone(), rootfs: rootfs.clone(), ctr_socket: self.containerd.socket().into() };
        sh(Command::new("runc").arg("spec").arg("--bundle").arg(&dir));
        let path = dir.join("config.json");
        let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        c["process"]["terminal"] = false.into();
        c["process"]["args"] = serde_json::json!(["cat", "/etc/motd"]);
        c["root"] = serde_json::json!({"path": rootfs, "readonly": true});
        let args: Vec<String> = hook.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        c["hooks"] = serde_json::json!({"prestart": [{"path": hook.path, "args": args, "timeout": 60}]});
        std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
        bundle
    }
}

/// A runc bundle over a containerd image mount, unmounted (and its snapshot removed) on drop.
/// Declared after its `Node`, it is dropped before the containerd.
pub(super) struct Bundle {
    pub(super) dir: PathBuf,
    pub(super) rootfs: PathBuf,
    pub(super) ctr_socket: PathBuf,
}

impl Bundle {
    /// `runc run` (stdin closed, bounded in time), then `runc delete --force`.
    pub(super) fn run(&self) -> Output {
        let id = container_id("regrunc");
        let o = Command::new("timeout")
            .args(["-k", "5", "90", "runc", "run", "--bundle"])
            .arg(&self.dir)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let _ = Command::new("runc").args(["delete", "--force", &id]).output();
        o
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let o = Command::new("timeout")
            .args(["-k", "5", "60", "ctr", "-a"])
            .arg(&self.ctr_socket)
            .args(["images", "unmount", "--rm"])
            .arg(&self.rootfs)
            .output();
        if !o.is_ok_and(|o| o.status.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.rootfs).status();
        }
    }
}

/// The start failed, the container's process did not run, and the reason is rootseal's.
pub(super) fn assert_blocked(what: &str, o: &Output, motd: &str) {
    assert!(!o.status.success(), "{what} should be blocked: {}", text(o));
    assert!(!stdout(o).contains(motd.trim()), "{what}: the container's process must not run: {}", text(o));
    let err = stderr(o);
    assert!(err.contains("rootseal: blocked container") && err.contains("no seal in"), "{what}: {}", text(o));
}

pub(super) fn assert_ran(what: &str, o: &Output, motd: &str) {
    assert!(o.status.success() && stdout(o).contains(motd.trim()), "{what} should run: {}", text(o));
}
