//! Rollback protection (docs/hook.md, "Rollback protection").
//!
//! For every image name (a seal's *signed* subject name) the node keeps the creation time of
//! the newest seal it has accepted at a container start: its **watermark**. A seal for the
//! same name that was created before the watermark is refused, even though it is validly
//! signed and matches the rootfs: an attacker who can put an old, vulnerable but once-signed
//! image on the node cannot get it started. A deliberate rollback is an explicit operator step
//! (`rootseal rollback allow NAME --seal DIGEST`), which lowers the watermark to that seal.
//!
//! Layout: `<seal_dir>/accepted/<sha256(name)>.json`, one small JSON file per name, root-only
//! (directory 0700, files 0600), written atomically. Raising a watermark takes an exclusive
//! `flock` on `<seal_dir>/accepted/.lock` and re-reads under it, so concurrent starts of a new
//! and an old version can never lower it; reads take no lock (a rename is atomic).

use crate::atomic;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const MAX_RECORD_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("rollback watermarks {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("rollback watermark {}: {what}; inspect it, then run `rootseal rollback forget {name:?}` to start over for that image", path.display())]
    Corrupt { path: PathBuf, name: String, what: String },
    #[error("rollback watermarks {} are {problem}; run `{fix}`", path.display())]
    Unsafe { path: PathBuf, problem: String, fix: String },
    #[error(transparent)]
    Write(#[from] atomic::WriteError),
}

/// The newest accepted seal for one image name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watermark {
    pub version: u32,
    pub name: String,
    /// The accepted seal's `created` (RFC 3339, seconds).
    pub created: String,
    /// The accepted seal's tree digest.
    pub seal: String,
    /// When this node accepted it.
    pub accepted: String,
    /// "start" when a container start raised it, "allow" when an operator set it.
    pub by: String,
}

impl Watermark {
    fn new(name: &str, created: SystemTime, seal: &str, by: &str) -> Watermark {
        Watermark {
            version: 1,
            name: name.into(),
            created: rfc3339(created),
            seal: seal.into(),
            accepted: rfc3339(SystemTime::now()),
            by: by.into(),
        }
    }

    pub fn created_time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.created).ok()
    }
}

/// What [`Watermarks::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No watermark yet, or the seal is newer than it: accepting it raises the watermark.
    Newer,
    /// The seal is exactly as old as the watermark: nothing to record.
    Current,
    /// The seal is older than the watermark.
    RolledBack(Watermark),
}

/// What one watermark guards (`[hook] rollback_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The image repository: the signed name without its tag or digest. Seals of
    /// `registry.example/app:1.2` and `registry.example/app:1.1` share one watermark, so an old,
    /// once-signed tag cannot roll the repository back.
    #[default]
    Repository,
    /// The whole signed name: each tag has a watermark of its own.
    Name,
}

impl Scope {
    /// The watermark key of a seal's signed subject name.
    pub fn key(self, name: &str) -> String {
        match self {
            Scope::Name => name.to_string(),
            Scope::Repository => repository(name).to_string(),
        }
    }
}

/// An image reference without its `@digest` and its `:tag` (a colon before the last slash is
/// a registry port: `localhost:5000/app:1` is `localhost:5000/app`).
pub fn repository(name: &str) -> &str {
    let name = name.split_once('@').map_or(name, |(n, _)| n);
    match (name.rfind(':'), name.rfind('/')) {
        (Some(colon), Some(slash)) if colon > slash => &name[..colon],
        (Some(colon), None) => &name[..colon],
        _ => name,
    }
}

pub struct Watermarks {
    dir: PathBuf,
    scope: Scope,
}

/// Watermark times keep the seal's fractional seconds: a seal created at 10:00:00.2 is older
/// than one created at 10:00:00.7, and truncating both to 10:00:00 would let it pass.
fn rfc3339(t: SystemTime) -> String {
    let whole = t.duration_since(SystemTime::UNIX_EPOCH).is_ok_and(|d| d.subsec_nanos() == 0);
    if whole {
        humantime::format_rfc3339_seconds(t).to_string()
    } else {
        humantime::format_rfc3339_nanos(t).to_string()
    }
}

impl Watermarks {
    pub fn new(seal_dir: &Path, scope: Scope) -> Watermarks {
        Watermarks { dir: seal_dir.join("accepted"), scope }
    }

    /// The key a seal's signed subject name is guarded under.
    pub fn key(&self, name: &str) -> String {
        self.scope.key(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The record for a seal's signed subject name (filed under its [`Scope`] key).
    pub fn path_for(&self, name: &str) -> PathBuf {
        let key = self.key(name);
        self.dir.join(format!("{}.json", crate::manifest::hex(&Sha256::digest(key.as_bytes()))))
    }

    /// The directory must be root's and closed to others: whoever can write it can lower a
    /// watermark. A missing directory is an empty set.
    fn check_dir(&self) -> Result<bool, RollbackError> {
        let meta = match std::fs::symlink_metadata(&self.dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(RollbackError::Io { path: self.dir.clone(), source }),
        };
        let unsafe_ = |problem: String, fix: String| RollbackError::Unsafe { path: self.dir.clone(), problem, fix };
        if !meta.is_dir() {
            return Err(unsafe_("not a directory".into(), format!("rm {}", self.dir.display())));
        }
        match crate::trust::rule_broken(&self.dir, &meta, "0700") {
            Some((problem, fix)) => Err(unsafe_(problem, fix)),
            None => Ok(true),
        }
    }

    /// The watermark for `name`, if any.
    pub fn get(&self, name: &str) -> Result<Option<Watermark>, RollbackError> {
        if !self.check_dir()? {
            return Ok(None);
        }
        self.read(&self.path_for(name), Some(&self.key(name)))
    }

    fn read(&self, path: &Path, name: Option<&str>) -> Result<Option<Watermark>, RollbackError> {
        let f = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(RollbackError::Io { path: path.into(), source }),
        };
        let shown = name.unwrap_or("?").to_string();
        let corrupt = |what: String| RollbackError::Corrupt { path: path.into(), name: shown.clone(), what };
        let meta = f.metadata().map_err(|source| RollbackError::Io { path: path.into(), source })?;
        if !meta.is_file() {
            return Err(corrupt("is not a regular file".into()));
        }
        let bytes = atomic::read_file_bounded(f, path, MAX_RECORD_BYTES).map_err(|e| corrupt(e.to_string()))?;
        let w: Watermark =
            crate::json::from_slice_strict(&bytes).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
        if w.version != 1 {
            return Err(corrupt(format!("version {} is not 1", w.version)));
        }
        if let Some(n) = name {
            if w.name != n {
                return Err(corrupt(format!("is filed under {n:?} but names {:?}", w.name)));
            }
        }
        if w.created_time().is_none() {
            return Err(corrupt(format!("created {:?} is not an RFC 3339 time", w.created)));
        }
        Ok(Some(w))
    }

    /// Is a seal for `name` created at `created` older than what this node accepted?
    pub fn check(&self, name: &str, created: SystemTime) -> Result<Verdict, RollbackError> {
        match self.get(name)? {
            Some(w) if w.created_time().is_some_and(|t| created < t) => Ok(Verdict::RolledBack(w)),
            Some(w) if w.created_time().is_some_and(|t| created == t) => Ok(Verdict::Current),
            _ => Ok(Verdict::Newer),
        }
    }

    fn ensure_dir(&self) -> Result<(), RollbackError> {
        match std::fs::DirBuilder::new().mode(0o700).recursive(true).create(&self.dir) {
            Ok(()) => {}
            Err(source) => return Err(RollbackError::Io { path: self.dir.clone(), source }),
        }
        self.check_dir().map(|_| ())
    }

    /// Runs `f` holding the exclusive lock of the watermark directory.
    fn locked<T>(&self, f: impl FnOnce() -> Result<T, RollbackError>) -> Result<T, RollbackError> {
        self.ensure_dir()?;
        let lock_path = self.dir.join(".lock");
        let guard =
            atomic::lock_exclusive(&lock_path).map_err(|source| RollbackError::Io { path: lock_path, source })?;
        let r = f();
        drop(guard);
        r
    }

    fn write(&self, w: &Watermark) -> Result<(), RollbackError> {
        let mut bytes = serde_json::to_vec_pretty(w).expect("watermark serialises");
        bytes.push(b'\n');
        atomic::write(&self.path_for(&w.name), &bytes, 0o600)?;
        Ok(())
    }

    /// Records that a container start accepted the seal `digest` for `name`, created at
    /// `created`. Raises the watermark, never lowers it. Returns whether it changed. Callers
    /// that just saw [`Verdict::Current`] need not call it: the common start writes nothing.
    pub fn accept(&self, name: &str, created: SystemTime, digest: &str) -> Result<bool, RollbackError> {
        self.locked(|| {
            if let Some(w) = self.get(name)? {
                if w.created_time().is_some_and(|t| t >= created) {
                    return Ok(false);
                }
            }
            self.write(&Watermark::new(&self.key(name), created, digest, "start"))?;
            Ok(true)
        })
    }

    /// A deliberate rollback: sets `name`'s watermark to the given seal, even when older.
    pub fn allow(&self, name: &str, created: SystemTime, digest: &str) -> Result<Option<Watermark>, RollbackError> {
        self.locked(|| {
            // A corrupt record is replaced: this is the operator's explicit decision.
            let before = self.get(name).ok().flatten();
            self.write(&Watermark::new(&self.key(name), created, digest, "allow"))?;
            Ok(before)
        })
    }

    /// Forgets `name`'s watermark. Returns whether there was one.
    pub fn forget(&self, name: &str) -> Result<bool, RollbackError> {
        if !self.check_dir()? {
            return Ok(false);
        }
        self.locked(|| {
            let path = self.path_for(name);
            match std::fs::symlink_metadata(&path) {
                Ok(_) => {
                    atomic::remove(&path)?;
                    Ok(true)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(source) => Err(RollbackError::Io { path, source }),
            }
        })
    }

    /// Every watermark, by name. Unreadable records are returned as errors beside the rest.
    pub fn list(&self) -> Result<Vec<Result<Watermark, RollbackError>>, RollbackError> {
        if !self.check_dir()? {
            return Ok(Vec::new());
        }
        let rd = std::fs::read_dir(&self.dir).map_err(|source| RollbackError::Io { path: self.dir.clone(), source })?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|source| RollbackError::Io { path: self.dir.clone(), source })?;
            let file = e.file_name();
            let file = file.to_string_lossy();
            if file.starts_with('.') || !file.ends_with(".json") {
                continue;
            }
            match self.read(&e.path(), None) {
                Ok(Some(w)) if self.path_for(&w.name) == e.path() => out.push(Ok(w)),
                Ok(Some(w)) => out.push(Err(RollbackError::Corrupt {
                    path: e.path(),
                    name: w.name.clone(),
                    what: "is not filed under its name's hash".into(),
                })),
                Ok(None) => {}
                Err(err) => out.push(Err(err)),
            }
        }
        out.sort_by(|a, b| match (a, b) {
            (Ok(a), Ok(b)) => a.name.cmp(&b.name),
            (Ok(_), Err(_)) => std::cmp::Ordering::Less,
            (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
            (Err(_), Err(_)) => std::cmp::Ordering::Equal,
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    #[test]
    fn repositories_drop_tags_and_digests_but_keep_registry_ports() {
        assert_eq!(repository("registry.example/team/app:1.2"), "registry.example/team/app");
        assert_eq!(repository("registry.example/app@sha256:abc"), "registry.example/app");
        assert_eq!(repository("registry.example/app:1@sha256:abc"), "registry.example/app");
        assert_eq!(repository("localhost:5000/app:1"), "localhost:5000/app");
        assert_eq!(repository("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository("app:1"), "app");
        assert_eq!(repository("rootfs"), "rootfs");
    }

    /// An old, once-signed tag cannot roll the repository back (the default scope), and a
    /// seal created a fraction of a second before the watermark is older.
    #[test]
    fn one_watermark_guards_a_repository_across_tags_to_the_nanosecond() {
        let d = tempfile::tempdir().unwrap();
        let w = Watermarks::new(d.path(), Scope::Repository);
        assert!(w.accept("registry.example/app:2.0", t(100), "sha256:new").unwrap());
        match w.check("registry.example/app:1.9", t(50)).unwrap() {
            Verdict::RolledBack(m) => {
                assert_eq!((m.seal.as_str(), m.name.as_str()), ("sha256:new", "registry.example/app"))
            }
            v => panic!("an older tag rolls the repository back: {v:?}"),
        }
        assert_eq!(w.check("registry.example/other:1.9", t(50)).unwrap(), Verdict::Newer);
        let at = |ms: u64| SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + 200_000 + ms);
        assert!(w.accept("registry.example/app:2.1", at(700), "sha256:b").unwrap());
        assert!(
            matches!(w.check("registry.example/app:2.1", at(200)).unwrap(), Verdict::RolledBack(_)),
            "0.2 s < 0.7 s"
        );
        assert_eq!(w.check("registry.example/app:2.1", at(700)).unwrap(), Verdict::Current);
        assert_eq!(w.check("registry.example/app:2.2", at(900)).unwrap(), Verdict::Newer);
        let tags = Watermarks::new(d.path(), Scope::Name);
        assert_eq!(tags.check("registry.example/app:1.9", t(50)).unwrap(), Verdict::Newer, "per tag");
    }

    #[test]
    fn watermarks_only_rise_and_older_seals_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let w = Watermarks::new(d.path(), Scope::Name);
        assert_eq!(w.check("app:1", t(0)).unwrap(), Verdict::Newer);
        assert!(w.accept("app:1", t(100), "sha256:b").unwrap());
        assert!(!w.accept("app:1", t(100), "sha256:b").unwrap(), "same seal: no write");
        assert!(!w.accept("app:1", t(50), "sha256:a").unwrap(), "older never lowers");
        assert_eq!(w.check("app:1", t(100)).unwrap(), Verdict::Current, "equal is not older");
        assert_eq!(w.check("app:1", t(200)).unwrap(), Verdict::Newer);
        match w.check("app:1", t(50)).unwrap() {
            Verdict::RolledBack(m) => assert_eq!(m.seal, "sha256:b"),
            v => panic!("{v:?}"),
        }
        assert_eq!(w.check("other", t(0)).unwrap(), Verdict::Newer, "per name");
        let mode = std::fs::metadata(w.dir()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let mode = std::fs::metadata(w.path_for("app:1")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn allow_lowers_and_forget_clears() {
        let d = tempfile::tempdir().unwrap();
        let w = Watermarks::new(d.path(), Scope::Name);
        w.accept("app", t(100), "sha256:new").unwrap();
        let before = w.allow("app", t(10), "sha256:old").unwrap().unwrap();
        assert_eq!(before.seal, "sha256:new");
        assert_eq!(w.check("app", t(10)).unwrap(), Verdict::Current);
        assert_eq!(w.get("app").unwrap().unwrap().by, "allow");
        assert!(w.forget("app").unwrap());
        assert!(!w.forget("app").unwrap());
        assert!(w.get("app").unwrap().is_none());
    }

    #[test]
    fn corrupt_foreign_and_unsafe_records_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let w = Watermarks::new(d.path(), Scope::Name);
        w.accept("app", t(100), "sha256:x").unwrap();
        let p = w.path_for("app");
        std::fs::write(&p, b"{\"version\":1,").unwrap();
        let e = w.check("app", t(0)).unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()) && e.contains("rollback forget"), "{e}");
        // A record copied over another name's file.
        w.forget("app").unwrap();
        w.accept("b", t(100), "sha256:x").unwrap();
        std::fs::copy(w.path_for("b"), w.path_for("app")).unwrap();
        assert!(w.check("app", t(0)).unwrap_err().to_string().contains("filed under"));
        assert_eq!(w.list().unwrap().iter().filter(|r| r.is_err()).count(), 1);
        std::fs::set_permissions(w.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = w.check("b", t(0)).unwrap_err().to_string();
        assert!(e.contains("writable by group or others") && e.contains("chmod 0700"), "{e}");
    }

    #[test]
    fn concurrent_accepts_keep_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_path_buf();
        let hs: Vec<_> = (0..8u64)
            .map(|i| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let w = Watermarks::new(&dir, Scope::Name);
                    for k in 0..20u64 {
                        w.accept("app", t((k * 8 + i) % 97), &format!("sha256:{i}-{k}")).unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let w = Watermarks::new(&dir, Scope::Name).get("app").unwrap().unwrap();
        assert_eq!(w.created_time().unwrap(), t(96));
        assert_eq!(std::fs::read_dir(dir.join("accepted")).unwrap().count(), 2, "the record and the lock only");
    }
}
