//! Hashing one regular file of a walk, on a worker thread: opened beneath its directory
//! without following links, fstat-checked against the walk's lstat, read in chunks under a
//! read lease (for the cache), with its capability xattr.

use super::walk::WalkError;
use crate::sys;
use sha2::{Digest as _, Sha256};
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

/// The name of the only extended attribute that counts (docs/digest.md).
pub(crate) const CAP_XATTR: &str = "security.capability";
/// Longest capability xattr value accepted.
pub(crate) const CAP_MAX: usize = 4096;
pub(crate) const READ_CHUNK: usize = 128 * 1024;

pub(crate) struct Job {
    pub(crate) index: usize,
    pub(crate) fd: OwnedFd,
    pub(crate) size: u64,
    pub(crate) st: libc::stat,
    pub(crate) path: Vec<u8>,
    /// False: the size already differs from the seal; only the capability xattr is read.
    pub(crate) content: bool,
}

pub(crate) struct Hashed {
    pub(crate) sha256: [u8; 32],
    pub(crate) cap: Option<Vec<u8>>,
    /// Nobody had the file open for writing (or mapped writable) while it was hashed: a read
    /// lease was held throughout. Only such hashes go into the cache, because writes through
    /// an existing shared mapping to an already dirty page do not move ctime.
    pub(crate) cacheable: bool,
    /// The content was read (false: its size differs from the seal, `sha256` is all zero).
    pub(crate) read: bool,
}

pub(crate) fn hash_worker(
    root: &Path,
    rx: &Mutex<mpsc::Receiver<Vec<Job>>>,
    tx: &mpsc::Sender<Vec<(usize, Result<Hashed, WalkError>)>>,
    cancel: &AtomicBool,
    deadline: Option<Instant>,
    leases: bool,
) {
    // On the heap, once per worker: worker stacks may be as small as RUST_MIN_STACK says.
    let mut scratch = Scratch { read: vec![0u8; READ_CHUNK], cap: vec![0u8; CAP_MAX] };
    let cap_name = CString::new(CAP_XATTR).expect("static name");
    loop {
        let batch = {
            let Ok(guard) = rx.lock() else { return };
            match guard.recv() {
                Ok(batch) => batch,
                Err(_) => return,
            }
        };
        let mut results = Vec::with_capacity(batch.len());
        for job in batch {
            if cancel.load(Ordering::Relaxed) {
                break; // drain the queue so the walker never blocks on a full channel
            }
            let index = job.index;
            results.push((index, hash_file(root, job, &mut scratch, &cap_name, cancel, deadline, leases)));
        }
        if tx.send(results).is_err() {
            return;
        }
    }
}

/// A hashing worker's buffers, reused from file to file.
pub(crate) struct Scratch {
    pub(crate) read: Vec<u8>,
    pub(crate) cap: Vec<u8>,
}

pub(crate) fn hash_file(
    root: &Path,
    job: Job,
    scratch: &mut Scratch,
    cap_name: &CString,
    cancel: &AtomicBool,
    deadline: Option<Instant>,
    leases: bool,
) -> Result<Hashed, WalkError> {
    let show = || crate::manifest::display_path(&job.path);
    let io = |op, source| WalkError::Io { op, path: show(), root: root.into(), source };
    let raced = |what| WalkError::Raced { path: show(), root: root.into(), what };
    let fd = job.fd.as_fd();
    // A read lease is refused while anyone has the file open for writing or mapped writable,
    // and broken when someone opens it for writing while we hold it.
    // Only when building a cache (which also ignores SIGIO, the lease-break signal).
    let leased = leases && sys::set_read_lease(fd);
    let cap = sys::fgetxattr_into(fd, cap_name, &mut scratch.cap)
        .map_err(|e| io("read capability xattr of", e))?
        .map(|n| scratch.cap[..n].to_vec());
    if !job.content {
        if leased {
            sys::release_lease(fd);
        }
        return Ok(Hashed { sha256: [0; 32], cap, cacheable: false, read: false });
    }
    let buf = &mut scratch.read;
    let mut hasher = Sha256::new();
    let mut left = job.size;
    let mut chunks = 0u32;
    // Each read asks for one byte more than is left, so the read that brings the last bytes
    // also shows whether the file ends there (a short read of a regular file is its end):
    // no separate read at the end just to see that the file did not grow.
    loop {
        let want = usize::try_from(left.saturating_add(1)).unwrap_or(usize::MAX).min(buf.len());
        let n = sys::read(fd, &mut buf[..want]).map_err(|e| io("read", e))?;
        if n as u64 > left {
            return Err(raced("file grew"));
        }
        if n == 0 {
            if left > 0 {
                return Err(raced("file shrank"));
            }
            break;
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
        if left == 0 && n < want {
            break;
        }
        chunks = chunks.wrapping_add(1);
        if chunks % 16 == 0 {
            if cancel.load(Ordering::Relaxed) {
                return Err(WalkError::Cancelled { root: root.into() });
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(WalkError::Deadline { root: root.into() });
            }
        }
    }
    let after = sys::fstat(fd).map_err(|e| io("stat", e))?;
    let st = &job.st;
    if after.st_size != st.st_size
        || after.st_mtime != st.st_mtime
        || after.st_mtime_nsec != st.st_mtime_nsec
        || after.st_ctime != st.st_ctime
        || after.st_ctime_nsec != st.st_ctime_nsec
    {
        return Err(raced("file was modified"));
    }
    let cacheable = leased && sys::still_read_leased(fd);
    if leased {
        sys::release_lease(fd);
    }
    Ok(Hashed { sha256: hasher.finalize().into(), cap, cacheable, read: true })
}
