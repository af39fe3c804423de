//! A hostile or broken trust store. Whoever can write it decides what the node runs, so an
//! unsafe or unreadable store never means "skip verification": every case blocks, with a
//! reason naming the file (docs/config.md, "Trust store").

use super::*;
use crate::harness::*;
use std::os::unix::fs::PermissionsExt;

fn key_file(f: &Fixture) -> PathBuf {
    f.env.path("trust/ci-2026.pub")
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_group_writable_key_file_is_blocked() {
    let f = Fixture::new();
    chmod(&key_file(&f), 0o664);
    let k = key_file(&f).display().to_string();
    assert_blocks(&f, &[&format!("{k} is writable by group or others (mode 0664); run `chmod go-w {k}`")]);
}

#[test]
fn an_other_writable_key_file_is_blocked() {
    let f = Fixture::new();
    chmod(&key_file(&f), 0o646);
    assert_blocks(&f, &[&format!("{} is writable by group or others (mode 0646)", key_file(&f).display())]);
}

#[test]
fn a_key_file_owned_by_another_user_is_blocked() {
    let f = Fixture::new();
    std::os::unix::fs::chown(key_file(&f), Some(1000), Some(1000)).unwrap();
    let k = key_file(&f).display().to_string();
    assert_blocks(&f, &[&format!("{k} is owned by uid 1000, not root; run `chown root: {k}`")]);
}

#[test]
fn a_symlinked_key_is_blocked() {
    let f = Fixture::new();
    // The same, trusted key, only through a symlink to a copy outside the store.
    let elsewhere = f.env.path("elsewhere.pub");
    std::fs::rename(key_file(&f), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, key_file(&f)).unwrap();
    assert_blocks(&f, &[&format!("{} is a symlink; replace it with the real file", key_file(&f).display())]);
}

#[test]
fn an_empty_trust_store_is_blocked() {
    let f = Fixture::new();
    std::fs::remove_file(key_file(&f)).unwrap();
    assert_eq!(names(&f.env.path("trust")), Vec::<String>::new());
    assert_blocks(&f, &["is not signed by any trusted key (signed by keyid"]);
}

#[test]
fn a_missing_trust_store_is_blocked() {
    let f = Fixture::new();
    std::fs::remove_dir_all(f.env.path("trust")).unwrap();
    assert_blocks(&f, &[&format!("trust store {} does not exist", f.env.path("trust").display())]);
}

#[test]
fn an_unparseable_key_file_is_blocked() {
    let f = Fixture::new();
    std::fs::write(key_file(&f), "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n").unwrap();
    assert_blocks(&f, &[&format!("{} is not an ed25519 public key (SPKI) in PEM form", key_file(&f).display())]);
}

#[test]
fn an_unparseable_extra_key_blocks_even_beside_the_good_one() {
    let f = Fixture::new();
    let junk = f.env.path("trust/zz-junk.pub");
    std::fs::write(&junk, b"\x00\xff not a key at all").unwrap();
    assert_blocks(&f, &[&format!("{} is not an ed25519 public key in PEM form: not text", junk.display())]);
}

#[test]
fn a_private_key_in_the_trust_store_is_blocked() {
    let f = Fixture::new();
    let p = f.env.path("trust/leaked.pub");
    std::fs::copy(&f.key, &p).unwrap();
    chmod(&p, 0o644);
    assert_blocks(&f, &[&format!("{} is a private key", p.display())]);
}

#[test]
fn a_fifo_or_directory_named_like_a_key_is_blocked_without_hanging() {
    let f = Fixture::new();
    let p = f.env.path("trust/fifo.pub");
    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    assert_blocks(&f, &[&format!("{} is not a regular file; remove it from the trust store", p.display())]);
    std::fs::remove_file(&p).unwrap();
    let d = f.env.path("trust/dir.pub");
    std::fs::create_dir(&d).unwrap();
    assert_blocks(&f, &[&format!("{} is not a regular file", d.display())]);
}

#[test]
fn an_oversized_key_file_is_blocked_unread() {
    let f = Fixture::new();
    let p = f.env.path("trust/huge.pub");
    std::fs::File::create(&p).unwrap().set_len(1 << 40).unwrap();
    assert_blocks(&f, &[&p.display().to_string(), "larger than 65536 bytes"]);
}

#[test]
fn a_group_writable_or_foreign_trust_directory_is_blocked() {
    let f = Fixture::new();
    let t = f.env.path("trust");
    chmod(&t, 0o775);
    assert_blocks(&f, &[&format!("{} is writable by group or others (mode 0775)", t.display())]);
    chmod(&t, 0o755);
    std::os::unix::fs::chown(&t, Some(1000), None).unwrap();
    assert_blocks(&f, &[&format!("{} is owned by uid 1000, not root", t.display())]);
}

#[test]
fn a_symlinked_trust_directory_is_blocked() {
    let f = Fixture::new();
    let t = f.env.path("trust");
    std::fs::rename(&t, f.env.path("real-trust")).unwrap();
    std::os::unix::fs::symlink(f.env.path("real-trust"), &t).unwrap();
    assert_blocks(&f, &[&format!("{} is a symlink", t.display())]);
}

#[test]
fn an_unsafe_or_malformed_revocation_list_is_blocked() {
    let f = Fixture::new();
    let r = f.env.path("trust/revocations.json");
    std::fs::write(&r, b"{\"keys\":[],\"digests\":[]}").unwrap();
    chmod(&r, 0o666);
    assert_blocks(&f, &[&format!("{} is writable by group or others (mode 0666)", r.display())]);
    chmod(&r, 0o644);
    // A duplicate key a lax parser would resolve to the empty list.
    std::fs::write(&r, b"{\"keys\":[\"nothex\"],\"k\\u0065ys\":[]}").unwrap();
    assert_blocks(&f, &[&r.display().to_string(), "duplicate key"]);
}

/// Key names end up in every reason ("signed by NAME"): a file name with control characters
/// must not break the one-line reason (escaped like paths, or the file refused as misnamed).
#[test]
fn a_key_file_name_with_control_characters_keeps_the_reason_one_line() {
    let f = Fixture::new();
    std::fs::rename(key_file(&f), f.env.path("trust/ci\u{1b}[2J\nx.pub")).unwrap();
    std::fs::write(f.rootfs.join("etc/motd"), b"tampered\n").unwrap();
    let r = prestart(&f);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{:?}", r.stderr);
    assert!(!r.stderr.trim_end().chars().any(|c| c.is_control()), "{:?}", r.stderr);
}
