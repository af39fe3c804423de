//! `rootseal::node::images::list` against a real containerd (its own instance, CRI plugin on,
//! so that `k8s.io` gets the plugin's `sha256:` names) and a podman store of the test's own
//! (`--root`/`--runroot` in the temp dir: nothing touches the node's podman images).

use crate::containerd::Containerd;
use crate::images::multi_layer_archive;
use crate::util::*;
use rootseal::node::images::{list, unique_references, ImagesError, NodeImage, Sources, Store, StoreKind};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A containerd 1.6 config that keeps the CRI plugin (its default): the plugin names every
/// image in `k8s.io` by its config digest as well.
const WITH_CRI: &str = "version = 2\n";

/// A podman store in `env`'s temp dir: the global options that select it.
fn podman_store(env: &Env) -> Vec<String> {
    let arg = |rel: &str| env.path(rel).display().to_string();
    vec![
        "--root".into(),
        arg("podman/root"),
        "--runroot".into(),
        arg("podman/run"),
        "--storage-driver".into(),
        "overlay".into(),
    ]
}

fn podman(store: &[String], args: &[&OsStr]) {
    let o = Command::new("timeout").args(["-k", "5", "120", "podman"]).args(store).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "podman {args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// An OCI archive named `reference` and its manifest digest (from the archive's index.json).
fn image(env: &Env, reference: &str) -> (PathBuf, String) {
    let archive = multi_layer_archive(env.tmp.path(), reference, &format!("{reference}\n"));
    let index = sh(Command::new("tar").arg("-xOf").arg(&archive).arg("./index.json"));
    let index: serde_json::Value = serde_json::from_str(&index).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    (archive, digest)
}

fn sources(containerd: Option<&Path>, podman_args: Vec<String>) -> Sources {
    Sources {
        containerd_address: containerd.map(Path::to_path_buf),
        ctr: "ctr".into(),
        podman: Some("podman".into()),
        podman_args,
        timeout: Duration::from_secs(60),
    }
}

fn found(store: Store, reference: &str, digest: &str) -> NodeImage {
    NodeImage { store, reference: reference.into(), digest: Some(digest.into()) }
}

#[test]
fn list_finds_an_image_in_two_containerd_namespaces_and_in_podman() {
    let env = Env::new();
    let reference = format!("test.local/rootseal/node-images:{}", std::process::id());
    let (archive, digest) = image(&env, &reference);
    let c = Containerd::start_with(&env, "containerd", WITH_CRI);
    c.import(&archive);
    let o = c.ctr(&[
        OsStr::new("-n"),
        OsStr::new("k8s.io"),
        OsStr::new("images"),
        OsStr::new("import"),
        archive.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The CRI plugin adds its `sha256:<config>` name on an event, shortly after the import.
    let start = Instant::now();
    loop {
        let o = c.ctr(&["-n", "k8s.io", "images", "ls", "-q"]);
        if String::from_utf8_lossy(&o.stdout).lines().any(|l| l.starts_with("sha256:")) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the CRI plugin named no image by digest");
        std::thread::sleep(Duration::from_millis(100));
    }
    let store = podman_store(&env);
    podman(&store, &[OsStr::new("load"), OsStr::new("-i"), archive.as_os_str()]);
    let second = format!("127.0.0.1:5000/rootseal/node-images:{}", std::process::id());
    podman(&store, &[OsStr::new("tag"), OsStr::new(&reference), OsStr::new(&second)]);

    let listing = list(&sources(Some(c.socket()), store));
    assert!(listing.problems.is_empty(), "{:?}", listing.problems);
    let ns = |n: &str| Store::Containerd { namespace: n.into() };
    let want = BTreeSet::from([
        found(ns("default"), &reference, &digest),
        found(ns("k8s.io"), &reference, &digest),
        found(Store::Podman, &reference, &digest),
        found(Store::Podman, &second, &digest),
    ]);
    assert_eq!(listing.images.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert_eq!(listing.images.len(), want.len(), "each once: {:?}", listing.images);
    assert_eq!(
        unique_references(&listing.images),
        [(second.clone(), Some(digest.clone())), (reference.clone(), Some(digest.clone()))]
    );
}

#[test]
fn a_missing_containerd_socket_is_a_problem_and_podman_is_still_listed() {
    let env = Env::new();
    let reference = format!("test.local/rootseal/no-containerd:{}", std::process::id());
    let (archive, digest) = image(&env, &reference);
    let store = podman_store(&env);
    podman(&store, &[OsStr::new("load"), OsStr::new("-i"), archive.as_os_str()]);
    let missing = env.path("run/containerd/containerd.sock");
    let listing = list(&sources(Some(&missing), store));
    assert_eq!(listing.images, [found(Store::Podman, &reference, &digest)]);
    let [problem] = &listing.problems[..] else { panic!("{:?}", listing.problems) };
    assert!(matches!(problem, ImagesError::NoSocket { address } if *address == missing), "{problem:?}");
    assert!(problem.is_absent());
    assert_eq!(
        problem.to_string(),
        format!("containerd: no socket at {}; start containerd, or give the address of its socket", missing.display())
    );
}

/// A client that never answers (here a script that sleeps, in place of ctr and of podman) is
/// killed at the timeout, and the listing goes on to the next store.
#[test]
fn a_hung_client_is_killed_at_the_timeout() {
    let env = Env::new();
    let hung = env.path("hung-client");
    std::fs::write(&hung, "#!/bin/sh\necho \"$0 $*\" >&2\nsleep 600\n").unwrap();
    std::fs::set_permissions(&hung, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A socket that exists, for the fake ctr not to connect to.
    let sock = env.path("containerd.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let timeout = Duration::from_secs(2);
    let start = Instant::now();
    let listing = list(&Sources {
        containerd_address: Some(sock),
        ctr: hung.clone(),
        podman: Some(hung.clone()),
        podman_args: vec![],
        timeout,
    });
    let elapsed = start.elapsed();
    // Two commands, each killed at its timeout; the margin is for a loaded machine.
    assert!(elapsed < 2 * timeout + Duration::from_secs(10), "{elapsed:?}");
    assert!(elapsed >= 2 * timeout, "{elapsed:?}");
    assert!(listing.images.is_empty());
    let [ctr, podman] = &listing.problems[..] else { panic!("{:?}", listing.problems) };
    for (p, store, args) in
        [(ctr, StoreKind::Containerd, "namespaces ls -q"), (podman, StoreKind::Podman, "images --format json")]
    {
        let ImagesError::TimedOut { store: s, command, stderr, .. } = p else { panic!("{p:?}") };
        assert_eq!(*s, store);
        assert!(command.ends_with(args) && stderr.ends_with(args), "{p:?}");
        assert!(p.to_string().contains("did not finish within 2s and was killed"), "{p}");
    }
}
