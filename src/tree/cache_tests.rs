//! Unit tests of src/tree/cache.rs (beside it; kept apart to keep the module readable).

use super::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn hmac_matches_rfc_4231() {
    // RFC 4231 section 4: test cases 1, 2, 6 and 7 (HMAC-SHA-256), through our wrappers.
    let cases: [(Vec<u8>, &[u8], &str); 4] = [
        (vec![0x0b; 20], b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            vec![0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            vec![0xaa; 131],
            b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ];
    for (key, data, want) in cases {
        let want = unhex(want);
        assert_eq!(hmac(&key, data).to_vec(), want, "{}", String::from_utf8_lossy(data));
        assert!(hmac_verify(&key, data, &want));
        let mut bad = want.clone();
        bad[31] ^= 1;
        assert!(!hmac_verify(&key, data, &bad));
        assert!(!hmac_verify(&key, data, &want[..31]), "a truncated tag never verifies");
    }
}

#[test]
fn only_filesystems_that_time_mapped_writes_are_cached() {
    assert_eq!(fs_cache(0xEF53), FsCache::Sound);
    assert_eq!(fs_cache(0x5846_5342), FsCache::Sound);
    assert_eq!(fs_cache(0x9123_683E), FsCache::Sound);
    assert_eq!(fs_cache(0x0102_1994), FsCache::MappedWritesUnseen);
    assert_eq!(fs_cache(0x8584_58F6), FsCache::MappedWritesUnseen);
    assert_eq!(fs_cache(0x9584_58F6), FsCache::MappedWritesUnseen);
    assert_eq!(fs_cache(0x794C_7630), FsCache::LeaseBlind);
    // Anything else (NFS, FUSE, 9p, erofs, ...) is unknown, hence not cached.
    assert_eq!(fs_cache(0x6969), FsCache::Unknown);
    assert_eq!(fs_cache(0x6573_5546), FsCache::Unknown);
}

#[test]
fn files_is_a_map_in_any_insert_order() {
    let rec = |n: u64| Cached {
        key: StatKey { dev: 1, ino: n, size: n, mtime: (1000, 0), ctime: (1000, 0) },
        sha256: [n as u8; 32],
        cap: (n % 7 == 0).then(|| vec![n as u8]),
    };
    let mut f = Files::default();
    let paths: Vec<Vec<u8>> = (0..500u64).map(|i| format!("/d/{}", (i * 7919) % 500).into_bytes()).collect();
    for (i, p) in paths.iter().enumerate() {
        f.insert(p, rec(i as u64));
    }
    // Replacing, before and after sorting: the last insert wins.
    f.insert(&paths[3], rec(1003));
    let check = |f: &Files| {
        assert_eq!(f.len(), 500);
        for (i, p) in paths.iter().enumerate() {
            let want = if i == 3 { 1003 } else { i as u64 };
            assert_eq!(f.get(p), Some(&rec(want)), "{}", display(p));
        }
        assert!(f.get(b"/nope").is_none());
    };
    check(&f);
    let mut sorted = f.clone();
    sorted.sort();
    assert_eq!(sorted.sorted, sorted.len());
    check(&sorted);
    sorted.insert(&paths[3], rec(3));
    sorted.insert(&paths[3], rec(1003));
    check(&sorted);
    assert_eq!(f.iter_sorted(), sorted.iter_sorted());
    sorted.get_mut(&paths[4]).unwrap().sha256 = [0; 32];
    assert_eq!(sorted.get(&paths[4]).unwrap().sha256, [0; 32]);
    sorted.retain(|c| c.key.ino % 2 == 0);
    assert_eq!(sorted.len(), 250);
    assert!(sorted.get(&paths[1]).is_none() && sorted.get(&paths[2]) == Some(&rec(2)));
}

fn display(p: &[u8]) -> String {
    crate::manifest::display_path(p)
}

#[test]
fn round_trip_and_every_discard_reason() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("cache");
    let rootfs = t.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let fd = std::fs::File::open(&rootfs).unwrap();
    let root = RootId::of(&fd).unwrap();
    let old = StatKey { dev: 1, ino: 2, size: 3, mtime: (1000, 5), ctime: (1000, 6) };
    let racy = StatKey { mtime: (i64::MAX / 2, 0), ..old };
    let mut c = Cache::default();
    c.files.insert(b"/a", Cached { key: old, sha256: [9; 32], cap: Some(vec![1, 2]) });
    c.files.insert(b"/racy", Cached { key: racy, sha256: [8; 32], cap: None });
    save(&dir, &rootfs, &root, &c).unwrap();
    let (back, why) = load(&dir, &rootfs, &root);
    assert_eq!(why, None);
    assert_eq!(back.files.len(), 1, "racily clean files are not cached");
    assert_eq!(back.files.get(b"/a"), c.files.get(b"/a"));
    assert!(back.files.get(b"/racy").is_none());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(path_for(&dir, &rootfs)).unwrap().mode() & 0o777, 0o600);

    // Edited: one byte flipped.
    let p = path_for(&dir, &rootfs);
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len() - 40;
    bytes[n] ^= 1;
    std::fs::write(&p, &bytes).unwrap();
    let (c2, why) = load(&dir, &rootfs, &root);
    assert!(c2.files.is_empty() && why.unwrap().contains("integrity"));
    // Truncated.
    std::fs::write(&p, &bytes[..20]).unwrap();
    let (c3, why) = load(&dir, &rootfs, &root);
    assert!(c3.files.is_empty() && why.is_some());
    // Another root (a different image at the same path, or a remount).
    save(&dir, &rootfs, &root, &c).unwrap();
    let other = RootId { ino: root.ino + 1, ..root };
    let (c4, why) = load(&dir, &rootfs, &other);
    assert!(c4.files.is_empty() && why.unwrap().contains("another directory or mount"));
    // Another rootfs path's cache copied over this one's name.
    let rootfs2 = t.path().join("rootfs2");
    std::fs::create_dir(&rootfs2).unwrap();
    std::fs::copy(path_for(&dir, &rootfs), path_for(&dir, &rootfs2)).unwrap();
    let root2 = RootId::of(&std::fs::File::open(&rootfs2).unwrap()).unwrap();
    let (c5, why) = load(&dir, &rootfs2, &root2);
    assert!(c5.files.is_empty() && why.unwrap().contains("another rootfs"));
}
