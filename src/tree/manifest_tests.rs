//! Unit tests of src/tree/manifest.rs (beside it; kept apart to keep the module readable).

use super::*;

fn file(path: &str, byte: u8) -> Entry {
    Entry {
        path: path.as_bytes().to_vec(),
        mode: 0o644,
        uid: 0,
        gid: 0,
        kind: Kind::File { size: 1, sha256: Sha256::digest([byte]).into(), cap: None },
    }
}

#[test]
fn has_below_sees_children_only_and_not_siblings_that_sort_between() {
    // "/etc-old" sorts between "/etc" and "/etc/..." ('-' < '/'): not a child.
    let m = Manifest::from_entries(vec![file("/etc-old", 1), file("/usr/bin/x", 2)]);
    assert!(!m.has_below(b"/etc"));
    assert!(m.has_below(b"/usr") && m.has_below(b"/usr/bin") && m.has_below(b""));
    assert!(!m.has_below(b"/usr/bin/x") && !m.has_below(b"/us"));
}

#[test]
fn numbers_modes_escapes_and_paths_have_one_spelling() {
    for bad in [
        "rootseal-manifest v1\n/b d +755 0 0\n",
        "rootseal-manifest v1\n/b%+1 d 0755 0 0\n",
        "rootseal-manifest v1\n/a/../b d 0755 0 0\n",
        "rootseal-manifest v1\n/a//b d 0755 0 0\n",
        "rootseal-manifest v1\n/a/ d 0755 0 0\n",
        "rootseal-manifest v1\n/./a d 0755 0 0\n",
        "rootseal-manifest v1\n/b d 0755 +0 0\n",
    ] {
        assert!(Manifest::parse(bad.as_bytes()).is_err(), "{bad:?} must not parse");
    }
    assert!(unescape("%+1").is_err());
    assert!(Manifest::parse(b"rootseal-manifest v1\n/a d 0755 0 0\n/a/b%0A d 0755 0 0\n").is_ok());
}

#[test]
fn canonical_round_trip_with_hostile_names() {
    let m = Manifest::from_entries(vec![
        file("/a b\n%\x1b[31m", 1),
        file("/z", 2),
        Entry {
            path: b"/l\xff".to_vec(),
            mode: 0o777,
            uid: 1,
            gid: 2,
            kind: Kind::Symlink { target: b"../../etc/passwd".to_vec() },
        },
        Entry { path: b"/dev/null".to_vec(), mode: 0o666, uid: 0, gid: 0, kind: Kind::CharDev { major: 1, minor: 3 } },
        Entry {
            path: b"/bin/ping".to_vec(),
            mode: 0o4755,
            uid: 0,
            gid: 0,
            kind: Kind::File { size: 0, sha256: [0; 32], cap: Some(vec![1, 0, 0, 2]) },
        },
    ]);
    let bytes = m.to_canonical();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("/a%20b%0A%25%1B[31m f 0644 0 0 size=1"), "{text}");
    assert!(text.contains("/bin/ping f 4755 0 0 size=0 sha256=") && text.contains(" cap=01000002\n"));
    assert_eq!(Manifest::parse(&bytes).unwrap(), m);
    assert_eq!(m.digest().0, <[u8; 32]>::from(Sha256::digest(&bytes)), "streamed digest = digest of the text");
}

#[test]
fn parse_rejects_non_canonical_input() {
    let good = Manifest::from_entries(vec![file("/a", 1), file("/b", 2)]).to_canonical();
    let text = String::from_utf8(good).unwrap();
    let swapped = {
        let l: Vec<&str> = text.lines().collect();
        format!("{}\n{}\n{}\n", l[0], l[2], l[1])
    };
    assert!(matches!(Manifest::parse(swapped.as_bytes()), Err(ManifestError::Order { .. })));
    assert!(Manifest::parse(text.replace("0644", "644").as_bytes()).is_err());
    assert!(Manifest::parse(text.replace("/a ", "/%61 ").as_bytes()).is_err());
    assert!(Manifest::parse(text.trim_end().as_bytes()).is_err());
    assert!(Manifest::parse(b"rootseal-manifest v2\n").is_err());
}

#[test]
fn diff_names_each_kind_of_change() {
    let sealed = Manifest::from_entries(vec![file("/a", 1), file("/b", 2), file("/c", 3)]);
    let mut b = file("/b", 2);
    b.mode = 0o755;
    b.uid = 5;
    let found = Manifest::from_entries(vec![file("/a", 9), b, file("/d", 4)]);
    let d = diff(&sealed, &found);
    let classes: Vec<(String, Vec<&str>)> =
        d.iter().map(|d| (display_path(&d.path), d.changes.iter().map(|c| c.class()).collect())).collect();
    assert_eq!(
        classes,
        vec![
            ("/a".into(), vec!["content"]),
            ("/b".into(), vec!["mode", "owner"]),
            ("/c".into(), vec!["removed"]),
            ("/d".into(), vec!["added"]),
        ]
    );
    assert!(diff(&sealed, &sealed).is_empty());
}

#[test]
fn from_entries_returns_a_walks_spare_capacity() {
    let mut target = Vec::with_capacity(4097);
    target.extend_from_slice(b"../lib/libc.so.6");
    let mut entries = Vec::with_capacity(64);
    entries.push(Entry { path: b"/lib/libc.so".to_vec(), mode: 0o777, uid: 0, gid: 0, kind: Kind::Symlink { target } });
    let m = Manifest::from_entries(entries);
    assert_eq!(m.entries.capacity(), 1);
    let Kind::Symlink { target } = &m.entries[0].kind else { panic!() };
    assert_eq!((target.as_slice(), target.capacity()), (b"../lib/libc.so.6".as_slice(), 16));
}

#[test]
fn display_path_never_passes_control_characters() {
    assert_eq!(display_path(b"/usr/bin/ls"), "/usr/bin/ls");
    assert_eq!(display_path(b"/x\n\x1b"), "/x%0A%1B");
    assert_eq!(display_path(b"/\xff"), "/%FF");
}
