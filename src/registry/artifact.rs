//! The seal as an OCI artifact (image-spec 1.1 "Guidelines for Artifact Usage"), and the
//! referrers index of an image under the tag schema (distribution-spec 1.1 "Referrers Tag
//! Schema"), for registries without the referrers API.
//!
//! A seal artifact is an image manifest:
//! - `artifactType`: [`SEAL_ARTIFACT_TYPE`];
//! - `config`: the empty descriptor (`application/vnd.oci.empty.v1+json`, `{}`);
//! - one layer, the DSSE envelope as sealed ([`DSSE_MEDIA_TYPE`]);
//! - `subject`: the image manifest the seal was made from;
//! - annotations: `org.opencontainers.image.created` (the seal's signed creation time) and
//!   the seal's tree digest and name, so that a listing shows them without a fetch.

use serde_json::{json, Value};

pub const SEAL_ARTIFACT_TYPE: &str = "application/vnd.rootseal.seal.v1+json";
/// A signed scan attestation (docs/scan.md), referring to the image it scanned.
pub const SCAN_ARTIFACT_TYPE: &str = "application/vnd.rootseal.scan.v1+json";
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_BLOB: &[u8] = b"{}";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_SEAL_DIGEST: &str = "dev.rootseal.seal.digest";
pub const ANNOTATION_SEAL_NAME: &str = "dev.rootseal.seal.name";

/// Why an index or artifact manifest is not what rootseal reads.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{what} is not JSON: {source}")]
    Json { what: &'static str, source: serde_json::Error },
    #[error("not an OCI image manifest: {0}")]
    NotManifest(serde_json::Error),
    #[error("{0}")]
    Shape(&'static str),
    #[error("{0}")]
    NotASeal(String),
}

/// The media types a manifest GET accepts.
pub const ACCEPT_ANY: &[&str] = &[MANIFEST_MEDIA_TYPE, INDEX_MEDIA_TYPE, DOCKER_MANIFEST, DOCKER_LIST];

/// A content descriptor: media type, digest, size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desc {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Desc {
    fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// The seal artifact's manifest bytes.
pub fn seal_manifest(subject: &Desc, envelope: &Desc, created: &str, seal_digest: &str, seal_name: &str) -> Vec<u8> {
    manifest_for(SEAL_ARTIFACT_TYPE, subject, envelope, annotations(created, seal_digest, seal_name))
}

/// An artifact manifest of `artifact_type`: the empty config, one DSSE envelope layer, the
/// subject and the annotations.
pub fn manifest_for(artifact_type: &str, subject: &Desc, envelope: &Desc, annotations: Value) -> Vec<u8> {
    let empty = Desc {
        media_type: EMPTY_MEDIA_TYPE.into(),
        digest: super::client::sha256_digest(EMPTY_BLOB),
        size: EMPTY_BLOB.len() as u64,
    };
    let mut config = empty.json();
    config["data"] = Value::String("e30=".into());
    let m = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": artifact_type,
        "config": config,
        "layers": [envelope.json()],
        "subject": subject.json(),
        "annotations": annotations,
    });
    serde_json::to_vec(&m).expect("JSON values serialise")
}

/// A seal artifact's annotations.
pub fn annotations(created: &str, seal_digest: &str, seal_name: &str) -> Value {
    json!({
        ANNOTATION_CREATED: created,
        ANNOTATION_SEAL_DIGEST: seal_digest,
        ANNOTATION_SEAL_NAME: seal_name,
    })
}

/// A referrer as an index lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub digest: String,
    pub size: u64,
    pub artifact_type: String,
    pub created: Option<String>,
}

/// The tag under which the tag schema keeps `digest`'s referrers: `sha256-<hex>`.
pub fn referrers_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The entry the tag-schema index gets for a seal artifact.
pub fn referrer_entry(manifest: &[u8], created: &str, seal_digest: &str, seal_name: &str) -> Value {
    entry_for(manifest, SEAL_ARTIFACT_TYPE, annotations(created, seal_digest, seal_name))
}

/// The entry the tag-schema index gets for an artifact manifest.
pub fn entry_for(manifest: &[u8], artifact_type: &str, annotations: Value) -> Value {
    json!({
        "mediaType": MANIFEST_MEDIA_TYPE,
        "digest": super::client::sha256_digest(manifest),
        "size": manifest.len(),
        "artifactType": artifact_type,
        "annotations": annotations,
    })
}

/// `existing` (a tag-schema index, or None) with `entry` added: every other entry, and every
/// field of the index, is kept as it was (other tools keep their referrers there too). None
/// when the entry is there already.
pub fn merge_index(existing: Option<&[u8]>, entry: Value) -> Result<Option<Vec<u8>>, ArtifactError> {
    let mut index = match existing {
        Some(b) => serde_json::from_slice::<Value>(b)
            .map_err(|source| ArtifactError::Json { what: "the referrers index", source })?,
        None => json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}),
    };
    let obj = index.as_object_mut().ok_or(ArtifactError::Shape("the referrers index is not a JSON object"))?;
    let manifests = obj.entry("manifests").or_insert_with(|| Value::Array(Vec::new()));
    let list =
        manifests.as_array_mut().ok_or(ArtifactError::Shape("the referrers index's manifests is not an array"))?;
    if list.iter().any(|m| m.get("digest") == entry.get("digest")) {
        return Ok(None);
    }
    list.push(entry);
    Ok(Some(serde_json::to_vec(&index).expect("JSON values serialise")))
}

/// The referrers an index lists, of `artifact_type` only, at most `max` (the newest by their
/// created annotation when there are more). Also the number of entries of that type.
pub fn referrers(index: &[u8], artifact_type: &str, max: usize) -> Result<(Vec<Referrer>, usize), ArtifactError> {
    let v: Value =
        serde_json::from_slice(index).map_err(|source| ArtifactError::Json { what: "the referrers index", source })?;
    let list = v
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or(ArtifactError::Shape("the referrers index has no manifests array"))?;
    let mut out: Vec<Referrer> = list
        .iter()
        .filter(|m| m.get("artifactType").and_then(Value::as_str) == Some(artifact_type))
        .filter_map(|m| {
            let digest = m.get("digest")?.as_str()?;
            super::reference::is_digest(digest).then(|| Referrer {
                digest: digest.into(),
                size: m.get("size").and_then(Value::as_u64).unwrap_or(0),
                artifact_type: artifact_type.into(),
                created: m
                    .pointer("/annotations/org.opencontainers.image.created")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
        })
        .collect();
    let total = out.len();
    // Newest first (RFC 3339 in UTC sorts as text); undated last.
    out.sort_by(|a, b| b.created.cmp(&a.created));
    out.truncate(max);
    Ok((out, total))
}

/// A seal artifact's manifest, checked: its subject and its one envelope layer.
#[derive(Debug, Clone)]
pub struct SealArtifact {
    pub subject: String,
    pub envelope: Desc,
}

pub fn parse_seal_manifest(bytes: &[u8]) -> Result<SealArtifact, ArtifactError> {
    parse_artifact_manifest(bytes, SEAL_ARTIFACT_TYPE)
}

/// An artifact manifest of `artifact_type`, checked: its subject and its one envelope layer.
pub fn parse_artifact_manifest(bytes: &[u8], artifact_type: &str) -> Result<SealArtifact, ArtifactError> {
    let m: oci_spec::image::ImageManifest = serde_json::from_slice(bytes).map_err(ArtifactError::NotManifest)?;
    let not = ArtifactError::NotASeal;
    if m.artifact_type().as_ref().map(|t| t.to_string()).as_deref() != Some(artifact_type) {
        return Err(not(format!("its artifactType is not {artifact_type}")));
    }
    let subject = m.subject().as_ref().ok_or(ArtifactError::Shape("it has no subject"))?.digest().to_string();
    let [layer] = m.layers().as_slice() else {
        return Err(not(format!("it has {} layers, not the one envelope", m.layers().len())));
    };
    if layer.media_type().to_string() != DSSE_MEDIA_TYPE {
        return Err(not(format!("its layer is {}, not {DSSE_MEDIA_TYPE}", layer.media_type())));
    }
    Ok(SealArtifact {
        subject,
        envelope: Desc { media_type: DSSE_MEDIA_TYPE.into(), digest: layer.digest().to_string(), size: layer.size() },
    })
}

/// A platform manifest of an image index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformEntry {
    pub digest: String,
    pub os: String,
    pub architecture: String,
}

/// The platform manifests of an image index.
pub fn index_platforms(index: &[u8]) -> Result<Vec<PlatformEntry>, ArtifactError> {
    let v: Value =
        serde_json::from_slice(index).map_err(|source| ArtifactError::Json { what: "the image index", source })?;
    let list =
        v.get("manifests").and_then(Value::as_array).ok_or(ArtifactError::Shape("the image index has no manifests"))?;
    Ok(list
        .iter()
        .filter_map(|m| {
            let s = |p: &str| m.pointer(p).and_then(Value::as_str).map(str::to_string);
            Some(PlatformEntry {
                digest: s("/digest")?,
                os: s("/platform/os")?,
                architecture: s("/platform/architecture")?,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(d: char) -> Desc {
        Desc { media_type: MANIFEST_MEDIA_TYPE.into(), digest: format!("sha256:{}", d.to_string().repeat(64)), size: 7 }
    }

    #[test]
    fn a_seal_manifest_parses_back_and_names_its_subject() {
        let env = Desc { media_type: DSSE_MEDIA_TYPE.into(), ..desc('b') };
        let m = seal_manifest(&desc('a'), &env, "2026-12-01T00:00:00Z", "sha256:cc", "reg/app:1");
        let a = parse_seal_manifest(&m).unwrap();
        assert_eq!(a.subject, desc('a').digest);
        assert_eq!(a.envelope, env);
        let v: Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["annotations"][ANNOTATION_CREATED], "2026-12-01T00:00:00Z");
        assert_eq!(v["config"]["digest"], "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    }

    #[test]
    fn merging_keeps_other_tools_entries_and_fields() {
        let theirs = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":9,"artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json","x-their-field":1}],"annotations":{"keep":"me"}}"#;
        let entry = referrer_entry(b"{}", "2026-12-01T00:00:00Z", "sha256:cc", "n");
        let merged = merge_index(Some(theirs), entry.clone()).unwrap().unwrap();
        let v: Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(v["manifests"][0]["x-their-field"], 1);
        assert_eq!(v["annotations"]["keep"], "me");
        assert_eq!(merge_index(Some(&merged), entry).unwrap(), None, "already there: nothing to write");
        let (refs, total) = referrers(&merged, SEAL_ARTIFACT_TYPE, 10).unwrap();
        assert_eq!((refs.len(), total), (1, 1));
        assert!(merge_index(Some(b"[]"), json!({})).is_err());
    }

    #[test]
    fn a_listing_keeps_only_entries_whose_digest_is_sha256_hex() {
        // A listed digest becomes a URL path (`/v2/<repo>/manifests/<digest>`): anything but
        // `sha256:<64 lowercase hex>` is dropped, and not counted.
        let good = format!("sha256:{}", "a".repeat(64));
        let index = json!({"manifests": [
            {"digest": good, "artifactType": SEAL_ARTIFACT_TYPE},
            {"digest": "sha256:../../../v2/other/blobs/x", "artifactType": SEAL_ARTIFACT_TYPE},
            {"digest": format!("sha256:{}", "A".repeat(64)), "artifactType": SEAL_ARTIFACT_TYPE},
            {"digest": format!("sha512:{}", "a".repeat(128)), "artifactType": SEAL_ARTIFACT_TYPE},
            {"digest": 7, "artifactType": SEAL_ARTIFACT_TYPE},
            {"artifactType": SEAL_ARTIFACT_TYPE},
            {"digest": format!("sha256:{}", "b".repeat(64)), "artifactType": "application/other"},
        ]});
        let (refs, total) = referrers(&serde_json::to_vec(&index).unwrap(), SEAL_ARTIFACT_TYPE, 32).unwrap();
        assert_eq!((refs.iter().map(|r| r.digest.as_str()).collect::<Vec<_>>(), total), (vec![good.as_str()], 1));
        for bad in [&b"[]"[..], b"{\"manifests\": {}}", b"{\"manifests\": [", b""] {
            assert!(referrers(bad, SEAL_ARTIFACT_TYPE, 32).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_seal_manifest_needs_the_type_a_subject_and_one_envelope() {
        let env = Desc { media_type: DSSE_MEDIA_TYPE.into(), ..desc('b') };
        let good: Value =
            serde_json::from_slice(&seal_manifest(&desc('a'), &env, "2026-12-01T00:00:00Z", "sha256:cc", "n")).unwrap();
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut m = good.clone();
            f(&mut m);
            parse_seal_manifest(&serde_json::to_vec(&m).unwrap()).unwrap_err().to_string()
        };
        assert_eq!(
            edit(&|m| m["artifactType"] = "application/other".into()),
            format!("its artifactType is not {SEAL_ARTIFACT_TYPE}")
        );
        assert_eq!(edit(&|m| drop(m.as_object_mut().unwrap().remove("subject"))), "it has no subject");
        assert_eq!(edit(&|m| m["layers"] = json!([])), "it has 0 layers, not the one envelope");
        assert_eq!(
            edit(&|m| {
                let l = m["layers"][0].clone();
                m["layers"] = json!([l.clone(), l]);
            }),
            "it has 2 layers, not the one envelope"
        );
        assert_eq!(
            edit(&|m| m["layers"][0]["mediaType"] = "application/octet-stream".into()),
            format!("its layer is application/octet-stream, not {DSSE_MEDIA_TYPE}")
        );
        assert!(edit(&|m| m["subject"]["digest"] = "nope".into()).starts_with("not an OCI image manifest"));
    }

    #[test]
    fn listing_is_bounded_and_newest_first() {
        let mut index = json!({"schemaVersion": 2, "manifests": []});
        for i in 0..50 {
            index["manifests"].as_array_mut().unwrap().push(json!({
                "digest": format!("sha256:{:064x}", i), "size": 1, "artifactType": SEAL_ARTIFACT_TYPE,
                "annotations": {ANNOTATION_CREATED: format!("2026-01-01T00:00:{i:02}Z")}
            }));
        }
        let (refs, total) = referrers(&serde_json::to_vec(&index).unwrap(), SEAL_ARTIFACT_TYPE, 3).unwrap();
        assert_eq!(total, 50);
        assert_eq!(
            refs.iter().map(|r| r.created.clone().unwrap()).collect::<Vec<_>>(),
            ["2026-01-01T00:00:49Z", "2026-01-01T00:00:48Z", "2026-01-01T00:00:47Z"]
        );
    }
}
