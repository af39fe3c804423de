//! What a running container actually sees as its root, for the drift monitor: not what its
//! rootfs path on the host names today (someone may have renamed it away and put a clean copy
//! there), but the root of its init's mount namespace, checked against the directory the hook
//! verified (the state record's `root`, docs/monitor.md "What a scan compares").

use crate::state::Record;
use crate::{sys, walk};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// How long a newly watched container's process may still have the host's `/` as its root
/// (the runtime between prestart and pivot_root, milliseconds in practice) before that is
/// reported as a root that is not the verified one.
pub const NOT_ENTERED_GRACE: Duration = Duration::from_secs(10);

/// Why what a container sees cannot be opened (a scan failure).
#[derive(Debug, thiserror::Error)]
pub enum ContainerRootError {
    #[error("the container's process could not be identified")]
    NoPid,
    #[error("cannot open the container's root /proc/{pid}/root: {error}")]
    Open { pid: i32, error: std::io::Error },
    #[error("the container's process {pid} exited")]
    Exited { pid: i32 },
    #[error("cannot stat /proc/{pid}/root")]
    Stat { pid: i32 },
}

/// A directory as the kernel names it: (st_dev, st_ino).
pub type Ident = (u64, u64);

/// The facts about one container's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// `/proc/PID/root` of its init.
    pub seen: Ident,
    /// What the hook walked (state record `root`); None in a version 1 record.
    pub recorded: Option<Ident>,
    /// The rootfs path on the host now (None: cannot be opened).
    pub host_path: Option<Ident>,
    /// This process's `/`.
    pub host_root: Option<Ident>,
    /// The container was first watched less than [`NOT_ENTERED_GRACE`] ago and not judged yet.
    pub just_watched: bool,
}

/// What the facts mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// The process has not entered its root yet: nothing to judge, look again shortly.
    NotEntered,
    /// It runs in the verified directory, and the host path names it: walk either.
    Same,
    /// It runs in the verified directory, but the host path names another one now (renamed or
    /// replaced on the host): report, and walk the container's root only.
    HostPathMoved,
    /// It does not run in the verified directory (replaced, or it changed its root): report,
    /// and walk nothing of that root (it may be anything, the host's `/` included).
    Replaced,
}

/// Decides (pure). A version 1 record has no identity: the host path as it is now is the
/// reference.
pub fn judge(f: &Facts) -> Judgement {
    if f.just_watched && f.host_root == Some(f.seen) {
        return Judgement::NotEntered;
    }
    let want = f.recorded.or(f.host_path);
    if want != Some(f.seen) {
        Judgement::Replaced
    } else if f.host_path != want {
        Judgement::HostPathMoved
    } else {
        Judgement::Same
    }
}

/// The root a scan walks, and what it says about the rootfs path on the host.
pub struct Seen {
    /// The container's root directory as its init sees it (`/proc/PID/root`), when it is the
    /// directory the hook verified.
    pub fd: Option<OwnedFd>,
    /// The host's rootfs path, opened, when it is still the directory the container runs in
    /// (for the verification cache and the layer record, which are keyed by it).
    pub host: Option<OwnedFd>,
    /// Why the container's root is not the directory the hook verified, if it is not.
    pub replaced: Option<String>,
    /// [`Judgement::NotEntered`]: not a finding, the scan is retried shortly without an event.
    pub not_entered: bool,
}

/// Opens what the container actually sees.
///
/// 1. Open `/proc/PID/root/.` of the recorded init: the root of its mount namespace (runc's
///    bind mount of the rootfs, with proc, sys, dev and the bind mounts on top; the walk
///    prunes the recorded mount destinations). A rootfs renamed away on the host and a clean
///    copy put at its path changes nothing here: the container keeps running in the original.
/// 2. The pidfd still says the process runs: the pid opened in step 1 was not reused since
///    the monitor checked its start time (a pidfd does not stop reuse after an exit).
/// 3. Compare (st_dev, st_ino) of that root with the identity the hook recorded of the
///    directory it walked (the bind mount keeps both; the mount id differs, so it is not
///    compared), and the host path's with both ([`judge`]).
pub fn open(rec: &Record, pidfd: &OwnedFd, just_watched: bool) -> Result<Seen, ContainerRootError> {
    let Some(pid) = rec.pid.filter(|p| *p > 0) else {
        return Err(ContainerRootError::NoPid);
    };
    let path = std::ffi::CString::new(format!("/proc/{pid}/root/.")).expect("no NUL");
    let fd = sys::openat2(sys::cwd(), &path, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|error| ContainerRootError::Open { pid, error })?;
    if sys::pidfd_exited(pidfd.as_fd()) {
        return Err(ContainerRootError::Exited { pid });
    }
    let ident = |fd: &OwnedFd| sys::statx_mount(fd.as_fd()).ok().map(|(dev, ino, _)| (dev, ino));
    let seen = ident(&fd).ok_or(ContainerRootError::Stat { pid })?;
    let host = walk::open_root(&rec.rootfs).ok();
    let facts = Facts {
        seen,
        recorded: rec.root.map(|r| (r.dev, r.ino)),
        host_path: host.as_ref().and_then(ident),
        host_root: walk::open_root(Path::new("/")).ok().as_ref().and_then(ident),
        just_watched,
    };
    Ok(match judge(&facts) {
        Judgement::NotEntered => Seen { fd: None, host: None, replaced: None, not_entered: true },
        Judgement::Same => Seen { fd: Some(fd), host, replaced: None, not_entered: false },
        Judgement::HostPathMoved => Seen {
            fd: Some(fd),
            host: None,
            replaced: Some(format!(
                "rootfs path {} no longer names the directory the container runs in (renamed or replaced on the host); the container's own root was scanned",
                rec.rootfs.display()
            )),
            not_entered: false,
        },
        Judgement::Replaced => Seen {
            fd: None,
            host: None,
            replaced: Some(format!(
                "the container's root (/proc/{pid}/root, device {} inode {}) is not the directory verified at start; it was replaced or the process changed its root",
                seen.0, seen.1
            )),
            not_entered: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome() {
        let (a, b, root) = ((1, 10), (1, 11), (1, 2));
        let f = |seen, recorded, host_path, just_watched| Facts {
            seen,
            recorded,
            host_path,
            host_root: Some(root),
            just_watched,
        };
        assert_eq!(judge(&f(a, Some(a), Some(a), false)), Judgement::Same);
        assert_eq!(judge(&f(a, Some(a), Some(b), false)), Judgement::HostPathMoved, "renamed away, copy put back");
        assert_eq!(judge(&f(a, Some(a), None, false)), Judgement::HostPathMoved, "path gone");
        assert_eq!(judge(&f(b, Some(a), Some(a), false)), Judgement::Replaced);
        assert_eq!(judge(&f(b, Some(a), Some(b), false)), Judgement::Replaced);
        assert_eq!(judge(&f(root, Some(a), Some(a), true)), Judgement::NotEntered, "before pivot_root");
        assert_eq!(judge(&f(root, Some(a), Some(a), false)), Judgement::Replaced, "past the grace");
        // Version 1 records: the host path is the reference.
        assert_eq!(judge(&f(a, None, Some(a), false)), Judgement::Same);
        assert_eq!(judge(&f(a, None, Some(b), false)), Judgement::Replaced);
        assert_eq!(judge(&f(a, None, None, false)), Judgement::Replaced);
    }
}
