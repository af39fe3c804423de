//! Files that are never half-written: every write goes to a temporary file in the same
//! directory, is fsynced, renamed into place, and the directory is fsynced. Reads are bounded.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path} has no parent directory")]
    NoParent { path: PathBuf },
    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{} already exists", path.display())]
    Exists { path: PathBuf },
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} is larger than {max} bytes", path.display())]
    TooLarge { path: PathBuf, max: u64 },
}

/// Replaces `path` with `data` atomically; the new file has `mode`.
pub fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), WriteError> {
    write_inner(path, data, mode, false)
}

/// Like [`write`], but fails with [`WriteError::Exists`] instead of replacing a file.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), WriteError> {
    write_inner(path, data, mode, true)
}

fn write_inner(path: &Path, data: &[u8], mode: u32, no_replace: bool) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(d) if d.as_os_str().is_empty() => Path::new("."),
        Some(d) => d,
        None => return Err(WriteError::NoParent { path: path.into() }),
    };
    let name = path.file_name().ok_or_else(|| WriteError::NoParent { path: path.into() })?;
    fn io<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(std::io::Error) -> WriteError + 'a {
        move |source| WriteError::Io { op, path: p.to_path_buf(), source }
    }
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}.{}", std::process::id(), unique()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        // The umask may have narrowed the mode; set it exactly.
        f.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io("chmod", &tmp))?;
        f.write_all(data).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        drop(f);
        if no_replace {
            // link(2) fails with EEXIST instead of replacing, and is atomic.
            match std::fs::hard_link(&tmp, path) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(WriteError::Exists { path: path.into() })
                }
                r => r.map_err(io("link", path))?,
            }
            let _ = std::fs::remove_file(&tmp);
        } else {
            std::fs::rename(&tmp, path).map_err(io("rename into", path))?;
        }
        File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync directory", dir))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    } else {
        clean_stale_temps(dir, name);
    }
    result
}

/// Removes the temp files a writer of the same name left when it was killed between create and
/// rename (`.NAME.tmp.PID.N`): those of a process that no longer exists, or older than an hour
/// (a pid reused since, or another pid namespace). Readers never look at temp files, so this
/// only keeps them from piling up; it is best effort.
fn clean_stale_temps(dir: &Path, name: &std::ffi::OsStr) {
    use std::os::unix::ffi::OsStrExt;
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(name.as_bytes());
    prefix.extend_from_slice(b".tmp.");
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let me = std::process::id();
    for e in rd.flatten() {
        let file = e.file_name();
        let Some(rest) = file.as_bytes().strip_prefix(prefix.as_slice()) else { continue };
        let Some(pid) = std::str::from_utf8(rest).ok().and_then(|r| r.split('.').next()?.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue; // another thread of ours may be writing it right now
        }
        let dead = pid == 0
            || i32::try_from(pid).is_err()
            || matches!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None),
                Err(nix::errno::Errno::ESRCH)
            );
        let old = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600));
        if dead || old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    t ^ (N.fetch_add(1, Ordering::Relaxed) << 48)
}

/// Removes `path` and fsyncs its directory.
pub fn remove(path: &Path) -> Result<(), WriteError> {
    std::fs::remove_file(path).map_err(|source| WriteError::Io { op: "remove", path: path.into(), source })?;
    if let Some(dir) = path.parent() {
        if let Some(name) = path.file_name() {
            clean_stale_temps(dir, name);
        }
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// Takes the exclusive `flock` of `path` (created 0600 if missing, never through a symlink),
/// held until the returned guard drops: the writers' lock of a store whose readers need none.
pub fn lock_exclusive(path: &Path) -> std::io::Result<nix::fcntl::Flock<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, errno)| errno.into())
}

/// Reads at most `max` bytes of `path`; a larger file is an error, not a truncation.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let f = File::open(path).map_err(|source| ReadError::Io { path: path.into(), source })?;
    read_file_bounded(f, path, max)
}

/// Reads at most `max` bytes from an open file.
pub fn read_file_bounded(f: File, path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let meta = f.metadata().map_err(|source| ReadError::Io { path: path.into(), source })?;
    if meta.is_dir() {
        return Err(ReadError::Io { path: path.into(), source: std::io::Error::from_raw_os_error(libc::EISDIR) });
    }
    if meta.len() > max {
        return Err(ReadError::TooLarge { path: path.into(), max });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut buf).map_err(|source| ReadError::Io { path: path.into(), source })?;
    if buf.len() as u64 > max {
        return Err(ReadError::TooLarge { path: path.into(), max });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_atomically_and_leaves_no_temp_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.json");
        write(&p, b"one", 0o600).unwrap();
        write(&p, b"two", 0o640).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
        assert!(matches!(write_new(&p, b"three", 0o600), Err(WriteError::Exists { .. })));
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn temp_files_of_dead_writers_are_removed_on_the_next_write() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.json");
        let dead = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().to_string();
        let stale = t.path().join(format!(".a.json.tmp.{dead}.7"));
        let live = t.path().join(".a.json.tmp.1.7"); // pid 1 is alive
        let other = t.path().join(format!(".b.json.tmp.{dead}.7"));
        for f in [&stale, &live, &other] {
            std::fs::write(f, b"half").unwrap();
        }
        write(&p, b"one", 0o600).unwrap();
        assert!(!stale.exists(), "a dead writer's temp file is removed");
        assert!(live.exists(), "a live writer's temp file is left alone");
        assert!(other.exists(), "another name's temp files are not this write's business");
    }

    #[test]
    fn bounded_read_refuses_large_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("big");
        std::fs::write(&p, vec![0u8; 100]).unwrap();
        assert!(matches!(read_bounded(&p, 99), Err(ReadError::TooLarge { .. })));
        assert_eq!(read_bounded(&p, 100).unwrap().len(), 100);
    }
}
