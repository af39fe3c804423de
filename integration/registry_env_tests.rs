//! The registry fixture's own tests: a push to each kind of registry pulls with its digest into
//! containerd and podman, the TLS registry refuses what it should, and distribution 2.8 takes
//! what the referrers tag schema pushes.

use super::*;
use crate::images::{busybox_layer, oci_archive, Compression};
use crate::util::Env;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A one-layer busybox OCI archive in the test's dir.
fn busybox_archive(env: &Env) -> PathBuf {
    oci_archive(env.tmp.path(), "test.local/rootseal/registry:1", vec![(busybox_layer().finish(), Compression::Gzip)])
}

/// Push, read back with skopeo, pull with ctr and podman: every store lists the pushed digest.
fn push_and_pull_everywhere(env: &Env, registry: &Registry) {
    let t0 = Instant::now();
    let archive = busybox_archive(env);
    let digest = push_archive(registry, &archive, "smoke/busybox:1");
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{digest}");

    let mut inspect = Command::new("skopeo");
    inspect.args(["inspect", "--raw"]);
    match (registry.cert_dir(), registry.creds()) {
        (Some(d), Some((u, p))) => {
            inspect.arg("--cert-dir").arg(d).arg("--creds").arg(format!("{u}:{p}"));
        }
        _ => {
            inspect.arg("--tls-verify=false");
        }
    }
    let raw = sh(inspect.arg(format!("docker://{}", registry.reference("smoke/busybox:1"))));
    assert_eq!(format!("sha256:{:x}", sha2::Sha256::digest(raw.as_bytes())), digest, "{raw}");
    let manifest: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(manifest["mediaType"], OCI_MANIFEST, "{raw}");

    let containerd = Containerd::start(env);
    let o = ctr_pull(&containerd, registry, "smoke/busybox:1");
    assert!(o.status.success(), "ctr pull: {}\nregistry log:\n{}", text(&o), registry.log());
    assert_eq!(containerd.image_digest(&registry.reference("smoke/busybox:1")).as_deref(), Some(digest.as_str()));

    let podman = Podman::new(env.tmp.path());
    let o = podman_pull(&podman, registry, "smoke/busybox:1");
    assert!(o.status.success(), "podman pull: {}\nregistry log:\n{}", text(&o), registry.log());
    assert_eq!(podman.image_digest(&registry.reference("smoke/busybox:1")).as_deref(), Some(digest.as_str()));
    eprintln!("push, inspect and two pulls took {:?}", t0.elapsed());
}

#[test]
fn an_image_pushed_to_a_plain_registry_pulls_with_its_digest_into_containerd_and_podman() {
    let env = Env::new();
    let t0 = Instant::now();
    let registry = Registry::plain(env.tmp.path());
    eprintln!("plain registry ready in {:?}", t0.elapsed());
    assert_eq!(registry.get("/v2/", None).unwrap().status, 200);
    push_and_pull_everywhere(&env, &registry);
}

#[test]
fn an_image_pushed_to_a_tls_registry_with_auth_pulls_with_its_digest_into_containerd_and_podman() {
    let env = Env::new();
    let t0 = Instant::now();
    let registry = Registry::tls_auth(env.tmp.path(), "ci", "s3cret-pass");
    eprintln!("TLS registry ready in {:?}", t0.elapsed());
    push_and_pull_everywhere(&env, &registry);
    // Every pull shows in the access log as an authenticated user.
    assert!(registry.log().contains("auth.user.name=ci"), "{}", registry.log());
}

#[test]
fn the_tls_registry_refuses_requests_without_valid_credentials() {
    let env = Env::new();
    let registry = Registry::tls_auth(env.tmp.path(), "ci", "s3cret-pass");
    let r = registry.get("/v2/", None).unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"rootseal-test\""), "{r:?}");
    assert_eq!(registry.get("/v2/", Some(("ci", "wrong"))).unwrap().status, 401);
    assert_eq!(registry.get("/v2/", registry.creds()).unwrap().status, 200);
    // The certs.d copy is the CA that verified the handshakes above.
    let ca = std::fs::read_to_string(registry.ca_pem_path().unwrap()).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(std::fs::read_to_string(registry.cert_dir().unwrap().join("ca.crt")).unwrap(), ca);
    // A client trusting another CA fails the handshake: the chain is really checked.
    let other = make_tls(&env.path("other"), "ci", "s3cret-pass");
    let err = tls_exchange(registry.port, &other.ca, b"GET /v2/ HTTP/1.0\r\n\r\n").unwrap_err();
    assert!(err.contains("verify"), "{err}");
    // podman without credentials is refused; with them in its auth.json (the format rootseal's
    // client reads too) it pulls.
    push_archive(&registry, &busybox_archive(&env), "smoke/busybox:1");
    let podman = Podman::new(env.tmp.path());
    let reference = registry.reference("smoke/busybox:1");
    let o = podman.pull(&reference, false, registry.cert_dir().as_deref(), None);
    assert!(!o.status.success() && text(&o).contains("unauthorized"), "{}", text(&o));
    write_auth_json(&podman.auth_file(), &registry.host(), "ci", "s3cret-pass");
    let o = podman.pull(&reference, false, registry.cert_dir().as_deref(), None);
    assert!(o.status.success(), "podman pull with auth.json: {}", text(&o));
}

/// What rootseal's client pushes under the referrers tag schema (OCI distribution spec 1.1,
/// "Pushing Manifests with Subject"): an artifact manifest with a custom artifactType, the
/// empty config and a DSSE layer, whose subject is the image; then an index of referrers
/// under the tag `sha256-<image digest hex>`. distribution 2.8 has no referrers API, so it
/// must take both as plain content; see the module comment for the rest.
#[test]
fn the_registry_takes_what_the_referrers_tag_schema_pushes() {
    let env = Env::new();
    for registry in [Registry::plain(env.tmp.path()), Registry::tls_auth(env.tmp.path(), "ci", "pw")] {
        let image = push_archive(&registry, &busybox_archive(&env), "app/web:1");
        let accept_manifest = [("Accept", OCI_MANIFEST)];
        let head = registry
            .request("HEAD", &format!("/v2/app/web/manifests/{image}"), registry.creds(), &accept_manifest, b"")
            .unwrap();
        let image_size: u64 = head.header("Content-Length").unwrap().parse().unwrap();

        let empty = registry.put_blob("app/web", b"{}");
        assert_eq!(empty, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        let envelope = br#"{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}"#;
        let layer = registry.put_blob("app/web", envelope);
        let artifact = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.rootseal.seal.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": layer, "size": envelope.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": image, "size": image_size},
            "annotations": {"org.opencontainers.image.created": "2026-12-01T00:00:00Z"},
        }))
        .unwrap();
        let artifact_digest = format!("sha256:{:x}", sha2::Sha256::digest(&artifact));
        let r = registry.put_manifest("app/web", &artifact_digest, OCI_MANIFEST, &artifact);
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(r.header("Docker-Content-Digest"), Some(artifact_digest.as_str()));
        assert_eq!(r.header("OCI-Subject"), None, "2.8 does not process subject");

        let tag = image.replace(':', "-");
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{
                "mediaType": OCI_MANIFEST, "digest": artifact_digest, "size": artifact.len(),
                "artifactType": "application/vnd.rootseal.seal.v1+json",
            }],
        }))
        .unwrap();
        let r = registry.put_manifest("app/web", &tag, OCI_INDEX, &index);
        assert_eq!(r.status, 201, "{r:?}");

        // Read back byte for byte, only with the OCI Accept header.
        let get =
            |path: &str, accept: &[(&str, &str)]| registry.request("GET", path, registry.creds(), accept, b"").unwrap();
        let r = get(&format!("/v2/app/web/manifests/{tag}"), &[("Accept", OCI_INDEX)]);
        assert_eq!((r.status, r.body.as_slice()), (200, index.as_slice()), "{r:?}");
        let r = get(&format!("/v2/app/web/manifests/{artifact_digest}"), &[("Accept", OCI_MANIFEST)]);
        assert_eq!((r.status, r.body.as_slice()), (200, artifact.as_slice()), "{r:?}");
        let r = get(&format!("/v2/app/web/manifests/{artifact_digest}"), &[]);
        assert_eq!(r.status, 404, "no OCI Accept, no OCI manifest: {r:?}");
        let r = get(&format!("/v2/app/web/referrers/{image}"), &[]);
        assert_eq!(r.status, 404, "no referrers API: {r:?}");

        // A manifest naming a blob that was never pushed is refused.
        let dangling = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": format!("sha256:{}", "0".repeat(64)), "size": 2},
            "layers": [],
        }))
        .unwrap();
        let r = registry.put_manifest("app/web", "dangling", OCI_MANIFEST, &dangling);
        assert!(r.status == 400 && r.text().contains("MANIFEST_BLOB_UNKNOWN"), "{r:?}");

        // Deletes are enabled, by digest only.
        let r = registry
            .request("DELETE", &format!("/v2/app/web/manifests/{artifact_digest}"), registry.creds(), &[], b"")
            .unwrap();
        assert_eq!(r.status, 202, "{r:?}");
        let r =
            registry.request("DELETE", &format!("/v2/app/web/manifests/{tag}"), registry.creds(), &[], b"").unwrap();
        assert_eq!(r.status, 400, "2.8 cannot delete a tag: {r:?}");
    }
}
