//! The safe, parallel walk of a hostile root filesystem into a [`Manifest`].
//!
//! Security-critical sequence, per entry (the tree is attacker-controlled, we run as root):
//! 1. list a directory through its open fd (getdents64), never by path;
//! 2. `fstatat(AT_SYMLINK_NOFOLLOW)` each name: the entry itself, never what a link points at.
//!    A name getdents reports as a directory is opened first instead (step 4, `O_DIRECTORY`:
//!    the kernel refuses anything but a directory with ENOTDIR before opening it) and described
//!    by the `fstat` of that fd, so the stat recorded is of exactly what is listed; a name that
//!    turns out not to be a directory is stat'ed here like any other;
//! 3. symlinks are read with `readlinkat` and never followed; FIFOs, sockets and device nodes
//!    are described from the stat alone and never opened;
//! 4. directories and regular files are opened with openat2 relative to their parent's fd with
//!    `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV` and `O_NOFOLLOW` (regular files
//!    also `O_NONBLOCK`, so a name swapped for a FIFO cannot block us), then `fstat` on the fd
//!    must show the same type, device and inode as step 2: an entry swapped in between is an
//!    error, not a silent pass;
//! 5. a file is hashed up to the size fstat gave; a file that grows, shrinks or changes while
//!    being read is an error (the last read asks for one byte more than is left, so a file
//!    longer than its stat said shows up there; the stat after reading must match too).
//!
//! Depth, entry count, path length and total bytes are bounded; an optional deadline and a
//! cancel flag stop the walk. Hashing runs on all cores while the walk goes on.

use super::hash::{hash_worker, Hashed, Job};
use crate::manifest::{Entry, Kind, Manifest};
use crate::sys;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

const BATCH_FILES: usize = 64;
const BATCH_BYTES: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("cannot open root {}: {source}; check the path exists and is a directory", root.display())]
    OpenRoot { root: PathBuf, source: std::io::Error },
    #[error("root {} is a symlink; give the real directory", root.display())]
    RootSymlink { root: PathBuf },
    #[error("root {} is not a directory", root.display())]
    RootNotDir { root: PathBuf },
    #[error("{op} {path} under {}: {source}", root.display())]
    Io { op: &'static str, path: String, root: PathBuf, source: std::io::Error },
    #[error("{path} under {} changed while it was read ({what}); the tree is being modified, retry when it is quiet", root.display())]
    Raced { path: String, root: PathBuf, what: &'static str },
    #[error("{path} under {} is a mount point; the walk does not cross mounts, unmount it or digest the mounted tree separately", root.display())]
    MountPoint { path: String, root: PathBuf },
    #[error("limit exceeded under {}: {what} (limit {limit}); raise [limits] {key} in the config if this tree is legitimate", root.display())]
    Limit { root: PathBuf, what: String, key: &'static str, limit: u64 },
    #[error("walk of {} exceeded its deadline", root.display())]
    Deadline { root: PathBuf },
    #[error("walk of {} was cancelled", root.display())]
    Cancelled { root: PathBuf },
}

/// Bounds on what a walk will accept (config `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_depth: u32,
    pub max_entries: u64,
    pub max_path_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 128, max_entries: 2_000_000, max_path_bytes: 4096, max_total_bytes: 64 << 30 }
    }
}

/// A predicate over tree paths: true skips the path and its subtree.
pub type Prune = dyn Fn(&[u8]) -> bool + Sync;

/// Walked entries, (entry, entry whose hash it copies) pairs for later hard links, and each
/// regular file's stat key.
type WalkedRaw = (Vec<Entry>, Vec<(usize, usize)>, Vec<(usize, crate::cache::StatKey)>, usize);

/// How to walk.
#[derive(Default)]
pub struct Options<'a> {
    pub limits: Limits,
    /// Paths (absolute within the tree) for which this returns true are skipped with their
    /// whole subtree, unopened: the runtime mounts over them (docs/digest.md, mount exclusion).
    pub prune: Option<&'a Prune>,
    pub deadline: Option<Instant>,
    pub cancel: Option<Arc<AtomicBool>>,
    /// Hashing threads; 0 means one per available core.
    pub threads: usize,
    /// Files whose stat key matches are not read again (src/tree/cache.rs).
    pub cache: Option<&'a crate::cache::Cache>,
    /// Build the next cache ([`Walked::cache`]); without it the walk keeps no stat keys.
    pub want_cache: bool,
    /// The sealed manifest, when the seal is known before the walk (`rootseal verify`). A
    /// regular file whose sealed entry is not a regular file of the same size differs from the
    /// seal whatever it holds: it is opened only for its capability xattr, never read, and its
    /// entry carries an all-zero hash ([`Walked::unread`]). Such a manifest is for comparing
    /// with this seal only: its digest is not the tree's.
    pub expected: Option<&'a Manifest>,
    /// Use and build a cache on any filesystem, not only where a stat key sees every write
    /// ([`cache_sound`]): for a caller that bounds the window itself by re-reading everything
    /// periodically (the monitor's `full_rehash`).
    pub cache_any_fs: bool,
}

/// A walk's result with what the cache needs next time.
pub struct Walked {
    pub manifest: Manifest,
    /// Every regular file's stat key and hash: the next cache. None when not asked for, when
    /// nothing was hashed (the cache given is still the whole truth), or when the tree's
    /// filesystem cannot be cached ([`cache_sound`]).
    pub cache: Option<crate::cache::Cache>,
    /// Regular files taken from the cache without reading them.
    pub cache_hits: usize,
    /// Regular files read and hashed.
    pub hashed: usize,
    /// Regular files not read because their type or size already differs from
    /// [`Options::expected`].
    pub unread: usize,
}

/// Files per batch so that the open regular files (one batch being filled, `2 * threads`
/// queued, one per worker) plus a directory fd per level stay well under the open-files
/// limit: a low limit (or many cores) makes batches smaller, never the walk fail.
fn batch_files(fd_limit: u64, threads: usize, max_depth: u32) -> usize {
    let reserve = 64 + u64::from(max_depth.min(1024));
    let budget = fd_limit.saturating_sub(reserve) / 2;
    let slots = 3 * threads as u64 + 1;
    ((budget / slots) as usize).clamp(1, BATCH_FILES)
}

/// A broken lease is signalled with SIGIO, whose default action ends the process: ignore it
/// (the lease state is polled instead).
fn ignore_lease_breaks() {
    sys::ignore_signal(libc::SIGIO);
}

/// Whether stat keys on the filesystem holding `fd` can stand for content (cache.rs,
/// [`crate::cache::fs_cache`]); a filesystem whose type cannot be read is not trusted.
pub fn cache_sound(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    sys::fs_type(fd).is_ok_and(|t| crate::cache::fs_cache(t) == crate::cache::FsCache::Sound)
}

/// Opens `root` as a directory without following a symlink at its last component.
pub fn open_root(root: &Path) -> Result<OwnedFd, WalkError> {
    let c = CString::new(root.as_os_str().as_bytes()).map_err(|_| WalkError::OpenRoot {
        root: root.into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains NUL"),
    })?;
    let cwd = sys::cwd();
    let fd = sys::openat2(cwd, &c, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0).map_err(|e| {
        match e.raw_os_error() {
            Some(libc::ELOOP) => WalkError::RootSymlink { root: root.into() },
            Some(libc::ENOTDIR) => {
                if std::fs::symlink_metadata(root).map(|m| m.file_type().is_symlink()).unwrap_or(false) {
                    WalkError::RootSymlink { root: root.into() }
                } else {
                    WalkError::RootNotDir { root: root.into() }
                }
            }
            _ => WalkError::OpenRoot { root: root.into(), source: e },
        }
    })?;
    Ok(fd)
}

/// The target of the symlink at `path` (absolute, symlink-free, as [`crate::exclude::resolve_with`]
/// asks) below the directory `root`, or None when there is none there. Never follows a link:
/// the parent is opened with [`sys::RESOLVE_STRICT`] and the name read with readlinkat.
pub fn symlink_at(root: BorrowedFd<'_>, path: &[u8]) -> Option<Vec<u8>> {
    let cut = path.iter().rposition(|&b| b == b'/')?;
    let (parent, name) = (&path[..cut], &path[cut + 1..]);
    let name = CString::new(name).ok()?;
    let rel = if parent.is_empty() { CString::new(".") } else { CString::new(&parent[1..]) }.ok()?;
    let dir = sys::openat2(root, &rel, libc::O_PATH | libc::O_DIRECTORY, sys::RESOLVE_STRICT).ok()?;
    sys::readlinkat(dir.as_fd(), &name, 4096).ok()
}

/// Walks the directory at `root` (which must not be a symlink) into a manifest.
pub fn walk(root: &Path, opts: &Options<'_>) -> Result<Manifest, WalkError> {
    let fd = open_root(root)?;
    walk_fd(root, fd, opts).map(|w| w.manifest)
}

/// Like [`walk`], with the cache's output.
pub fn walk_cached(root: &Path, root_fd: OwnedFd, opts: &Options<'_>) -> Result<Walked, WalkError> {
    walk_fd(root, root_fd, opts)
}

/// Walks an already opened root directory.
pub fn walk_fd(root: &Path, root_fd: OwnedFd, opts: &Options<'_>) -> Result<Walked, WalkError> {
    // The walk never crosses a mount, so the root's filesystem is every file's: on one where a
    // stat key cannot see a write through a shared mapping (cache.rs, `fs_cache`), a cache is
    // neither used nor built, and every file is read.
    let narrowed;
    let opts = if (opts.cache.is_some() || opts.want_cache) && !opts.cache_any_fs && !cache_sound(root_fd.as_fd()) {
        narrowed = Options {
            limits: opts.limits,
            prune: opts.prune,
            deadline: opts.deadline,
            cancel: opts.cancel.clone(),
            threads: opts.threads,
            cache: None,
            want_cache: false,
            expected: opts.expected,
            cache_any_fs: false,
        };
        &narrowed
    } else {
        opts
    };
    // Files that change within the racy window of this moment are not cached (cache.rs).
    let started = std::time::SystemTime::now();
    // The walk keeps a bounded number of files open, sized to this limit (batch_files).
    let fd_limit = sys::raise_fd_limit();
    if opts.want_cache {
        ignore_lease_breaks();
    }
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        opts.threads
    };
    let cancel = opts.cancel.clone().unwrap_or_default();
    // Jobs travel in batches (a few dozen small files or a few MiB) so that the channel and
    // its futexes cost little next to the hashing; the queue is bounded so open fds are too.
    let (job_tx, job_rx) = mpsc::sync_channel::<Vec<Job>>(threads * 2);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (res_tx, res_rx) = mpsc::channel::<Vec<(usize, Result<Hashed, WalkError>)>>();

    std::thread::scope(|scope| {
        for _ in 0..threads {
            let rx = Arc::clone(&job_rx);
            let tx = res_tx.clone();
            let cancel = &cancel;
            scope.spawn(move || hash_worker(root, &rx, &tx, cancel, opts.deadline, opts.want_cache));
        }
        drop(res_tx);
        let walker = Walker {
            root,
            opts,
            batch_files: batch_files(fd_limit, threads, opts.limits.max_depth),
            cancel: &cancel,
            jobs: job_tx,
            batch: Vec::new(),
            batch_bytes: 0,
            // A cache lists (nearly) every file of the tree: a good first size, saving the
            // regrowth copies of a re-walk.
            entries: Vec::with_capacity(opts.cache.map_or(0, |c| c.files.len())),
            bytes: 0,
            links: HashMap::new(),
            copies: Vec::new(),
            keys: Vec::with_capacity(if opts.want_cache { opts.cache.map_or(0, |c| c.files.len()) } else { 0 }),
            hits: 0,
        };
        let walked = walker.run(root_fd);
        if walked.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        // The walker dropped its sender: workers finish the queue (or bail if cancelled) and exit.
        let (mut entries, copies, keys, hits) = walked?;
        let mut hashed = 0;
        let mut unread = 0;
        let mut first_err = None;
        // Indexed by entry; only a walk that builds a cache needs it.
        let mut uncacheable = vec![false; if opts.want_cache { entries.len() } else { 0 }];
        for (index, result) in res_rx.iter().flatten() {
            match result {
                Ok(h) => {
                    if h.read {
                        hashed += 1;
                    } else {
                        unread += 1;
                    }
                    if !h.cacheable && opts.want_cache {
                        uncacheable[index] = true;
                    }
                    if let Kind::File { sha256, cap, .. } = &mut entries[index].kind {
                        *sha256 = h.sha256;
                        *cap = h.cap;
                    }
                }
                Err(e) => {
                    cancel.store(true, Ordering::Relaxed);
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        for (to, from) in copies {
            let kind = entries[from].kind.clone();
            entries[to].kind = kind;
            if opts.want_cache && uncacheable[from] {
                uncacheable[to] = true;
            }
        }
        let cache = (opts.want_cache && (hashed > 0 || opts.cache.is_none())).then(|| {
            let mut cache = crate::cache::Cache::default();
            cache.files.reserve(keys.len());
            for (i, key) in keys {
                if uncacheable[i] || key.racy(started) {
                    continue;
                }
                if let Kind::File { sha256, cap, .. } = &entries[i].kind {
                    cache.files.insert(
                        entries[i].path.clone(),
                        crate::cache::Cached { key, sha256: *sha256, cap: cap.clone() },
                    );
                }
            }
            cache
        });
        Ok(Walked { manifest: Manifest::from_entries(entries), cache, cache_hits: hits, hashed, unread })
    })
}

struct Walker<'a> {
    root: &'a Path,
    opts: &'a Options<'a>,
    cancel: &'a AtomicBool,
    jobs: mpsc::SyncSender<Vec<Job>>,
    /// Files per batch (see [`batch_files`]).
    batch_files: usize,
    batch: Vec<Job>,
    batch_bytes: u64,
    entries: Vec<Entry>,
    bytes: u64,
    /// First entry index of each multiply-linked inode: later links copy its hash instead of
    /// reading the same inode again (a hard link hashes as the file it is).
    links: HashMap<(u64, u64), (usize, crate::cache::StatKey)>,
    /// (entry, entry it copies) for those later links.
    copies: Vec<(usize, usize)>,
    /// Each regular file's stat key, for the next cache.
    keys: Vec<(usize, crate::cache::StatKey)>,
    hits: usize,
}

struct Pending {
    parent: Rc<OwnedFd>,
    name: CString,
    path: Vec<u8>,
    depth: u32,
    /// None when listed as a directory by getdents and not stat'ed yet: the fstat of the
    /// opened directory describes it (module doc, step 2).
    st: Option<libc::stat>,
}

impl Walker<'_> {
    fn run(mut self, root_fd: OwnedFd) -> Result<WalkedRaw, WalkError> {
        let lim = self.opts.limits;
        let mut stack: Vec<(Rc<OwnedFd>, Vec<u8>, u32)> = vec![(Rc::new(root_fd), Vec::new(), 0)];
        let mut pending: Vec<Pending> = Vec::new();
        // One listing at a time: a directory's names are used up before the next is listed.
        let mut names = sys::DirNames::default();
        // Names taken into the walk (each becomes one entry).
        let mut listed: u64 = 0;
        loop {
            // Open the next pending directory (depth first), or list the next open one.
            if let Some(p) = pending.pop() {
                let opened = sys::openat2(
                    p.parent.as_fd(),
                    &p.name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    sys::RESOLVE_STRICT,
                );
                match (opened, p.st) {
                    (Ok(fd), Some(st)) => self.same_object(&fd, &st, &p.path)?,
                    (Ok(fd), None) => {
                        // O_DIRECTORY: whatever was opened is a directory, and its fstat is
                        // the stat of exactly what will be listed.
                        let st = sys::fstat(fd.as_fd()).map_err(|e| self.io("stat", &p.path, e))?;
                        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                            return Err(self.io(
                                "stat",
                                &p.path,
                                std::io::Error::new(
                                    std::io::ErrorKind::InvalidData,
                                    "opened as a directory but is none",
                                ),
                            ));
                        }
                        self.entries.push(Entry {
                            path: p.path.clone(),
                            mode: st.st_mode & 0o7777,
                            uid: st.st_uid,
                            gid: st.st_gid,
                            kind: Kind::Dir,
                        });
                        stack.push((Rc::new(fd), p.path, p.depth));
                    }
                    (Err(e), None) if matches!(e.raw_os_error(), Some(libc::ENOTDIR) | Some(libc::ELOOP)) => {
                        // Not (or no longer) a directory, so nothing was opened: described
                        // from its stat like any other name (step 2).
                        let st = sys::lstatat(p.parent.as_fd(), &p.name).map_err(|e| self.io("stat", &p.path, e))?;
                        self.visit(&p.parent, &p.name, p.path, p.depth - 1, &st, &mut pending)?;
                        continue;
                    }
                    (Err(e), _) => return Err(self.open_err(&p.path, e)),
                }
            }
            let Some((dir, path, depth)) = stack.pop() else {
                break;
            };
            self.check_time()?;
            names.read(dir.as_fd(), (lim.max_entries as usize).saturating_add(1)).map_err(|e| {
                if e.kind() == std::io::ErrorKind::OutOfMemory {
                    let shown = if path.is_empty() { "/".to_string() } else { crate::manifest::display_path(&path) };
                    self.limit(format!("more entries in directory {shown}"), "max_entries", lim.max_entries)
                } else {
                    self.io("list directory", &path, e)
                }
            })?;
            for i in 0..names.len() {
                // One huge directory must not run past the deadline either.
                if i % 1024 == 1023 {
                    self.check_time()?;
                }
                let (name, d_type) = names.get(i);
                let name_bytes = name.to_bytes();
                let mut child = Vec::with_capacity(path.len() + 1 + name_bytes.len());
                child.extend_from_slice(&path);
                child.push(b'/');
                child.extend_from_slice(name_bytes);
                if child.len() as u64 > lim.max_path_bytes {
                    return Err(self.limit(
                        format!("path of {} bytes", child.len()),
                        "max_path_bytes",
                        lim.max_path_bytes,
                    ));
                }
                if let Some(prune) = self.opts.prune {
                    if prune(&child) {
                        continue;
                    }
                }
                if listed >= lim.max_entries {
                    return Err(self.limit("too many entries".into(), "max_entries", lim.max_entries));
                }
                listed += 1;
                if d_type == libc::DT_DIR {
                    // Opened (with O_DIRECTORY) and described when its turn comes.
                    self.check_depth(depth + 1)?;
                    pending.push(Pending {
                        parent: Rc::clone(&dir),
                        name: name.to_owned(),
                        path: child,
                        depth: depth + 1,
                        st: None,
                    });
                    continue;
                }
                let st = sys::lstatat(dir.as_fd(), name).map_err(|e| self.io("stat", &child, e))?;
                self.visit(&dir, name, child, depth, &st, &mut pending)?;
            }
        }
        self.flush()?;
        Ok((self.entries, self.copies, self.keys, self.hits))
    }

    /// Describes one listed name (already stat'ed without following links) into an entry:
    /// steps 3 to 5 of the module doc. `depth` is its parent's.
    fn visit(
        &mut self,
        dir: &Rc<OwnedFd>,
        name: &CStr,
        child: Vec<u8>,
        depth: u32,
        st: &libc::stat,
        pending: &mut Vec<Pending>,
    ) -> Result<(), WalkError> {
        let lim = self.opts.limits;
        let fmt = st.st_mode & libc::S_IFMT;
        // The path moves into the entry when it is pushed; only directories still to
        // list and files still to hash keep a copy.
        let mut entry =
            Entry { path: Vec::new(), mode: st.st_mode & 0o7777, uid: st.st_uid, gid: st.st_gid, kind: Kind::Dir };
        match fmt {
            libc::S_IFDIR => {
                self.check_depth(depth + 1)?;
                pending.push(Pending {
                    parent: Rc::clone(dir),
                    name: name.to_owned(),
                    path: child.clone(),
                    depth: depth + 1,
                    st: Some(*st),
                });
            }
            libc::S_IFREG => {
                let size = st.st_size as u64;
                entry.kind = Kind::File { size, sha256: [0; 32], cap: None };
                let key = crate::cache::StatKey::of(st);
                if self.opts.want_cache {
                    self.keys.push((self.entries.len(), key));
                }
                // Unchanged since it was hashed (same inode, size, mtime, ctime): the
                // kernel moves ctime on every change, so the cached hash still holds.
                if let Some(c) = self.opts.cache.and_then(|c| c.files.get(&child)).filter(|c| c.key == key) {
                    // Cached content still counts toward the size limit.
                    self.count_bytes(size)?;
                    entry.kind = Kind::File { size, sha256: c.sha256, cap: c.cap.clone() };
                    self.hits += 1;
                    entry.path = child;
                    self.entries.push(entry);
                    return Ok(());
                }
                // A file that cannot match its sealed entry is a difference already: reading
                // it (a 32 GiB sparse file where the seal has 10 bytes) would only spend the
                // deadline. It stays out of `links`, so other names of the inode are judged
                // (and read) on their own.
                let content = self.opts.expected.is_none_or(|m| {
                    m.get(&child).is_none_or(|e| matches!(e.kind, Kind::File { size: s, .. } if s == size))
                });
                if st.st_nlink > 1 && content {
                    let index = self.entries.len();
                    // A later name copies the first name's hash only if the inode has not
                    // changed in between (same stat key); otherwise it is read itself.
                    if let Some(&(first, first_key)) = self.links.get(&(st.st_dev, st.st_ino)) {
                        if first_key == key {
                            self.copies.push((index, first));
                            entry.path = child;
                            self.entries.push(entry);
                            return Ok(());
                        }
                    } else {
                        self.links.insert((st.st_dev, st.st_ino), (index, key));
                    }
                }
                if content {
                    self.count_bytes(size)?;
                }
                let fd = sys::openat2(
                    dir.as_fd(),
                    name,
                    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
                    sys::RESOLVE_STRICT,
                )
                .map_err(|e| self.open_err(&child, e))?;
                self.same_object(&fd, st, &child)?;
                self.batch.push(Job { index: self.entries.len(), fd, size, st: *st, path: child.clone(), content });
                if content {
                    self.batch_bytes += size;
                }
                if self.batch.len() >= self.batch_files || self.batch_bytes >= BATCH_BYTES {
                    self.flush()?;
                }
            }
            libc::S_IFLNK => {
                let target = sys::readlinkat(dir.as_fd(), name, lim.max_path_bytes as usize)
                    .map_err(|e| self.io("read symlink", &child, e))?;
                entry.kind = Kind::Symlink { target };
            }
            libc::S_IFCHR | libc::S_IFBLK => {
                let (major, minor) = sys::dev_major_minor(st.st_rdev);
                entry.kind =
                    if fmt == libc::S_IFCHR { Kind::CharDev { major, minor } } else { Kind::BlockDev { major, minor } };
            }
            libc::S_IFIFO => entry.kind = Kind::Fifo,
            libc::S_IFSOCK => entry.kind = Kind::Socket,
            _ => {
                return Err(self.io(
                    "stat",
                    &child,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "unknown file type"),
                ))
            }
        }
        entry.path = child;
        self.entries.push(entry);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WalkError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batch_bytes = 0;
        if self.jobs.send(std::mem::take(&mut self.batch)).is_err() {
            // Every worker is gone: one failed and cancelled the rest.
            return Err(WalkError::Cancelled { root: self.root.into() });
        }
        Ok(())
    }

    /// Adds a regular file's size to the walk's total, refusing past `max_total_bytes`.
    fn count_bytes(&mut self, size: u64) -> Result<(), WalkError> {
        let max = self.opts.limits.max_total_bytes;
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > max {
            return Err(self.limit(format!("more than {max} bytes of file content"), "max_total_bytes", max));
        }
        Ok(())
    }

    fn check_depth(&self, depth: u32) -> Result<(), WalkError> {
        let max = self.opts.limits.max_depth;
        if depth > max {
            return Err(self.limit(format!("directory nesting deeper than {max}"), "max_depth", max as u64));
        }
        Ok(())
    }

    fn check_time(&self) -> Result<(), WalkError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(WalkError::Cancelled { root: self.root.into() });
        }
        if self.opts.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(WalkError::Deadline { root: self.root.into() });
        }
        Ok(())
    }

    fn same_object(&self, fd: &OwnedFd, st: &libc::stat, path: &[u8]) -> Result<(), WalkError> {
        let now = sys::fstat(fd.as_fd()).map_err(|e| self.io("stat", path, e))?;
        if now.st_dev != st.st_dev
            || now.st_ino != st.st_ino
            || (now.st_mode & libc::S_IFMT) != (st.st_mode & libc::S_IFMT)
        {
            return Err(WalkError::Raced {
                path: crate::manifest::display_path(path),
                root: self.root.into(),
                what: "entry was replaced between stat and open",
            });
        }
        Ok(())
    }

    fn open_err(&self, path: &[u8], e: std::io::Error) -> WalkError {
        match e.raw_os_error() {
            Some(libc::EXDEV) => {
                WalkError::MountPoint { path: crate::manifest::display_path(path), root: self.root.into() }
            }
            // The name was a directory or file at stat time and a symlink (or something else)
            // at open time.
            Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::ENXIO) => WalkError::Raced {
                path: crate::manifest::display_path(path),
                root: self.root.into(),
                what: "entry was replaced between stat and open",
            },
            _ => self.io("open", path, e),
        }
    }

    fn io(&self, op: &'static str, path: &[u8], source: std::io::Error) -> WalkError {
        let path = if path.is_empty() { "/".to_string() } else { crate::manifest::display_path(path) };
        WalkError::Io { op, path, root: self.root.into(), source }
    }

    fn limit(&self, what: String, key: &'static str, limit: u64) -> WalkError {
        WalkError::Limit { root: self.root.into(), what, key, limit }
    }
}

#[cfg(test)]
#[path = "walk_tests.rs"]
mod tests;
