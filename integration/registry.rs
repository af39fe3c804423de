//! Registry distribution end to end, everything real: CI seals an image archive, pushes the
//! image with skopeo and the seal with `rootseal push` to a registry of the test's own (Debian's
//! docker-registry, plain HTTP or TLS with basic auth, registry_env.rs); a fresh node that has
//! only the trusted public key and a `[registry]` config pulls the image (ctr, podman), runs
//! `rootseal sync`, and then runs it under runc, containerd (rootseal-runtime) and podman
//! (hooks.d), where the same starts were blocked before the sync. Also `pull`'s exit codes, the
//! incremental sync, what other OCI tools see of the artifact, and that the hook and `check`
//! never open a network connection.
//!
//! Every test has its own registry, containerd, podman store, keys and node config: they run
//! in parallel.

#[path = "registry_fixture.rs"]
mod fixture;

use crate::registry_env::{ctr_pull, write_auth_json, Registry};
use crate::util::*;
use fixture::*;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const SEAL_ARTIFACT_TYPE: &str = "application/vnd.rootseal.seal.v1+json";
const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// The issue's "done when", over `registry`: CI pushes the image and its seal; a fresh node
/// (only the public key, an empty seal store, `[registry]`) pulls the image into containerd
/// (two namespaces) and podman, is blocked at every start, syncs, and then runs it under
/// runc, containerd and podman. Returns the node, the image and the bytes of the seal CI made
/// (CI's temp dir is gone by then).
fn fresh_node_runs_the_image_after_sync(registry: &Registry, creds_before_sync: bool) -> (Node, Image, Vec<u8>) {
    let t0 = Instant::now();
    let ci = Ci::new(registry);
    let motd = format!("hello from {}\n", registry.host());
    let image = ci.push_image(registry, "app/web:1", &motd);
    let seal = ci.env.path("web.seal.json");
    // `seal --push`: CI seals and stores the seal next to the image in one step.
    let (out, _) = ci.env.expect(
        0,
        [
            OsStr::new("seal"),
            image.archive.as_os_str(),
            OsStr::new("--key"),
            ci.key.as_os_str(),
            OsStr::new("--name"),
            OsStr::new(&image.reference),
            OsStr::new("--created"),
            OsStr::new(&ago(60)),
            OsStr::new("--out"),
            seal.as_os_str(),
            OsStr::new("--push"),
            OsStr::new(&image.reference),
        ],
    );
    artifact_of(&out, &image);
    eprintln!("CI side (build, skopeo push, seal --push) took {:?}", t0.elapsed());

    let t1 = Instant::now();
    let node = Node::new(registry, &ci.public, creds_before_sync);
    node.pull(registry, "app/web:1");
    eprintln!("node ready (containerd, two ctr pulls, podman pull) in {:?}", t1.elapsed());

    // Before the sync: no seal, every start is blocked (enforce).
    let bundle = node.runc_bundle(&image, node.hook());
    assert_blocked("runc", &bundle.run(), &motd);
    assert_blocked("containerd", &node.run_containerd(&image), &motd);
    assert_blocked("podman", &node.run_podman(&image), &motd);
    drop(bundle);
    (node, image, std::fs::read(&seal).unwrap())
}

fn assert_synced(node: &Node, image: &Image, seal: &[u8]) {
    let t = Instant::now();
    let o = node.sync();
    eprintln!("sync took {:?}: {}", t.elapsed(), summary(&o));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // containerd's default and k8s.io namespaces and podman hold one image under three names
    // (`:1` in all, `:k8s` and `:podman` in one each): three references, each pinned to the
    // digest the node has, one seal.
    assert!(summary(&o).starts_with("sync: 3 image(s): 0 unchanged, 1 new seal(s), 0 failed;"), "{}", text(&o));
    for tag in ["1", "k8s", "podman"] {
        let pinned = format!("{}@{}: stored seal", retag(&image.reference, tag), image.digest);
        assert!(stdout(&o).contains(&pinned), "{pinned}: {}", text(&o));
    }
    assert_eq!(stored_seals(&node.env), [seal], "the seal CI made is in the seal store");
    let synced: Vec<_> = events(&node.env).into_iter().filter(|e| e["event"] == "seal-synced").collect();
    assert_eq!(synced.len(), 1, "{synced:?}");
    assert_eq!(synced[0]["source"], "sync");
    let repository = image.reference.rsplit_once(':').unwrap().0;
    assert!(synced[0]["image"].as_str().unwrap().starts_with(repository), "{}", synced[0]);
}

#[test]
fn a_fresh_node_runs_an_image_from_a_plain_registry_under_runc_containerd_and_podman_after_sync() {
    let t0 = Instant::now();
    let site = Env::new();
    let registry = Registry::plain(site.tmp.path());
    let (node, image, seal) = fresh_node_runs_the_image_after_sync(&registry, true);
    assert_synced(&node, &image, &seal);
    let motd = format!("hello from {}\n", registry.host());
    let bundle = node.runc_bundle(&image, node.hook());
    assert_ran("runc", &bundle.run(), &motd);
    assert_ran("containerd", &node.run_containerd(&image), &motd);
    assert_ran("podman", &node.run_podman(&image), &motd);
    drop(bundle);
    eprintln!("plain registry end to end: {:?}", t0.elapsed());
}

/// The same over TLS with basic auth: `certs_dir` holds the registry's CA, `auth_file` its
/// credentials. Without credentials the sync fails (exit 1, a `sync-failed` event, the fix
/// named) and stores nothing; with them it syncs and the image runs.
#[test]
fn a_fresh_node_syncs_from_a_tls_registry_with_auth_and_runs_the_image() {
    let t0 = Instant::now();
    let site = Env::new();
    let registry = Registry::tls_auth(site.tmp.path(), "ci", "s3cret-pass");
    let (node, image, seal) = fresh_node_runs_the_image_after_sync(&registry, false);
    let auth = node.env.path("auth.json");

    let o = node.sync();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(summary(&o).contains("3 image(s): 0 unchanged, 0 new seal(s), 3 failed"), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("registry {} refused access to app/web (401)", registry.host()))
            && err.contains(&format!("{} has no credentials", auth.display())),
        "{err}"
    );
    assert!(stored_seals(&node.env).is_empty());
    assert!(events(&node.env).iter().any(|e| e["event"] == "sync-failed"), "{:?}", events(&node.env));

    write_auth_json(&auth, &registry.host(), "ci", "s3cret-pass");
    assert_synced(&node, &image, &seal);
    let motd = format!("hello from {}\n", registry.host());
    assert_ran("containerd", &node.run_containerd(&image), &motd);
    assert_ran("podman", &node.run_podman(&image), &motd);
    let bundle = node.runc_bundle(&image, node.hook());
    assert_ran("runc", &bundle.run(), &motd);
    drop(bundle);
    assert!(registry.log().contains("auth.user.name=ci"), "the sync authenticated");
    eprintln!("TLS registry end to end: {:?}", t0.elapsed());
}

/// `pull` exits 1 when the only seal is signed by a key the node does not trust, and leaves the
/// seal store as it was; 0 once a trusted seal is there (again 0, "already there", on a second
/// pull); 2 for an image the registry does not have.
#[test]
fn pull_exits_0_with_a_trusted_seal_and_1_when_only_an_untrusted_key_sealed_the_image() {
    let site = Env::new();
    let registry = Registry::plain(site.tmp.path());
    let ci = Ci::new(&registry);
    let (rogue, _) = ci.env.keygen("rogue");
    let trusted = ci.push_image(&registry, "app/trusted:1", "trusted image\n");
    let trusted_seal = ci.seal(&trusted, &ci.key, &ago(60));
    ci.push(&trusted, &trusted_seal);
    let other = ci.push_image(&registry, "app/other:1", "other image\n");
    ci.push(&other, &ci.seal(&other, &rogue, &ago(60)));

    let node = bare_node(&registry, &ci.public, &[]);
    let pull = |reference: &str| node.run(["pull", reference]);

    let before = seal_store_snapshot(&node);
    let o = pull(&other.reference);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stdout(&o).contains("0 seal(s) stored or present, 1 skipped"), "{}", text(&o));
    assert!(stderr(&o).contains("is not signed by any trusted key"), "{}", text(&o));
    assert_eq!(seal_store_snapshot(&node), before, "nothing written");

    let o = pull(&trusted.reference);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("stored seal") && stdout(&o).contains("signed by ci-2026"), "{}", text(&o));
    assert_eq!(stored_seals(&node), [std::fs::read(&trusted_seal).unwrap()]);
    let o = pull(&trusted.reference);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("(already there)"), "{}", text(&o));

    // The untrusted one again, with a trusted seal in the store: still 1, still untouched.
    let before = seal_store_snapshot(&node);
    assert_eq!(pull(&other.reference).status.code(), Some(1));
    assert_eq!(seal_store_snapshot(&node), before);

    let o = pull(&registry.reference("app/missing:1"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("is not in the registry"), "{}", text(&o));
}

/// The sync remembers each image's fingerprint: a second run finds it unchanged and fetches
/// no seal (the registry's access log shows no blob and no artifact read); a new seal pushed
/// for the same image changes the fingerprint and is stored on the next run, replacing the
/// older seal of the same tree.
#[test]
fn a_second_sync_fetches_nothing_and_the_next_stores_a_newly_pushed_seal() {
    let site = Env::new();
    let registry = Registry::plain(site.tmp.path());
    let ci = Ci::new(&registry);
    let image = ci.push_image(&registry, "app/inc:1", "incremental\n");
    let first = ci.seal(&image, &ci.key, &ago(7200));
    let first_artifact = ci.push(&image, &first);
    let node = bare_node(&registry, &ci.public, &[&image.reference]);
    let sync = || node.run(["sync", "--verbose"]);

    let o = sync();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(summary(&o).starts_with("sync: 1 image(s): 0 unchanged, 1 new seal(s), 0 failed;"), "{}", text(&o));
    assert_eq!(stored_seals(&node), [std::fs::read(&first).unwrap()]);

    let mark = registry.log().len();
    let o = sync();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(summary(&o).starts_with("sync: 1 image(s): 1 unchanged, 0 new seal(s), 0 failed;"), "{}", text(&o));
    assert!(stdout(&o).contains(&format!("{}: unchanged", image.reference)), "{}", text(&o));
    let log = registry.log()[mark..].to_string();
    let reads: Vec<&str> = log.lines().filter(|l| l.contains("\"GET /v2/") || l.contains("\"HEAD /v2/")).collect();
    assert!(!reads.is_empty(), "the sync asked the registry: {log}");
    assert!(
        reads.iter().all(|l| !l.contains("/blobs/") && !l.contains(&first_artifact)),
        "an unchanged image fetches no seal: {reads:#?}"
    );

    let second = ci.seal(&image, &ci.key, &ago(3600));
    assert_ne!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    ci.push(&image, &second);
    let o = sync();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(summary(&o).starts_with("sync: 1 image(s): 0 unchanged, 1 new seal(s), 0 failed;"), "{}", text(&o));
    assert_eq!(stored_seals(&node), [std::fs::read(&second).unwrap()], "the newer seal is the one stored");
    let o = sync();
    assert!(summary(&o).starts_with("sync: 1 image(s): 1 unchanged, 0 new seal(s), 0 failed;"), "{}", text(&o));
    assert_eq!(stored_seals(&node), [std::fs::read(&second).unwrap()]);
}

/// `skopeo inspect --raw NAME` against a plain-HTTP registry, parsed.
fn skopeo_raw(name: &str) -> serde_json::Value {
    let raw = sh(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", name]));
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{name}: {e}: {raw}"))
}

/// Interop: skopeo reads the referrers index (our entry beside another tool's, which our push
/// kept) and the artifact (its subject is the image, its layer the DSSE envelope CI made).
#[test]
fn other_oci_tools_see_the_seal_artifact_and_a_push_keeps_their_referrers() {
    let site = Env::new();
    let registry = Registry::plain(site.tmp.path());
    let ci = Ci::new(&registry);
    let image = ci.push_image(&registry, "app/interop:1", "interop\n");

    // Another tool (an SBOM generator, say) referred to the image first, under the tag schema.
    let head = registry
        .request(
            "HEAD",
            &format!("/v2/{}/manifests/{}", image.repo, image.digest),
            None,
            &[("Accept", OCI_MANIFEST)],
            b"",
        )
        .unwrap();
    let image_size: u64 = head.header("Content-Length").unwrap().parse().unwrap();
    let empty = registry.put_blob(&image.repo, b"{}");
    let sbom = br#"{"spdxVersion":"SPDX-2.3","name":"interop"}"#;
    let sbom_digest = registry.put_blob(&image.repo, sbom);
    let theirs = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sbom_digest, "size": sbom.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": image_size},
    }))
    .unwrap();
    let theirs_digest = format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(&theirs));
    assert_eq!(registry.put_manifest(&image.repo, &theirs_digest, OCI_MANIFEST, &theirs).status, 201);
    let their_entry = serde_json::json!({
        "mediaType": OCI_MANIFEST, "digest": theirs_digest, "size": theirs.len(),
        "artifactType": "application/spdx+json",
        "annotations": {"org.example.tool": "sbom-maker"},
    });
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [their_entry],
        "annotations": {"org.example.index": "kept"},
    }))
    .unwrap();
    let r = registry.put_manifest(&image.repo, &image.referrers_tag(), OCI_INDEX, &index);
    assert_eq!(r.status, 201, "{r:?}");

    let seal = ci.seal(&image, &ci.key, &ago(60));
    let artifact = ci.push(&image, &seal);
    // A second push of the same seal adds nothing.
    assert_eq!(ci.push(&image, &seal), artifact);

    let index = skopeo_raw(&image.docker(&registry, &format!(":{}", image.referrers_tag())));
    assert_eq!(index["mediaType"], OCI_INDEX, "{index}");
    assert_eq!(index["annotations"]["org.example.index"], "kept", "{index}");
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "theirs and ours, each once: {index}");
    assert_eq!(entries[0], their_entry, "their entry is kept as it was");
    let ours = &entries[1];
    assert_eq!(ours["artifactType"], SEAL_ARTIFACT_TYPE, "{ours}");
    assert_eq!(ours["digest"], artifact.as_str(), "{ours}");
    assert_eq!(ours["mediaType"], OCI_MANIFEST, "{ours}");

    let m = skopeo_raw(&image.docker(&registry, &format!("@{artifact}")));
    assert_eq!(m["artifactType"], SEAL_ARTIFACT_TYPE, "{m}");
    assert_eq!(m["subject"]["digest"], image.digest.as_str(), "{m}");
    assert_eq!(m["subject"]["mediaType"], OCI_MANIFEST, "{m}");
    assert_eq!(m["subject"]["size"], image_size, "{m}");
    assert_eq!(m["config"]["mediaType"], EMPTY_MEDIA_TYPE, "{m}");
    assert_eq!(m["layers"].as_array().unwrap().len(), 1, "{m}");
    assert_eq!(m["layers"][0]["mediaType"], DSSE_MEDIA_TYPE, "{m}");
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    let blob = registry.get(&format!("/v2/{}/blobs/{layer}", image.repo), None).unwrap();
    assert_eq!(blob.body, std::fs::read(&seal).unwrap(), "the layer is the seal CI made, byte for byte");

    // Our pull reads our entry and leaves theirs alone (not a seal: not fetched, not skipped).
    let node = bare_node(&registry, &ci.public, &[]);
    let o = node.run(["pull", &image.reference]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("1 seal(s) stored or present, 0 skipped"), "{}", text(&o));
}

/// `strace -f -o TRACE -e trace=socket,connect` before `argv`.
fn traced(trace: &Path, argv: &[&OsStr]) -> Command {
    let mut c = Command::new("strace");
    c.args(["-f", "-e", "trace=socket,connect", "-o"]).arg(trace).args(argv).stdin(Stdio::null());
    c
}

/// The `socket(...)` calls of a trace that opened an IPv4 or IPv6 socket.
fn inet_sockets(trace: &Path) -> Vec<String> {
    let t = std::fs::read_to_string(trace).unwrap_or_else(|e| panic!("{}: {e}", trace.display()));
    t.lines().filter(|l| l.contains("AF_INET")).map(str::to_string).collect()
}

/// The hook (as runc runs it) and `check` read only local files: traced, neither opens an
/// IPv4/IPv6 socket, while the same tracing of `pull` does (the method sees one); and `check`
/// verifies in a network namespace without interfaces, where `pull` cannot reach the registry.
#[test]
fn the_hook_and_check_open_no_network_connection() {
    let site = Env::new();
    let registry = Registry::plain(site.tmp.path());
    let ci = Ci::new(&registry);
    let motd = "offline verification\n";
    let image = ci.push_image(&registry, "app/offline:1", motd);
    ci.push(&image, &ci.seal(&image, &ci.key, &ago(60)));
    let node = Node::new(&registry, &ci.public, false);
    let o = ctr_pull(&node.containerd, &registry, "app/offline:1");
    assert!(o.status.success(), "ctr pull: {}", text(&o));
    let cfg = node.env.config_path();

    // The control: pull, traced, opens an IPv4 socket to the registry.
    let trace = node.env.path("pull.trace");
    let o = traced(
        &trace,
        &[bin().as_os_str(), OsStr::new("--config"), cfg.as_os_str(), OsStr::new("pull"), OsStr::new(&image.reference)],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        !inet_sockets(&trace).is_empty(),
        "the trace shows pull's socket: {}",
        std::fs::read_to_string(&trace).unwrap()
    );

    // The hook, as runc runs it, under strace.
    let hook_trace = node.env.path("hook.trace");
    let mut args: Vec<OsString> = ["strace", "-f", "-e", "trace=socket,connect", "-o"].map(OsString::from).into();
    args.push(hook_trace.clone().into());
    args.push(bin().into());
    args.extend(node.hook().args.into_iter().skip(1));
    let strace = PathBuf::from(sh(Command::new("sh").args(["-c", "command -v strace"])).trim());
    let bundle = node.runc_bundle(&image, Hook { path: strace, args });
    assert_ran("runc with a traced hook", &bundle.run(), motd);
    let hook_calls = std::fs::read_to_string(&hook_trace).unwrap();
    assert!(hook_calls.contains("+++ exited with 0 +++"), "the traced hook ran and passed: {hook_calls}");
    assert_eq!(inet_sockets(&hook_trace), Vec::<String>::new(), "the hook opened a network socket");

    let check_trace = node.env.path("check.trace");
    let o = traced(
        &check_trace,
        &[bin().as_os_str(), OsStr::new("--config"), cfg.as_os_str(), OsStr::new("check"), bundle.dir.as_os_str()],
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("rootseal: verified container"), "{}", text(&o));
    assert_eq!(inet_sockets(&check_trace), Vec::<String>::new(), "check opened a network socket");

    // No network at all: check still verifies; pull cannot reach the registry.
    let offline = |args: &[&OsStr]| {
        Command::new("unshare")
            .arg("--net")
            .arg(bin())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = offline(&[OsStr::new("check"), bundle.dir.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("rootseal: verified container"), "{}", text(&o));
    let o = offline(&[OsStr::new("pull"), OsStr::new(&image.reference)]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains(&format!("cannot reach registry {}", registry.host())), "{}", text(&o));
    drop(bundle);
}

// --- scan attestations next to the seal ---------------------------------------------------------

const SCAN_ARTIFACT_TYPE: &str = "application/vnd.rootseal.scan.v1+json";

/// The node's scan policy (docs/scan.md): a scan required, High and above block, only the
/// `scanner` key's scans count.
const SCAN_POLICY: &str = "[scan]\nrequire = true\nmax_severity = \"high\"\nkeys = [\"scanner\"]\n";

/// CI with a scan key besides its seal key; an image pushed with its seal (`rootseal push`).
struct ScanCi {
    ci: Ci,
    image: Image,
    seal: PathBuf,
    scanner: PathBuf,
    scanner_public: PathBuf,
}

impl ScanCi {
    fn new(registry: &Registry, repo_tag: &str, motd: &str) -> ScanCi {
        let ci = Ci::new(registry);
        let (scanner, scanner_public) = ci.env.keygen("scanner");
        let image = ci.push_image(registry, repo_tag, motd);
        let seal = ci.seal(&image, &ci.key, &ago(60));
        ci.push(&image, &seal);
        ScanCi { ci, image, seal, scanner, scanner_public }
    }

    /// Writes a Trivy report scanned `secs_ago` seconds ago with `vulns`, and runs `rootseal
    /// attest scan REPORT --key scanner.key (--seal SEAL | --image IMAGE) --out FILE --push
    /// IMAGE`; the pushed artifact's digest.
    fn attest_and_push(&self, secs_ago: u64, vulns: &[(&str, &str, &str)], by_image: bool) -> String {
        let n = next();
        let report = self.ci.env.path(&format!("trivy-{n}.json"));
        let created = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
        std::fs::write(&report, crate::scan::trivy_report(created, vulns)).unwrap();
        let out = self.ci.env.path(&format!("trivy-{n}.att.json"));
        let mut args: Vec<&OsStr> =
            vec![OsStr::new("attest"), OsStr::new("scan"), report.as_os_str(), OsStr::new("--key")];
        args.push(self.scanner.as_os_str());
        if by_image {
            args.extend([OsStr::new("--image"), OsStr::new(&self.image.reference)]);
        } else {
            args.extend([OsStr::new("--seal"), self.seal.as_os_str()]);
        }
        args.extend([OsStr::new("--out"), out.as_os_str(), OsStr::new("--push"), OsStr::new(&self.image.reference)]);
        let (_, err) = self.ci.env.expect(0, args);
        let tree = rootseal::seal::Seal::parse(&std::fs::read(&self.seal).unwrap()).unwrap().digest.to_string();
        assert!(err.contains(&format!("of seal {tree}")), "the scan is of the pushed seal's tree: {err}");
        let line =
            err.lines().find(|l| l.starts_with("pushed scan attestation to ")).unwrap_or_else(|| panic!("{err}"));
        assert!(
            line.contains(&format!("subject {}", self.image.digest))
                && line.contains(&format!("indexed by tag {}", self.image.referrers_tag())),
            "{line}"
        );
        let artifact = line.split('@').nth(1).and_then(|s| s.split(' ').next()).unwrap().to_string();
        assert!(artifact.starts_with("sha256:") && artifact.len() == 71, "{line}");
        artifact
    }
}

/// A node (its own containerd) that trusts the seal key and the scan key, requires a scan,
/// and has pulled the image into containerd's default namespace.
fn scan_node(registry: &Registry, site: &ScanCi) -> Node {
    let node = Node::new(registry, &site.ci.public, false);
    node.env.expect(0, [OsStr::new("trust"), OsStr::new("add"), site.scanner_public.as_os_str()]);
    let cfg = node.env.config_path();
    let config = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{config}\n{SCAN_POLICY}")).unwrap();
    let o = ctr_pull(&node.containerd, registry, &site.image.repo_tag());
    assert!(o.status.success(), "ctr pull: {}", text(&o));
    node
}

impl Image {
    /// `repo:tag`, as the registry helpers take it.
    fn repo_tag(&self) -> String {
        format!("{}:{}", self.repo, self.reference.rsplit_once(':').unwrap().1)
    }
}

/// The files under `<seal_dir>/attestations/scans/`.
fn stored_scans(env: &Env) -> Vec<String> {
    let dir = env.path("seals/attestations/scans");
    listing(&dir).into_iter().filter(|rel| dir.join(rel).is_file()).collect()
}

/// The node's last hook event: blocked, its first violation `code`.
fn assert_hook_blocked_with(node: &Node, code: &str) {
    let hook: Vec<_> = events(&node.env).into_iter().filter(|e| e["source"] == "hook").collect();
    let e = hook.last().unwrap_or_else(|| panic!("no hook event: {:?}", events(&node.env)));
    assert_eq!(e["event"], "blocked", "{e}");
    assert_eq!(e["violations"][0]["code"], code, "{e}");
}

/// CI pushes the image, its seal (`rootseal push`) and a clean scan attestation (`attest scan
/// --seal --push`); a node that requires a scan is blocked without the seal, syncs both (the
/// seal into the seal store, the scan under attestations/scans/) and then runs the image under
/// runc. `pull` finds both there.
#[test]
fn a_scan_attestation_pushed_next_to_the_seal_is_synced_and_the_image_runs() {
    let t0 = Instant::now();
    let site = Env::new();
    let registry = Registry::plain(site.tmp.path());
    let motd = "scanned and sealed\n";
    let ci = ScanCi::new(&registry, "app/scanned:1", motd);
    let scan = ci.attest_and_push(0, &[], false);

    // The referrers index lists the seal and the scan, each under its own artifact type.
    let index = skopeo_raw(&ci.image.docker(&registry, &format!(":{}", ci.image.referrers_tag())));
    let types: Vec<&str> =
        index["manifests"].as_array().unwrap().iter().map(|m| m["artifactType"].as_str().unwrap()).collect();
    assert_eq!(types, [SEAL_ARTIFACT_TYPE, SCAN_ARTIFACT_TYPE], "{index}");
    let m = skopeo_raw(&ci.image.docker(&registry, &format!("@{scan}")));
    assert_eq!(m["artifactType"], SCAN_ARTIFACT_TYPE, "{m}");
    assert_eq!(m["subject"]["digest"], ci.image.digest.as_str(), "{m}");
    assert_eq!(m["layers"][0]["mediaType"], DSSE_MEDIA_TYPE, "{m}");
    eprintln!("CI side (image, seal, scan) took {:?}", t0.elapsed());

    let node = scan_node(&registry, &ci);
    let bundle = node.runc_bundle(&ci.image, node.hook());
    assert_blocked("runc before the sync", &bundle.run(), motd);

    let t = Instant::now();
    let o = node.sync();
    eprintln!("sync took {:?}: {}", t.elapsed(), summary(&o));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(summary(&o).starts_with("sync: 1 image(s): 0 unchanged, 1 new seal(s), 0 failed;"), "{}", text(&o));
    assert!(stdout(&o).contains("stored scan attestation") && stdout(&o).contains("signed by scanner"), "{}", text(&o));
    assert_eq!(stored_seals(&node.env), [std::fs::read(&ci.seal).unwrap()], "the seal CI made is filed");
    assert!(!stored_scans(&node.env).is_empty(), "the scan is filed under attestations/scans/");

    assert_ran("runc after the sync", &bundle.run(), motd);

    // `pull` finds both already there.
    let o = node.env.run(["pull", &ci.image.reference]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stdout(&o).contains("1 seal(s) stored or present, 0 skipped")
            && stdout(&o).contains("1 scan attestation(s) stored or present"),
        "{}",
        text(&o)
    );
    drop(bundle);
    eprintln!("scan attestation via the registry end to end: {:?}", t0.elapsed());
}

/// `attest scan --image` (no seal file: the newest seal in the registry) pushes a clean scan,
/// the node syncs and runs the image; a later scan with a Critical finding, pushed the same way,
/// blocks the start after the next sync (scan-findings).
#[test]
fn a_newer_scan_with_a_critical_finding_pushed_by_image_blocks_after_the_next_sync() {
    let t0 = Instant::now();
    let site = Env::new();
    let registry = Registry::plain(site.tmp.path());
    let motd = "rescanned\n";
    let ci = ScanCi::new(&registry, "app/rescanned:1", motd);
    ci.attest_and_push(600, &[], true);

    let node = scan_node(&registry, &ci);
    let bundle = node.runc_bundle(&ci.image, node.hook());
    assert_blocked("runc before the sync", &bundle.run(), motd);
    let o = node.sync();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(stored_seals(&node.env), [std::fs::read(&ci.seal).unwrap()]);
    assert_ran("runc with the clean scan", &bundle.run(), motd);

    ci.attest_and_push(0, &[("CVE-2023-45853", "CRITICAL", "zlib1g")], true);
    let t = Instant::now();
    let o = node.sync();
    eprintln!("second sync took {:?}: {}", t.elapsed(), summary(&o));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(summary(&o).starts_with("sync: 1 image(s): 0 unchanged, 0 new seal(s), 0 failed;"), "{}", text(&o));
    assert!(stdout(&o).contains("(1 finding(s)"), "the new scan is stored: {}", text(&o));
    assert!(stored_scans(&node.env).len() >= 2, "{:?}", stored_scans(&node.env));

    let r = bundle.run();
    assert!(!r.status.success() && !stdout(&r).contains(motd.trim()), "should be blocked: {}", text(&r));
    let err = stderr(&r);
    assert!(err.contains("rootseal: blocked container") && err.contains("CVE-2023-45853"), "{}", text(&r));
    assert_hook_blocked_with(&node, "scan-findings");
    drop(bundle);
    eprintln!("newer critical scan via the registry end to end: {:?}", t0.elapsed());
}
