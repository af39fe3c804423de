//! The parsers fed what ctr 1.6.20 and podman 4.3.1 printed on a Debian 12 node
//! (testdata/images/): a containerd with the CRI plugin, images imported into `default`,
//! `k8s.io` (one of them a two-platform index) and `moby`, an empty namespace; a podman store
//! with one image under three names (one loaded from that index) and one dangling image.
//! The runner is tested with /bin/sh.

use super::*;
use std::ffi::OsString;

const NAMESPACES: &str = include_str!("testdata/images/ctr-namespaces-ls-q.txt");
const CTR_DEFAULT: &str = include_str!("testdata/images/ctr-images-ls-default.txt");
const CTR_K8S: &str = include_str!("testdata/images/ctr-images-ls-k8s.io.txt");
const CTR_MOBY: &str = include_str!("testdata/images/ctr-images-ls-moby.txt");
const CTR_EMPTY: &str = include_str!("testdata/images/ctr-images-ls-empty.txt");
const PODMAN: &str = include_str!("testdata/images/podman-images-json.json");

const A: &str = "sha256:84f830a4349418ab92c8976a02f2092a00176013045d6f51e049c24ee5f093b6";
const DEMO: &str = "sha256:5a99432e4a03f952fa7cf75c42269d12f3bf33b14ef2679bed94b97501982faa";
const MULTI_INDEX: &str = "sha256:03a27c40446a24b24cbaab6f515d86535dc52bd07310ea5868033cd959547bfe";

fn pairs(rows: &[(&str, &str)]) -> Vec<(String, String)> {
    rows.iter().map(|(r, d)| (r.to_string(), d.to_string())).collect()
}

#[test]
fn ctr_namespaces_one_a_line() {
    assert_eq!(parse_namespaces(NAMESPACES), ["default", "empty", "k8s.io", "moby"]);
    assert!(parse_namespaces("").is_empty());
}

#[test]
fn ctr_images_give_ref_and_target_digest() {
    assert_eq!(parse_ctr_images(CTR_DEFAULT).unwrap(), pairs(&[("test.local/exp/a:1", A)]));
    assert_eq!(parse_ctr_images(CTR_MOBY).unwrap(), pairs(&[("127.0.0.1:5000/demo:1", DEMO)]));
    assert_eq!(parse_ctr_images(CTR_EMPTY).unwrap(), pairs(&[]));
}

/// In k8s.io the CRI plugin names every image `sha256:<config digest>` as well; here one such
/// name even points at another image's index (the two images share a config). Those names are
/// left out; the named references keep their own digests, an index's included.
#[test]
fn ctr_images_skip_the_cri_plugins_digest_names() {
    assert!(CTR_K8S.lines().filter(|l| l.starts_with("sha256:")).count() == 2, "the fixture has them");
    assert_eq!(
        parse_ctr_images(CTR_K8S).unwrap(),
        pairs(&[
            ("127.0.0.1:5000/demo:1", DEMO),
            ("docker.io/library/multi:latest", MULTI_INDEX),
            ("test.local/exp/a:1", A),
        ])
    );
}

#[test]
fn ctr_tables_laid_out_otherwise_are_refused() {
    let err = parse_ctr_images("").unwrap_err();
    assert!(err.contains("no header"), "{err}");
    let err = parse_ctr_images(&CTR_DEFAULT.replacen("TYPE", "KIND", 1)).unwrap_err();
    assert!(err.contains("does not begin `REF TYPE DIGEST`"), "{err}");
    let err = parse_ctr_images(&CTR_DEFAULT.replace(A, "sha256:abc")).unwrap_err();
    assert!(err.contains("\"sha256:abc\" for DIGEST"), "{err}");
    let err = parse_ctr_images(&format!("{CTR_DEFAULT}lonely\n")).unwrap_err();
    assert!(err.contains("has no REF, TYPE and DIGEST"), "{err}");
}

/// podman 4.3 prints an image once per name, each entry with all its names; a dangling image
/// has no Names. Regression guard: RepoDigests lists the index's digest first, and the digest
/// wanted is the platform manifest's (`Digest`).
#[test]
fn podman_images_give_each_name_once_with_the_manifest_digest() {
    assert!(PODMAN.contains(&format!("docker.io/library/multi@{MULTI_INDEX}")), "the fixture has it");
    let rows = parse_podman_images(PODMAN.as_bytes()).unwrap();
    let want: Vec<(String, Option<String>)> =
        ["docker.io/library/multi:latest", "test.local/exp/a:1", "test.local/exp/a:2"]
            .iter()
            .map(|n| (n.to_string(), Some(A.to_string())))
            .collect();
    assert_eq!(rows, want);
}

#[test]
fn podman_without_digest_falls_back_to_the_names_repo_digest() {
    let json = format!(
        r#"[{{"Names": ["127.0.0.1:5000/demo:1", "other.example/x:2"], "Digest": "",
             "RepoDigests": ["elsewhere/y@{A}", "127.0.0.1:5000/demo@{DEMO}"]}},
           {{"Names": null, "RepoDigests": null}}, {{"Id": "x"}}]"#
    );
    assert_eq!(
        parse_podman_images(json.as_bytes()).unwrap(),
        [("127.0.0.1:5000/demo:1".to_string(), Some(DEMO.to_string())), ("other.example/x:2".to_string(), None)]
    );
    assert_eq!(parse_podman_images(b"[]").unwrap(), []);
    assert!(parse_podman_images(b"Error: no store").is_err());
    assert!(parse_podman_images(br#"[{"Names": "x"}]"#).is_err(), "Names is a list");
}

#[test]
fn repository_and_digest_syntax() {
    assert_eq!(repository("127.0.0.1:5000/demo:1"), "127.0.0.1:5000/demo");
    assert_eq!(repository("127.0.0.1:5000/demo"), "127.0.0.1:5000/demo");
    assert_eq!(repository("docker.io/library/busybox:latest"), "docker.io/library/busybox");
    assert_eq!(repository(&format!("docker.io/library/busybox@{A}")), "docker.io/library/busybox");
    assert!(is_digest(A));
    assert!(is_digest(&format!("sha512:{}", "0".repeat(128))));
    assert!(!is_digest(&A.to_uppercase().replace("SHA256", "sha256")));
    assert!(!is_digest("sha256:abc") && !is_digest("md5:00") && !is_digest("test.local/exp/a:1"));
}

#[test]
fn unique_references_drop_the_store_and_repeats() {
    let img =
        |store: Store, r: &str, d: Option<&str>| NodeImage { store, reference: r.into(), digest: d.map(String::from) };
    let ns = |n: &str| Store::Containerd { namespace: n.into() };
    let images = [
        img(ns("k8s.io"), "b:1", Some(A)),
        img(ns("default"), "b:1", Some(A)),
        img(Store::Podman, "b:1", Some(A)),
        img(Store::Podman, "b:1", Some(DEMO)),
        img(Store::Podman, "a:1", None),
    ];
    assert_eq!(
        unique_references(&images),
        [
            ("a:1".to_string(), None),
            ("b:1".to_string(), Some(DEMO.to_string())),
            ("b:1".to_string(), Some(A.to_string()))
        ]
    );
    assert_eq!(ns("k8s.io").to_string(), "containerd namespace k8s.io");
}

fn sh(script: &str, timeout: Duration) -> Result<Vec<u8>, ImagesError> {
    let args: Vec<OsString> = vec!["-c".into(), script.into()];
    run(StoreKind::Podman, Path::new("/bin/sh"), &args, timeout)
}

#[test]
fn a_failing_command_reports_its_status_and_stderr() {
    assert_eq!(sh("echo hello", Duration::from_secs(10)).unwrap(), b"hello\n");
    let err =
        sh("echo out; echo 'Error: no such store' >&2; echo more >&2; exit 3", Duration::from_secs(10)).unwrap_err();
    assert!(matches!(&err, ImagesError::Failed { status, .. } if status.code() == Some(3)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "podman: `/bin/sh -c echo out; echo 'Error: no such store' >&2; echo more >&2; exit 3` failed (exit status: 3): Error: no such store; more"
    );
    assert!(!err.is_absent());
}

/// The child and a grandchild holding its pipes are both killed at the timeout.
#[test]
fn a_hung_command_is_killed_with_its_children_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let start = Instant::now();
    let err =
        sh(&format!("echo starting >&2; sleep 60 & echo $! > {}; wait", pidfile.display()), Duration::from_millis(500))
            .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    assert!(matches!(&err, ImagesError::TimedOut { stderr, .. } if stderr == "starting"), "{err:?}");
    assert!(err
        .to_string()
        .contains("did not finish within 500ms and was killed: starting; check that podman answers"));
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let stat = format!("/proc/{}/stat", pid.trim());
    let gone = || std::fs::read_to_string(&stat).map(|s| s.contains(") Z ")).unwrap_or(true);
    let wait = Instant::now();
    while !gone() {
        assert!(wait.elapsed() < Duration::from_secs(5), "the grandchild sleep {} still runs", pid.trim());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_command_that_closes_its_pipes_but_stays_is_killed_too() {
    let start = Instant::now();
    let err = sh("exec >/dev/null 2>&1; sleep 60", Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, ImagesError::TimedOut { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn output_past_the_limit_is_refused() {
    let err = sh("exec yes", Duration::from_secs(60)).unwrap_err();
    assert!(matches!(err, ImagesError::TooMuchOutput { .. }), "{err:?}");
    // stderr is read (so the child never blocks on it) but only its start is kept.
    let err = sh("head -c 1000000 /dev/zero | tr '\\0' x >&2; exit 1", Duration::from_secs(60)).unwrap_err();
    assert!(matches!(&err, ImagesError::Failed { stderr, .. } if stderr.len() == MAX_STDERR), "{err:?}");
}

#[test]
fn absent_stores_are_problems_not_failures() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let listing = list(&Sources {
        containerd_address: Some(dir.path().join("containerd.sock")),
        podman: Some(dir.path().join("podman")),
        ..Sources::default()
    });
    assert!(start.elapsed() < Duration::from_secs(5), "no dial timeout for a missing socket");
    assert!(listing.images.is_empty());
    let [containerd, podman] = &listing.problems[..] else { panic!("{:?}", listing.problems) };
    assert!(containerd.is_absent() && containerd.store() == StoreKind::Containerd, "{containerd:?}");
    assert!(containerd.to_string().starts_with("containerd: no socket at "), "{containerd}");
    assert!(matches!(podman, ImagesError::NotInstalled { .. }) && podman.store() == StoreKind::Podman, "{podman:?}");
    assert!(podman.to_string().ends_with("is not installed; install it, or give its path"), "{podman}");
    let none = list(&Sources { containerd_address: None, podman: None, ..Sources::default() });
    assert!(none.images.is_empty() && none.problems.is_empty());
}
