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
    }
    result
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
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
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
    fn bounded_read_refuses_large_files() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("big");
        std::fs::write(&p, vec![0u8; 100]).unwrap();
        assert!(matches!(read_bounded(&p, 99), Err(ReadError::TooLarge { .. })));
        assert_eq!(read_bounded(&p, 100).unwrap().len(), 100);
    }
}
