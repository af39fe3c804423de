//! `/proc/self/mountinfo`, read once per question and parsed in one place (proc(5)):
//!
//! `ID PARENT MAJ:MIN ROOT MOUNT_POINT MOUNT_OPTIONS [OPTIONAL_FIELDS...] - FSTYPE SOURCE SUPER_OPTIONS`
//!
//! Paths and options are octal-escaped by the kernel (`\040` for a space, also tab, newline and
//! backslash): every path here is unescaped, as bytes (a path need not be UTF-8).

use std::ffi::OsString;
use std::io::Read as _;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};

/// More than any real mount table (a node with thousands of containers has a few MiB).
pub const MAX_BYTES: u64 = 64 << 20;

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u64,
    /// The directory of the filesystem that is mounted (`/` unless a subdirectory is bound).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fstype: String,
    /// The per-superblock options, still escaped (split on `,` first, then [`unescape`]).
    pub super_options: String,
}

impl Mount {
    /// Each `key=value` (or bare `key`) of the superblock options.
    pub fn super_option_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.super_options.split(',').map(|o| o.split_once('=').unwrap_or((o, "")))
    }
}

/// /proc/self/mountinfo could not be read.
#[derive(Debug, thiserror::Error)]
#[error("/proc/self/mountinfo: {error}")]
pub struct MountinfoError {
    pub error: std::io::Error,
}

/// The mounts of this process's mount namespace.
pub fn read() -> Result<Vec<Mount>, MountinfoError> {
    read_from(Path::new("/proc/self/mountinfo"))
}

/// The mounts of another process's mount namespace (`/proc/PID/mountinfo`: mount points as
/// that process's root sees them).
pub fn read_of(pid: i32) -> Result<Vec<Mount>, MountinfoError> {
    read_from(&PathBuf::from(format!("/proc/{pid}/mountinfo")))
}

fn read_from(file: &Path) -> Result<Vec<Mount>, MountinfoError> {
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_BYTES).read_to_string(&mut text))
        .map_err(|error| MountinfoError { error })?;
    Ok(text.lines().filter_map(parse_line).collect())
}

/// One line, or None when it is not a mountinfo line.
pub fn parse_line(line: &str) -> Option<Mount> {
    let (pre, post) = line.split_once(" - ")?;
    let pre: Vec<&str> = pre.split(' ').collect();
    let mut post = post.split(' ');
    let fstype = post.next()?.to_string();
    let _source = post.next()?;
    let super_options = post.next().unwrap_or("").to_string();
    Some(Mount {
        id: pre.first()?.parse().ok()?,
        root: path(pre.get(3)?),
        mount_point: path(pre.get(4)?),
        fstype,
        super_options,
    })
}

/// An escaped path field as a path.
pub fn path(field: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

/// Undoes the kernel's octal escapes (`\040` → space).
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..=i + 3].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Mount points strictly below `dir`.
pub fn submounts_below(dir: &Path) -> Vec<PathBuf> {
    read().unwrap_or_default().into_iter().map(|m| m.mount_point).filter(|p| p != dir && p.starts_with(dir)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_escapes_and_optional_fields() {
        let m = parse_line("47 27 0:40 / /var/lib/my\\040dir/m rw,relatime shared:5 master:1 - overlay overlay rw,lowerdir=/l\\0402:/l1,upperdir=/u").unwrap();
        assert_eq!(m.id, 47);
        assert_eq!(m.root, PathBuf::from("/"));
        assert_eq!(m.mount_point, PathBuf::from("/var/lib/my dir/m"));
        assert_eq!(m.fstype, "overlay");
        let pairs: Vec<(&str, &str)> = m.super_option_pairs().collect();
        assert_eq!(pairs[1], ("lowerdir", "/l\\0402:/l1"));
        assert_eq!(unescape("/l\\0402"), b"/l 2");
        assert_eq!(unescape("a\\134b\\011"), b"a\\b\t");
        assert_eq!(unescape("trailing\\04"), b"trailing\\04", "a cut escape stays as it is");
        assert_eq!(path("/bad\\377name").as_os_str().len(), 9, "not UTF-8, kept as bytes");
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("x 1 0:1 / /m rw - tmpfs tmpfs rw").is_none(), "the id is a number");
    }

    #[test]
    fn this_process_sees_its_root_mount() {
        let mounts = read().unwrap();
        assert!(mounts.iter().any(|m| m.mount_point == Path::new("/")), "{mounts:?}");
    }
}
