//! The node-local trust store and seal store.
//!
//! Layout (docs/config.md):
//! - `trust_dir/NAME.pub`: a trusted SPKI PEM public key, named by its file name;
//! - `trust_dir/revocations.json`: `{"keys": [KEYID...], "digests": ["sha256:HEX"...]}`;
//!
//! The seal store is in `store.rs`.
//!
//! A key or revocation file (or the trust directory) that is a symlink, is group- or
//! other-writable, or is owned by anyone but root (or the invoking user, when that is not
//! root) is refused: whoever can write it decides what this node runs.

pub mod keys;
pub mod rollback;

use crate::atomic;
use crate::keys::{KeyError, PublicKey};
use crate::manifest::TreeDigest;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const REVOCATIONS_FILE: &str = "revocations.json";
const MAX_REVOCATIONS_FILE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("trust store {} does not exist; create it with `rootseal trust add KEY.pub`", dir.display())]
    Missing { dir: PathBuf },
    #[error("{} is {problem}; {fix}", path.display())]
    Unsafe { path: PathBuf, problem: String, fix: String },
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{}: {what}; fix or remove the file", path.display())]
    Revocations { path: PathBuf, what: String },
    #[error("key name {name:?} is invalid: use letters, digits, '.', '_' or '-', not starting with '.'")]
    BadName { name: String },
    #[error("a different key is already trusted as {name:?} ({}); remove it first or pick another --name", path.display())]
    NameTaken { name: String, path: PathBuf },
    #[error("this key is already trusted as {name:?}")]
    AlreadyTrusted { name: String },
    #[error("no trusted key named {name:?} in {}", dir.display())]
    NoSuchKey { name: String, dir: PathBuf },
    #[error("key id {keyid:?} is not 64 lowercase hex digits")]
    BadKeyId { keyid: String },
    #[error(transparent)]
    Write(#[from] atomic::WriteError),
}

/// A public key trusted under a name.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub name: String,
    pub key: PublicKey,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Revocations {
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub digests: Vec<String>,
}

impl Revocations {
    pub fn key_revoked(&self, keyid: &str) -> bool {
        self.keys.iter().any(|k| k == keyid)
    }

    pub fn digest_revoked(&self, d: &TreeDigest) -> bool {
        self.digests.iter().any(|x| TreeDigest::parse(x).as_ref() == Some(d))
    }
}

/// Everything the store says: trusted keys and revocations.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub keys: Vec<TrustedKey>,
    pub revoked: Revocations,
}

/// A key's name: its file name without `.pub`, escaped (docs/digest.md) for messages.
fn key_name(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    path.file_stem()
        .map(|s| crate::manifest::display_path(s.as_bytes()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "key".into())
}

impl Trust {
    /// A trust set of one key given on the command line (`verify --key`).
    pub fn single(key: PublicKey, path: &Path) -> Trust {
        let name = key_name(path);
        Trust { keys: vec![TrustedKey { name, key, path: path.into() }], revoked: Revocations::default() }
    }

    pub fn by_keyid(&self, keyid: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.key.keyid == keyid)
    }
}

pub struct TrustStore {
    pub dir: PathBuf,
}

impl TrustStore {
    pub fn new(dir: impl Into<PathBuf>) -> TrustStore {
        TrustStore { dir: dir.into() }
    }

    /// Loads every key and the revocation list, refusing unsafe files.
    pub fn load(&self) -> Result<Trust, TrustError> {
        let meta = match std::fs::symlink_metadata(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TrustError::Missing { dir: self.dir.clone() })
            }
            r => r.map_err(|source| TrustError::Io { path: self.dir.clone(), source })?,
        };
        check_safe(&self.dir, &meta)?;
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map_err(|source| TrustError::Io { path: self.dir.clone(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "pub"))
            .collect();
        names.sort();
        let mut keys = Vec::new();
        for path in names {
            let text = read_safe(&path, crate::keys::MAX_KEY_FILE)?;
            let text = String::from_utf8(text).map_err(|_| {
                TrustError::Key(KeyError::Parse { path: path.clone(), what: "public key", detail: "not text".into() })
            })?;
            let key = PublicKey::from_pem(&text, &path)?;
            // The name is quoted in every reason: escaped like a path, so a file name with
            // control characters cannot break the one-line reason.
            let name = key_name(&path);
            keys.push(TrustedKey { name, key, path });
        }
        let revoked = self.load_revocations()?;
        Ok(Trust { keys, revoked })
    }

    fn revocations_path(&self) -> PathBuf {
        self.dir.join(REVOCATIONS_FILE)
    }

    fn load_revocations(&self) -> Result<Revocations, TrustError> {
        let path = self.revocations_path();
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Revocations::default()),
            Err(source) => return Err(TrustError::Io { path, source }),
            Ok(_) => {}
        }
        let bytes = read_safe(&path, MAX_REVOCATIONS_FILE)?;
        let r: Revocations = crate::json::from_slice_strict(&bytes)
            .map_err(|e| TrustError::Revocations { path: path.clone(), what: e.to_string() })?;
        for k in &r.keys {
            if crate::manifest::parse_hex32(k).is_none() {
                return Err(TrustError::Revocations {
                    path,
                    what: format!("key id {k:?} is not 64 lowercase hex digits"),
                });
            }
        }
        for d in &r.digests {
            if !d.starts_with("sha256:") || TreeDigest::parse(d).is_none() {
                return Err(TrustError::Revocations { path, what: format!("digest {d:?} is not sha256:<64 hex>") });
            }
        }
        Ok(r)
    }

    fn ensure_dir(&self) -> Result<(), TrustError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.dir)
            .map_err(|source| TrustError::Io { path: self.dir.clone(), source })
    }

    /// Trusts `key` under `name`. Idempotent for the same key and name.
    pub fn add(&self, key: &PublicKey, name: &str) -> Result<TrustedKey, TrustError> {
        check_name(name)?;
        self.ensure_dir()?;
        let current = self.load()?;
        if let Some(k) = current.by_keyid(&key.keyid) {
            if k.name == name {
                return Ok(k.clone());
            }
            return Err(TrustError::AlreadyTrusted { name: k.name.clone() });
        }
        let path = self.dir.join(format!("{name}.pub"));
        if current.keys.iter().any(|k| k.name == name) {
            return Err(TrustError::NameTaken { name: name.into(), path });
        }
        atomic::write_new(&path, key.to_pem().as_bytes(), 0o644)?;
        Ok(TrustedKey { name: name.into(), key: key.clone(), path })
    }

    pub fn remove(&self, name: &str) -> Result<TrustedKey, TrustError> {
        check_name(name)?;
        let current = self.load()?;
        let k = current
            .keys
            .into_iter()
            .find(|k| k.name == name)
            .ok_or_else(|| TrustError::NoSuchKey { name: name.into(), dir: self.dir.clone() })?;
        atomic::remove(&k.path)?;
        Ok(k)
    }

    /// Adds a key id or tree digest to the revocation list. Returns false if already there.
    pub fn revoke(&self, keyid: Option<&str>, digest: Option<&TreeDigest>) -> Result<bool, TrustError> {
        self.ensure_dir()?;
        let dir_meta =
            std::fs::symlink_metadata(&self.dir).map_err(|source| TrustError::Io { path: self.dir.clone(), source })?;
        check_safe(&self.dir, &dir_meta)?;
        let mut r = self.load_revocations()?;
        let mut changed = false;
        if let Some(k) = keyid {
            if crate::manifest::parse_hex32(k).is_none() {
                return Err(TrustError::BadKeyId { keyid: k.into() });
            }
            if !r.key_revoked(k) {
                r.keys.push(k.into());
                changed = true;
            }
        }
        if let Some(d) = digest {
            if !r.digest_revoked(d) {
                r.digests.push(d.to_string());
                changed = true;
            }
        }
        if changed {
            let mut bytes = serde_json::to_vec_pretty(&r).expect("serialises");
            bytes.push(b'\n');
            atomic::write(&self.revocations_path(), &bytes, 0o644)?;
        }
        Ok(changed)
    }
}

fn check_name(name: &str) -> Result<(), TrustError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(TrustError::BadName { name: name.into() })
    }
}

/// The trust rule for one file or directory: not a symlink, owned by root (or by the invoking
/// user when that is not root), not writable by group or others.
pub fn check_safe(path: &Path, meta: &std::fs::Metadata) -> Result<(), TrustError> {
    match rule_broken(path, meta, "go-w") {
        Some((problem, fix)) if meta.file_type().is_symlink() => {
            Err(TrustError::Unsafe { path: path.into(), problem, fix })
        }
        Some((problem, fix)) => Err(TrustError::Unsafe { path: path.into(), problem, fix: format!("run `{fix}`") }),
        None => Ok(()),
    }
}

/// How `meta` breaks the trust rule (not a symlink, root's or the invoking user's, not
/// writable by group or others), as (problem, fix); the mode fix is `chmod CHMOD PATH`. Also
/// the rule for the other files whose writer could weaken verification (config, watermarks).
pub fn rule_broken(path: &Path, meta: &std::fs::Metadata, chmod: &str) -> Option<(String, String)> {
    if meta.file_type().is_symlink() {
        return Some(("a symlink".into(), "replace it with the real file".into()));
    }
    let euid = crate::sys::euid();
    if meta.uid() != 0 && meta.uid() != euid {
        return Some((format!("owned by uid {}, not root", meta.uid()), format!("chown root: {}", path.display())));
    }
    if meta.mode() & 0o022 != 0 {
        return Some((
            format!("writable by group or others (mode {:04o})", meta.mode() & 0o7777),
            format!("chmod {chmod} {}", path.display()),
        ));
    }
    None
}

/// Opens without following symlinks, checks the trust rule on the opened file, reads bounded.
fn read_safe(path: &Path, max: u64) -> Result<Vec<u8>, TrustError> {
    let f =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(
            |source| {
                if source.raw_os_error() == Some(libc::ELOOP) {
                    TrustError::Unsafe {
                        path: path.into(),
                        problem: "a symlink".into(),
                        fix: "replace it with the real file".into(),
                    }
                } else {
                    TrustError::Io { path: path.into(), source }
                }
            },
        )?;
    let meta = f.metadata().map_err(|source| TrustError::Io { path: path.into(), source })?;
    if !meta.is_file() {
        return Err(TrustError::Unsafe {
            path: path.into(),
            problem: "not a regular file".into(),
            fix: "remove it from the trust store".into(),
        });
    }
    check_safe(path, &meta)?;
    atomic::read_file_bounded(f, path, max).map_err(|e| match e {
        atomic::ReadError::Io { path, source } => TrustError::Io { path, source },
        atomic::ReadError::TooLarge { path, max } => {
            TrustError::Revocations { path, what: format!("larger than {max} bytes") }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key() -> PublicKey {
        PublicKey::new(ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key())
    }

    #[test]
    fn add_list_remove_revoke() {
        let t = tempfile::tempdir().unwrap();
        let store = TrustStore::new(t.path().join("trust"));
        assert!(matches!(store.load(), Err(TrustError::Missing { .. })));
        store.add(&key(), "ci-2026").unwrap();
        store.add(&key(), "ci-2026").unwrap();
        assert!(matches!(store.add(&key(), "other"), Err(TrustError::AlreadyTrusted { .. })));
        assert!(matches!(store.add(&key(), "../x"), Err(TrustError::BadName { .. })));
        let trust = store.load().unwrap();
        assert_eq!(trust.keys.len(), 1);
        assert_eq!(trust.keys[0].name, "ci-2026");
        assert!(store.revoke(Some(&key().keyid), None).unwrap());
        assert!(!store.revoke(Some(&key().keyid), None).unwrap());
        assert!(store.load().unwrap().revoked.key_revoked(&key().keyid));
        store.remove("ci-2026").unwrap();
        assert!(store.load().unwrap().keys.is_empty());
    }

    #[test]
    fn unsafe_files_are_refused_with_the_fix() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("trust");
        let store = TrustStore::new(&dir);
        store.add(&key(), "k").unwrap();
        std::fs::set_permissions(dir.join("k.pub"), std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("k.pub") && err.contains("chmod go-w"), "{err}");
        std::fs::set_permissions(dir.join("k.pub"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(dir.join("k.pub"), dir.join("l.pub")).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("l.pub") && err.contains("symlink"), "{err}");
        std::fs::remove_file(dir.join("l.pub")).unwrap();
        std::fs::write(dir.join(REVOCATIONS_FILE), b"{\"keys\":[\"nothex\"]}").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("revocations.json"), "{err}");
    }
}
