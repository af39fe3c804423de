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

#[derive(Debug, thiserror::Error)]
pub enum LayersError {
    #[error("layer record {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write layer record {}: {source}", path.display())]
    Write { path: PathBuf, source: crate::atomic::WriteError },
    #[error(transparent)]
    Key(#[from] crate::cache::CacheError),
}

/// The overlay mount whose root is the directory `root` (an fd on the rootfs), or why not.
pub fn overlay_of(root: BorrowedFd<'_>) -> Result<Overlay, String> {
    let (_, _, mnt_id) = crate::sys::statx_mount(root).map_err(|e| format!("statx: {e}"))?;
    let parent = crate::sys::openat2(root, c"..", libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
        .map_err(|e| format!("open ..: {e}"))?;
    let (_, _, parent_mnt) = crate::sys::statx_mount(parent.as_fd()).map_err(|e| format!("statx ..: {e}"))?;
    if parent_mnt == mnt_id {
        return Err("the rootfs is not the root of a mount".into());
    }
    let mounts = crate::node::mountinfo::read()?;
    let m = mounts
        .iter()
        .find(|m| m.id == mnt_id)
        .ok_or_else(|| format!("mount {mnt_id} is not in /proc/self/mountinfo"))?;
    overlay_from(m)
}

/// One mountinfo line of an overlay mount: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - overlay SRC SUPEROPTS`.
pub fn parse_mountinfo_line(line: &str) -> Result<Overlay, String> {
    overlay_from(&crate::node::mountinfo::parse_line(line).ok_or("not a mountinfo line")?)
}

/// The layers of an overlay mount, or why it is not one rootseal can vouch for.
fn overlay_from(m: &crate::node::mountinfo::Mount) -> Result<Overlay, String> {
    use crate::node::mountinfo::path;
    if m.root != Path::new("/") {
        return Err("the mount shows a subdirectory of its filesystem".into());
    }
    if m.fstype != "overlay" {
        return Err(format!("the rootfs is a {:?} mount, not overlay", m.fstype));
    }
    let mut lowers = None;
    let mut upper = None;
    for (k, v) in m.super_option_pairs() {
        match k {
            "lowerdir" => {
                if v.contains("::") || v.contains("\\:") {
                    return Err("data-only or escaped lower layers are not supported".into());
                }
                lowers = Some(v.split(':').map(path).collect());
            }
            "lowerdir+" | "datadir+" => return Err(format!("{k} layers are not supported")),
            "upperdir" => upper = Some(path(v)),
            "metacopy" if v == "on" => return Err("metacopy=on: file data may live outside the layers".into()),
            "verity" if v != "off" => return Err("verity mounts are not supported".into()),
            _ => {}
        }
    }
    let lowers: Vec<PathBuf> = lowers.ok_or("the overlay has no lowerdir")?;
    if lowers.is_empty() || lowers.iter().any(|l| !l.is_absolute()) {
        return Err("the overlay's lowerdir is not a list of absolute paths".into());
    }
    Ok(Overlay { lowers, upper })
}

/// The lowers' identities, or why they cannot be had.
pub fn identify(o: &Overlay) -> Result<Vec<Layer>, String> {
    o.lowers
        .iter()
        .map(|p| {
            // podman names its lowers by symlinks (storage/overlay/l/ID -> ../LAYER/diff), which
            // the kernel followed at mount time: host paths, followed here too.
            let m = std::fs::metadata(p).map_err(|e| format!("lower {}: {e}", p.display()))?;
            if !m.is_dir() {
                return Err(format!("lower {} is not a directory", p.display()));
            }
            let path = p.to_str().ok_or_else(|| format!("lower {} is not UTF-8", p.display()))?;
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
pub fn load(cache_dir: &Path, lowers: &[Layer]) -> Result<Record, String> {
    let path = record_path(cache_dir, lowers);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = f.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() || meta.uid() != crate::sys::euid() || meta.mode() & 0o022 != 0 {
        return Err(format!("{} is not a regular file owned by this user and writable only by it", path.display()));
    }
    let mut bytes = Vec::new();
    f.take(MAX_RECORD_BYTES).read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let key = crate::cache::key(cache_dir).map_err(|e| e.to_string())?;
    // JSON line, '\n', binary skeleton, then the HMAC of all that (64 hex digits).
    let Some(split) = bytes.len().checked_sub(64) else {
        return Err(format!("{} has no MAC", path.display()));
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
        return Err(format!("{}: integrity check failed (edited, truncated or from another node)", path.display()));
    }
    let nl = body.iter().position(|&b| b == b'\n').ok_or_else(|| format!("{}: no header line", path.display()))?;
    let mut r: Record = serde_json::from_slice(&body[..nl]).map_err(|e| format!("{}: {e}", path.display()))?;
    if r.version != VERSION {
        return Err(format!("{}: version {} is not {VERSION}", path.display(), r.version));
    }
    if r.boot_id != crate::cache::known_boot()? {
        return Err(format!("{}: written in another boot", path.display()));
    }
    if r.lowers != lowers {
        return Err(format!("{}: the lower directories are not the same directories now", path.display()));
    }
    r.skeleton = decode_skeleton(&body[nl + 1..]).map_err(|e| format!("{}: skeleton: {e}", path.display()))?;
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
) -> Result<Record, String> {
    let r = load(cache_dir, lowers)?;
    let age = now
        .duration_since(SystemTime::UNIX_EPOCH + Duration::from_secs(r.verified_at))
        .map_err(|_| "the record was verified in the future".to_string())?;
    if age > ttl {
        return Err(format!("verified {}s ago, more than layer_ttl", age.as_secs()));
    }
    let digest = r.seal.tree_digest().ok_or("the record's seal digest is malformed")?;
    if file_key(&seal_file(&digest)).ok() != Some(r.seal.file) {
        return Err(format!("seal {} changed or is gone since it verified", digest.short()));
    }
    let skeleton = &r.skeleton;
    let ex = Exclusions::new(destinations, skeleton).with_artifacts(artifacts);
    if ex.destinations().any(|d| d.is_empty()) {
        return Err("a mount over /".into());
    }
    for root in &r.excluded {
        let root = crate::manifest::parse_hex(root).ok_or("the record's exclusions are malformed")?;
        if !ex.is_excluded(&root) {
            return Err(format!(
                "{} was not verified (a mount destination then) and is not hidden now",
                crate::manifest::display_path(&root)
            ));
        }
    }
    // A mount that may not hide sealed content was checked against the whole seal by the
    // verifying walk only if it was a destination then (the skeleton has no files to check).
    for d in ex.destinations() {
        if !may_shadow(d) && !r.excluded.contains(&hex(d)) {
            return Err(format!(
                "the mount at {} was not a destination when the layers verified (it may hide sealed content)",
                crate::manifest::display_path(d)
            ));
        }
    }
    upper_holds_only_mount_points(overlay, &ex, skeleton)?;
    Ok(r)
}

/// Condition 3 of the module doc.
pub fn upper_holds_only_mount_points(overlay: &Overlay, ex: &Exclusions, skeleton: &Manifest) -> Result<(), String> {
    let Some(upper) = &overlay.upper else {
        // A read-only overlay (lowers only): nothing but the layers.
        return Ok(());
    };
    let root = crate::walk::open_root(upper).map_err(|e| format!("upper: {e}"))?;
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
) -> Result<(), String> {
    let shown = || if path.is_empty() { "/".to_string() } else { crate::manifest::display_path(path) };
    if depth > MAX_UPPER_DEPTH {
        return Err(format!("upper {} is too deep", shown()));
    }
    for name in crate::sys::flistxattr(dir, 64 * 1024).map_err(|e| format!("upper {}: listxattr: {e}", shown()))? {
        let attr = name.strip_prefix(b"trusted.overlay.").or_else(|| name.strip_prefix(b"user.overlay."));
        if attr.is_some_and(|a| !HARMLESS_OVERLAY_XATTRS.contains(&a)) {
            return Err(format!("upper {} has {}", shown(), String::from_utf8_lossy(&name)));
        }
    }
    let mut names = crate::sys::DirNames::default();
    names.read(dir, MAX_UPPER_ENTRIES).map_err(|e| format!("upper {}: {e}", shown()))?;
    for i in 0..names.len() {
        let (name, _) = names.get(i);
        *seen += 1;
        if *seen > MAX_UPPER_ENTRIES {
            return Err(format!("upper has more than {MAX_UPPER_ENTRIES} entries"));
        }
        let mut child = path.to_vec();
        child.push(b'/');
        child.extend_from_slice(name.to_bytes());
        if ex.is_excluded(&child) {
            continue; // hidden by a mount in the container, as the walk's compare excludes it
        }
        let st = crate::sys::lstatat(dir, name).map_err(|e| format!("upper {}: {e}", display(&child)))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK && skeleton.get(&child).is_none() {
            // What the runtime itself creates outside any mount (podman's /etc/mtab), where
            // the seal has nothing: the walk's compare ignores exactly that too.
            let target =
                crate::sys::readlinkat(dir, name, 4096).map_err(|e| format!("upper {}: {e}", display(&child)))?;
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
            return Err(format!("upper has {} (not a mount point or a directory on the way to one)", display(&child)));
        }
        if let Some(e) = skeleton.get(&child) {
            if e.kind != Kind::Dir || e.mode != st.st_mode & 0o7777 || e.uid != st.st_uid || e.gid != st.st_gid {
                return Err(format!("upper directory {} differs from the verified one", display(&child)));
            }
        }
        let fd: OwnedFd = crate::sys::openat2(
            dir,
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            crate::sys::RESOLVE_STRICT,
        )
        .map_err(|e| format!("upper {}: {e}", display(&child)))?;
        let again = crate::sys::fstat(fd.as_fd()).map_err(|e| format!("upper {}: {e}", display(&child)))?;
        if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) {
            return Err(format!("upper {} changed while it was checked", display(&child)));
        }
        check_upper_dir(fd.as_fd(), &child, depth + 1, ex, skeleton, seen)?;
    }
    Ok(())
}

/// The skeleton as records of: kind (u8), mode, uid, gid (u32 LE), path (u32 LE length, bytes),
/// then per kind: a symlink's target (length, bytes); a file's size (u64 LE), SHA-256 and
/// capability (length, bytes; u32::MAX for none); a device's major and minor (u64 LE).
fn encode_skeleton(m: &Manifest, out: &mut Vec<u8>) {
    let bytes = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(b);
    };
    for e in m.entries() {
        let tag: u8 = match e.kind {
            Kind::Dir => 0,
            Kind::Symlink { .. } => 1,
            Kind::File { .. } => 2,
            Kind::CharDev { .. } => 3,
            Kind::BlockDev { .. } => 4,
            Kind::Fifo => 5,
            Kind::Socket => 6,
        };
        out.push(tag);
        for v in [e.mode, e.uid, e.gid] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        bytes(out, &e.path);
        match &e.kind {
            Kind::Symlink { target } => bytes(out, target),
            Kind::File { size, sha256, cap } => {
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(sha256);
                match cap {
                    Some(c) => bytes(out, c),
                    None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
                }
            }
            Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
                out.extend_from_slice(&major.to_le_bytes());
                out.extend_from_slice(&minor.to_le_bytes());
            }
            Kind::Dir | Kind::Fifo | Kind::Socket => {}
        }
    }
}

/// Reads [`encode_skeleton`]'s records back; the paths must ascend strictly, as in any
/// manifest. Only authenticated bytes (the record's HMAC) reach it; bounded all the same.
fn decode_skeleton(mut b: &[u8]) -> Result<Manifest, String> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if b.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn u32_(b: &mut &[u8]) -> Result<u32, String> {
        Ok(u32::from_le_bytes(take(b, 4)?.try_into().expect("4 bytes")))
    }
    fn u64_(b: &mut &[u8]) -> Result<u64, String> {
        Ok(u64::from_le_bytes(take(b, 8)?.try_into().expect("8 bytes")))
    }
    fn bytes(b: &mut &[u8]) -> Result<Vec<u8>, String> {
        let n = u32_(b)? as usize;
        Ok(take(b, n)?.to_vec())
    }
    let mut entries: Vec<crate::manifest::Entry> = Vec::new();
    while !b.is_empty() {
        let tag = take(&mut b, 1)?[0];
        let (mode, uid, gid) = (u32_(&mut b)?, u32_(&mut b)?, u32_(&mut b)?);
        let path = bytes(&mut b)?;
        let kind = match tag {
            0 => Kind::Dir,
            1 => Kind::Symlink { target: bytes(&mut b)? },
            2 => {
                let size = u64_(&mut b)?;
                let sha256: [u8; 32] = take(&mut b, 32)?.try_into().expect("32 bytes");
                let cap = match u32_(&mut b)? {
                    u32::MAX => None,
                    n => Some(take(&mut b, n as usize)?.to_vec()),
                };
                Kind::File { size, sha256, cap }
            }
            3 => Kind::CharDev { major: u64_(&mut b)?, minor: u64_(&mut b)? },
            4 => Kind::BlockDev { major: u64_(&mut b)?, minor: u64_(&mut b)? },
            5 => Kind::Fifo,
            6 => Kind::Socket,
            t => return Err(format!("unknown kind {t}")),
        };
        if entries.last().is_some_and(|l| l.path >= path) {
            return Err("paths out of order".into());
        }
        entries.push(crate::manifest::Entry { path, mode, uid, gid, kind });
    }
    Ok(Manifest::from_entries(entries))
}

fn display(p: &[u8]) -> String {
    crate::manifest::display_path(p)
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
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse_and_refuse_what_is_not_supported() {
        let ok = "47 27 0:40 / /tmp/ov/m rw,relatime - overlay overlay rw,lowerdir=/l\\0402:/l1,upperdir=/u,workdir=/w,uuid=on";
        let o = parse_mountinfo_line(ok).unwrap();
        assert_eq!(o.lowers, vec![PathBuf::from("/l 2"), PathBuf::from("/l1")]);
        assert_eq!(o.upper, Some(PathBuf::from("/u")));
        for (bad, why) in [
            (ok.replace("overlay overlay", "ext4 /dev/sda"), "not overlay"),
            (ok.replace(" / /tmp", " /sub /tmp"), "subdirectory"),
            (ok.replace("uuid=on", "metacopy=on"), "metacopy"),
            (ok.replace("/l1,", "::/data,"), "data-only"),
            (ok.replace("lowerdir=/l\\0402:/l1,", ""), "no lowerdir"),
            (ok.replace("/l1,", "rel,"), "absolute"),
        ] {
            let e = parse_mountinfo_line(&bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn records_round_trip_and_refuse_edits_other_lowers_and_other_keys() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path().join("cache");
        let lowers = vec![Layer { path: "/a".into(), dev: 1, ino: 2 }];
        let r = Record {
            version: VERSION,
            boot_id: crate::cache::known_boot().unwrap(),
            verified_at: 1,
            lowers: lowers.clone(),
            seal: SealMemo {
                digest: format!("sha256:{}", "ab".repeat(32)),
                name: "app".into(),
                created: 5,
                expires: None,
                keyids: vec!["k".into()],
                file: [0; 7],
            },
            excluded: vec![hex(b"/proc")],
            skeleton: Manifest::from_entries(vec![
                crate::manifest::Entry { path: b"/etc".to_vec(), mode: 0o755, uid: 0, gid: 0, kind: Kind::Dir },
                crate::manifest::Entry {
                    path: b"/etc/mtab".to_vec(),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    kind: Kind::File { size: 3, sha256: [7; 32], cap: Some(vec![1, 2]) },
                },
                crate::manifest::Entry {
                    path: b"/var/run".to_vec(),
                    mode: 0o777,
                    uid: 1,
                    gid: 2,
                    kind: Kind::Symlink { target: b"/run".to_vec() },
                },
                crate::manifest::Entry {
                    path: b"/z".to_vec(),
                    mode: 0o600,
                    uid: 0,
                    gid: 0,
                    kind: Kind::CharDev { major: 1, minor: 3 },
                },
            ]),
        };
        save(&cache, &r).unwrap();
        assert_eq!(load(&cache, &lowers).unwrap(), r);
        let other = vec![Layer { path: "/a".into(), dev: 1, ino: 3 }];
        assert!(load(&cache, &other).unwrap_err().contains("not the same directories"));
        let path = record_path(&cache, &lowers);
        let mut bytes = std::fs::read(&path).unwrap();
        // A byte of the header, then a byte of the binary skeleton.
        let i = bytes.windows(5).position(|w| w == b"\"app\"").unwrap();
        bytes[i + 1] = b'b';
        std::fs::write(&path, &bytes).unwrap();
        assert!(load(&cache, &lowers).unwrap_err().contains("integrity"));
        save(&cache, &r).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let i = bytes.windows(4).position(|w| w == b"/run").unwrap();
        bytes[i + 1] = b'x';
        std::fs::write(&path, &bytes).unwrap();
        assert!(load(&cache, &lowers).unwrap_err().contains("integrity"));
        let mut short = std::fs::read(&path).unwrap();
        short.truncate(short.len() - 70);
        std::fs::write(&path, &short).unwrap();
        assert!(load(&cache, &lowers).is_err());
        save(&cache, &r).unwrap();
        std::fs::write(cache.join("key"), [9u8; 32]).unwrap();
        assert!(load(&cache, &lowers).unwrap_err().contains("integrity"));
        forget(&cache, &lowers).unwrap();
        forget(&cache, &lowers).unwrap();
        assert!(load(&cache, &lowers).is_err());
    }
}
