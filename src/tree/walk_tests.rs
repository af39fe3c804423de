//! Unit tests of src/tree/walk.rs (beside it; kept apart to keep the module readable).

use super::*;
use crate::tree::hash::READ_CHUNK;
use sha2::{Digest as _, Sha256};
use std::os::unix::fs::{symlink, PermissionsExt};

fn walk_dir(p: &Path) -> Result<Manifest, WalkError> {
    walk(p, &Options::default())
}

#[test]
fn describes_every_kind_without_following_links() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    std::fs::create_dir(r.join("bin")).unwrap();
    std::fs::write(r.join("bin/sh"), b"#!").unwrap();
    std::fs::set_permissions(r.join("bin/sh"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    symlink("/etc/shadow", r.join("escape")).unwrap();
    symlink("../../../../", r.join("up")).unwrap();
    nix::unistd::mkfifo(&r.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let m = walk_dir(r).unwrap();
    let paths: Vec<String> = m.entries().iter().map(|e| String::from_utf8_lossy(&e.path).into()).collect();
    assert_eq!(paths, ["/bin", "/bin/sh", "/escape", "/fifo", "/up"]);
    assert_eq!(m.get(b"/bin/sh").unwrap().mode, 0o4755);
    assert_eq!(m.get(b"/escape").unwrap().kind, Kind::Symlink { target: b"/etc/shadow".to_vec() });
    assert_eq!(m.get(b"/fifo").unwrap().kind, Kind::Fifo);
    let Kind::File { sha256, size, .. } = &m.get(b"/bin/sh").unwrap().kind else { panic!() };
    assert_eq!((*size, *sha256), (2, <[u8; 32]>::from(Sha256::digest(b"#!"))));
}

#[test]
fn refuses_a_symlinked_root_and_a_file_root() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("real")).unwrap();
    symlink(t.path().join("real"), t.path().join("link")).unwrap();
    std::fs::write(t.path().join("file"), b"x").unwrap();
    assert!(matches!(walk_dir(&t.path().join("link")), Err(WalkError::RootSymlink { .. })));
    assert!(matches!(walk_dir(&t.path().join("file")), Err(WalkError::RootNotDir { .. })));
    assert!(matches!(walk_dir(&t.path().join("none")), Err(WalkError::OpenRoot { .. })));
}

#[test]
fn limits_are_enforced_with_their_config_key() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("a/b/c/d")).unwrap();
    std::fs::write(t.path().join("a/big"), vec![7u8; 10_000]).unwrap();
    let limited = |limits| walk(t.path(), &Options { limits, ..Options::default() });
    let base = Limits::default();
    let err = limited(Limits { max_depth: 2, ..base }).unwrap_err();
    assert!(err.to_string().contains("max_depth"), "{err}");
    let err = limited(Limits { max_entries: 3, ..base }).unwrap_err();
    assert!(err.to_string().contains("max_entries"), "{err}");
    let err = limited(Limits { max_total_bytes: 9_999, ..base }).unwrap_err();
    assert!(err.to_string().contains("max_total_bytes"), "{err}");
    let err = limited(Limits { max_path_bytes: 6, ..base }).unwrap_err();
    assert!(err.to_string().contains("max_path_bytes"), "{err}");
    assert_eq!(limited(base).unwrap().len(), 5);
}

#[test]
fn prune_skips_whole_subtrees_unopened() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("proc/1")).unwrap();
    std::fs::create_dir_all(t.path().join("procx")).unwrap();
    let prune = |p: &[u8]| p == b"/proc";
    let m = walk(t.path(), &Options { prune: Some(&prune), ..Options::default() }).unwrap();
    let paths: Vec<&[u8]> = m.entries().iter().map(|e| e.path.as_slice()).collect();
    assert_eq!(paths, [b"/procx".as_slice()]);
}

#[test]
fn files_ending_on_and_around_a_read_boundary_hash_whole() {
    // The end-of-file check rides on the last read (one byte more asked than is left):
    // sizes at, just under and just over a read chunk, and empty, must all hash exactly.
    let t = tempfile::tempdir().unwrap();
    let sizes = [0, 1, READ_CHUNK - 1, READ_CHUNK, READ_CHUNK + 1, 2 * READ_CHUNK, 3 * READ_CHUNK + 7];
    for (i, n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..*n).map(|j| (j % 251) as u8).collect();
        std::fs::write(t.path().join(format!("f{i}")), &data).unwrap();
    }
    let m = walk_dir(t.path()).unwrap();
    for (i, n) in sizes.iter().enumerate() {
        let data: Vec<u8> = (0..*n).map(|j| (j % 251) as u8).collect();
        let Kind::File { sha256, size, .. } = &m.get(format!("/f{i}").as_bytes()).unwrap().kind else { panic!() };
        assert_eq!((*size, *sha256), (*n as u64, <[u8; 32]>::from(Sha256::digest(&data))), "size {n}");
    }
}

#[test]
fn directories_are_described_by_what_was_opened() {
    // Directories are opened before they are stat'ed (module doc, step 2): their mode and
    // owner still come through, nested ones too, and they count toward max_entries.
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("a/b")).unwrap();
    std::fs::set_permissions(t.path().join("a/b"), std::fs::Permissions::from_mode(0o1750)).unwrap();
    std::os::unix::fs::chown(t.path().join("a"), Some(1234), Some(5678)).unwrap();
    let m = walk_dir(t.path()).unwrap();
    let a = m.get(b"/a").unwrap();
    assert_eq!((a.kind.clone(), a.uid, a.gid), (Kind::Dir, 1234, 5678));
    assert_eq!(m.get(b"/a/b").unwrap().mode, 0o1750);
    let opts = Options { limits: Limits { max_entries: 1, ..Limits::default() }, ..Options::default() };
    assert!(walk(t.path(), &opts).unwrap_err().to_string().contains("max_entries"));
}

#[test]
fn files_whose_size_or_type_differs_from_the_seal_are_not_read() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let sealed = |path: &str, kind: Kind| Entry { path: path.as_bytes().to_vec(), mode: 0o644, uid: 0, gid: 0, kind };
    let file = |size| Kind::File { size, sha256: [7; 32], cap: None };
    let expected = Manifest::from_entries(vec![
        sealed("/big", file(10)),
        sealed("/link1", file(3)),
        sealed("/link2", file(4)),
        sealed("/same", file(4)),
        sealed("/was-symlink", Kind::Symlink { target: b"x".to_vec() }),
    ]);
    // 1 GiB of hole where the seal has 10 bytes: reading it would break the byte limit.
    std::fs::File::create(r.join("big")).unwrap().set_len(1 << 30).unwrap();
    std::fs::write(r.join("same"), b"abcd").unwrap();
    std::fs::write(r.join("was-symlink"), b"now a file").unwrap();
    std::fs::write(r.join("added"), b"not in the seal").unwrap();
    // Two names of one 4-byte inode: /link1 (sealed 3 bytes) is not read, /link2 (sealed
    // 4 bytes) must be hashed itself, not copy /link1's placeholder.
    std::fs::write(r.join("link1"), b"wxyz").unwrap();
    std::fs::hard_link(r.join("link1"), r.join("link2")).unwrap();
    let limits = Limits { max_total_bytes: 1000, ..Limits::default() };
    let opts = Options { limits, expected: Some(&expected), ..Options::default() };
    let w = walk_fd(r, open_root(r).unwrap(), &opts).unwrap();
    assert_eq!((w.unread, w.hashed), (3, 3), "big, link1, was-symlink unread; same, added, link2 hashed");
    let kind = |p: &str| w.manifest.get(p.as_bytes()).unwrap().kind.clone();
    assert_eq!(kind("/big"), Kind::File { size: 1 << 30, sha256: [0; 32], cap: None });
    let hash = |d: &[u8]| <[u8; 32]>::from(Sha256::digest(d));
    assert_eq!(kind("/same"), Kind::File { size: 4, sha256: hash(b"abcd"), cap: None });
    assert_eq!(kind("/link2"), Kind::File { size: 4, sha256: hash(b"wxyz"), cap: None });
    assert_eq!(kind("/added"), Kind::File { size: 15, sha256: hash(b"not in the seal"), cap: None });
    // Without the seal, the same tree is read whole: the byte limit stops it.
    let err = walk(r, &Options { limits, ..Options::default() }).unwrap_err();
    assert!(err.to_string().contains("max_total_bytes"), "{err}");
}

#[test]
fn an_expired_deadline_stops_the_walk() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f"), b"x").unwrap();
    let opts = Options { deadline: Some(Instant::now()), ..Options::default() };
    assert!(matches!(walk(t.path(), &opts), Err(WalkError::Deadline { .. })));
}
