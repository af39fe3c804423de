//! The edge with the runtime: the OCI state on stdin and the bundle's config.json, read with
//! bounds and parsed once into `oci-spec` types.

use crate::json;
use oci_spec::runtime::{Spec, State};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The OCI state is a few hundred bytes plus annotations; more than this is not a state.
pub const MAX_STATE_BYTES: usize = 1 << 20;
/// config.json may carry large annotations, but not this much.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("no OCI state on stdin (empty input); the hook must be run by an OCI runtime")]
    EmptyState,
    #[error("OCI state on stdin is larger than {MAX_STATE_BYTES} bytes")]
    StateTooLarge,
    #[error("OCI state on stdin did not end within {0:?} (stdin held open)")]
    StateTimeout(Duration),
    #[error("cannot read OCI state from stdin: {0}")]
    StateRead(io::Error),
    #[error("OCI state on stdin is not valid: {0}")]
    StateParse(String),
    #[error("OCI state has {what}")]
    StateField { what: String },
    #[error("bundle config {}: {what}", path.display())]
    Config { path: PathBuf, what: String },
}

/// Reads stdin to EOF, at most [`MAX_STATE_BYTES`], giving up after `timeout`.
pub fn read_state_from(fd: BorrowedFd<'_>, timeout: Duration) -> Result<Vec<u8>, OciError> {
    let end = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(OciError::StateTimeout(timeout));
        }
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let rc = match crate::sys::poll(std::slice::from_mut(&mut pfd), left) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(OciError::StateRead(e)),
        };
        if rc == 0 {
            return Err(OciError::StateTimeout(timeout));
        }
        let n = crate::sys::read(fd, &mut buf).map_err(OciError::StateRead)?;
        if n == 0 {
            break;
        }
        if out.len() + n > MAX_STATE_BYTES {
            return Err(OciError::StateTooLarge);
        }
        out.extend_from_slice(&buf[..n]);
    }
    if out.iter().all(u8::is_ascii_whitespace) {
        return Err(OciError::EmptyState);
    }
    Ok(out)
}

/// Parses the state strictly (no duplicate keys) and checks the fields the hook relies on.
pub fn parse_state(bytes: &[u8]) -> Result<State, OciError> {
    let state: State = json::from_slice_strict(bytes).map_err(|e| OciError::StateParse(e.to_string()))?;
    if state.id().is_empty() {
        return Err(OciError::StateField { what: "no container id".into() });
    }
    if !state.bundle().is_absolute() {
        return Err(OciError::StateField { what: format!("a relative or empty bundle path {:?}", state.bundle()) });
    }
    Ok(state)
}

/// A bundle: its parsed config.json and where its root filesystem is on the host.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    /// `root.path` resolved against the bundle directory (podman gives an absolute path).
    pub root: PathBuf,
    pub annotations: HashMap<String, String>,
}

impl Bundle {
    /// Loads `dir/config.json` (not through a symlink, bounded, strict JSON).
    pub fn load(dir: &Path) -> Result<Bundle, OciError> {
        let path = dir.join("config.json");
        let err = |what: String| OciError::Config { path: path.clone(), what };
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| {
                err(if e.raw_os_error() == Some(libc::ELOOP) { "is a symlink".into() } else { e.to_string() })
            })?;
        let bytes = crate::atomic::read_file_bounded(f, &path, MAX_CONFIG_BYTES).map_err(|e| err(e.to_string()))?;
        Bundle::from_config_bytes(dir, &bytes)
    }

    /// Parses the bytes of `dir/config.json` (strict JSON, a non-empty `root.path`) without
    /// reading them: the part of [`Bundle::load`] that sees untrusted content, and the entry
    /// point of the `bundle_config` fuzz target.
    pub fn from_config_bytes(dir: &Path, bytes: &[u8]) -> Result<Bundle, OciError> {
        let path = dir.join("config.json");
        let err = |what: String| OciError::Config { path: path.clone(), what };
        let spec: Spec = json::from_slice_strict(bytes).map_err(|e| err(format!("not a valid OCI config: {e}")))?;
        let root = spec.root().as_ref().ok_or_else(|| err("has no root".into()))?;
        let rp = root.path();
        if rp.as_os_str().is_empty() {
            return Err(err("root.path is empty".into()));
        }
        let root = if rp.is_absolute() { rp.clone() } else { dir.join(rp) };
        let annotations = spec.annotations().clone().unwrap_or_default();
        Ok(Bundle { dir: dir.into(), spec, root, annotations })
    }

    pub fn mount_destinations(&self) -> Vec<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        self.spec
            .mounts()
            .as_ref()
            .map(|ms| ms.iter().map(|m| m.destination().as_os_str().as_bytes().to_vec()).collect())
            .unwrap_or_default()
    }

    pub fn root_readonly(&self) -> bool {
        self.spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_from_runc_and_crun_parses() {
        let runc = br#"{"ociVersion":"1.0.2-dev","id":"abc","status":"creating","pid":42,"bundle":"/run/b"}"#;
        let s = parse_state(runc).unwrap();
        assert_eq!(s.id(), "abc");
        let crun = br#"{"ociVersion":"1.0","id":"abc","pid":1,"root":"rootfs","bundle":"/b","status":"created"}"#;
        parse_state(crun).unwrap();
    }

    #[test]
    fn bad_states_are_refused() {
        for bad in [
            &br#"{"id":"a","id":"b","bundle":"/b","status":"creating"}"#[..],
            br#"{"id":"","bundle":"/b","status":"creating"}"#,
            br#"{"id":"a","bundle":"rel","status":"creating"}"#,
            br#"{"id":"a","status":"creating"}"#,
            br#"[]"#,
        ] {
            assert!(parse_state(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn stdin_is_bounded_in_time_and_size() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let start = Instant::now();
        let err = read_state_from(std::os::fd::AsFd::as_fd(&r), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, OciError::StateTimeout(_)), "{err}");
        assert!(start.elapsed() < Duration::from_secs(2));
        drop(w);
        let err = read_state_from(std::os::fd::AsFd::as_fd(&r), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, OciError::EmptyState), "{err}");
    }
}
