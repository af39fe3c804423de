//! Unit tests of src/node/layers.rs (beside it; kept apart to keep the module under 700 lines).

use super::*;

#[test]
fn mountinfo_lines_parse_and_refuse_what_is_not_supported() {
    let ok =
        "47 27 0:40 / /tmp/ov/m rw,relatime - overlay overlay rw,lowerdir=/l\\0402:/l1,upperdir=/u,workdir=/w,uuid=on";
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
        let e = parse_mountinfo_line(&bad).unwrap_err().to_string();
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
    assert!(load(&cache, &other).unwrap_err().to_string().contains("not the same directories"));
    let path = record_path(&cache, &lowers);
    let mut bytes = std::fs::read(&path).unwrap();
    // A byte of the header, then a byte of the binary skeleton.
    let i = bytes.windows(5).position(|w| w == b"\"app\"").unwrap();
    bytes[i + 1] = b'b';
    std::fs::write(&path, &bytes).unwrap();
    assert!(load(&cache, &lowers).unwrap_err().to_string().contains("integrity"));
    save(&cache, &r).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let i = bytes.windows(4).position(|w| w == b"/run").unwrap();
    bytes[i + 1] = b'x';
    std::fs::write(&path, &bytes).unwrap();
    assert!(load(&cache, &lowers).unwrap_err().to_string().contains("integrity"));
    let mut short = std::fs::read(&path).unwrap();
    short.truncate(short.len() - 70);
    std::fs::write(&path, &short).unwrap();
    assert!(load(&cache, &lowers).is_err());
    save(&cache, &r).unwrap();
    std::fs::write(cache.join("key"), [9u8; 32]).unwrap();
    assert!(load(&cache, &lowers).unwrap_err().to_string().contains("integrity"));
    forget(&cache, &lowers).unwrap();
    forget(&cache, &lowers).unwrap();
    assert!(load(&cache, &lowers).is_err());
}
