//! Overlay awareness for `[hook] verify = "layers"` (docs/performance.md, "Layers"): a new
//! container over image layers that a walk verified a short while ago starts without walking
//! them again.
//!
//! containerd and podman give every container its own overlay mount: the image's committed
//! snapshots as `lowerdir`, an empty per-container `upperdir`. A *layer record* says: at time T
//! a walk of an overlay rootfs over exactly these lower directories (path, device, inode)
//! matched seal S outside these mount exclusions, while its upper directory held nothing but
//! runtime mount points. A later rootfs over the same lowers is accepted without a walk when:
//! 1. the record's HMAC verifies with the node cache key, it was written in this boot and is at
//!    most `[hook] layer_ttl` old (the monitor's clean scans and the hook's walks rewrite it);
//! 2. the rootfs is the root of an overlay mount (mountinfo, matched by mount id) whose lowers
//!    are the record's, each still the same directory; no `metacopy`, no data-only layers;
//! 3. its upper directory holds only what a runtime creates: directories on the way to a mount
//!    destination (with the mode and owner the verified tree has there, or new), and anything
//!    at or below a destination (hidden by the mount); no whiteout, symlink, opaque or
//!    redirected directory anywhere else;
//! 4. every path the record's walk left unverified (its mount destinations) is hidden by a mount
//!    of this container too;
//! 5. the seal file is the one verified (same stat key), and the seal still passes trust and
//!    policy *now*: digest and keys not revoked, keys still trusted, enough signers, not
//!    expired, the rule's keys, rollback watermark (src/hook/mod.rs).
//!
//! What it trusts more than `cached`: files in the lower directories are not looked at for up
//! to `layer_ttl`. A change written there by host root inside that window is not seen at start
//! (the monitor sees it at its next scan and removes the record).

use crate::exclude::Exclusions;
use crate::manifest::{hex, Kind, Manifest, TreeDigest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

mod codec;
pub use codec::SkeletonError;
use codec::{decode_skeleton, encode_skeleton};

const VERSION: u32 = 2;
const MAX_RECORD_BYTES: u64 = 64 << 20;
/// An upper directory with more entries than this is not "only mount points".
const MAX_UPPER_ENTRIES: usize = 4096;
const MAX_UPPER_DEPTH: usize = 64;
/// Overlay's own xattrs that copy-up writes on directories and that change nothing visible.
const HARMLESS_OVERLAY_XATTRS: &[&[u8]] = &[b"origin", b"impure", b"uuid", b"nlink"];

/// An overlay mount's layers, from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    /// Topmost first, as `lowerdir=` lists them.
    pub lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
}

/// A lower directory's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub path: String,
    pub dev: u64,
    pub ino: u64,
}

/// What the fast path needs of the verified seal without parsing it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealMemo {
    pub digest: String,
    pub name: String,
    /// Nanoseconds since the epoch.
    pub created: u128,
    pub expires: Option<u128>,
    /// Keyids whose signatures verified over this seal file.
    pub keyids: Vec<String>,
    /// The seal file's stat key when it verified: [dev, ino, size, mtime s, ns, ctime s, ns].
    pub file: [i64; 7],
}

impl SealMemo {
    pub fn new(seal: &crate::seal::Seal, keyids: Vec<String>, file: &Path) -> Option<SealMemo> {
        let ns = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).ok().map(|d| d.as_nanos());
        Some(SealMemo {
            digest: seal.digest.to_string(),
            name: seal.name.clone(),
            created: ns(seal.created)?,
            expires: match seal.expires {
                Some(e) => Some(ns(e)?),
                None => None,
            },
            keyids,
            file: file_key(file).ok()?,
        })
    }

    pub fn tree_digest(&self) -> Option<TreeDigest> {
        TreeDigest::parse(&self.digest)
    }

    pub fn created(&self) -> SystemTime {
        time_of(self.created)
    }

    pub fn expires(&self) -> Option<SystemTime> {
        self.expires.map(time_of)
    }
}

fn time_of(ns: u128) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(ns.min(u64::MAX as u128) as u64)
}

fn file_key(path: &Path) -> std::io::Result<[i64; 7]> {
    let m = std::fs::symlink_metadata(path)?;
    Ok([m.dev() as i64, m.ino() as i64, m.size() as i64, m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec()])
}

/// A verified layer set (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub boot_id: String,
    /// Seconds since the epoch.
    pub verified_at: u64,
    pub lowers: Vec<Layer>,
    pub seal: SealMemo,
    /// The mount destinations (resolved, hex) the verifying walk did not compare.
    pub excluded: Vec<String>,
    /// The verified tree's directories and symlinks ([`skeleton`]): to resolve mount
    /// destinations and to check directories in the upper layer. Stored after the JSON line in
    /// a compact binary form (parsing it as manifest text cost a millisecond per start).
    #[serde(skip)]
    pub skeleton: Manifest,
}

/// Why a rootfs is not an overlay mount whose layers rootseal can vouch for (condition 2).
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("statx: {error}")]
    Statx { error: std::io::Error },
    #[error("open ..: {error}")]
    OpenParent { error: std::io::Error },
    #[error("statx ..: {error}")]
    StatxParent { error: std::io::Error },
    #[error("the rootfs is not the root of a mount")]
    NotMountRoot,
    #[error(transparent)]
    Mountinfo(#[from] crate::node::mountinfo::MountinfoError),
    #[error("mount {mnt_id} is not in /proc/self/mountinfo")]
    NotListed { mnt_id: u64 },
    #[error("not a mountinfo line")]
    NotMountinfoLine,
    #[error("the mount shows a subdirectory of its filesystem")]
    Subdirectory,
    #[error("the rootfs is a {fstype:?} mount, not overlay")]
    NotOverlay { fstype: String },
    #[error("data-only or escaped lower layers are not supported")]
    DataOnlyLowers,
    /// `lowerdir+` or `datadir+`.
    #[error("{option} layers are not supported")]
    AppendedLayers { option: String },
    #[error("metacopy=on: file data may live outside the layers")]
    Metacopy,
    #[error("verity mounts are not supported")]
    Verity,
    #[error("the overlay has no lowerdir")]
    NoLowerdir,
    #[error("the overlay's lowerdir is not a list of absolute paths")]
    RelativeLowers,
    #[error("lower {}: {error}", path.display())]
    Lower { path: PathBuf, error: std::io::Error },
    #[error("lower {} is not a directory", path.display())]
    LowerNotDir { path: PathBuf },
    #[error("lower {} is not UTF-8", path.display())]
    LowerNotUtf8 { path: PathBuf },
}

/// A layer record: why it cannot be written, read, trusted or reused (conditions 1, 4 and 5
/// of the module doc; any of them means a walk).
#[derive(Debug, thiserror::Error)]
pub enum LayersError {
    #[error("layer record {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write layer record {}: {source}", path.display())]
    Write { path: PathBuf, source: crate::atomic::WriteError },
    #[error(transparent)]
    Key(#[from] crate::cache::CacheError),
    #[error(transparent)]
    Boot(#[from] crate::cache::BootIdUnreadable),
    #[error("{}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{} is not a regular file owned by this user and writable only by it", path.display())]
    NotOwned { path: PathBuf },
    #[error("{} has no MAC", path.display())]
    NoMac { path: PathBuf },
    #[error("{}: integrity check failed (edited, truncated or from another node)", path.display())]
    Integrity { path: PathBuf },
    #[error("{}: no header line", path.display())]
    NoHeader { path: PathBuf },
    #[error("{}: {error}", path.display())]
    Header { path: PathBuf, error: serde_json::Error },
    #[error("{}: version {version} is not {VERSION}", path.display())]
    Version { path: PathBuf, version: u32 },
    #[error("{}: written in another boot", path.display())]
    OtherBoot { path: PathBuf },
    #[error("{}: the lower directories are not the same directories now", path.display())]
    LowersChanged { path: PathBuf },
    #[error("{}: skeleton: {error}", path.display())]
    Skeleton { path: PathBuf, error: SkeletonError },
    #[error("the record was verified in the future")]
    VerifiedInFuture,
    #[error("verified {}s ago, more than layer_ttl", age.as_secs())]
    Expired { age: Duration },
    #[error("the record's seal digest is malformed")]
    MalformedSealDigest,
    #[error("seal {} changed or is gone since it verified", seal.short())]
    SealChanged { seal: TreeDigest },
    #[error("a mount over /")]
    MountOverRoot,
    #[error("the record's exclusions are malformed")]
    MalformedExclusions,
    /// A path the verifying walk excluded (a mount destination then) that no mount hides now.
    #[error("{} was not verified (a mount destination then) and is not hidden now", display(path))]
    NotHidden { path: Vec<u8> },
    /// A mount that may hide sealed content and was not a destination of the verifying walk.
    #[error(
        "the mount at {} was not a destination when the layers verified (it may hide sealed content)",
        display(path)
    )]
    NewMount { path: Vec<u8> },
    #[error(transparent)]
    Upper(#[from] UpperError),
}

/// Why an upper directory holds more than runtime mount points (condition 3).
#[derive(Debug, thiserror::Error)]
pub enum UpperError {
    #[error("upper: {error}")]
    Open { error: crate::walk::WalkError },
    #[error("upper {} is too deep", shown(path))]
    TooDeep { path: Vec<u8> },
    #[error("upper {}: listxattr: {error}", shown(path))]
    Xattrs { path: Vec<u8>, error: std::io::Error },
    #[error("upper {} has {}", shown(path), String::from_utf8_lossy(xattr))]
    OverlayXattr { path: Vec<u8>, xattr: Vec<u8> },
    #[error("upper {}: {error}", shown(path))]
    Io { path: Vec<u8>, error: std::io::Error },
    #[error("upper has more than {MAX_UPPER_ENTRIES} entries")]
    TooManyEntries,
    #[error("upper has {} (not a mount point or a directory on the way to one)", shown(path))]
    NotMountPoint { path: Vec<u8> },
    #[error("upper directory {} differs from the verified one", shown(path))]
    DirDiffers { path: Vec<u8> },
    #[error("upper {} changed while it was checked", shown(path))]
    Raced { path: Vec<u8> },
}

/// The overlay mount whose root is the directory `root` (an fd on the rootfs), or why not.
pub fn overlay_of(root: BorrowedFd<'_>) -> Result<Overlay, OverlayError> {
    let (_, _, mnt_id) = crate::sys::statx_mount(root).map_err(|error| OverlayError::Statx { error })?;
    let parent = crate::sys::openat2(root, c"..", libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
        .map_err(|error| OverlayError::OpenParent { error })?;
    let (_, _, parent_mnt) =
        crate::sys::statx_mount(parent.as_fd()).map_err(|error| OverlayError::StatxParent { error })?;
    if parent_mnt == mnt_id {
        return Err(OverlayError::NotMountRoot);
    }
    let mounts = crate::node::mountinfo::read()?;
    let m = mounts.iter().find(|m| m.id == mnt_id).ok_or(OverlayError::NotListed { mnt_id })?;
    overlay_from(m)
}

/// One mountinfo line of an overlay mount: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - overlay SRC SUPEROPTS`.
pub fn parse_mountinfo_line(line: &str) -> Result<Overlay, OverlayError> {
    overlay_from(&crate::node::mountinfo::parse_line(line).ok_or(OverlayError::NotMountinfoLine)?)
}

/// The layers of an overlay mount, or why it is not one rootseal can vouch for.
fn overlay_from(m: &crate::node::mountinfo::Mount) -> Result<Overlay, OverlayError> {
    use crate::node::mountinfo::path;
    if m.root != Path::new("/") {
        return Err(OverlayError::Subdirectory);
    }
    if m.fstype != "overlay" {
        return Err(OverlayError::NotOverlay { fstype: m.fstype.clone() });
    }
    let mut lowers = None;
    let mut upper = None;
    for (k, v) in m.super_option_pairs() {
        match k {
            "lowerdir" => {
                if v.contains("::") || v.contains("\\:") {
                    return Err(OverlayError::DataOnlyLowers);
                }
                lowers = Some(v.split(':').map(path).collect());
            }
            "lowerdir+" | "datadir+" => return Err(OverlayError::AppendedLayers { option: k.into() }),
            "upperdir" => upper = Some(path(v)),
            "metacopy" if v == "on" => return Err(OverlayError::Metacopy),
            "verity" if v != "off" => return Err(OverlayError::Verity),
            _ => {}
        }
    }
    let lowers: Vec<PathBuf> = lowers.ok_or(OverlayError::NoLowerdir)?;
    if lowers.is_empty() || lowers.iter().any(|l| !l.is_absolute()) {
        return Err(OverlayError::RelativeLowers);
    }
    Ok(Overlay { lowers, upper })
}

/// The lowers' identities, or why they cannot be had.
pub fn identify(o: &Overlay) -> Result<Vec<Layer>, OverlayError> {
    o.lowers
        .iter()
        .map(|p| {
            // podman names its lowers by symlinks (storage/overlay/l/ID -> ../LAYER/diff), which
            // the kernel followed at mount time: host paths, followed here too.
            let m = std::fs::metadata(p).map_err(|error| OverlayError::Lower { path: p.clone(), error })?;
            if !m.is_dir() {
                return Err(OverlayError::LowerNotDir { path: p.clone() });
            }
            let path = p.to_str().ok_or_else(|| OverlayError::LowerNotUtf8 { path: p.clone() })?;
            Ok(Layer { path: path.into(), dev: m.dev(), ino: m.ino() })
        })
        .collect()
}

/// The record file for a set of lowers: `cache_dir/layers/<sha256 of the lower paths>.json`.
pub fn record_path(cache_dir: &Path, lowers: &[Layer]) -> PathBuf {
    let mut h = Sha256::new();
    for l in lowers {
        h.update(l.path.as_bytes());
        h.update([0]);
    }
    cache_dir.join("layers").join(format!("{}.json", hex(&h.finalize())))
}

/// Reads and authenticates a record; every reason to ignore it is an Err.
pub fn load(cache_dir: &Path, lowers: &[Layer]) -> Result<Record, LayersError> {
    use LayersError as E;
    let path = record_path(cache_dir, lowers);
    let read = |error| E::Read { path: path.clone(), error };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&path)
        .map_err(read)?;
    let meta = f.metadata().map_err(read)?;
    if !meta.is_file() || meta.uid() != crate::sys::euid() || meta.mode() & 0o022 != 0 {
        return Err(E::NotOwned { path });
    }
    let mut bytes = Vec::new();
    f.take(MAX_RECORD_BYTES).read_to_end(&mut bytes).map_err(read)?;
    let key = crate::cache::key(cache_dir)?;
    // JSON line, '\n', binary skeleton, then the HMAC of all that (64 hex digits).
    let Some(split) = bytes.len().checked_sub(64) else {
        return Err(E::NoMac { path });
    };
    let (body, mac) = bytes.split_at(split);
    // The tag is stored as 64 hex digits; anything that is not hex never verifies.
    let tag: Option<Vec<u8>> = mac
        .chunks(2)
        .map(|d| {
            let d = std::str::from_utf8(d).ok().filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))?;
            u8::from_str_radix(d, 16).ok()
        })
        .collect();
    if !tag.is_some_and(|t| crate::cache::hmac_verify(&key, body, &t)) {
        return Err(E::Integrity { path });
    }
    let Some(nl) = body.iter().position(|&b| b == b'\n') else {
        return Err(E::NoHeader { path });
    };
    let mut r: Record = match serde_json::from_slice(&body[..nl]) {
        Ok(r) => r,
        Err(error) => return Err(E::Header { path, error }),
    };
    if r.version != VERSION {
        return Err(E::Version { path, version: r.version });
    }
    if r.boot_id != crate::cache::known_boot()? {
        return Err(E::OtherBoot { path });
    }
    if r.lowers != lowers {
        return Err(E::LowersChanged { path });
    }
    r.skeleton = match decode_skeleton(&body[nl + 1..]) {
        Ok(m) => m,
        Err(error) => return Err(E::Skeleton { path, error }),
    };
    Ok(r)
}

/// Writes a record (atomically, 0600).
pub fn save(cache_dir: &Path, r: &Record) -> Result<(), LayersError> {
    let key = crate::cache::key(cache_dir)?;
    let dir = cache_dir.join("layers");
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| LayersError::Io { path: dir.clone(), source })?;
    }
    let mut body = serde_json::to_vec(r).expect("a record serializes");
    body.push(b'\n');
    encode_skeleton(&r.skeleton, &mut body);
    let mac = hex(&crate::cache::hmac(&key, &body));
    body.extend_from_slice(mac.as_bytes());
    let path = record_path(cache_dir, &r.lowers);
    crate::atomic::write(&path, &body, 0o600).map_err(|source| LayersError::Write { path, source })
}

/// Removes the record for these lowers (drift was seen through them). Absent is fine.
pub fn forget(cache_dir: &Path, lowers: &[Layer]) -> Result<(), LayersError> {
    let path = record_path(cache_dir, lowers);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LayersError::Io { path, source: e }),
        _ => Ok(()),
    }
}

/// What a record keeps of a tree that just matched `sealed` under `ex`: the compared
/// directories and symlinks, and whatever the seal has at a runtime artifact's path.
pub fn skeleton(found: &Manifest, ex: &Exclusions, sealed: &Manifest) -> Manifest {
    found.filtered(|e| {
        ex.keep_found(e, sealed) && (matches!(e.kind, Kind::Dir | Kind::Symlink { .. }) || ex.is_artifact_path(&e.path))
    })
}

/// A record for a walk that just passed under `ex`, with its [`skeleton`]. None when the tree
/// is not one a later start could reuse (the upper holds more than mount points).
pub fn record_for(
    overlay: &Overlay,
    lowers: Vec<Layer>,
    skeleton: Manifest,
    ex: &Exclusions,
    seal: SealMemo,
) -> Option<Record> {
    // The same check a later start makes, against what this walk saw.
    upper_holds_only_mount_points(overlay, ex, &skeleton).ok()?;
    let excluded = ex.destinations().map(hex).collect();
    Some(Record {
        version: VERSION,
        boot_id: crate::cache::known_boot().ok()?,
        verified_at: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs(),
        lowers,
        seal,
        excluded,
        skeleton,
    })
}

/// Conditions 1 to 4 and the seal file part of 5 (module doc) for a rootfs over `overlay`:
/// Ok(record) when it may start without a walk, once its seal passes trust and policy now.
#[allow(clippy::too_many_arguments)]
pub fn reusable(
    cache_dir: &Path,
    overlay: &Overlay,
    lowers: &[Layer],
    destinations: &[Vec<u8>],
    artifacts: Vec<(Vec<u8>, Kind)>,
    may_shadow: impl Fn(&[u8]) -> bool,
    seal_file: impl Fn(&TreeDigest) -> PathBuf,
    ttl: Duration,
    now: SystemTime,
) -> Result<Record, LayersError> {
    use LayersError as E;
    let r = load(cache_dir, lowers)?;
    let age = now
        .duration_since(SystemTime::UNIX_EPOCH + Duration::from_secs(r.verified_at))
        .map_err(|_| E::VerifiedInFuture)?;
    if age > ttl {
        return Err(E::Expired { age });
    }
    let digest = r.seal.tree_digest().ok_or(E::MalformedSealDigest)?;
    if file_key(&seal_file(&digest)).ok() != Some(r.seal.file) {
        return Err(E::SealChanged { seal: digest });
    }
    let skeleton = &r.skeleton;
    let ex = Exclusions::new(destinations, skeleton).with_artifacts(artifacts);
    if ex.destinations().any(|d| d.is_empty()) {
        return Err(E::MountOverRoot);
    }
    for root in &r.excluded {
        let root = crate::manifest::parse_hex(root).ok_or(E::MalformedExclusions)?;
        if !ex.is_excluded(&root) {
            return Err(E::NotHidden { path: root });
        }
    }
    // A mount that may not hide sealed content was checked against the whole seal by the
    // verifying walk only if it was a destination then (the skeleton has no files to check).
    for d in ex.destinations() {
        if !may_shadow(d) && !r.excluded.contains(&hex(d)) {
            return Err(E::NewMount { path: d.to_vec() });
        }
    }
    upper_holds_only_mount_points(overlay, &ex, skeleton)?;
    Ok(r)
}

/// Condition 3 of the module doc.
pub fn upper_holds_only_mount_points(
    overlay: &Overlay,
    ex: &Exclusions,
    skeleton: &Manifest,
) -> Result<(), UpperError> {
    let Some(upper) = &overlay.upper else {
        // A read-only overlay (lowers only): nothing but the layers.
        return Ok(());
    };
    let root = crate::walk::open_root(upper).map_err(|error| UpperError::Open { error })?;
    let mut seen = 0usize;
    check_upper_dir(root.as_fd(), b"", 0, ex, skeleton, &mut seen)
}

fn check_upper_dir(
    dir: BorrowedFd<'_>,
    path: &[u8],
    depth: usize,
    ex: &Exclusions,
    skeleton: &Manifest,
    seen: &mut usize,
) -> Result<(), UpperError> {
    use UpperError as E;
    if depth > MAX_UPPER_DEPTH {
        return Err(E::TooDeep { path: path.to_vec() });
    }
    for name in crate::sys::flistxattr(dir, 64 * 1024).map_err(|error| E::Xattrs { path: path.to_vec(), error })? {
        let attr = name.strip_prefix(b"trusted.overlay.").or_else(|| name.strip_prefix(b"user.overlay."));
        if attr.is_some_and(|a| !HARMLESS_OVERLAY_XATTRS.contains(&a)) {
            return Err(E::OverlayXattr { path: path.to_vec(), xattr: name });
        }
    }
    let mut names = crate::sys::DirNames::default();
    names.read(dir, MAX_UPPER_ENTRIES).map_err(|error| E::Io { path: path.to_vec(), error })?;
    for i in 0..names.len() {
        let (name, _) = names.get(i);
        *seen += 1;
        if *seen > MAX_UPPER_ENTRIES {
            return Err(E::TooManyEntries);
        }
        let mut child = path.to_vec();
        child.push(b'/');
        child.extend_from_slice(name.to_bytes());
        if ex.is_excluded(&child) {
            continue; // hidden by a mount in the container, as the walk's compare excludes it
        }
        let io = |error| E::Io { path: child.clone(), error };
        let st = crate::sys::lstatat(dir, name).map_err(io)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK && skeleton.get(&child).is_none() {
            // What the runtime itself creates outside any mount (podman's /etc/mtab), where
            // the seal has nothing: the walk's compare ignores exactly that too.
            let target = crate::sys::readlinkat(dir, name, 4096).map_err(io)?;
            let e = crate::manifest::Entry {
                path: child.clone(),
                mode: st.st_mode & 0o7777,
                uid: st.st_uid,
                gid: st.st_gid,
                kind: Kind::Symlink { target },
            };
            if ex.is_artifact(&e) {
                continue;
            }
        }
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR || !ex.is_ancestor(&child) {
            return Err(E::NotMountPoint { path: child });
        }
        if let Some(e) = skeleton.get(&child) {
            if e.kind != Kind::Dir || e.mode != st.st_mode & 0o7777 || e.uid != st.st_uid || e.gid != st.st_gid {
                return Err(E::DirDiffers { path: child });
            }
        }
        let fd: OwnedFd = crate::sys::openat2(
            dir,
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            crate::sys::RESOLVE_STRICT,
        )
        .map_err(io)?;
        let again = crate::sys::fstat(fd.as_fd()).map_err(io)?;
        if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
            return Err(E::Raced { path: child });
        }
        check_upper_dir(fd.as_fd(), &child, depth + 1, ex, skeleton, seen)?;
    }
    Ok(())
}

fn display(p: &[u8]) -> String {
    crate::manifest::display_path(p)
}

/// A path in the upper directory for messages: its root is "/".
fn shown(p: &[u8]) -> String {
    if p.is_empty() {
        "/".to_string()
    } else {
        display(p)
    }
}

/// The paths of an overlay's lowers, for messages.
pub fn describe(lowers: &[Layer]) -> String {
    match lowers {
        [one] => one.path.clone(),
        [first, ..] => format!("{} and {} more", first.path, lowers.len() - 1),
        [] => String::new(),
    }
}

#[cfg(test)]
#[path = "layers_tests.rs"]
mod tests;
