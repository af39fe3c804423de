//! The images this node has, as its stores name them: every containerd namespace (`k8s.io`,
//! where the kubelet's images live, included) and podman's store. `rootseal sync` fetches the
//! seals of these ahead of time.
//!
//! The facts come from the stores' own command-line clients, the interface their projects keep
//! stable across releases, rather than from their private databases (containerd's bolt
//! metadata, containers/storage's `images.json`):
//! - containerd: `ctr -a ADDRESS namespaces ls -q`, then `ctr -a ADDRESS -n NS images ls` per
//!   namespace. ctr 1.6 has no machine-readable listing (`images ls` knows only `--quiet`), so
//!   its table is read by its header: `REF TYPE DIGEST SIZE PLATFORMS LABELS`; only the first
//!   three columns are used (SIZE holds a space, "1.9 MiB").
//! - podman: `podman [ARGS] images --format json`: `Names`, `Digest`, `RepoDigests`.
//!
//! Every child runs in its own process group, with stdin closed, for at most
//! [`Sources::timeout`] and [`MAX_OUTPUT`] bytes of stdout; on either limit the whole group is
//! killed and reaped, so a hung client (or a grandchild holding its pipes) never hangs the
//! listing. A store that cannot be listed becomes one [`ImagesError`] in
//! [`Listing::problems`] and the other stores are still listed.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The most stdout read from one client command. A node with ten thousand images prints a few
/// megabytes (a ctr row is ~250 bytes, a podman JSON entry ~700 per name).
pub const MAX_OUTPUT: usize = 64 << 20;
/// The most stderr kept for an error message (the rest is read and dropped).
const MAX_STDERR: usize = 4096;

/// Where an image was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Store {
    /// A containerd namespace (`default`, `k8s.io`, `moby`, ...).
    Containerd { namespace: String },
    /// podman's store (the one its arguments select).
    Podman,
}

impl fmt::Display for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Store::Containerd { namespace } => write!(f, "containerd namespace {namespace}"),
            Store::Podman => f.write_str("podman"),
        }
    }
}

/// One name an image has in one store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeImage {
    pub store: Store,
    /// The name as the store has it, already normalized by the store:
    /// `127.0.0.1:5000/demo:1`, `docker.io/library/busybox:latest`, or `REPO@sha256:..` for an
    /// image pulled by digest. Never a bare digest: containerd's CRI plugin names every image
    /// `sha256:<config digest>` too, which names no repository and is left out.
    pub reference: String,
    /// `ALGO:HEX`, the digest the name points at. containerd: the target descriptor's digest,
    /// which may be an index (several platforms). podman: the manifest digest the image was
    /// pulled or loaded by (`Digest`, else the `RepoDigests` entry of the name's repository).
    /// `None` when the store records none.
    pub digest: Option<String>,
}

/// Which stores to ask, and how.
#[derive(Debug, Clone)]
pub struct Sources {
    /// containerd's socket; `None` skips containerd.
    pub containerd_address: Option<PathBuf>,
    /// The ctr binary (a name is looked up in `PATH`).
    pub ctr: PathBuf,
    /// The podman binary; `None` skips podman.
    pub podman: Option<PathBuf>,
    /// Global podman options put before `images`, e.g. `--root DIR --runroot DIR`.
    pub podman_args: Vec<String>,
    /// The longest any one command may run before it is killed.
    pub timeout: Duration,
}

impl Default for Sources {
    /// containerd's standard socket, `ctr` and `podman` from `PATH`, 30 s per command.
    fn default() -> Sources {
        Sources {
            containerd_address: Some(PathBuf::from("/run/containerd/containerd.sock")),
            ctr: PathBuf::from("ctr"),
            podman: Some(PathBuf::from("podman")),
            podman_args: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// What [`list`] found, and what it could not list.
#[derive(Debug, Default)]
pub struct Listing {
    /// Store by store (containerd namespaces in ctr's order, then podman), names in the
    /// store's order; a (store, reference, digest) appears once.
    pub images: Vec<NodeImage>,
    pub problems: Vec<ImagesError>,
}

/// The store an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Containerd,
    Podman,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::Containerd => "containerd",
            StoreKind::Podman => "podman",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// containerd is not running here (or listens elsewhere).
    #[error("containerd: no socket at {}; start containerd, or give the address of its socket", address.display())]
    NoSocket { address: PathBuf },
    /// The store's client is not installed.
    #[error("{store}: `{command}` cannot run: {} is not installed; install it, or give its path", program.display())]
    NotInstalled { store: StoreKind, program: PathBuf, command: String },
    #[error("{store}: `{command}` cannot start: {error}")]
    Spawn { store: StoreKind, command: String, error: io::Error },
    #[error("{store}: reading from `{command}`: {error}")]
    Read { store: StoreKind, command: String, error: io::Error },
    #[error(
        "{store}: `{command}` did not finish within {} and was killed{}; check that {store} answers, or raise the timeout",
        humantime::format_duration(*timeout),
        stderr_note(stderr)
    )]
    TimedOut { store: StoreKind, command: String, timeout: Duration, stderr: String },
    #[error("{store}: `{command}` printed more than {MAX_OUTPUT} bytes and was killed; list the store by hand")]
    TooMuchOutput { store: StoreKind, command: String },
    #[error("{store}: `{command}` failed ({status}){}", stderr_note(stderr))]
    Failed { store: StoreKind, command: String, status: ExitStatus, stderr: String },
    #[error("{store}: cannot read what `{command}` printed: {detail}; rootseal reads ctr 1.6 and podman 4 output")]
    Unreadable { store: StoreKind, command: String, detail: String },
}

fn stderr_note(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl ImagesError {
    /// The store is not on this node (no containerd socket, client not installed), as opposed
    /// to a store that is there and failed.
    pub fn is_absent(&self) -> bool {
        matches!(self, ImagesError::NoSocket { .. } | ImagesError::NotInstalled { .. })
    }

    pub fn store(&self) -> StoreKind {
        match self {
            ImagesError::NoSocket { .. } => StoreKind::Containerd,
            ImagesError::NotInstalled { store, .. }
            | ImagesError::Spawn { store, .. }
            | ImagesError::Read { store, .. }
            | ImagesError::TimedOut { store, .. }
            | ImagesError::TooMuchOutput { store, .. }
            | ImagesError::Failed { store, .. }
            | ImagesError::Unreadable { store, .. } => *store,
        }
    }
}

/// Lists the images of every store in `sources`: containerd's namespaces one by one, then
/// podman. Never fails as a whole: what could not be listed is in [`Listing::problems`].
pub fn list(sources: &Sources) -> Listing {
    let mut listing = Listing::default();
    if let Some(address) = &sources.containerd_address {
        list_containerd(address, &sources.ctr, sources.timeout, &mut listing);
    }
    if let Some(podman) = &sources.podman {
        list_podman(podman, &sources.podman_args, sources.timeout, &mut listing);
    }
    listing
}

/// The distinct (reference, digest) pairs of `images`, sorted: one seal lookup each, whatever
/// the number of stores holding it.
pub fn unique_references(images: &[NodeImage]) -> Vec<(String, Option<String>)> {
    let set: BTreeSet<(String, Option<String>)> =
        images.iter().map(|i| (i.reference.clone(), i.digest.clone())).collect();
    set.into_iter().collect()
}

fn list_containerd(address: &Path, ctr: &Path, timeout: Duration, listing: &mut Listing) {
    // Without this check a missing socket costs ctr's 10 s dial timeout, for a containerd
    // that is simply not installed.
    if let Err(e) = std::fs::metadata(address) {
        if e.kind() == io::ErrorKind::NotFound {
            listing.problems.push(ImagesError::NoSocket { address: address.to_path_buf() });
            return;
        }
    }
    // ctr's own dial timeout, shorter than ours, so that a socket nobody answers on gives
    // ctr's message ("failed to dial ...") rather than a kill.
    let connect = format!("{}ms", (timeout / 2).as_millis().max(1));
    let base = |ns: Option<&str>| {
        let mut args =
            vec!["-a".into(), address.as_os_str().to_owned(), "--connect-timeout".into(), connect.clone().into()];
        if let Some(ns) = ns {
            args.extend(["-n".into(), ns.into()]);
        }
        args
    };
    let mut ls_ns = base(None);
    ls_ns.extend(["namespaces".into(), "ls".into(), "-q".into()]);
    let namespaces = match run(StoreKind::Containerd, ctr, &ls_ns, timeout) {
        Ok(out) => parse_namespaces(&String::from_utf8_lossy(&out)),
        Err(e) => return listing.problems.push(e),
    };
    for ns in namespaces {
        let mut args = base(Some(&ns));
        args.extend(["images".into(), "ls".into()]);
        let out = match run(StoreKind::Containerd, ctr, &args, timeout) {
            Ok(out) => out,
            Err(e) => {
                listing.problems.push(e);
                continue;
            }
        };
        match parse_ctr_images(&String::from_utf8_lossy(&out)) {
            Ok(rows) => {
                for (reference, digest) in rows {
                    push_unique(
                        &mut listing.images,
                        NodeImage {
                            store: Store::Containerd { namespace: ns.clone() },
                            reference,
                            digest: Some(digest),
                        },
                    );
                }
            }
            Err(detail) => listing.problems.push(ImagesError::Unreadable {
                store: StoreKind::Containerd,
                command: render(ctr, &args),
                detail,
            }),
        }
    }
}

fn list_podman(podman: &Path, podman_args: &[String], timeout: Duration, listing: &mut Listing) {
    let mut args: Vec<std::ffi::OsString> = podman_args.iter().map(Into::into).collect();
    args.extend(["images".into(), "--format".into(), "json".into()]);
    let out = match run(StoreKind::Podman, podman, &args, timeout) {
        Ok(out) => out,
        Err(e) => return listing.problems.push(e),
    };
    match parse_podman_images(&out) {
        Ok(rows) => {
            for (reference, digest) in rows {
                push_unique(&mut listing.images, NodeImage { store: Store::Podman, reference, digest });
            }
        }
        Err(detail) => listing.problems.push(ImagesError::Unreadable {
            store: StoreKind::Podman,
            command: render(podman, &args),
            detail,
        }),
    }
}

/// podman 4.3 prints one JSON entry per tag, each with all the image's names.
fn push_unique(images: &mut Vec<NodeImage>, image: NodeImage) {
    if !images.contains(&image) {
        images.push(image);
    }
}

// ---------------------------------------------------------------------------------------------
// Parsers: pure functions over what the clients print.

/// `ctr namespaces ls -q`: one name a line.
fn parse_namespaces(out: &str) -> Vec<String> {
    out.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// `ctr images ls`: the (REF, DIGEST) of every row whose REF names a repository. The header
/// must begin `REF TYPE DIGEST`: a table laid out otherwise is refused, not guessed at. REF,
/// TYPE (a media type) and DIGEST hold no spaces; later columns may.
fn parse_ctr_images(out: &str) -> Result<Vec<(String, String)>, String> {
    let mut lines = out.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Err("no header line (expected `REF TYPE DIGEST ...`)".into());
    };
    if header.split_whitespace().take(3).ne(["REF", "TYPE", "DIGEST"]) {
        return Err(format!("the header {:?} does not begin `REF TYPE DIGEST`", header.trim_end()));
    }
    let mut rows = Vec::new();
    for line in lines {
        let mut cols = line.split_whitespace();
        let (Some(reference), Some(_media_type), Some(digest)) = (cols.next(), cols.next(), cols.next()) else {
            return Err(format!("the row {:?} has no REF, TYPE and DIGEST", line.trim_end()));
        };
        if !is_digest(digest) {
            return Err(format!("the row {:?} has {digest:?} for DIGEST", line.trim_end()));
        }
        // containerd's CRI plugin names each image by its config digest as well.
        if is_digest(reference) {
            continue;
        }
        rows.push((reference.to_string(), digest.to_string()));
    }
    Ok(rows)
}

/// One entry of `podman images --format json` (podman 4.3: `Names` and `RepoDigests` may be
/// null or absent; a dangling image has no `Names` and `"Dangling": true`).
#[derive(Deserialize)]
struct PodmanImage {
    #[serde(rename = "Names", default)]
    names: Option<Vec<String>>,
    #[serde(rename = "Digest", default)]
    digest: Option<String>,
    #[serde(rename = "RepoDigests", default)]
    repo_digests: Option<Vec<String>>,
}

/// `podman images --format json`: (name, digest) for every name, in order, once each.
fn parse_podman_images(out: &[u8]) -> Result<Vec<(String, Option<String>)>, String> {
    let entries: Vec<PodmanImage> = crate::json::from_slice_strict(out).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for entry in entries {
        for name in entry.names.iter().flatten().filter(|n| !n.is_empty()) {
            let digest = podman_digest(&entry, name);
            let row = (name.clone(), digest);
            if !rows.contains(&row) {
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// The image's `Digest` (the manifest the image was pulled or loaded by; for an image pulled
/// through a multi-platform index, this platform's manifest), else the `RepoDigests` entry for
/// the name's repository.
fn podman_digest(entry: &PodmanImage, name: &str) -> Option<String> {
    if let Some(d) = entry.digest.as_deref().filter(|d| is_digest(d)) {
        return Some(d.to_string());
    }
    let repo = repository(name);
    entry
        .repo_digests
        .iter()
        .flatten()
        .filter_map(|rd| rd.split_once('@'))
        .find(|(r, d)| *r == repo && is_digest(d))
        .map(|(_, d)| d.to_string())
}

/// `host:5000/a/b:tag` -> `host:5000/a/b`; `a/b@sha256:..` -> `a/b`.
fn repository(name: &str) -> &str {
    if let Some((repo, _)) = name.split_once('@') {
        return repo;
    }
    match name.rfind(':') {
        Some(colon) if !name[colon..].contains('/') => &name[..colon],
        _ => name,
    }
}

/// `sha256:` and 64, or `sha512:` and 128, lowercase hex digits (the OCI image spec's
/// registered algorithms).
fn is_digest(s: &str) -> bool {
    let hex_len =
        |h: &str, n: usize| h.len() == n && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match s.split_once(':') {
        Some(("sha256", h)) => hex_len(h, 64),
        Some(("sha512", h)) => hex_len(h, 128),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Running a client: bounded in time and output, stderr kept for the error.

fn render(program: &Path, args: &[std::ffi::OsString]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `program args` and returns its stdout if it exits 0 within `timeout`.
fn run(
    store: StoreKind,
    program: &Path,
    args: &[std::ffi::OsString],
    timeout: Duration,
) -> Result<Vec<u8>, ImagesError> {
    let command = render(program, args);
    let mut cmd = Command::new(program);
    // Its own process group: a timeout kills the client and anything it started, so no
    // grandchild keeps the pipes open.
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ImagesError::NotInstalled { store, program: program.to_path_buf(), command })
        }
        Err(error) => return Err(ImagesError::Spawn { store, command, error }),
    };
    let mut child = Running(Some(child));
    let deadline = Instant::now() + timeout;
    let (stdout, stderr) = match child.collect(deadline) {
        Ok(out) => out,
        Err(Collect::TimedOut(stderr)) => {
            return Err(ImagesError::TimedOut { store, command, timeout, stderr: stderr_text(&stderr) })
        }
        Err(Collect::TooMuch) => return Err(ImagesError::TooMuchOutput { store, command }),
        Err(Collect::Io(error)) => return Err(ImagesError::Read { store, command, error }),
    };
    match child.wait(deadline) {
        Some(status) if status.success() => Ok(stdout),
        Some(status) => Err(ImagesError::Failed { store, command, status, stderr: stderr_text(&stderr) }),
        None => Err(ImagesError::TimedOut { store, command, timeout, stderr: stderr_text(&stderr) }),
    }
}

fn stderr_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().replace('\n', "; ")
}

enum Collect {
    TimedOut(Vec<u8>),
    TooMuch,
    Io(io::Error),
}

/// A child not yet reaped; dropping it kills its process group and reaps it.
struct Running(Option<Child>);

impl Running {
    /// Reads stdout (at most [`MAX_OUTPUT`]) and stderr (the first [`MAX_STDERR`] bytes kept)
    /// until both reach end of file or `deadline` passes.
    fn collect(&mut self, deadline: Instant) -> Result<(Vec<u8>, Vec<u8>), Collect> {
        let child = self.0.as_mut().expect("not reaped");
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Collect::Io(io::Error::other("the child's pipes were not set up")));
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut open = [true, true];
        let mut buf = vec![0u8; 64 * 1024];
        while open[0] || open[1] {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Collect::TimedOut(err));
            }
            let fds = [stdout.as_fd(), stderr.as_fd()];
            let mut polled: Vec<libc::pollfd> = (0..2)
                .filter(|&i| open[i])
                .map(|i| libc::pollfd { fd: fds[i].as_raw_fd(), events: libc::POLLIN, revents: 0 })
                .collect();
            // Rounded up: poll(2) takes whole milliseconds, 0 would spin.
            match crate::sys::poll(&mut polled, left + Duration::from_millis(1)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Collect::Io(e)),
            }
            for p in polled.iter().filter(|p| p.revents != 0) {
                let i = if p.fd == fds[0].as_raw_fd() { 0 } else { 1 };
                let n = crate::sys::read(fds[i], &mut buf).map_err(Collect::Io)?;
                if n == 0 {
                    open[i] = false;
                } else if i == 0 {
                    if out.len() + n > MAX_OUTPUT {
                        return Err(Collect::TooMuch);
                    }
                    out.extend_from_slice(&buf[..n]);
                } else {
                    let keep = n.min(MAX_STDERR.saturating_sub(err.len()));
                    err.extend_from_slice(&buf[..keep]);
                }
            }
        }
        Ok((out, err))
    }

    /// Waits for the exit until `deadline`; `None` if it has not exited by then (it is killed
    /// when dropped).
    fn wait(&mut self, deadline: Instant) -> Option<ExitStatus> {
        let child = self.0.as_mut()?;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.0 = None;
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                _ => return None,
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else { return };
        // Not reaped yet, so the group id (the child's pid) is still this child's.
        let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.kill();
        // SIGKILL ends a process unless it is in an uninterruptible sleep; give that up to a
        // second rather than hang (the zombie is then left to this process's exit).
        let end = Instant::now() + Duration::from_secs(1);
        while Instant::now() < end {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
#[path = "images_tests.rs"]
mod tests;
