//! The seal store: seals filed by tree digest, with two small indexes the hook uses to find the
//! seal for a rootfs (docs/hook.md, "Finding the seal").
//!
//! Layout under `seal_dir`:
//! - `HEX.json`: the seal for tree digest `sha256:HEX`;
//! - `by-content/KEY`: tree digests (one `sha256:HEX` per line) whose *content key* is KEY;
//! - `by-name/H`: tree digests sealed under the subject name whose SHA-256 is H;
//! - `by-sketch/L`: tree digests whose sketch contains the line hash L.
//!
//! Lookups only *find candidates*; verification then compares every entry, so nothing here
//! can make a rootfs pass. They are built on **key lines**: one per symlink and non-empty
//! regular file, `SHA-256(path NUL type NUL content-sha256-or-target)`. Runtimes create mount
//! points (directories and empty files) in the rootfs before hooks run but never create
//! symlinks or non-empty files and never change what is there, so an untouched rootfs has the
//! key lines of its seal whatever the runtime added. Mode and owner are left out so that a
//! chmod still finds the seal (and the diff then names the path).
//! - The **content key** hashes all key lines: an exact match for an untouched rootfs.
//! - The **sketch** is the 32 smallest key-line hashes (bottom-k MinHash): a rootfs with a few
//!   files changed, added or removed still shares most of its sketch with its seal, which
//!   lets a block message name what changed even when no annotation names the image.

use crate::atomic;
use crate::manifest::{Kind, Manifest, TreeDigest};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const MAX_INDEX_FILE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("seal store {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("seal store {}: {what}; re-import the seal with `rootseal trust import`", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error(transparent)]
    Write(#[from] atomic::WriteError),
}

/// How many key-line hashes a sketch keeps.
pub const SKETCH_SIZE: usize = 32;
/// A seal is a sketch candidate when it shares at least this many sketch hashes.
pub const SKETCH_MIN_VOTES: usize = 8;

/// Key-line hashes in manifest (path) order (see the module docs).
pub fn key_lines(m: &Manifest) -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    for_each_key_line(m, |l| out.push(l));
    out
}

/// Calls `f` with each key-line hash in manifest order: the hook's content key and sketch of a
/// 100 000-file tree need no list of them.
fn for_each_key_line(m: &Manifest, mut f: impl FnMut([u8; 32])) {
    for e in m.entries() {
        let (t, content): (&[u8], &[u8]) = match &e.kind {
            Kind::Symlink { target } => (b"l", target),
            Kind::File { size, sha256, .. } if *size > 0 => (b"f", sha256),
            _ => continue,
        };
        let mut h = Sha256::new();
        h.update(&e.path);
        h.update([0]);
        h.update(t);
        h.update([0]);
        h.update(content);
        f(h.finalize().into());
    }
}

/// The content key of a manifest: SHA-256 over its key lines.
pub fn content_key(m: &Manifest) -> TreeDigest {
    let mut h = Sha256::new();
    for_each_key_line(m, |l| h.update(l));
    TreeDigest(h.finalize().into())
}

/// The sketch: the [`SKETCH_SIZE`] smallest distinct key-line hashes, ascending.
pub fn sketch(m: &Manifest) -> Vec<[u8; 32]> {
    let mut best: Vec<[u8; 32]> = Vec::with_capacity(SKETCH_SIZE + 1);
    for_each_key_line(m, |l| {
        if best.len() == SKETCH_SIZE && best.last().is_some_and(|max| l >= *max) {
            return;
        }
        if let Err(i) = best.binary_search(&l) {
            best.insert(i, l);
            best.truncate(SKETCH_SIZE);
        }
    });
    best
}

pub struct SealStore {
    pub dir: PathBuf,
}

impl SealStore {
    pub fn new(dir: impl Into<PathBuf>) -> SealStore {
        SealStore { dir: dir.into() }
    }

    pub fn path_for(&self, digest: &TreeDigest) -> PathBuf {
        self.dir.join(format!("{}.json", digest.hex()))
    }

    fn content_index(&self, key: &TreeDigest) -> PathBuf {
        self.dir.join("by-content").join(key.hex())
    }

    fn name_index(&self, name: &str) -> PathBuf {
        self.dir.join("by-name").join(crate::manifest::hex(&Sha256::digest(name.as_bytes())))
    }

    /// Files a seal (already verified by the caller) and indexes it by content key and subject
    /// name. Returns true if it replaced a seal for the same digest.
    pub fn put(&self, digest: &TreeDigest, name: &str, manifest: &Manifest, bytes: &[u8]) -> Result<bool, StoreError> {
        for d in [self.dir.clone(), self.dir.join("by-content"), self.dir.join("by-name"), self.dir.join("by-sketch")] {
            mkdir(&d)?;
        }
        // The indexes are read, extended and replaced: two writers at once (a `sync` and a
        // `trust import`, or two of sync's threads) would each drop the other's line.
        let _lock = self.lock()?;
        let path = self.path_for(digest);
        let replaced = path.exists();
        atomic::write(&path, bytes, 0o644)?;
        add_line(&self.content_index(&content_key(manifest)), digest)?;
        add_line(&self.name_index(name), digest)?;
        for l in sketch(manifest) {
            add_line(&self.dir.join("by-sketch").join(crate::manifest::hex(&l)), digest)?;
        }
        Ok(replaced)
    }

    /// The store's writer lock (`flock` on `<dir>/.lock`), held until the guard drops. Readers
    /// (the hook) take none: every file they read is replaced whole by rename.
    fn lock(&self) -> Result<nix::fcntl::Flock<std::fs::File>, StoreError> {
        let path = self.dir.join(".lock");
        atomic::lock_exclusive(&path).map_err(|source| StoreError::Io { path, source })
    }

    /// The seal filed for `digest`, if any.
    pub fn get(&self, digest: &TreeDigest) -> Result<Option<Vec<u8>>, StoreError> {
        read_optional(&self.path_for(digest), crate::seal::MAX_SEAL_BYTES)
    }

    /// Tree digests whose content key is `key`.
    pub fn by_content(&self, key: &TreeDigest) -> Result<Vec<TreeDigest>, StoreError> {
        read_index(&self.content_index(key))
    }

    /// Seals sharing at least [`SKETCH_MIN_VOTES`] (half, for small images) of `m`'s sketch, most
    /// similar first.
    pub fn by_sketch(&self, m: &Manifest) -> Result<Vec<(TreeDigest, usize)>, StoreError> {
        let mut votes: Vec<(TreeDigest, usize)> = Vec::new();
        let mine = sketch(m);
        // Small images have small sketches: ask for half of it, at least 2 and at most the
        // usual minimum.
        let need = mine.len().div_ceil(2).clamp(2, SKETCH_MIN_VOTES);
        for l in mine {
            for d in read_index(&self.dir.join("by-sketch").join(crate::manifest::hex(&l)))? {
                match votes.iter_mut().find(|(x, _)| *x == d) {
                    Some((_, n)) => *n += 1,
                    None => votes.push((d, 1)),
                }
            }
        }
        votes.retain(|(_, n)| *n >= need);
        votes.sort_by_key(|v| std::cmp::Reverse(v.1));
        Ok(votes)
    }

    /// Tree digests sealed under subject name `name`.
    pub fn by_name(&self, name: &str) -> Result<Vec<TreeDigest>, StoreError> {
        read_index(&self.name_index(name))
    }
}

fn mkdir(d: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(d)
        .map_err(|source| StoreError::Io { path: d.into(), source })
}

fn read_optional(path: &Path, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let f = match File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        r => r.map_err(|source| StoreError::Io { path: path.into(), source })?,
    };
    match atomic::read_file_bounded(f, path, max) {
        Ok(b) => Ok(Some(b)),
        Err(atomic::ReadError::TooLarge { path, max }) => {
            Err(StoreError::Corrupt { path, what: format!("larger than {max} bytes") })
        }
        Err(atomic::ReadError::Io { path, source }) => Err(StoreError::Io { path, source }),
    }
}

fn read_index(path: &Path) -> Result<Vec<TreeDigest>, StoreError> {
    let Some(bytes) = read_optional(path, MAX_INDEX_FILE)? else { return Ok(Vec::new()) };
    let text =
        String::from_utf8(bytes).map_err(|_| StoreError::Corrupt { path: path.into(), what: "not text".into() })?;
    text.lines()
        .map(|l| {
            TreeDigest::parse(l)
                .filter(|_| l.starts_with("sha256:"))
                .ok_or_else(|| StoreError::Corrupt { path: path.into(), what: format!("bad line {l:?}") })
        })
        .collect()
}

fn add_line(path: &Path, digest: &TreeDigest) -> Result<(), StoreError> {
    let mut have = read_index(path)?;
    if have.contains(digest) {
        return Ok(());
    }
    have.push(*digest);
    let text: String = have.iter().map(|d| format!("{d}\n")).collect();
    atomic::write(path, text.as_bytes(), 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Entry;

    fn e(path: &str, kind: Kind) -> Entry {
        Entry { path: path.as_bytes().to_vec(), mode: 0o755, uid: 0, gid: 0, kind }
    }

    #[test]
    fn content_key_ignores_what_runtimes_create() {
        let file = Kind::File { size: 3, sha256: [1; 32], cap: None };
        let sealed = Manifest::from_entries(vec![e("/bin", Kind::Dir), e("/bin/sh", file.clone())]);
        let with_mountpoints = Manifest::from_entries(vec![
            e("/bin", Kind::Dir),
            e("/bin/sh", file.clone()),
            e("/proc", Kind::Dir),
            e("/etc", Kind::Dir),
            e("/etc/hosts", Kind::File { size: 0, sha256: [0; 32], cap: None }),
        ]);
        assert_eq!(content_key(&sealed), content_key(&with_mountpoints));
        let tampered = Manifest::from_entries(vec![
            e("/bin", Kind::Dir),
            e("/bin/sh", Kind::File { size: 3, sha256: [2; 32], cap: None }),
        ]);
        assert_ne!(content_key(&sealed), content_key(&tampered));
    }

    #[test]
    fn concurrent_puts_of_one_name_keep_every_index_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SealStore::new(dir.path()));
        let threads: Vec<_> = (0..8u8)
            .map(|i| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for j in 0..10u8 {
                        let m = Manifest::from_entries(vec![e(&format!("/f{i}-{j}"), Kind::Dir)]);
                        store.put(&m.digest(), "app:1", &m, b"{}").unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.by_name("app:1").unwrap().len(), 80);
    }

    #[test]
    fn put_indexes_by_content_and_name() {
        let t = tempfile::tempdir().unwrap();
        let store = SealStore::new(t.path().join("seals"));
        let m = Manifest::from_entries(vec![e("/a", Kind::Symlink { target: b"b".to_vec() })]);
        let d = m.digest();
        assert!(!store.put(&d, "app:1", &m, b"{}").unwrap());
        assert!(store.put(&d, "app:1", &m, b"{}").unwrap());
        assert_eq!(store.by_content(&content_key(&m)).unwrap(), vec![d]);
        assert_eq!(store.by_name("app:1").unwrap(), vec![d]);
        assert!(store.by_name("app:2").unwrap().is_empty());
        assert_eq!(store.get(&d).unwrap().unwrap(), b"{}");
    }

    #[test]
    fn the_sketch_is_the_smallest_key_lines_and_the_key_hashes_them_all() {
        let m = Manifest::from_entries(
            (0..300)
                .map(|i| match i % 3 {
                    0 => e(&format!("/l{i}"), Kind::Symlink { target: format!("t{}", i % 10).into_bytes() }),
                    1 => e(&format!("/f{i}"), Kind::File { size: 1, sha256: [(i % 50) as u8; 32], cap: None }),
                    _ => e(&format!("/d{i}"), Kind::Dir),
                })
                .collect(),
        );
        let mut lines = key_lines(&m);
        assert_eq!(lines.len(), 200);
        let mut h = Sha256::new();
        lines.iter().for_each(|l| h.update(l));
        assert_eq!(content_key(&m), TreeDigest(h.finalize().into()));
        lines.sort_unstable();
        lines.dedup();
        lines.truncate(SKETCH_SIZE);
        assert_eq!(sketch(&m), lines);
    }

    #[test]
    fn a_sketch_finds_a_seal_after_a_few_changes() {
        let t = tempfile::tempdir().unwrap();
        let store = SealStore::new(t.path().join("seals"));
        let files = |n: usize, changed: usize| {
            Manifest::from_entries(
                (0..n)
                    .map(|i| {
                        let b = if i < changed { 0xff } else { i as u8 };
                        e(&format!("/f{i:03}"), Kind::File { size: 1, sha256: [b; 32], cap: None })
                    })
                    .collect(),
            )
        };
        let sealed = files(200, 0);
        store.put(&sealed.digest(), "app", &sealed, b"{}").unwrap();
        let other = Manifest::from_entries(vec![e("/x", Kind::Symlink { target: b"y".to_vec() })]);
        store.put(&other.digest(), "other", &other, b"{}").unwrap();
        let tampered = files(200, 3);
        let found = store.by_sketch(&tampered).unwrap();
        assert_eq!(found[0].0, sealed.digest());
        assert!(found[0].1 >= SKETCH_SIZE - 3);
        assert!(store.by_sketch(&other).unwrap().iter().all(|(d, _)| *d != sealed.digest()));
    }
}
