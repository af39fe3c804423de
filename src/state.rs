//! State records: what the hook verified, per running container, for the drift monitor.
//! `<state_dir>/containers/<id>.json`, written atomically on a pass, removed at poststop.

use crate::atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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

pub fn path_for(state_dir: &Path, id: &str) -> Result<PathBuf, StateError> {
    check_id(id)?;
    Ok(dir(state_dir).join(format!("{id}.json")))
}

pub fn write(state_dir: &Path, rec: &Record) -> Result<PathBuf, StateError> {
    let path = path_for(state_dir, &rec.id)?;
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

/// Removes a record; a missing one is not an error (poststop may run after a failed start).
pub fn remove(state_dir: &Path, id: &str) -> Result<bool, StateError> {
    let path = path_for(state_dir, id)?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::Io { path, source }),
    }
}

/// Start time of a process in clock ticks since boot, from /proc/PID/stat.
pub fn pid_start_time(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &text[text.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn write_then_remove() {
        let t = tempfile::tempdir().unwrap();
        let rec = Record {
            version: 1,
            id: "c1".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            image: None,
            seal_digest: None,
            seal_path: None,
            pid: Some(std::process::id() as i32),
            pid_start_time: pid_start_time(std::process::id() as i32),
            verdict: "verified".into(),
            mode: "enforce".into(),
            time: "now".into(),
        };
        assert!(rec.pid_start_time.is_some());
        let p = write(t.path(), &rec).unwrap();
        let back: Record = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back, rec);
        assert!(remove(t.path(), "c1").unwrap());
        assert!(!remove(t.path(), "c1").unwrap());
        assert!(remove(t.path(), "../x").is_err());
    }
}
