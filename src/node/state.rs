//! State records: what the hook verified, per running container, for the drift monitor.
//!
//! `<state_dir>/containers/<id>.<bundle-hash>.json`, written atomically on a pass, removed at
//! poststop. Container ids are unique only per runc root (or containerd namespace), so the
//! id alone does not name a container: two runtimes may run an `app` each. The file name
//! adds a hash of the bundle path, and poststop removes a record only when it is its own
//! (same id and bundle, and the recorded process is no longer running): a container blocked
//! at prestart, whose runtime runs poststop anyway, can never remove the record of a running
//! container that has the same id (docs/events.md, "State records").
//!
//! Version 1 records (`<id>.json`, written before this scheme) are still read by the monitor
//! and removed by the poststop of their own container under the same rules.

use crate::atomic;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The record format this hook writes.
pub const VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "container id {0:?} is not safe as a file name (allowed: 1-128 of A-Z a-z 0-9 _ . -, not starting with '.')"
    )]
    BadId(String),
    #[error("state directory {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Write(#[from] atomic::WriteError),
    #[error(
        "state record {} belongs to another running container with id {id:?} and the same bundle (pid {pid}); two containers cannot share a bundle, stop the other one or use another bundle directory",
        path.display()
    )]
    Live { path: PathBuf, id: String, pid: i32 },
}

/// The rootfs directory the hook verified, as the kernel names it: the monitor checks that
/// the root the container runs in is this directory (a renamed or replaced rootfs is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootIdentity {
    pub dev: u64,
    pub ino: u64,
    /// statx STATX_MNT_ID of the host path at prestart (0 when unknown). The container's root
    /// is runc's bind mount of that directory: same (dev, ino), another mount id.
    pub mnt_id: u64,
}

/// One verified container (docs/events.md, "State records").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub image: Option<String>,
    pub seal_digest: Option<String>,
    /// Where the seal (and so the manifest) is: the seal store file.
    pub seal_path: Option<PathBuf>,
    pub pid: Option<i32>,
    /// The process's start time in clock ticks since boot (/proc/PID/stat field 22), so a
    /// reused pid is never mistaken for the container.
    pub pid_start_time: Option<u64>,
    /// "verified", or "audit" when violations were allowed in audit mode.
    pub verdict: String,
    pub mode: String,
    pub time: String,
    /// The config.json mount destinations the hook excluded, as they were at start: the
    /// monitor excludes exactly these (config.json may be edited later). None in version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_destinations: Option<Vec<PathBuf>>,
    /// The `io.container.manager` annotation at start (which runtime artifacts to allow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// The identity of the rootfs directory the hook walked. None in version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RootIdentity>,
    /// The Kubernetes pod, for a container of containerd's CRI (the monitor names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<crate::node::pod::PodInfo>,
}

/// Container ids come from the runtime but end up in file names and logs: only a safe charset.
pub fn check_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadId(crate::manifest::display_path(id.as_bytes())))
    }
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("containers")
}

/// The first 16 hex digits of SHA-256 over the bundle path's bytes.
fn bundle_hash(bundle: &Path) -> String {
    Sha256::digest(bundle.as_os_str().as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Where the record of container `id` with bundle `bundle` is.
pub fn path_for(state_dir: &Path, id: &str, bundle: &Path) -> Result<PathBuf, StateError> {
    check_id(id)?;
    Ok(dir(state_dir).join(format!("{id}.{}.json", bundle_hash(bundle))))
}

/// Where a version 1 record of `id` was (`<id>.json`).
fn legacy_path(state_dir: &Path, id: &str) -> Result<PathBuf, StateError> {
    check_id(id)?;
    Ok(dir(state_dir).join(format!("{id}.json")))
}

/// Is the recorded process still running (same pid, same start time, not a zombie)?
pub fn alive(rec: &Record) -> bool {
    match (rec.pid.filter(|p| *p > 0), rec.pid_start_time) {
        (Some(pid), Some(want)) => process_start(pid).is_some_and(|(start, zombie)| start == want && !zombie),
        _ => false,
    }
}

/// What to do with a record file found at a container's name (pure: facts in, decision out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This container's record (or junk at its name): remove or overwrite it.
    Ours,
    /// A running container's record: never remove or overwrite it.
    Live,
    /// Another container's record that happens to be at a name we look at: leave it.
    Other,
}

/// Decides about a record found at the name of container (`id`, `bundle`). `parsed` is None
/// when the file is not a readable record (a symlink, garbage): nothing of value to keep.
/// `alive`: the recorded process still runs (same pid and start time). `pid`: the pid the
/// runtime's state names (runc gives none at poststop: the container has stopped; a caller
/// that names the recorded process, while it runs, is that container).
pub fn claim(id: &str, bundle: &Path, parsed: Option<&Record>, alive: bool, pid: Option<i32>) -> Claim {
    match parsed {
        None => Claim::Ours,
        Some(r) if r.id != id || r.bundle != bundle => Claim::Other,
        Some(r) if alive && (pid.is_none() || pid != r.pid) => Claim::Live,
        Some(_) => Claim::Ours,
    }
}

/// Reads a record file without following a symlink. None: not a readable record.
pub fn read(path: &Path) -> Option<Record> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
    let bytes = atomic::read_file_bounded(f, path, 1 << 20).ok()?;
    crate::json::from_slice_strict(&bytes).ok()
}

fn claim_at(path: &Path, id: &str, bundle: &Path, pid: Option<i32>) -> Option<(Claim, Option<Record>)> {
    std::fs::symlink_metadata(path).ok()?;
    let rec = read(path);
    let live = rec.as_ref().is_some_and(alive);
    Some((claim(id, bundle, rec.as_ref(), live, pid), rec))
}

/// Err(Live) when `rec`'s file holds the record of another running container with the same id
/// and bundle (a second runc root running the same bundle): writing would make the monitor
/// lose that container. The record of the same process (prestart and createRuntime both
/// configured) may be rewritten.
pub fn check_free(state_dir: &Path, rec: &Record) -> Result<(), StateError> {
    let path = path_for(state_dir, &rec.id, &rec.bundle)?;
    if let Some((Claim::Live, Some(other))) = claim_at(&path, &rec.id, &rec.bundle, None) {
        if other.pid != rec.pid || other.pid_start_time != rec.pid_start_time {
            return Err(StateError::Live { path, id: other.id, pid: other.pid.unwrap_or(0) });
        }
    }
    Ok(())
}

/// Writes the record (never over another running container's: [`check_free`]).
pub fn write(state_dir: &Path, rec: &Record) -> Result<PathBuf, StateError> {
    check_free(state_dir, rec)?;
    let path = path_for(state_dir, &rec.id, &rec.bundle)?;
    use std::os::unix::fs::DirBuilderExt;
    let d = dir(state_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)
        .map_err(|source| StateError::Io { path: d.clone(), source })?;
    let mut bytes = serde_json::to_vec_pretty(rec).expect("record serialises");
    bytes.push(b'\n');
    atomic::write(&path, &bytes, 0o600)?;
    Ok(path)
}

/// Poststop: removes the record of container (`id`, `bundle`), and a version 1 record of it,
/// when it is its own (see [`claim`]); a missing one is not an error (poststop also runs after
/// a failed start). `pid`: the pid in the runtime's poststop state, if any. Returns how many
/// files were removed.
pub fn remove(state_dir: &Path, id: &str, bundle: &Path, pid: Option<i32>) -> Result<usize, StateError> {
    let mut removed = 0;
    for path in [path_for(state_dir, id, bundle)?, legacy_path(state_dir, id)?] {
        if !matches!(claim_at(&path, id, bundle, pid), Some((Claim::Ours, _))) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(StateError::Io { path, source }),
        }
    }
    Ok(removed)
}

/// (start time in clock ticks since boot, is a zombie) of a process, from /proc/PID/stat.
fn process_start(pid: i32) -> Option<(u64, bool)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, matches!(state, "Z" | "X")))
}

/// Start time of a process in clock ticks since boot, from /proc/PID/stat.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    process_start(pid).map(|(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, bundle: &str, pid: i32) -> Record {
        Record {
            version: VERSION,
            id: id.into(),
            bundle: bundle.into(),
            rootfs: format!("{bundle}/rootfs").into(),
            image: None,
            seal_digest: None,
            seal_path: None,
            pid: Some(pid),
            pid_start_time: pid_start_time(pid),
            verdict: "verified".into(),
            mode: "enforce".into(),
            time: "now".into(),
            mount_destinations: Some(vec!["/proc".into()]),
            manager: None,
            root: Some(RootIdentity { dev: 1, ino: 2, mnt_id: 3 }),
            pod: None,
        }
    }

    fn dead_pid() -> (i32, u64) {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id() as i32;
        let start = pid_start_time(pid).unwrap_or(1);
        c.wait().unwrap();
        (pid, start)
    }

    #[test]
    fn hostile_ids_are_refused() {
        for bad in ["../../etc", "a/b", "", ".hidden", "new\nline", "x\u{1b}[2J", &"a".repeat(129)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        check_id("3f2a9c_ok-1.2").unwrap();
        let e = check_id("new\nline").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn the_claim_decides_every_case() {
        let b = Path::new("/b");
        let r = record("c1", "/b", std::process::id() as i32);
        assert_eq!(claim("c1", b, None, false, None), Claim::Ours);
        assert_eq!(claim("c1", b, Some(&r), false, None), Claim::Ours);
        assert_eq!(claim("c1", b, Some(&r), true, None), Claim::Live);
        assert_eq!(claim("c1", b, Some(&r), true, Some(1)), Claim::Live, "another pid");
        assert_eq!(claim("c1", b, Some(&r), true, r.pid), Claim::Ours, "the runtime names the recorded process");
        assert_eq!(claim("c1", Path::new("/other"), Some(&r), false, None), Claim::Other);
        assert_eq!(claim("c2", b, Some(&r), false, None), Claim::Other);
    }

    #[test]
    fn write_then_remove_once_the_process_is_gone() {
        let t = tempfile::tempdir().unwrap();
        let mut rec = record("c1", "/b", std::process::id() as i32);
        assert!(rec.pid_start_time.is_some());
        let p = write(t.path(), &rec).unwrap();
        assert_eq!(p, path_for(t.path(), "c1", Path::new("/b")).unwrap());
        assert_eq!(read(&p).unwrap(), rec);
        // Its process (this test) runs: poststop keeps it.
        assert_eq!(remove(t.path(), "c1", Path::new("/b"), None).unwrap(), 0);
        assert!(p.exists());
        // A runtime that names the recorded process is that container.
        assert_eq!(remove(t.path(), "c1", Path::new("/b"), rec.pid).unwrap(), 1);
        let (pid, start) = dead_pid();
        rec.pid = Some(pid);
        rec.pid_start_time = Some(start);
        write(t.path(), &rec).unwrap();
        assert_eq!(remove(t.path(), "c1", Path::new("/other"), None).unwrap(), 0, "another bundle's poststop");
        assert_eq!(remove(t.path(), "c1", Path::new("/b"), None).unwrap(), 1);
        assert_eq!(remove(t.path(), "c1", Path::new("/b"), None).unwrap(), 0);
        assert!(remove(t.path(), "../x", Path::new("/b"), None).is_err());
    }

    #[test]
    fn same_id_other_bundle_is_another_file() {
        let t = tempfile::tempdir().unwrap();
        let a = write(t.path(), &record("app", "/run/a", std::process::id() as i32)).unwrap();
        let b = write(t.path(), &record("app", "/run/b", std::process::id() as i32)).unwrap();
        assert_ne!(a, b);
        assert!(a.exists() && b.exists());
    }

    #[test]
    fn a_live_record_of_another_process_is_not_overwritten() {
        let t = tempfile::tempdir().unwrap();
        let live = record("c1", "/b", std::process::id() as i32);
        write(t.path(), &live).unwrap();
        // The same process again (prestart and createRuntime both configured): fine.
        write(t.path(), &live).unwrap();
        let (pid, start) = dead_pid();
        let mut other = record("c1", "/b", pid);
        other.pid_start_time = Some(start);
        let e = write(t.path(), &other).unwrap_err();
        assert!(matches!(e, StateError::Live { .. }), "{e}");
        assert!(e.to_string().contains("another running container"), "{e}");
        assert_eq!(read(&path_for(t.path(), "c1", Path::new("/b")).unwrap()).unwrap(), live);
    }

    #[test]
    fn version_1_records_are_read_and_removed_by_their_own_poststop() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir(t.path())).unwrap();
        let (pid, start) = dead_pid();
        let v1 = format!(
            r#"{{"version":1,"id":"c1","bundle":"/b","rootfs":"/b/rootfs","image":null,"seal_digest":null,"seal_path":null,"pid":{pid},"pid_start_time":{start},"verdict":"verified","mode":"enforce","time":"t"}}"#
        );
        let p = legacy_path(t.path(), "c1").unwrap();
        std::fs::write(&p, v1).unwrap();
        let rec = read(&p).unwrap();
        assert_eq!((rec.version, rec.mount_destinations, rec.root), (1, None, None));
        assert_eq!(remove(t.path(), "c1", Path::new("/elsewhere"), None).unwrap(), 0);
        assert_eq!(remove(t.path(), "c1", Path::new("/b"), None).unwrap(), 1);
        assert!(!p.exists());
    }
}
