//! Properties of the digest over real trees: any single change changes it; building the same
//! tree in another order does not; a hard link hashes as a copy.

use crate::util::*;
use proptest::prelude::*;
use rootseal::walk::{walk, Options};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[derive(Debug, Clone)]
struct FileSpec {
    dir: usize,
    content: Vec<u8>,
    mode: u32,
}

fn spec() -> impl Strategy<Value = Vec<FileSpec>> {
    prop::collection::vec(
        (
            0usize..3,
            prop::collection::vec(any::<u8>(), 0..64),
            prop::sample::select(vec![0o644u32, 0o755, 0o600, 0o4755]),
        ),
        1..8,
    )
    .prop_map(|v| v.into_iter().map(|(dir, content, mode)| FileSpec { dir, content, mode }).collect())
}

const DIRS: [&str; 3] = ["bin", "etc", "usr/lib"];

fn build(root: &Path, files: &[FileSpec], reverse: bool) {
    let mut order: Vec<usize> = (0..files.len()).collect();
    if reverse {
        order.reverse();
    }
    let mut dirs = DIRS.to_vec();
    if reverse {
        dirs.reverse();
    }
    for d in dirs {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for i in order {
        let f = &files[i];
        let p = root.join(DIRS[f.dir]).join(format!("f{i}"));
        std::fs::write(&p, &f.content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(f.mode)).unwrap();
    }
    if reverse {
        std::os::unix::fs::symlink("../etc", root.join("bin/link")).unwrap();
        std::fs::create_dir(root.join("empty")).unwrap();
    } else {
        std::fs::create_dir(root.join("empty")).unwrap();
        std::os::unix::fs::symlink("../etc", root.join("bin/link")).unwrap();
    }
}

fn digest(root: &Path) -> String {
    walk(root, &Options::default()).unwrap().digest().to_string()
}

#[derive(Debug, Clone, Copy)]
enum Mutation {
    ContentByte,
    AppendByte,
    ModeBit(u32),
    Owner,
    Group,
    SymlinkTarget,
    AddCapability,
    AddEntry,
    RemoveEntry,
    RenameEntry,
    EmptyDirMode,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::ContentByte),
        Just(Mutation::AppendByte),
        (0u32..12).prop_map(|b| Mutation::ModeBit(1 << b)),
        Just(Mutation::Owner),
        Just(Mutation::Group),
        Just(Mutation::SymlinkTarget),
        Just(Mutation::AddCapability),
        Just(Mutation::AddEntry),
        Just(Mutation::RemoveEntry),
        Just(Mutation::RenameEntry),
        Just(Mutation::EmptyDirMode),
    ]
}

fn apply(root: &Path, files: &[FileSpec], which: usize, m: Mutation) {
    let i = which % files.len();
    let p = root.join(DIRS[files[i].dir]).join(format!("f{i}"));
    match m {
        Mutation::ContentByte => {
            let mut c = std::fs::read(&p).unwrap();
            if c.is_empty() {
                c.push(0);
            } else {
                let k = which % c.len();
                c[k] ^= 0x01;
            }
            std::fs::write(&p, c).unwrap();
        }
        Mutation::AppendByte => {
            use std::io::Write;
            std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"\0").unwrap();
        }
        Mutation::ModeBit(bit) => {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode ^ bit)).unwrap();
        }
        Mutation::Owner => std::os::unix::fs::lchown(&p, Some(1000), None).unwrap(),
        Mutation::Group => std::os::unix::fs::lchown(&p, None, Some(1000)).unwrap(),
        Mutation::SymlinkTarget => {
            std::fs::remove_file(root.join("bin/link")).unwrap();
            std::os::unix::fs::symlink("../etc/", root.join("bin/link")).unwrap();
        }
        Mutation::AddCapability => set_xattr(&p, "security.capability", &cap_net_bind()),
        Mutation::AddEntry => std::fs::create_dir(root.join("new")).unwrap(),
        Mutation::RemoveEntry => std::fs::remove_file(&p).unwrap(),
        Mutation::RenameEntry => std::fs::rename(&p, p.with_file_name(format!("g{i}"))).unwrap(),
        Mutation::EmptyDirMode => {
            std::fs::set_permissions(root.join("empty"), std::fs::Permissions::from_mode(0o700)).unwrap()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_single_change_changes_the_digest(files in spec(), which in 0usize..64, m in mutation()) {
        let t = tempfile::tempdir().unwrap();
        build(t.path(), &files, false);
        let before = digest(t.path());
        apply(t.path(), &files, which, m);
        let after = digest(t.path());
        prop_assert_ne!(before, after, "mutation {:?} did not change the digest", m);
    }

    #[test]
    fn the_same_tree_built_in_another_order_has_the_same_digest(files in spec()) {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        build(a.path(), &files, false);
        build(b.path(), &files, true);
        prop_assert_eq!(digest(a.path()), digest(b.path()));
    }
}

#[test]
fn a_hard_link_hashes_as_a_copy() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for r in [a.path(), b.path()] {
        std::fs::write(r.join("one"), b"same content").unwrap();
    }
    std::fs::hard_link(a.path().join("one"), a.path().join("two")).unwrap();
    std::fs::copy(b.path().join("one"), b.path().join("two")).unwrap();
    assert_eq!(digest(a.path()), digest(b.path()));
}

#[test]
fn timestamps_and_selinux_labels_do_not_count() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("f"), b"x").unwrap();
    let before = digest(t.path());
    let f = std::fs::File::options().write(true).open(t.path().join("f")).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
    // user.* xattrs (and security.selinux, which the host assigns) are outside the digest.
    set_xattr(&t.path().join("f"), "user.note", b"hello");
    assert_eq!(before, digest(t.path()));
}

#[test]
fn removing_the_capability_xattr_changes_the_digest() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("ping"), b"elf").unwrap();
    set_xattr(&t.path().join("ping"), "security.capability", &cap_net_bind());
    let with = walk(t.path(), &Options::default()).unwrap();
    remove_xattr(&t.path().join("ping"), "security.capability");
    let without = walk(t.path(), &Options::default()).unwrap();
    assert_ne!(with.digest(), without.digest());
    let d = rootseal::manifest::diff(&with, &without);
    assert_eq!(d[0].changes[0].to_string(), "capability xattr removed");
}
