//! The per-file verification cache (docs/performance.md): a file whose stat key (device,
//! inode, size, mtime and ctime in nanoseconds) is unchanged since it was hashed is not read
//! again. Any write, truncate, rename, chmod, chown or xattr change moves ctime, which the
//! kernel sets and no user call can set back.
//!
//! One cache file per rootfs path: `cache_dir/<sha256(rootfs path)>.cache`, root-only (0600),
//! written atomically. Files are keyed by a 64-bit hash of their path ([`path_hash`]), not by
//! the path: the cache of a 100 000-file rootfs is alive during the hook's walk, and paths
//! would double its size. A hash collision can only cost a cache miss: a record is used only
//! when the file's whole stat key matches, device and inode included, so a record found under
//! another path's hash describes this very inode, unchanged since it was hashed. The file is
//! discarded, never trusted, when:
//! 1. its HMAC-SHA256 (key: `cache_dir/key`, 32 random bytes, 0600) does not verify: edited,
//!    truncated, or from another node;
//! 2. it was written in another boot (`/proc/sys/kernel/random/boot_id`);
//! 3. the rootfs root is another directory or mount (device, inode, mount id differ);
//! 4. its version or path differs.
//!
//! "Racily clean" files (mtime or ctime within 2 s of when the cache is written) are not
//! cached: a write in the same timestamp tick as the hash would otherwise go unseen.
//!
//! Writes through a shared writable mapping are the exception to "every change moves ctime":
//! they move c/mtime only where the filesystem's `page_mkwrite` calls `file_update_time` (on the
//! first write to a clean page), and a page already dirty takes further writes silently. The
//! walk therefore (1) caches a file only if it held a read lease on it throughout the hash
//! (refused while anyone has it open for writing or mapped writable), and (2) uses and builds a
//! cache only on filesystems where both halves hold ([`fs_cache`]): an allow-list of ext4, xfs
//! and btrfs. tmpfs, ramfs and hugetlbfs never move a timestamp for a mapped write; on overlay
//! the lease is taken on the overlay inode, which does not see a host process that opened or
//! mapped the real lower or upper file, so a page it dirtied before the hash can be rewritten
//! after it with no ctime change. Overlay is not cached at all (see [`FsCache::LeaseBlind`]).

use crate::manifest::hex;
use sha2::{Digest as _, Sha256};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Version 2 keys records by path hash (version 1 files, keyed by path, are discarded).
const MAGIC: &[u8; 8] = b"RSCACHE2";
/// The smallest record: path hash, seven stat numbers, SHA-256 and capability length.
const MIN_RECORD: u64 = 8 + 7 * 8 + 32 + 4;
const MAX_CACHE_BYTES: u64 = 1 << 30;
/// Files changed this close to the cache's writing are left out of it.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What the kernel changes on any change to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl StatKey {
    pub fn of(st: &libc::stat) -> StatKey {
        StatKey {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }

    /// Changed within [`RACY_WINDOW`] of `written` (or after it).
    pub fn racy(&self, written: SystemTime) -> bool {
        let now = written.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0);
        let window = RACY_WINDOW.as_nanos() as i128;
        let ns = |(s, n): (i64, i64)| s as i128 * 1_000_000_000 + n as i128;
        ns(self.mtime) + window >= now || ns(self.ctime) + window >= now
    }
}

/// Filesystem magic numbers (linux/magic.h) that [`fs_cache`] knows.
mod magic {
    /// ext2, ext3 and ext4 share one magic.
    pub const EXT4: u32 = 0xEF53;
    pub const XFS: u32 = 0x5846_5342;
    pub const BTRFS: u32 = 0x9123_683E;
    pub const TMPFS: u32 = 0x0102_1994;
    pub const RAMFS: u32 = 0x8584_58F6;
    pub const HUGETLBFS: u32 = 0x9584_58F6;
    pub const OVERLAYFS: u32 = 0x794C_7630;
}

/// Whether a stat key can stand for a file's content on a filesystem: the decision the walk
/// makes once per tree (it never crosses a mount) before it uses or builds a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsCache {
    /// ext4, xfs, btrfs: their `page_mkwrite` moves c/mtime on the first write to a clean
    /// mapped page (ext4_page_mkwrite, xfs_write_fault, btrfs_page_mkwrite all call
    /// `file_update_time`), and a read lease on the file sees every writer, so a file leased
    /// throughout its hash had no page dirtied before it either.
    Sound,
    /// tmpfs, ramfs, hugetlbfs: no `page_mkwrite` timestamp update, so a write through a shared
    /// mapping never moves mtime or ctime.
    MappedWritesUnseen,
    /// overlay: the read lease is on the overlay inode, blind to a host process that has the
    /// real (lower or upper) file open for writing or mapped; the overlay fd gives no way to
    /// reach and lease the real inode.
    LeaseBlind,
    /// Not on the allow-list: not known to move c/mtime on mapped writes.
    Unknown,
}

/// The decision for a filesystem type (`statfs.f_type`).
pub fn fs_cache(f_type: u32) -> FsCache {
    match f_type {
        magic::EXT4 | magic::XFS | magic::BTRFS => FsCache::Sound,
        magic::TMPFS | magic::RAMFS | magic::HUGETLBFS => FsCache::MappedWritesUnseen,
        magic::OVERLAYFS => FsCache::LeaseBlind,
        _ => FsCache::Unknown,
    }
}

/// A cached file: its stat key when hashed, and what hashing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub key: StatKey,
    pub sha256: [u8; 32],
    pub cap: Option<Vec<u8>>,
}

/// Identity of the rootfs root: a cache for another directory or mount is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootId {
    pub dev: u64,
    pub ino: u64,
    pub mnt_id: u64,
}

impl RootId {
    pub fn of(fd: &impl AsFd) -> std::io::Result<RootId> {
        let (dev, ino, mnt_id) = crate::sys::statx_mount(fd.as_fd())?;
        Ok(RootId { dev, ino, mnt_id })
    }
}

/// The cached files of one rootfs, by path (absolute within the tree).
#[derive(Debug, Default, Clone)]
pub struct Cache {
    pub files: Files,
}

impl Cache {
    /// The cache minus racily clean files (changed within [`RACY_WINDOW`] of `now`), sorted
    /// for lookups.
    pub fn without_racy(mut self, now: SystemTime) -> Cache {
        self.files.retain(|c| !c.key.racy(now));
        self.files.sort();
        self
    }
}

/// The cache's key for a file: the first 8 bytes of the SHA-256 of its path (absolute within
/// the tree). Stable across processes and builds, since cache files store it.
pub fn path_hash(path: &[u8]) -> u64 {
    let d = Sha256::digest(path);
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// Cached files by [`path_hash`]: a map in two flat lists, 120 bytes a file where a
/// `HashMap<Vec<u8>, Cached>` took about 250 (its path, its table's spare buckets).
///
/// `keys[..sorted]` ascend strictly and are binary searched; `keys[sorted..]` were inserted out
/// of order since and are searched last to first. [`Files::sort`] (run by [`load`] and
/// [`Cache::without_racy`]) merges them in.
#[derive(Debug, Default, Clone)]
pub struct Files {
    keys: Vec<u64>,
    values: Vec<Cached>,
    sorted: usize,
}

impl Files {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn reserve(&mut self, additional: usize) {
        self.keys.reserve(additional);
        self.values.reserve(additional);
    }

    fn position(&self, hash: u64) -> Option<usize> {
        if let Some(i) = self.keys[self.sorted..].iter().rposition(|&k| k == hash) {
            return Some(self.sorted + i);
        }
        self.keys[..self.sorted].binary_search(&hash).ok()
    }

    pub fn get(&self, path: &[u8]) -> Option<&Cached> {
        self.position(path_hash(path)).map(|i| &self.values[i])
    }

    pub fn get_mut(&mut self, path: &[u8]) -> Option<&mut Cached> {
        self.position(path_hash(path)).map(|i| &mut self.values[i])
    }

    /// Inserts or replaces the record for `path`.
    pub fn insert(&mut self, path: impl AsRef<[u8]>, cached: Cached) {
        self.insert_hashed(path_hash(path.as_ref()), cached);
    }

    fn insert_hashed(&mut self, hash: u64, cached: Cached) {
        if self.sorted == self.keys.len() && self.keys.last().is_none_or(|&k| k < hash) {
            self.sorted += 1;
        } else if let Some(i) = self.position(hash) {
            self.values[i] = cached;
            return;
        }
        self.keys.push(hash);
        self.values.push(cached);
    }

    /// Keeps the records for which `keep` says true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Cached) -> bool) {
        let (mut w, mut sorted) = (0, 0);
        for i in 0..self.keys.len() {
            if keep(&self.values[i]) {
                self.keys.swap(w, i);
                self.values.swap(w, i);
                w += 1;
                if i < self.sorted {
                    sorted += 1;
                }
            }
        }
        self.keys.truncate(w);
        self.values.truncate(w);
        self.sorted = sorted;
    }

    /// Sorts by path hash in place, so that every lookup is a binary search.
    pub fn sort(&mut self) {
        let n = self.keys.len();
        if self.sorted == n {
            return;
        }
        // Stable: of two records for one hash, the later insert comes last and wins below.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| self.keys[i]);
        // Position j takes the record now at order[j], one cycle of the permutation at a time.
        for start in 0..n {
            let mut j = start;
            while order[j] != usize::MAX {
                let k = std::mem::replace(&mut order[j], usize::MAX);
                if k == start {
                    break;
                }
                self.keys.swap(j, k);
                self.values.swap(j, k);
                j = k;
            }
        }
        drop(order);
        let mut w = 0;
        for i in 0..n {
            if w > 0 && self.keys[w - 1] == self.keys[i] {
                self.values.swap(w - 1, i);
            } else {
                self.keys.swap(w, i);
                self.values.swap(w, i);
                w += 1;
            }
        }
        self.keys.truncate(w);
        self.values.truncate(w);
        self.sorted = w;
    }

    /// (path hash, record) in ascending hash order; the last insert of a hash only.
    fn iter_sorted(&self) -> Vec<(u64, &Cached)> {
        let mut order: Vec<usize> = (0..self.keys.len()).collect();
        if self.sorted != self.keys.len() {
            order.sort_by_key(|&i| self.keys[i]);
        }
        let mut out: Vec<(u64, &Cached)> = Vec::with_capacity(order.len());
        for i in order {
            match out.last_mut() {
                Some(last) if last.0 == self.keys[i] => last.1 = &self.values[i],
                _ => out.push((self.keys[i], &self.values[i])),
            }
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write cache {}: {source}", path.display())]
    Write { path: PathBuf, source: crate::atomic::WriteError },
}

/// The kernel's boot id could not be read: nothing can be tied to this boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the boot id cannot be read, so a cache cannot be tied to this boot")]
pub struct BootIdUnreadable;

/// Why a cache file is discarded (never trusted): the text after "cache PATH discarded: ".
#[derive(Debug, thiserror::Error)]
pub enum CacheFormatError {
    #[error(transparent)]
    Key(#[from] CacheError),
    #[error("read: {error}")]
    Read { error: std::io::Error },
    #[error("not a rootseal cache (bad magic or truncated)")]
    BadMagic,
    #[error("header too long")]
    HeaderTooLong,
    #[error("header: {error}")]
    Header { error: serde_json::Error },
    #[error("truncated record")]
    TruncatedRecord,
    #[error("record capability too long")]
    CapabilityTooLong,
    #[error("integrity check failed (edited, truncated or from another node)")]
    Integrity,
    #[error(transparent)]
    Boot(#[from] BootIdUnreadable),
    #[error("written in another boot")]
    OtherBoot,
    #[error("for another rootfs")]
    OtherRootfs,
    #[error("the rootfs is another directory or mount now")]
    RootMoved,
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

pub(crate) fn known_boot() -> Result<String, BootIdUnreadable> {
    let b = boot_id();
    if b.is_empty() {
        return Err(BootIdUnreadable);
    }
    Ok(b)
}

/// The cache file for a rootfs path.
pub fn path_for(cache_dir: &Path, rootfs: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    cache_dir.join(format!("{}.cache", hex(&Sha256::digest(rootfs.as_os_str().as_bytes()))))
}

/// The node's cache key, created (0600, in a 0700 directory) on first use.
pub(crate) fn key(cache_dir: &Path) -> Result<[u8; 32], CacheError> {
    let io = |source| CacheError::Io { path: cache_dir.into(), source };
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(cache_dir).map_err(io)?;
    let meta = std::fs::symlink_metadata(cache_dir).map_err(io)?;
    // The HMAC key lives here: a directory someone else owns could hold a key they know.
    if std::os::unix::fs::MetadataExt::uid(&meta) != crate::sys::euid() || meta.file_type().is_symlink() {
        return Err(io(std::io::Error::other(format!(
            "is a symlink or owned by uid {}, not by this user; remove it (it is only a cache)",
            std::os::unix::fs::MetadataExt::uid(&meta)
        ))));
    }
    if !meta.is_dir() || meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(cache_dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    let path = cache_dir.join("key");
    let mut buf = Vec::new();
    match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&path) {
        Ok(mut f) => {
            f.by_ref()
                .take(33)
                .read_to_end(&mut buf)
                .map_err(|source| CacheError::Io { path: path.clone(), source })?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(CacheError::Io { path, source }),
    }
    if let Ok(k) = <[u8; 32]>::try_from(buf.as_slice()) {
        return Ok(k);
    }
    let mut k = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut k);
    crate::atomic::write(&path, &k, 0o600).map_err(|source| CacheError::Write { path, source })?;
    Ok(k)
}

/// HMAC-SHA256 (RFC 2104) from RustCrypto's `hmac`, which is checked against RFC 4231 and
/// compares tags in constant time ([`hmac_verify`]).
type HmacSha256 = hmac::Hmac<Sha256>;

fn mac_for(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as hmac::Mac>::new_from_slice(key).expect("HMAC takes a key of any length")
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = mac_for(key);
    hmac::Mac::update(&mut m, data);
    hmac::Mac::finalize(m).into_bytes().into()
}

/// True when `tag` is the HMAC-SHA256 of `data` under `key`, compared in constant time.
pub(crate) fn hmac_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let mut m = mac_for(key);
    hmac::Mac::update(&mut m, data);
    hmac::Mac::verify_slice(m, tag).is_ok()
}

fn header(rootfs: &Path, root: &RootId, written: SystemTime) -> Vec<u8> {
    let secs = written.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!(
        "{{\"boot_id\":\"{}\",\"rootfs\":{},\"dev\":{},\"ino\":{},\"mnt_id\":{},\"written\":{secs}}}\n",
        boot_id(),
        serde_json::to_string(&rootfs.display().to_string()).expect("string"),
        root.dev,
        root.ino,
        root.mnt_id
    )
    .into_bytes()
}

/// Loads the cache for `rootfs` whose root is `root`. Returns the cache, or an empty one and
/// the reason it was discarded (None: there was none).
pub fn load(cache_dir: &Path, rootfs: &Path, root: &RootId) -> (Cache, Option<String>) {
    let path = path_for(cache_dir, rootfs);
    let f = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Cache::default(), None),
        Err(e) => return (Cache::default(), Some(format!("cannot read {}: {e}", path.display()))),
    };
    match f.metadata() {
        Ok(m) if m.is_file() && m.len() <= MAX_CACHE_BYTES => {}
        Ok(m) if m.is_file() => {
            return (Cache::default(), Some(format!("{} is larger than {MAX_CACHE_BYTES} bytes", path.display())))
        }
        Ok(_) => return (Cache::default(), Some(format!("{} is not a regular file", path.display()))),
        Err(e) => return (Cache::default(), Some(format!("cannot read {}: {e}", path.display()))),
    }
    // At most as many records as fit, and no more than a walk may find (`max_entries`' default).
    let records = f.metadata().map(|m| (m.len() / MIN_RECORD).min(2_000_000)).unwrap_or(0) as usize;
    match parse(cache_dir, rootfs, root, f.take(MAX_CACHE_BYTES), records) {
        Ok(c) => (c, None),
        Err(why) => (Cache::default(), Some(format!("cache {} discarded: {why}", path.display()))),
    }
}

/// Reads a cache file while computing the HMAC of everything but its last 32 bytes (the MAC),
/// so that the file is never held whole. Records are parsed as they arrive but nothing is
/// returned unless the MAC checks out at the end.
struct MacReader<R> {
    inner: R,
    /// `buf[pos..]` is read but not yet taken; the last 32 bytes of the file stay in it.
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    /// None once the MAC was checked.
    mac: Option<HmacSha256>,
}

impl<R: std::io::Read> MacReader<R> {
    fn new(inner: R, key: &[u8; 32]) -> MacReader<R> {
        MacReader { inner, buf: Vec::with_capacity(128 * 1024), pos: 0, eof: false, mac: Some(mac_for(key)) }
    }

    /// Makes `buf[pos..]` hold more than `n` + 32 bytes, unless the file ends first.
    fn fill(&mut self, n: usize) -> Result<(), CacheFormatError> {
        while !self.eof && self.buf.len() - self.pos <= n + 32 {
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.pos = 0;
            }
            let have = self.buf.len();
            self.buf.resize(have.max(n + 33) + 64 * 1024, 0);
            let got = loop {
                match self.inner.read(&mut self.buf[have..]) {
                    Ok(g) => break g,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(error) => {
                        self.buf.truncate(have);
                        return Err(CacheFormatError::Read { error });
                    }
                }
            };
            self.buf.truncate(have + got);
            self.eof = got == 0;
        }
        Ok(())
    }

    /// Takes exactly `n` body bytes (never the MAC).
    fn take(&mut self, n: usize) -> Result<&[u8], CacheFormatError> {
        self.fill(n)?;
        if self.buf.len() - self.pos < n + 32 {
            return Err(CacheFormatError::TruncatedRecord);
        }
        let out = &self.buf[self.pos..self.pos + n];
        if let Some(m) = &mut self.mac {
            hmac::Mac::update(m, out);
        }
        self.pos += n;
        Ok(out)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], CacheFormatError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    /// True when only the MAC (or less) is left.
    fn at_mac(&mut self) -> Result<bool, CacheFormatError> {
        self.fill(0)?;
        Ok(self.buf.len() - self.pos <= 32)
    }

    /// The body's HMAC under `key` equals the trailing 32 bytes, and nothing follows them.
    fn mac_ok(&mut self) -> bool {
        let Some(m) = self.mac.take() else { return false };
        self.eof && self.buf.len() - self.pos == 32 && hmac::Mac::verify_slice(m, &self.buf[self.pos..]).is_ok()
    }
}

/// `records` bounds how many records the file can hold (from its size), so that the lists are
/// allocated once.
fn parse<R: std::io::Read>(
    cache_dir: &Path,
    rootfs: &Path,
    root: &RootId,
    file: R,
    records: usize,
) -> Result<Cache, CacheFormatError> {
    use CacheFormatError as E;
    let k = key(cache_dir)?;
    let r = &mut MacReader::new(file, &k);
    let magic = r.take_array::<8>().map_err(|_| E::BadMagic)?;
    if &magic != MAGIC {
        return Err(E::BadMagic);
    }
    let mut line = Vec::new();
    loop {
        let [b] = r.take_array::<1>()?;
        if b == b'\n' {
            break;
        }
        line.push(b);
        if line.len() > 64 * 1024 {
            return Err(E::HeaderTooLong);
        }
    }
    let hdr: serde_json::Value = serde_json::from_slice(&line).map_err(|error| E::Header { error })?;
    let mut files = Files::default();
    files.reserve(records);
    while !r.at_mac()? {
        let hash = u64::from_le_bytes(r.take_array()?);
        let mut v = [0u64; 7];
        for x in &mut v {
            *x = u64::from_le_bytes(r.take_array()?);
        }
        let [dev, ino, size, ms, mn, cs, cn] = v;
        let sha256: [u8; 32] = r.take_array()?;
        let clen = u32::from_le_bytes(r.take_array()?) as usize;
        if clen > 64 * 1024 {
            return Err(E::CapabilityTooLong);
        }
        let cap = if clen == 0 { None } else { Some(r.take(clen)?.to_vec()) };
        let key = StatKey { dev, ino, size, mtime: (ms as i64, mn as i64), ctime: (cs as i64, cn as i64) };
        files.insert_hashed(hash, Cached { key, sha256, cap });
    }
    // Nothing read so far is trusted until the MAC over all of it checks out.
    if !r.mac_ok() {
        return Err(E::Integrity);
    }
    if hdr["boot_id"].as_str() != Some(known_boot()?.as_str()) {
        return Err(E::OtherBoot);
    }
    if hdr["rootfs"].as_str() != Some(rootfs.display().to_string().as_str()) {
        return Err(E::OtherRootfs);
    }
    if hdr["dev"].as_u64() != Some(root.dev)
        || hdr["ino"].as_u64() != Some(root.ino)
        || hdr["mnt_id"].as_u64() != Some(root.mnt_id)
    {
        return Err(E::RootMoved);
    }
    // Written in hash order, so this only checks; the slack the size bound left is returned.
    files.sort();
    files.keys.shrink_to_fit();
    files.values.shrink_to_fit();
    Ok(Cache { files })
}

/// Writes the cache for `rootfs` (atomically, 0600), leaving out racily clean files.
pub fn save(cache_dir: &Path, rootfs: &Path, root: &RootId, cache: &Cache) -> Result<(), CacheError> {
    let k = key(cache_dir)?;
    let written = SystemTime::now();
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&header(rootfs, root, written));
    for (hash, c) in cache.files.iter_sorted() {
        if c.key.racy(written) {
            continue;
        }
        body.extend_from_slice(&hash.to_le_bytes());
        for v in [
            c.key.dev,
            c.key.ino,
            c.key.size,
            c.key.mtime.0 as u64,
            c.key.mtime.1 as u64,
            c.key.ctime.0 as u64,
            c.key.ctime.1 as u64,
        ] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        body.extend_from_slice(&c.sha256);
        let cap = c.cap.as_deref().unwrap_or_default();
        body.extend_from_slice(&(cap.len() as u32).to_le_bytes());
        body.extend_from_slice(cap);
    }
    let mac = hmac(&k, &body);
    body.extend_from_slice(&mac);
    let path = path_for(cache_dir, rootfs);
    crate::atomic::write(&path, &body, 0o600).map_err(|source| CacheError::Write { path, source })
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
