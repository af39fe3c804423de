//! Which mounts of a container carry a fanotify mark, and marking them.
//!
//! Mount marks (`FAN_MARK_MOUNT`), not filesystem marks: a runc rootfs is a directory on the
//! host's own filesystem, so a `FAN_MARK_FILESYSTEM` mark there would send every exec on the host
//! to the monitor. A mount mark sees only what is opened through that mount, and every mount of a
//! container (its root, the bind runc makes of the rootfs; its tmpfs; its volumes) is a mount of
//! its own mount namespace, reached here through `/proc/PID/root`. fapolicyd marks mounts too.
//!
//! Steps, per mount of `/proc/PID/mountinfo` that can hold an executable:
//! 1. open its mount point with `O_PATH` beneath `/proc/PID/root`, resolved as the container
//!    resolves it (`RESOLVE_IN_ROOT`: its absolute symlinks stay inside its root);
//! 2. check that what was opened is that mount (statx's mount id), not a directory the container
//!    put in the way or a mount stacked over it;
//! 3. mark it through `/proc/self/fd/N` (fanotify_mark needs a path or a non-`O_PATH` fd).

use crate::node::mountinfo::{self, Mount};
use nix::sys::fanotify::{Fanotify, MarkFlags, MaskFlags};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error("cannot read the mounts of pid {pid}: {error}")]
    Mounts { pid: i32, error: mountinfo::MountinfoError },
    #[error("cannot open the root of pid {pid}: {error}")]
    Root { pid: i32, error: std::io::Error },
    #[error("cannot mark mount {} of pid {pid}: {error}", mount_point.display())]
    Mark { pid: i32, mount_point: PathBuf, error: nix::Error },
}

/// For bench/prevent.sh only: `ROOTSEAL_BENCH_OPEN_PERM=1` adds `FAN_OPEN_PERM`, so that every
/// open in a protected container waits for the monitor too (which allows it after the same
/// lookups an exec gets): what judging libraries would cost (docs/performance.md).
pub const BENCH_OPEN_PERM: &str = "ROOTSEAL_BENCH_OPEN_PERM";

fn mask() -> MaskFlags {
    if std::env::var_os(BENCH_OPEN_PERM).is_some_and(|v| v == "1") {
        MaskFlags::FAN_OPEN_EXEC_PERM | MaskFlags::FAN_OPEN_PERM
    } else {
        MaskFlags::FAN_OPEN_EXEC_PERM
    }
}

/// Filesystems nothing is executed from (their files are the kernel's): not marked.
const PSEUDO: [&str; 16] = [
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "securityfs",
    "debugfs",
    "tracefs",
    "bpf",
    "binfmt_misc",
    "fusectl",
    "pstore",
    "configfs",
    "selinuxfs",
    "nsfs",
];

/// Whether a mount of this type gets a mark.
pub fn markable(fstype: &str) -> bool {
    !PSEUDO.contains(&fstype)
}

/// A mount that was marked: its id (as statx and mountinfo give it) and where the container
/// sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marked {
    pub mnt_id: u64,
    pub mount_point: PathBuf,
}

/// What one pass over a container's mounts did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Newly marked mounts.
    pub marked: Vec<Marked>,
    /// Mounts that could not be marked, and why (the status shows them).
    pub skipped: Vec<String>,
    /// Every mount id of the namespace now (a mount id of a mount gone since may be reused by
    /// another container's mount).
    pub present: std::collections::BTreeSet<u64>,
}

/// Marks every markable mount of `pid`'s mount namespace not in `done` (mount ids).
pub fn mark_mounts(fan: &Fanotify, pid: i32, done: &dyn Fn(u64) -> bool) -> Result<Pass, MarkError> {
    let mounts = mountinfo::read_of(pid).map_err(|error| MarkError::Mounts { pid, error })?;
    let root = std::fs::File::open(format!("/proc/{pid}/root")).map_err(|error| MarkError::Root { pid, error })?;
    let mut pass = Pass { present: mounts.iter().map(|m| m.id).collect(), ..Pass::default() };
    for m in mounts.iter().filter(|m| markable(&m.fstype) && !done(m.id)) {
        match mark_one(fan, pid, &root, m) {
            Ok(true) => pass.marked.push(Marked { mnt_id: m.id, mount_point: m.mount_point.clone() }),
            Ok(false) => pass.skipped.push(format!("{} (hidden or replaced)", m.mount_point.display())),
            Err(e) => pass.skipped.push(e.to_string()),
        }
    }
    Ok(pass)
}

/// Steps 1 to 3 for one mount; Ok(false) when the path does not lead to that mount.
fn mark_one(fan: &Fanotify, pid: i32, root: &std::fs::File, m: &Mount) -> Result<bool, MarkError> {
    let rel = m.mount_point.strip_prefix("/").unwrap_or(&m.mount_point);
    let rel = if rel.as_os_str().is_empty() { PathBuf::from(".") } else { rel.to_path_buf() };
    let Ok(c) = CString::new(rel.as_os_str().as_bytes()) else { return Ok(false) };
    // 1.
    let fd = match crate::sys::openat2(
        root.as_fd(),
        &c,
        libc::O_PATH | libc::O_NOFOLLOW,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        // Gone meanwhile (the container unmounted it): nothing to mark.
        Err(_) => return Ok(false),
    };
    // 2.
    match crate::sys::statx_mount(fd.as_fd()) {
        Ok((_, _, mnt)) if mnt == m.id => {}
        _ => return Ok(false),
    }
    // 3.
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    fan.mark(MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_MOUNT, mask(), None, Some(path.as_str()))
        .map_err(|error| MarkError::Mark { pid, mount_point: m.mount_point.clone(), error })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_filesystems_are_not_marked_and_the_rest_are() {
        for t in ["proc", "sysfs", "cgroup2", "devpts", "mqueue"] {
            assert!(!markable(t), "{t}");
        }
        // Where a dropped binary can live: the root (overlay or a bind of a host directory),
        // tmpfs (/tmp, /dev, /dev/shm), volumes on any disk filesystem.
        for t in ["overlay", "tmpfs", "ext4", "xfs", "btrfs", "erofs", "fuse.sshfs", "nfs4"] {
            assert!(markable(t), "{t}");
        }
    }
}
