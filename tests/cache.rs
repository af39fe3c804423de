//! The verification cache never lets a change pass (docs/performance.md): each case warms the
//! cache, proves it is used, changes the tree in a way that keeps size (and mtime) and checks
//! that `rootseal check` still blocks, naming the path.

use crate::util::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Node {
    /// Detached first (fields drop in order), before the temp dir goes.
    _mount: Option<Mounted>,
    env: Env,
    bundle: PathBuf,
    rootfs: PathBuf,
}

/// A mount made by a test, lazily detached when dropped (also when the test fails).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The small tree plus a hard link, at `root`.
fn plain_tree(root: &Path) {
    small_tree(root);
    std::fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd.link")).unwrap();
}

/// A sealed, trusted bundle on the host's filesystem, its cache warm and proven used.
fn node() -> Node {
    let n = node_on(|_, rootfs| {
        plain_tree(rootfs);
        None
    });
    assert!(n.cached_files() >= 5, "the cache holds the files: {}", n.cached_files());
    n.check_ok();
    n
}

/// A sealed, trusted bundle whose rootfs `make_rootfs` creates (and may mount), checked once
/// past the racy window (so that a cache is written wherever one may be).
fn node_on(make_rootfs: impl FnOnce(&Env, &Path) -> Option<Mounted>) -> Node {
    let env = Env::new();
    let bundle = env.path("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let mount = make_rootfs(&env, &rootfs);
    std::fs::write(
        bundle.join("config.json"),
        br#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"mounts":[{"destination":"/proc","type":"proc","source":"proc"}]}"#,
    )
    .unwrap();
    let (key, public) = env.keygen("ci");
    env.expect(0, [OsStr::new("trust"), OsStr::new("add"), public.as_os_str()]);
    let seal = env.path("s.json");
    env.seal(&rootfs, &key, &seal, &[]);
    env.expect(0, [OsStr::new("trust"), OsStr::new("import"), seal.as_os_str()]);
    // Files changed in the last 2 s are "racily clean" and never cached: let the tree age.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    let n = Node { _mount: mount, env, bundle, rootfs };
    n.check_ok();
    n
}

/// `mount -t TYPE -o OPTIONS TYPE target`, asserting it worked (these tests run as root).
fn mount(fstype: &str, options: &str, target: &Path) -> Mounted {
    sh(Command::new("mount").args(["-t", fstype, "-o", options, fstype]).arg(target));
    Mounted(target.into())
}

/// A shared writable mapping of a whole file, as another process on the host would hold.
struct Mapping {
    _file: std::fs::File,
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(path: &Path) -> Mapping {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: a fresh shared mapping of a file we hold open; unmapped on drop.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED, "{}", std::io::Error::last_os_error());
        Mapping { _file: file, ptr: map.cast(), len }
    }

    /// Writes `data` at `at` through the mapping: no write(2), so only the filesystem's
    /// page_mkwrite (if any) can move a timestamp.
    fn write(&self, at: usize, data: &[u8]) {
        assert!(at + data.len() <= self.len);
        for (i, b) in data.iter().enumerate() {
            // SAFETY: within the mapping (checked above).
            unsafe { std::ptr::write_volatile(self.ptr.add(at + i), *b) };
        }
    }

    fn read(&self, at: usize) -> u8 {
        assert!(at < self.len);
        // SAFETY: within the mapping (checked above).
        unsafe { std::ptr::read_volatile(self.ptr.add(at)) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what was mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

impl Node {
    fn check_ok(&self) {
        let (out, _) = self.env.expect(0, [OsStr::new("check"), self.bundle.as_os_str()]);
        assert!(out.contains("verified"), "{out}");
    }

    fn check_blocked(&self, expect: &str) {
        let (out, _) = self.env.expect(1, [OsStr::new("check"), self.bundle.as_os_str()]);
        assert!(out.contains(expect), "expected {expect:?} in {out}");
    }

    fn cache_file(&self) -> PathBuf {
        rootseal::cache::path_for(&self.env.path("cache"), &self.rootfs)
    }

    fn cached_files(&self) -> usize {
        let fd = std::fs::File::open(&self.rootfs).unwrap();
        let id = rootseal::cache::RootId::of(&fd).unwrap();
        rootseal::cache::load(&self.env.path("cache"), &self.rootfs, &id).0.files.len()
    }
}

/// Writes `data` into `path` in place and restores its mtime, as `touch -d` would.
fn rewrite_keep_mtime(path: &Path, data: &[u8]) {
    let before = std::fs::metadata(path).unwrap().modified().unwrap();
    assert_eq!(std::fs::metadata(path).unwrap().len() as usize, data.len(), "same size");
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, data))
        .unwrap();
    let stamp = humantime::format_rfc3339_nanos(before).to_string();
    sh(Command::new("touch").arg("-d").arg(&stamp).arg(path));
    assert_eq!(std::fs::metadata(path).unwrap().modified().unwrap(), before);
}

#[test]
fn same_size_content_with_mtime_restored() {
    let n = node();
    rewrite_keep_mtime(&n.rootfs.join("etc/passwd"), b"evil:x:0:0::/root:/bin/sh\n");
    n.check_blocked("/etc/passwd content differs");
}

#[test]
fn a_file_replaced_by_rename() {
    let n = node();
    std::fs::write(n.rootfs.join("bin/.new"), b"#!/bin/sh\necho HACKED\n").unwrap();
    std::fs::rename(n.rootfs.join("bin/.new"), n.rootfs.join("bin/app")).unwrap();
    n.check_blocked("/bin/app content differs");
}

#[test]
fn a_chmod() {
    let n = node();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(n.rootfs.join("usr/lib/libx.so"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    n.check_blocked("/usr/lib/libx.so mode changed");
}

#[test]
fn a_hard_linked_file_changed_through_its_other_name() {
    let n = node();
    rewrite_keep_mtime(&n.rootfs.join("etc/passwd.link"), b"evil:x:0:0::/root:/bin/sh\n");
    n.check_blocked("/etc/passwd content differs");
}

#[test]
fn an_edited_or_truncated_cache_is_discarded() {
    let n = node();
    // Change a file, then forge the cache so its entry carries the new stat key with the old
    // hash: the integrity check must throw the whole cache away.
    rewrite_keep_mtime(&n.rootfs.join("etc/passwd"), b"evil:x:0:0::/root:/bin/sh\n");
    let fd = std::fs::File::open(&n.rootfs).unwrap();
    let id = rootseal::cache::RootId::of(&fd).unwrap();
    let (mut cache, _) = rootseal::cache::load(&n.env.path("cache"), &n.rootfs, &id);
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(n.rootfs.join("etc/passwd")).unwrap();
    let e = cache.files.get_mut(b"/etc/passwd".as_slice()).unwrap();
    e.key.ctime = (m.ctime(), m.ctime_nsec());
    // Written with a different key (an attacker without the node's key), then planted.
    let other = n.env.path("other-cache");
    rootseal::cache::save(&other, &n.rootfs, &id, &cache).unwrap();
    std::fs::copy(rootseal::cache::path_for(&other, &n.rootfs), n.cache_file()).unwrap();
    n.check_blocked("/etc/passwd content differs");
    // Truncated.
    let bytes = std::fs::read(n.cache_file()).unwrap();
    std::fs::write(n.cache_file(), &bytes[..bytes.len() / 2]).unwrap();
    n.check_blocked("/etc/passwd content differs");
}

#[test]
fn the_cache_of_another_image_at_the_same_path() {
    let n = node();
    // Another tree (same names and sizes, one file different) takes the rootfs's place.
    let other = n.env.path("other-rootfs");
    small_tree(&other);
    std::fs::hard_link(other.join("etc/passwd"), other.join("etc/passwd.link")).unwrap();
    rewrite_keep_mtime(&other.join("usr/lib/libx.so"), &[0x5b; 100_000]);
    std::fs::rename(&n.rootfs, n.env.path("old-rootfs")).unwrap();
    std::fs::rename(&other, &n.rootfs).unwrap();
    n.check_blocked("/usr/lib/libx.so content differs");
}

#[test]
fn full_mode_never_uses_the_cache() {
    let n = node();
    let before = std::fs::read(n.cache_file()).unwrap();
    n.env.write_config("[hook]\nverify = \"full\"");
    n.check_ok();
    rewrite_keep_mtime(&n.rootfs.join("etc/passwd"), b"evil:x:0:0::/root:/bin/sh\n");
    n.check_blocked("/etc/passwd content differs");
    assert_eq!(std::fs::read(n.cache_file()).unwrap(), before, "full mode neither reads nor writes it");
}

/// Regression (review): writes through a shared mapping to an already dirty page move neither
/// mtime nor ctime. A file mapped writable while it is hashed must never be cached.
#[test]
fn a_file_mapped_writable_is_never_cached() {
    let n = node();
    let path = n.rootfs.join("etc/passwd");
    let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh shared mapping of a file we hold open, unmapped below.
    let map = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, f.as_raw_fd(), 0)
    };
    assert_ne!(map, libc::MAP_FAILED);
    let bytes = map as *mut u8;
    // SAFETY: within the mapping. Dirty the page with the same content (this write moves ctime).
    unsafe { std::ptr::write_volatile(bytes, std::ptr::read_volatile(bytes)) };
    std::thread::sleep(std::time::Duration::from_millis(2200));
    n.check_ok();
    // SAFETY: within the mapping. This write to the dirty page moves no timestamp.
    unsafe { std::ptr::copy_nonoverlapping(b"evil".as_ptr(), bytes, 4) };
    n.check_blocked("/etc/passwd content differs");
    // SAFETY: unmapping exactly what was mapped.
    unsafe { libc::munmap(map, len) };
}

/// The cache's HMAC key lives in cache_dir: a directory another user owns is never used (that
/// user could know the key and forge entries), and verification still reads every file.
#[test]
fn a_cache_dir_owned_by_someone_else_is_not_used() {
    let n = node();
    let dir = n.env.path("cache");
    std::os::unix::fs::chown(&dir, Some(1000), None).unwrap();
    rewrite_keep_mtime(&n.rootfs.join("etc/passwd"), b"evil:x:0:0::/root:/bin/sh\n");
    n.check_blocked("/etc/passwd content differs");
    let fd = std::fs::File::open(&n.rootfs).unwrap();
    let id = rootseal::cache::RootId::of(&fd).unwrap();
    let (c, why) = rootseal::cache::load(&dir, &n.rootfs, &id);
    assert!(c.files.is_empty(), "nothing trusted from a foreign cache dir");
    assert!(why.unwrap_or_default().contains("owned by uid 1000"));
}

/// Regression (review): on tmpfs (and ramfs, hugetlbfs) a cached hash has nothing to stand on.
/// There is no `page_mkwrite`; the generic fault path moves c/mtime on a write fault (kernel
/// 6.18: the first write through a mapping below moves both), but a page that needs no write
/// fault takes writes with no timestamp at all: tmpfs pages are never written back, so a
/// writable PTE stays writable, and GUP allows long-term writable pins of shmem (io_uring
/// fixed buffers) because shmem needs no dirty tracking, after the mapping and its write
/// count (which the read lease sees) are gone. So no cache is used or built there, and a
/// mapped change is always found by reading.
#[test]
fn a_write_through_a_mapping_on_tmpfs_is_seen_and_nothing_is_cached() {
    let n = node_on(|_, rootfs| {
        let m = mount("tmpfs", "mode=0755", rootfs);
        plain_tree(rootfs);
        Some(m)
    });
    n.check_ok();
    assert_eq!(n.cached_files(), 0, "nothing is cached on tmpfs");
    Mapping::new(&n.rootfs.join("etc/passwd")).write(0, b"evil");
    n.check_blocked("/etc/passwd content differs");
    assert_eq!(n.cached_files(), 0, "nothing is cached on tmpfs");
}

/// Regression (review): on overlay the read lease is taken on the overlay inode, which does
/// not see a host process holding the real lower file mapped writable. A page it dirtied
/// before the check (moving ctime then) takes later writes without a ctime change; the next
/// cached verify must still see them: overlay is not cached (cache.rs, `FsCache::LeaseBlind`).
#[test]
fn a_page_dirtied_through_the_real_file_under_an_overlay_is_seen() {
    let n = node_on(|env, rootfs| {
        let (lower, upper, work) = (env.path("lower"), env.path("upper"), env.path("work"));
        plain_tree(&lower);
        std::fs::create_dir(&upper).unwrap();
        std::fs::create_dir(&work).unwrap();
        let opts = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
        Some(mount("overlay", &opts, rootfs))
    });
    let map = Mapping::new(&n.env.path("lower/etc/passwd"));
    // Dirty the page with its own content: the first write to a clean page moves ctime.
    map.write(0, &[map.read(0)]);
    std::thread::sleep(std::time::Duration::from_millis(2200));
    n.check_ok();
    // The page is still dirty: this write moves no timestamp (unless writeback ran between).
    map.write(0, b"evil");
    n.check_blocked("/etc/passwd content differs");
    assert_eq!(n.cached_files(), 0, "nothing is cached on overlay");
}
