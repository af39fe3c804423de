//! Seals in the registry, next to their image: `push` stores a seal as an OCI artifact whose
//! subject is the image manifest it was made from; `pull` lists an image's referrers, fetches
//! the seals among them (bounded) and admits each into the seal store only after it verifies
//! against the node's trust store and policy (src/verify/admit.rs), exactly as
//! `trust import` files it; `sync` (sync.rs) pulls for every image the node has.
//!
//! Only the CLI and the sync timer come here: the hook and `check` read the local seal store
//! and never open a network connection (integration/registry.rs proves it).
//!
//! The referrers API (distribution-spec 1.1) is used where the registry has it; elsewhere
//! (distribution 2.8, Debian's docker-registry) the referrers tag schema: an image index
//! under the tag `sha256-<hex>` of the subject, which the pusher keeps up to date, merging
//! with what other tools put there.

pub mod artifact;
pub mod auth;
pub mod client;
pub mod reference;
pub mod tls;

use crate::seal::Seal;
use artifact::{Desc, Referrer};
use client::Repo;
pub use client::{Client, ClientSettings};
pub use reference::Reference;
use std::path::PathBuf;

/// The largest manifest or index rootseal reads (a seal artifact's is under 1 KiB; an image
/// index of every platform a few KiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The most seal referrers of one subject fetched in one pull (the newest).
pub const MAX_SEALS_PER_SUBJECT: usize = 32;
/// The most scan attestations of one subject fetched in one pull (the newest).
pub const MAX_SCANS_PER_SUBJECT: usize = 8;
/// Tag-schema updates retried when another pusher changed the index at the same time.
const INDEX_UPDATE_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] reference::ReferenceError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("cannot reach registry {host}: {detail}; check the address and that it is up (a plain-HTTP registry must be listed in [registry] plain_http)")]
    Connect { host: String, detail: String },
    #[error("registry {host}: {what} did not arrive within {} ([registry] timeout bounds each request whole: connect, redirects and answer); check that the registry is up, or raise the timeout for a slow link", humantime::format_duration(*timeout))]
    Timeout { host: String, what: String, timeout: std::time::Duration },
    #[error("TLS with registry {host} failed: {detail}; put the CA that signed its certificate in {}/{host}/ca.crt (or, if {host} serves plain HTTP, list it in [registry] plain_http)", certs_dir.display())]
    Tls { host: String, detail: String, certs_dir: PathBuf },
    #[error("registry {host} refused access to {repository} (401): {}", unauthorized_fix(auth_file, *had_credentials, host))]
    Unauthorized { host: String, repository: String, auth_file: Option<PathBuf>, had_credentials: bool },
    #[error("registry {host} answered {status} for {what}: {detail}")]
    Status { host: String, what: String, status: u16, detail: String },
    #[error("registry {host}: {what} is larger than {limit} bytes; not read")]
    TooLarge { host: String, what: String, limit: u64 },
    #[error(
        "registry {host}: {what} has digest {actual}, not the {expected} asked for; the registry or a proxy altered it"
    )]
    DigestMismatch { host: String, what: String, expected: String, actual: String },
    #[error("registry {host} redirected more than {limit} times; not followed further")]
    Redirects { host: String, limit: u32 },
    #[error("registry {host}: {what} is malformed: {detail}")]
    Malformed { host: String, what: String, detail: String },
    #[error("image {reference} is not in the registry (no manifest for {tag})")]
    NotFound { reference: String, tag: String },
    #[error("{0}")]
    Seal(String),
}

fn unauthorized_fix(auth_file: &Option<PathBuf>, had: bool, host: &str) -> String {
    match (auth_file, had) {
        (Some(f), true) => format!("the credentials for {host} in {} were refused; log in again (`podman login --authfile {} {host}`)", f.display(), f.display()),
        (Some(f), false) => format!("{} has no credentials for {host}; log in with `podman login --authfile {} {host}`", f.display(), f.display()),
        (None, _) => format!("no auth file is configured; set [registry] auth_file and log in with `podman login --authfile FILE {host}`"),
    }
}

impl RegistryError {
    /// Worth another try later (the network, the registry's load), as opposed to an answer.
    pub fn transient(&self) -> bool {
        match self {
            RegistryError::Connect { .. } | RegistryError::Timeout { .. } => true,
            RegistryError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Where a pushed seal was filed.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub artifact: String,
    pub subject: String,
    /// "referrers API" or "tag sha256-…".
    pub indexed_by: String,
}

fn session<'c>(client: &'c Client, r: &Reference) -> Repo<'c> {
    client.repo(&r.registry, r.api_host(), &r.repository)
}

/// The node's platform, as image indexes name it.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    };
    ("linux", arch)
}

fn is_index(media_type: &str) -> bool {
    media_type == artifact::INDEX_MEDIA_TYPE || media_type == artifact::DOCKER_LIST
}

/// Stores `seal_bytes` (a seal file) as an artifact referring to `image`'s manifest.
pub fn push(client: &Client, image: &Reference, seal_bytes: &[u8]) -> Result<Pushed, RegistryError> {
    let seal = Seal::parse(seal_bytes).map_err(|e| RegistryError::Seal(format!("the seal is not valid: {e}")))?;
    let made_from = seal.predicate.image.as_ref().and_then(|i| i.manifest_digest.clone());
    let mut repo = session(client, image);
    let subject = resolve_subject(&mut repo, image, made_from, "seal")?;
    let created = humantime::format_rfc3339_seconds(seal.created).to_string();
    let digest_text = seal.digest.to_string();
    put_artifact(
        &mut repo,
        &subject,
        seal_bytes,
        artifact::SEAL_ARTIFACT_TYPE,
        artifact::annotations(&created, &digest_text, &seal.name),
    )
}

/// Stores a signed scan attestation as an artifact referring to `image`'s manifest (the one
/// the attestation names, `made_from`, when it names one).
pub fn push_attestation(
    client: &Client,
    image: &Reference,
    bytes: &[u8],
    made_from: Option<String>,
    tree: &str,
) -> Result<Pushed, RegistryError> {
    let mut repo = session(client, image);
    let subject = resolve_subject(&mut repo, image, made_from, "attestation")?;
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let annotations = serde_json::json!({
        artifact::ANNOTATION_CREATED: created,
        artifact::ANNOTATION_SEAL_DIGEST: tree,
    });
    put_artifact(&mut repo, &subject, bytes, artifact::SCAN_ARTIFACT_TYPE, annotations)
}

/// The manifest an artifact refers to: `image`'s manifest, or for a multi-platform index the
/// platform manifest `made_from` (which must be listed). A single manifest other than
/// `made_from` is refused: the artifact was made from another image.
fn resolve_subject(
    repo: &mut Repo<'_>,
    image: &Reference,
    made_from: Option<String>,
    what: &str,
) -> Result<Desc, RegistryError> {
    let top = repo
        .manifest(image.manifest_ref(), artifact::ACCEPT_ANY, MAX_MANIFEST_BYTES)?
        .ok_or_else(|| RegistryError::NotFound { reference: image.to_string(), tag: image.manifest_ref().into() })?;
    if is_index(&top.media_type) {
        let entries = index_descriptors(&top.bytes).map_err(|detail| RegistryError::Malformed {
            host: repo.host().into(),
            what: format!("image index {image}"),
            detail,
        })?;
        let Some(from) = made_from else {
            return Err(RegistryError::Seal(format!(
                "{image} is a multi-platform index and the {what} does not record which platform manifest it was made from (it was sealed from a directory or a docker-archive); push it to the platform's manifest, {}@sha256:...",
                image.name()
            )));
        };
        return entries.into_iter().find(|d| d.digest == from).ok_or_else(|| {
            RegistryError::Seal(format!(
                "the {what} was made from manifest {from}, which the index {image} ({}) does not list; seal the image that was pushed",
                top.digest
            ))
        });
    }
    if let Some(from) = made_from.filter(|f| *f != top.digest) {
        return Err(RegistryError::Seal(format!(
            "the {what} was made from manifest {from} but {image} is {}; seal the image that was pushed, or push to {}@{from}",
            top.digest,
            image.name()
        )));
    }
    Ok(Desc { media_type: top.media_type.clone(), digest: top.digest.clone(), size: top.bytes.len() as u64 })
}

/// Uploads `bytes` as the one layer of an `artifact_type` artifact referring to `subject`, and
/// indexes it (the referrers API, else the tag schema).
fn put_artifact(
    repo: &mut Repo<'_>,
    subject: &Desc,
    bytes: &[u8],
    artifact_type: &str,
    annotations: serde_json::Value,
) -> Result<Pushed, RegistryError> {
    let envelope = Desc {
        media_type: artifact::DSSE_MEDIA_TYPE.into(),
        digest: repo.upload_blob(bytes)?,
        size: bytes.len() as u64,
    };
    repo.upload_blob(artifact::EMPTY_BLOB)?;
    let manifest = artifact::manifest_for(artifact_type, subject, &envelope, annotations.clone());
    let artifact_digest = client::sha256_digest(&manifest);
    let (_, registry_indexed) = repo.put_manifest(&artifact_digest, artifact::MANIFEST_MEDIA_TYPE, &manifest)?;
    let indexed_by = if registry_indexed {
        "referrers API".to_string()
    } else {
        let entry = artifact::entry_for(&manifest, artifact_type, annotations);
        update_tag_index(repo, &subject.digest, entry)?
    };
    Ok(Pushed { artifact: artifact_digest, subject: subject.digest.clone(), indexed_by })
}

/// The referrers tag schema: read the index, add the entry, write it, and read it back (a
/// concurrent pusher may have written in between: then merge again).
fn update_tag_index(repo: &mut Repo<'_>, subject: &str, entry: serde_json::Value) -> Result<String, RegistryError> {
    let tag = artifact::referrers_tag(subject);
    let malformed = |host: &str, detail: artifact::ArtifactError| RegistryError::Malformed {
        host: host.into(),
        what: format!("referrers index {}:{tag}", "the repository"),
        detail: detail.to_string(),
    };
    for _ in 0..INDEX_UPDATE_ATTEMPTS {
        let current = repo.manifest(&tag, &[artifact::INDEX_MEDIA_TYPE], MAX_MANIFEST_BYTES)?;
        let merged = artifact::merge_index(current.as_ref().map(|f| f.bytes.as_slice()), entry.clone())
            .map_err(|d| malformed(repo.host(), d))?;
        let Some(bytes) = merged else { return Ok(format!("tag {tag}")) };
        repo.put_manifest(&tag, artifact::INDEX_MEDIA_TYPE, &bytes)?;
        let back = repo.manifest(&tag, &[artifact::INDEX_MEDIA_TYPE], MAX_MANIFEST_BYTES)?;
        let listed = back
            .map(|f| artifact::merge_index(Some(&f.bytes), entry.clone()).map(|m| m.is_none()))
            .transpose()
            .map_err(|d| malformed(repo.host(), d))?
            .unwrap_or(false);
        if listed {
            return Ok(format!("tag {tag}"));
        }
    }
    Err(RegistryError::Seal(format!(
        "the referrers index {tag} kept changing under {INDEX_UPDATE_ATTEMPTS} attempts to add the seal; push again"
    )))
}

fn index_descriptors(bytes: &[u8]) -> Result<Vec<Desc>, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let list = v.get("manifests").and_then(|m| m.as_array()).ok_or("no manifests array")?;
    Ok(list
        .iter()
        .filter_map(|m| {
            Some(Desc {
                media_type: m.get("mediaType")?.as_str()?.into(),
                digest: m.get("digest")?.as_str()?.into(),
                size: m.get("size")?.as_u64()?,
            })
        })
        .collect())
}

/// What a pull found for one image.
#[derive(Debug, Default)]
pub struct Pulled {
    /// The image manifest digests whose referrers were listed (the index's and this
    /// platform's for a multi-platform image).
    pub subjects: Vec<String>,
    /// The seal artifacts fetched and admitted: (artifact digest, outcome line).
    pub admitted: Vec<(String, String)>,
    /// Seals skipped, with the reason.
    pub skipped: Vec<(String, String)>,
    /// A digest that identifies the state of the image's referrers (for the sync's "nothing
    /// changed"): the image digest and each subject's referrers index digest.
    pub fingerprint: String,
    /// The fingerprint was the one given: nothing was fetched.
    pub unchanged: bool,
    /// How many of `admitted` are seals (the rest: scan attestations).
    pub seals: usize,
}

/// A subject's referrers index as listed (None: it has none).
pub type Listing = (String, Option<Vec<u8>>);

/// What the last pull of an image learnt: its fingerprint and, for an image pinned by digest,
/// the subjects it resolved to (a digest's manifest never changes, so it is not fetched again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub fingerprint: String,
    pub subjects: Vec<String>,
}

/// The image's digest and the referrer listings' digests, without fetching any seal: what
/// the sync compares with its last run. With `subjects` known for an image pinned by digest,
/// only the listings are fetched.
pub fn fingerprint(
    client: &Client,
    image: &Reference,
    subjects: Option<&[String]>,
) -> Result<(String, Vec<Listing>), RegistryError> {
    let mut repo = session(client, image);
    let (top_digest, subjects) = match (&image.digest, subjects) {
        (Some(d), Some(known)) if known.first() == Some(d) => (d.clone(), known.to_vec()),
        _ => resolve_subjects(&mut repo, image)?,
    };
    let mut fp = top_digest;
    let mut listings = Vec::new();
    for s in subjects {
        let listing = list_referrers(&mut repo, &s)?;
        fp.push(' ');
        fp.push_str(&listing.as_ref().map(|b| client::sha256_digest(b)).unwrap_or_else(|| "-".into()));
        listings.push((s, listing));
    }
    Ok((client::sha256_digest(fp.as_bytes()), listings))
}

/// The image manifest's digest, then the subjects whose referrers hold its seals: that digest,
/// and for a multi-platform index also this node's platform manifest.
fn resolve_subjects(repo: &mut Repo<'_>, image: &Reference) -> Result<(String, Vec<String>), RegistryError> {
    let top = repo
        .manifest(image.manifest_ref(), artifact::ACCEPT_ANY, MAX_MANIFEST_BYTES)?
        .ok_or_else(|| RegistryError::NotFound { reference: image.to_string(), tag: image.manifest_ref().into() })?;
    let mut subjects = vec![top.digest.clone()];
    if is_index(&top.media_type) {
        let (os, arch) = host_platform();
        let platforms = artifact::index_platforms(&top.bytes).map_err(|detail| RegistryError::Malformed {
            host: repo.host().into(),
            what: format!("image index {image}"),
            detail: detail.to_string(),
        })?;
        subjects.extend(platforms.into_iter().filter(|p| p.os == os && p.architecture == arch).map(|p| p.digest));
    }
    Ok((top.digest, subjects))
}

/// The referrers index of `subject`: the API's answer, else the tag schema's index; None
/// when there is neither.
fn list_referrers(repo: &mut Repo<'_>, subject: &str) -> Result<Option<Vec<u8>>, RegistryError> {
    // Every artifact type at once (seals and scan attestations): one request.
    if let Some(b) = repo.referrers_api(subject, "", MAX_MANIFEST_BYTES)? {
        return Ok(Some(b));
    }
    let tag = artifact::referrers_tag(subject);
    Ok(repo.manifest(&tag, &[artifact::INDEX_MEDIA_TYPE], MAX_MANIFEST_BYTES)?.map(|f| f.bytes))
}

/// Fetches the seals of `image` and hands each to `admit` (which verifies and stores it, or
/// says why not). Registry errors on the listing are errors; a bad seal is a skip.
/// With `known`, what the last pull learnt: when nothing changed since, no seal is fetched
/// and `Pulled::unchanged` is set.
pub fn pull(
    client: &Client,
    image: &Reference,
    known: Option<&Known>,
    admit: &mut Admit<'_>,
) -> Result<Pulled, RegistryError> {
    let (fingerprint, listings) = self::fingerprint(client, image, known.map(|k| k.subjects.as_slice()))?;
    let mut repo = session(client, image);
    let unchanged = known.is_some_and(|k| k.fingerprint == fingerprint);
    let mut out = Pulled { fingerprint, unchanged, ..Pulled::default() };
    if unchanged {
        out.subjects = listings.into_iter().map(|(s, _)| s).collect();
        return Ok(out);
    }
    for (subject, listing) in listings {
        out.subjects.push(subject.clone());
        let Some(index) = listing else { continue };
        let (refs, total) =
            artifact::referrers(&index, artifact::SEAL_ARTIFACT_TYPE, MAX_SEALS_PER_SUBJECT).map_err(|detail| {
                RegistryError::Malformed {
                    host: repo.host().into(),
                    what: format!("the referrers of {subject}"),
                    detail: detail.to_string(),
                }
            })?;
        if total > refs.len() {
            out.skipped.push((
                format!("{} older seal(s) of {subject}", total - refs.len()),
                format!("only the newest {MAX_SEALS_PER_SUBJECT} are fetched"),
            ));
        }
        // Oldest first: when several seals of one tree are listed, the newest is filed last and
        // is the one the store keeps (the hook would refuse an older one as a rollback).
        let scans = artifact::referrers(&index, artifact::SCAN_ARTIFACT_TYPE, MAX_SCANS_PER_SUBJECT)
            .map(|(r, _)| r)
            .unwrap_or_default();
        let work =
            refs.into_iter().rev().map(|r| (Kind::Seal, r)).chain(scans.into_iter().rev().map(|r| (Kind::Scan, r)));
        for (kind, r) in work {
            match fetch_artifact(&mut repo, &subject, &r, kind) {
                Ok(bytes) => match admit(kind, &bytes) {
                    Ok(line) => {
                        out.admitted.push((r.digest, line));
                        if kind == Kind::Seal {
                            out.seals += 1;
                        }
                    }
                    Err(why) => out.skipped.push((r.digest, why)),
                },
                Err(e) if e.transient() => return Err(e),
                Err(e) => out.skipped.push((r.digest, e.to_string())),
            }
        }
    }
    Ok(out)
}

/// The newest seal the registry lists for `image` (not verified: the caller decides what to
/// do with it; `attest scan --image` names its subject).
pub fn newest_seal(client: &Client, image: &Reference) -> Result<Vec<u8>, RegistryError> {
    let (_, listings) = self::fingerprint(client, image, None)?;
    let mut repo = session(client, image);
    let mut found: Option<(String, Referrer)> = None;
    for (subject, listing) in listings {
        let Some(index) = listing else { continue };
        let (refs, _) = artifact::referrers(&index, artifact::SEAL_ARTIFACT_TYPE, 1).map_err(|detail| {
            RegistryError::Malformed {
                host: repo.host().into(),
                what: format!("the referrers of {subject}"),
                detail: detail.to_string(),
            }
        })?;
        if let Some(r) = refs.into_iter().next() {
            if found.as_ref().is_none_or(|(_, f)| r.created > f.created) {
                found = Some((subject, r));
            }
        }
    }
    let (subject, r) = found.ok_or_else(|| {
        RegistryError::Seal(format!("{image} has no seal in the registry; push one first (`rootseal push`)"))
    })?;
    fetch_artifact(&mut repo, &subject, &r, Kind::Seal)
}

/// Verifies and files one fetched artifact; Ok: the line saying so, Err: why it was skipped.
pub type Admit<'a> = dyn FnMut(Kind, &[u8]) -> Result<String, String> + 'a;

/// What an artifact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Seal,
    /// A signed scan attestation (docs/scan.md).
    Scan,
}

impl Kind {
    fn artifact_type(self) -> &'static str {
        match self {
            Kind::Seal => artifact::SEAL_ARTIFACT_TYPE,
            Kind::Scan => artifact::SCAN_ARTIFACT_TYPE,
        }
    }
}

/// One artifact: its manifest (small, by digest), its subject checked, its envelope (bounded
/// by the seal size limit, by digest).
fn fetch_artifact(repo: &mut Repo<'_>, subject: &str, r: &Referrer, kind: Kind) -> Result<Vec<u8>, RegistryError> {
    let host = repo.host().to_string();
    let what = match kind {
        Kind::Seal => format!("seal artifact {}", r.digest),
        Kind::Scan => format!("scan attestation artifact {}", r.digest),
    };
    let m = repo.manifest(&r.digest, &[artifact::MANIFEST_MEDIA_TYPE], 64 << 10)?.ok_or_else(|| {
        RegistryError::Malformed {
            host: host.clone(),
            what: what.clone(),
            detail: "it is listed but gone (the listing changed)".into(),
        }
    })?;
    let a = artifact::parse_artifact_manifest(&m.bytes, kind.artifact_type()).map_err(|detail| {
        RegistryError::Malformed { host: host.clone(), what: what.clone(), detail: detail.to_string() }
    })?;
    if a.subject != subject {
        return Err(RegistryError::Malformed {
            host,
            what,
            detail: format!("its subject is {}, not the image's {subject}", a.subject),
        });
    }
    if a.envelope.size > crate::seal::MAX_SEAL_BYTES {
        return Err(RegistryError::TooLarge {
            host,
            what: format!("{what}'s envelope"),
            limit: crate::seal::MAX_SEAL_BYTES,
        });
    }
    repo.blob(&a.envelope.digest, a.envelope.size.min(crate::seal::MAX_SEAL_BYTES))
}
