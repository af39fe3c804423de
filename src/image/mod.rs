//! Images as input: an OCI image layout directory, an OCI archive (a tar of a layout) or a
//! docker-archive (`docker save`). The layers are applied in order, streaming, in memory, to
//! the same [`Manifest`] a walk of the unpacked rootfs gives (docs/image.md): no extraction
//! to disk.
//!
//! Applying one layer entry (OCI image-spec layer.md, "Applying Changesets"):
//! 1. its path is normalised: a leading `./` is dropped; an absolute path or a `..` component is
//!    an error (never normalised away);
//! 2. `.wh..wh..opq` makes its directory opaque: everything the *lower* layers put below it
//!    goes; other `.wh..wh.*` names are unpacker metadata (aufs) and are skipped;
//! 3. `.wh.NAME` removes NAME and its subtree from the lower layers; a whiteout of nothing
//!    (`.wh.`), of `.` or of `..` is an error;
//! 4. missing parent directories are created 0755 root:root (as containerd and podman do); a
//!    parent that is not a directory (a symlink, say) is an error: the entry would land
//!    elsewhere than its path says;
//! 5. a hard link must name a regular file already in the tree; it becomes that file, and its
//!    header's mode, owner and capability apply to every path of that file (unpackers chmod
//!    and chown the new link, which is the shared inode);
//! 6. a directory over a directory updates its metadata and keeps its children; anything else
//!    replaces what was there.
//!
//! Every blob is checked against its digest (layers also against the config's diff_ids).

mod apply;
pub use apply::manifest_from_layers;
use apply::*;

use crate::json;
use crate::manifest::Manifest;
use crate::walk::Limits;
use oci_spec::image::{self as oci, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const MAX_JSON_BLOB: u64 = 8 << 20;
const CAP_PAX: &[u8] = b"SCHILY.xattr.security.capability";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: {what}", path.display())]
    Format { path: PathBuf, what: String },
    #[error("{}: cannot read {name}: {source}", path.display())]
    Io { path: PathBuf, name: String, source: io::Error },
    #[error("{}: layer {layer} entry {entry}: {what}", path.display())]
    Entry { path: PathBuf, layer: usize, entry: String, what: String },
    #[error("{}: {name} has digest {found}, expected {expected}; the archive is corrupt or was altered", path.display())]
    Digest { path: PathBuf, name: String, expected: String, found: String },
    #[error("{}: limit exceeded: {what}; raise [limits] {key} if this image is legitimate", path.display())]
    Limit { path: PathBuf, what: String, key: &'static str },
}

/// What kind of input a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A root filesystem directory (walked).
    RootfsDir,
    OciLayout,
    OciArchive,
    DockerArchive,
}

/// Detects what `path` is: a directory with an `oci-layout` file is an OCI layout, any other
/// directory a rootfs; a file is a tar archive holding a layout or a `docker save` output.
pub fn detect(path: &Path) -> Result<InputKind, ImageError> {
    let meta =
        std::fs::metadata(path).map_err(|source| ImageError::Io { path: path.into(), name: String::new(), source })?;
    if meta.is_dir() {
        return Ok(if path.join("oci-layout").is_file() { InputKind::OciLayout } else { InputKind::RootfsDir });
    }
    if !looks_like_tar(path) {
        return Err(ImageError::Format {
            path: path.into(),
            what: "is not a directory, an OCI image layout or an image archive (it is not a tar file)".into(),
        });
    }
    let tar = TarBlobs::open(path)?;
    if tar.index.contains_key("oci-layout") && tar.index.contains_key("index.json") {
        Ok(InputKind::OciArchive)
    } else if tar.index.contains_key("manifest.json") {
        Ok(InputKind::DockerArchive)
    } else {
        Err(ImageError::Format {
            path: path.into(),
            what: "is neither a directory, an OCI archive (no oci-layout/index.json) nor a docker-archive (no manifest.json)"
                .into(),
        })
    }
}

/// A tar file starts with a header whose checksum adds up (and, for POSIX and GNU tar, the
/// `ustar` magic).
fn looks_like_tar(path: &Path) -> bool {
    let mut block = [0u8; 512];
    let Ok(mut f) = File::open(path) else { return false };
    if f.read_exact(&mut block).is_err() {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&block[148..156]).ok().map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '));
    let sum: u32 = block.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { b as u32 }).sum();
    stored.and_then(|s| u32::from_str_radix(s, 8).ok()) == Some(sum) && sum != 256
}

/// An os/arch[/variant] platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { os: "linux".into(), arch: arch.into(), variant: None }
    }

    pub fn parse(s: &str) -> Option<Platform> {
        let mut p = s.split('/');
        let os = p.next().filter(|x| !x.is_empty())?.to_string();
        let arch = p.next().filter(|x| !x.is_empty())?.to_string();
        let variant = p.next().map(str::to_string);
        if p.next().is_some() {
            return None;
        }
        Some(Platform { os, arch, variant })
    }

    fn matches(&self, p: &oci::Platform) -> bool {
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.arch
            && (self.variant.is_none() || p.variant().as_deref() == self.variant.as_deref())
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Which image of an archive to read.
#[derive(Debug, Clone)]
pub struct Select {
    pub platform: Platform,
    /// A reference to pick among several images (matches the ref annotations or RepoTags).
    pub reference: Option<String>,
}

/// An image's root filesystem, as the manifest of its applied layers.
#[derive(Debug, Clone)]
pub struct ImageTree {
    pub manifest: Manifest,
    pub reference: Option<String>,
    /// The digest of the image manifest (OCI inputs), for cross-referencing registry signatures.
    pub manifest_digest: Option<String>,
    pub config_digest: String,
    pub layers: usize,
}

// --- blob access -------------------------------------------------------------------------

trait Blobs {
    fn path(&self) -> &Path;
    fn open(&self, name: &str) -> Result<Box<dyn Read + '_>, ImageError>;

    fn read_json_blob(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let mut r = self.open(name)?.take(MAX_JSON_BLOB + 1);
        let mut v = Vec::new();
        r.read_to_end(&mut v).map_err(|source| ImageError::Io {
            path: self.path().into(),
            name: name.into(),
            source,
        })?;
        if v.len() as u64 > MAX_JSON_BLOB {
            return Err(ImageError::Format {
                path: self.path().into(),
                what: format!("{name} is larger than {MAX_JSON_BLOB} bytes"),
            });
        }
        Ok(v)
    }

    /// Reads a content-addressed blob and checks its digest.
    fn read_verified(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let name = blob_name(self.path(), digest)?;
        let bytes = self.read_json_blob(&name)?;
        let found = format!("sha256:{:x}", Sha256::digest(&bytes));
        if found != digest {
            return Err(ImageError::Digest { path: self.path().into(), name, expected: digest.into(), found });
        }
        Ok(bytes)
    }
}

fn blob_name(path: &Path, digest: &str) -> Result<String, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if crate::manifest::parse_hex32(h).is_some() => Ok(format!("blobs/sha256/{h}")),
        _ => Err(ImageError::Format {
            path: path.into(),
            what: format!("digest {digest:?} is not sha256:<64 lowercase hex>"),
        }),
    }
}

/// Checks an archive member name: relative, no `..`, no empty components beyond `./`.
fn clean_member(path: &Path, name: &str) -> Result<String, ImageError> {
    let n = name.trim_start_matches("./");
    if n.starts_with('/') || n.split('/').any(|c| c == "..") || n.is_empty() {
        return Err(ImageError::Format { path: path.into(), what: format!("member name {name:?} leaves the archive") });
    }
    Ok(n.to_string())
}

struct DirBlobs {
    root: PathBuf,
}

impl Blobs for DirBlobs {
    fn path(&self) -> &Path {
        &self.root
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + '_>, ImageError> {
        let rel = clean_member(&self.root, name)?;
        let f = File::open(self.root.join(&rel)).map_err(|source| ImageError::Io {
            path: self.root.clone(),
            name: rel,
            source,
        })?;
        Ok(Box::new(BufReader::with_capacity(256 * 1024, f)))
    }
}

struct TarBlobs {
    path: PathBuf,
    file: File,
    /// member name → (data offset, size), or a symlink target for `docker save`'s shared layers.
    index: HashMap<String, Member>,
}

enum Member {
    Data { offset: u64, size: u64 },
    Link(String),
}

impl TarBlobs {
    fn open(path: &Path) -> Result<TarBlobs, ImageError> {
        let io_err = |source| ImageError::Io { path: path.into(), name: String::new(), source };
        let file = File::open(path).map_err(io_err)?;
        let mut index = HashMap::new();
        let mut ar = tar::Archive::new(file.try_clone().map_err(io_err)?);
        let entries = ar.entries_with_seek().map_err(io_err)?;
        for (i, e) in entries.enumerate() {
            if i > 100_000 {
                return Err(ImageError::Format { path: path.into(), what: "more than 100000 archive members".into() });
            }
            let e = e.map_err(|source| ImageError::Io { path: path.into(), name: "tar header".into(), source })?;
            let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let name = raw.trim_start_matches("./").trim_end_matches('/').to_string();
            match e.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    index.insert(name, Member::Data { offset: e.raw_file_position(), size: e.size() });
                }
                tar::EntryType::Symlink => {
                    let target =
                        e.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                    let dir = Path::new(&name).parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
                    let joined = if target.starts_with('/') { target } else { format!("{dir}/{target}") };
                    index.insert(name, Member::Link(normalise_member(&joined)));
                }
                _ => {}
            }
        }
        Ok(TarBlobs { path: path.into(), file, index })
    }
}

fn normalise_member(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

impl Blobs for TarBlobs {
    fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self, name: &str) -> Result<Box<dyn Read + '_>, ImageError> {
        let mut rel = clean_member(&self.path, name)?;
        for _ in 0..8 {
            match self.index.get(&rel) {
                Some(Member::Link(t)) => rel = t.clone(),
                Some(Member::Data { offset, size }) => {
                    let mut f = self.file.try_clone().map_err(|source| ImageError::Io {
                        path: self.path.clone(),
                        name: rel.clone(),
                        source,
                    })?;
                    f.seek(SeekFrom::Start(*offset)).map_err(|source| ImageError::Io {
                        path: self.path.clone(),
                        name: rel.clone(),
                        source,
                    })?;
                    return Ok(Box::new(BufReader::with_capacity(256 * 1024, f.take(*size))));
                }
                None => break,
            }
        }
        Err(ImageError::Format { path: self.path.clone(), what: format!("no member {rel:?} in the archive") })
    }
}

// --- OCI and docker JSON ---------------------------------------------------------------------

// The OCI documents (index, manifest, config) are oci-spec's `ImageIndex`, `ImageManifest` and
// `ImageConfiguration`, which require what image-spec marks REQUIRED (schemaVersion, a
// descriptor's mediaType, digest and size, the config's os, architecture and rootfs.type) and
// check a digest's form as they parse it. The docker-archive `manifest.json` is no OCI
// document (moby `image/tarexport`), so it keeps its own struct.

#[derive(Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// An image index by either name: OCI's, or the Docker manifest list it was taken from
/// (image-spec media-types.md, "Compatibility Matrix").
fn is_index(media_type: &MediaType) -> bool {
    *media_type == MediaType::ImageIndex || media_type.as_ref() == DOCKER_MANIFEST_LIST
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, name: &str, bytes: &[u8]) -> Result<T, ImageError> {
    json::from_slice_strict(bytes).map_err(|e| ImageError::Format { path: path.into(), what: format!("{name}: {e}") })
}

/// Loads the image at `path` (layout directory, OCI archive or docker-archive).
pub fn load(path: &Path, select: &Select, limits: &Limits) -> Result<ImageTree, ImageError> {
    match detect(path)? {
        InputKind::RootfsDir => {
            Err(ImageError::Format { path: path.into(), what: "is a root filesystem directory, not an image".into() })
        }
        InputKind::OciLayout => load_oci(&DirBlobs { root: path.into() }, select, limits),
        InputKind::OciArchive => load_oci(&TarBlobs::open(path)?, select, limits),
        InputKind::DockerArchive => load_docker(&TarBlobs::open(path)?, select, limits),
    }
}

fn annotation<'d>(d: &'d Descriptor, key: &str) -> Option<&'d String> {
    d.annotations().as_ref().and_then(|a| a.get(key))
}

fn reference_of(d: &Descriptor) -> Option<String> {
    annotation(d, "io.containerd.image.name").or_else(|| annotation(d, "org.opencontainers.image.ref.name")).cloned()
}

fn load_oci(blobs: &dyn Blobs, select: &Select, limits: &Limits) -> Result<ImageTree, ImageError> {
    let path = blobs.path();
    let fmt = |what: String| ImageError::Format { path: path.into(), what };
    let index: ImageIndex = parse(path, "index.json", &blobs.read_json_blob("index.json")?)?;
    let mut candidates: Vec<&Descriptor> = index.manifests().iter().collect();
    if let Some(r) = &select.reference {
        candidates.retain(|d| {
            annotation(d, "io.containerd.image.name") == Some(r)
                || annotation(d, "org.opencontainers.image.ref.name") == Some(r)
        });
        if candidates.is_empty() {
            return Err(fmt(format!("no image named {r:?} in index.json")));
        }
    }
    let top = match candidates.len() {
        0 => return Err(fmt("index.json lists no manifests".into())),
        1 => candidates.remove(0).clone(),
        n => {
            // Several images: they must be platforms of one image.
            let found = candidates.iter().find(|d| d.platform().as_ref().is_some_and(|p| select.platform.matches(p)));
            match found {
                Some(d) => (*d).clone(),
                None => {
                    return Err(fmt(format!(
                        "{n} images in index.json and none is {}; pick one with --ref or --platform",
                        select.platform
                    )))
                }
            }
        }
    };
    let reference = select.reference.clone().or_else(|| reference_of(&top));
    let mut desc = top;
    // Descend through nested indexes (multi-platform images) to one manifest.
    for _ in 0..4 {
        if !is_index(desc.media_type()) {
            break;
        }
        let digest = desc.digest().to_string();
        let nested: ImageIndex = parse(path, &digest, &blobs.read_verified(&digest)?)?;
        let platforms: Vec<String> = nested
            .manifests()
            .iter()
            .filter_map(|d| d.platform().as_ref().map(|p| format!("{}/{}", p.os(), p.architecture())))
            .collect();
        desc = nested
            .manifests()
            .iter()
            .find(|d| d.platform().as_ref().is_some_and(|p| select.platform.matches(p)))
            .cloned()
            .ok_or_else(|| {
                fmt(format!(
                    "image index {digest} has no manifest for {} (it has {}); pass --platform",
                    select.platform,
                    platforms.join(", ")
                ))
            })?;
    }
    let manifest_digest = desc.digest().to_string();
    let manifest_bytes = blobs.read_verified(&manifest_digest)?;
    let m: ImageManifest = parse(path, &manifest_digest, &manifest_bytes)?;
    if m.media_type().as_ref().is_some_and(is_index) {
        return Err(fmt(format!("{manifest_digest} is an index nested too deeply")));
    }
    let config_digest = m.config().digest().to_string();
    let config: ImageConfiguration = parse(path, &config_digest, &blobs.read_verified(&config_digest)?)?;
    check_platform(path, &config, select)?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != m.layers().len() {
        return Err(fmt(format!(
            "manifest has {} layers but the config lists {} diff_ids",
            m.layers().len(),
            diff_ids.len()
        )));
    }
    let mut tree = Tree::new(path, *limits);
    for (i, (layer, diff_id)) in m.layers().iter().zip(diff_ids).enumerate() {
        let digest = layer.digest().as_ref();
        let name = blob_name(path, digest)?;
        let reader = blobs.open(&name)?;
        tree.apply_layer(i + 1, reader, Some(digest), diff_id)?;
    }
    Ok(ImageTree {
        layers: m.layers().len(),
        manifest: tree.into_manifest(),
        reference,
        manifest_digest: Some(manifest_digest),
        config_digest,
    })
}

fn check_platform(path: &Path, config: &ImageConfiguration, select: &Select) -> Result<(), ImageError> {
    let (os, arch) = (config.os().to_string(), config.architecture().to_string());
    if !os.is_empty() && (os != select.platform.os || arch != select.platform.arch) {
        return Err(ImageError::Format {
            path: path.into(),
            what: format!(
                "the image is {os}/{arch} but {} was asked for; pass --platform {os}/{arch} to seal it anyway",
                select.platform
            ),
        });
    }
    Ok(())
}

fn load_docker(blobs: &TarBlobs, select: &Select, limits: &Limits) -> Result<ImageTree, ImageError> {
    let path = blobs.path();
    let fmt = |what: String| ImageError::Format { path: path.into(), what };
    let mut entries: Vec<DockerManifestEntry> = parse(path, "manifest.json", &blobs.read_json_blob("manifest.json")?)?;
    if let Some(r) = &select.reference {
        entries.retain(|e| e.repo_tags.as_ref().is_some_and(|t| t.contains(r)));
    }
    let entry = match entries.len() {
        1 => entries.remove(0),
        0 => return Err(fmt("manifest.json lists no matching image".into())),
        n => return Err(fmt(format!("manifest.json lists {n} images; pick one with --ref"))),
    };
    let config_bytes = blobs.read_json_blob(&entry.config)?;
    let config_digest = format!("sha256:{:x}", Sha256::digest(&config_bytes));
    let config: ImageConfiguration = parse(path, &entry.config, &config_bytes)?;
    check_platform(path, &config, select)?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != entry.layers.len() {
        return Err(fmt(format!(
            "manifest.json has {} layers but the config lists {} diff_ids",
            entry.layers.len(),
            diff_ids.len()
        )));
    }
    let mut tree = Tree::new(path, *limits);
    for (i, (layer, diff_id)) in entry.layers.iter().zip(diff_ids).enumerate() {
        tree.apply_layer(i + 1, blobs.open(layer)?, None, diff_id)?;
    }
    Ok(ImageTree {
        layers: entry.layers.len(),
        manifest: tree.into_manifest(),
        reference: select.reference.clone().or_else(|| entry.repo_tags.and_then(|t| t.into_iter().next())),
        manifest_digest: None,
        config_digest,
    })
}

// --- applying layers ---------------------------------------------------------------------

#[cfg(test)]
mod tests;
