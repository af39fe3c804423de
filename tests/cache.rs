//! The verification cache never lets a change pass (docs/performance.md): each case warms the
//! cache, proves it is used, changes the tree in a way that keeps size (and mtime) and checks
//! that `rootseal check` still blocks, naming the path.

use crate::util::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Node {
    env: Env,
    bundle: PathBuf,
    rootfs: PathBuf,
}

fn node() -> Node {
    let env = Env::new();
    let bundle = env.path("bundle");
    let rootfs = bundle.join("rootfs");
    small_tree(&rootfs);
    std::fs::hard_link(rootfs.join("etc/passwd"), rootfs.join("etc/passwd.link")).unwrap();
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
    let n = Node { env, bundle, rootfs };
    n.check_ok();
    assert!(n.cached_files() >= 5, "the cache holds the files: {}", n.cached_files());
    n.check_ok();
    n
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
