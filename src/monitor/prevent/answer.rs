//! The threads that answer the kernel: one reads permission events and answers what it can at
//! once, two hash files whose verdict depends on their content, one delivers the events.
//!
//! For each `FAN_OPEN_EXEC_PERM` event:
//! 1. the monitor's own opens, and files on a mount no protected container owns, are allowed;
//! 2. a process outside the container's mount namespace (the host, another container, reaching
//!    the mount through `/proc/PID/root`) is allowed: only the container's processes are judged
//!    (looked at after step 3, and only when the file is not simply sealed: the hot path of a
//!    sealed exec does not read /proc);
//! 3. the path (`/proc/self/fd/N`: for a mount of another namespace the kernel names it from
//!    that namespace's root, i.e. as the container sees it) and the stat key are judged against
//!    the seal (decide.rs), with the digest from the cache when the file is unchanged;
//! 4. a file whose content decides goes to a hashing thread, which answers when done; when
//!    `prevent_deadline` passes first, this thread answers by the mode (enforce: deny).
//!
//! Nothing here forks or execs, takes a lock while waiting for I/O, or waits on the monitor's
//! main thread: the main thread's own file opens may be waiting on these answers.

use super::decide::{self, Facts, Judgement, Verdict};
use super::{Protected, Shared};
use crate::alerts::{self, Event, PathChange, ProcessInfo, ViolationRecord};
use crate::cache::StatKey;
use crate::manifest::display_path;
use nix::sys::fanotify::{FanotifyEvent, FanotifyResponse, MaskFlags, Response};
use sha2::{Digest as _, Sha256};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

/// Hashing past the answer's deadline still fills the cache (the next exec of the file is then
/// answered at once), but stops after this much more.
const FILL_GRACE: Duration = Duration::from_secs(30);
/// Events waiting for a hashing thread; past it, the answer is by the mode at once.
pub(super) const HASH_QUEUE: usize = 256;
/// The answering thread's nice value.
const ANSWER_NICE: i32 = -10;

/// One exec waiting for its content to be judged.
pub(super) struct Pending {
    ev: FanotifyEvent,
    prot: Arc<Protected>,
    path: Vec<u8>,
    key: StatKey,
    pid: i32,
    deadline: Instant,
    answered: AtomicBool,
}

impl Pending {
    fn fd(&self) -> BorrowedFd<'_> {
        self.ev.fd().expect("permission events carry an fd")
    }
}

/// Answers once (whoever comes first: the hashing thread or the deadline) and reports.
fn finish(sh: &Shared, p: &Pending, v: Verdict) {
    if p.answered.swap(true, Ordering::AcqRel) {
        return;
    }
    respond(sh, p.fd(), &p.prot, v);
    report(sh, &p.prot, &p.path, p.pid, v);
}

fn respond(sh: &Shared, fd: BorrowedFd<'_>, prot: &Protected, v: Verdict) {
    let r = if v.allows() { Response::FAN_ALLOW } else { Response::FAN_DENY };
    if let Err(e) = sh.fan.write_response(FanotifyResponse::new(fd, r)) {
        tracing::warn!("cannot answer a permission event: {e}");
    }
    let c = &prot.counters;
    match v {
        Verdict::Allow => c.allowed.fetch_add(1, Ordering::Relaxed),
        Verdict::AllowAudited(_) => c.audited.fetch_add(1, Ordering::Relaxed),
        Verdict::Deny(_) => c.denied.fetch_add(1, Ordering::Relaxed),
    };
}

fn allow(sh: &Shared, fd: BorrowedFd<'_>) {
    if let Err(e) = sh.fan.write_response(FanotifyResponse::new(fd, Response::FAN_ALLOW)) {
        tracing::warn!("cannot answer a permission event: {e}");
    }
}

/// The reading thread (steps 1 to 4). Returns when `stop` is set.
pub(super) fn read_loop(sh: Arc<Shared>, hash_tx: mpsc::SyncSender<Arc<Pending>>) {
    let me = std::process::id() as i32;
    // Every exec in a protected container waits for this thread: on a busy node, a waiting
    // exec would otherwise wait for a time slice too. The thread sleeps in poll between events,
    // so a higher weight costs nothing when idle.
    if let Err(e) = crate::sys::set_thread_nice(ANSWER_NICE) {
        tracing::warn!("cannot raise the answering thread's priority (nice {ANSWER_NICE}): {e}");
    }
    let mut pending: Vec<Arc<Pending>> = Vec::new();
    while !sh.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = pending
            .iter()
            .map(|p| p.deadline.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_millis(200))
            .min(Duration::from_millis(200));
        let mut fds = [libc::pollfd { fd: sh.fan.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        let _ = crate::sys::poll(&mut fds, wait);
        loop {
            match sh.fan.read_events() {
                Ok(events) if !events.is_empty() => {
                    for ev in events {
                        if let Some(p) = handle(&sh, ev, me) {
                            match hash_tx.try_send(Arc::clone(&p)) {
                                Ok(()) => pending.push(p),
                                // Every hashing thread busy and the queue full: by the mode now.
                                Err(_) => finish(&sh, &p, decide::undecided(p.prot.mode)),
                            }
                        }
                    }
                }
                _ => break,
            }
        }
        // 4: the deadline answers what hashing has not.
        let now = Instant::now();
        pending.retain(|p| {
            if p.answered.load(Ordering::Acquire) {
                false
            } else if p.deadline <= now {
                finish(&sh, p, decide::undecided(p.prot.mode));
                false
            } else {
                true
            }
        });
    }
    // Stopping: answer what waits by the mode (closing the group would allow it all).
    for p in pending {
        finish(&sh, &p, decide::undecided(p.prot.mode));
    }
}

/// Steps 1 to 3 for one event; Some when its content must be hashed.
fn handle(sh: &Shared, ev: FanotifyEvent, me: i32) -> Option<Arc<Pending>> {
    let fd = ev.fd()?; // None: a queue overflow, which permission events never cause
    if !ev.mask().intersects(MaskFlags::FAN_OPEN_EXEC_PERM | MaskFlags::FAN_OPEN_PERM) {
        return None;
    }
    let pid = ev.pid();
    // 1.
    if pid == me {
        allow(sh, fd);
        return None;
    }
    let mnt = crate::sys::statx_mount(fd).map(|(_, _, m)| m).ok();
    let prot = mnt.and_then(|m| sh.containers.read().ok().and_then(|c| c.get(&m).cloned()));
    let Some(prot) = prot else {
        allow(sh, fd);
        return None;
    };
    // 3.
    let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default();
    let mut path = link.as_os_str().as_bytes().to_vec();
    let deleted = path.ends_with(b" (deleted)");
    if deleted {
        path.truncate(path.len() - b" (deleted)".len());
    }
    let Ok(st) = crate::sys::fstat(fd) else {
        let v = decide::undecided(prot.mode);
        respond(sh, fd, &prot, v);
        report(sh, &prot, &path, pid, v);
        return None;
    };
    let key = StatKey::of(&st);
    let cached = sh.cache.lock().ok().and_then(|mut c| c.get(&key));
    let facts = Facts { path: &path, deleted, size: key.size, sha256: cached.as_ref() };
    let j = decide::judge(&facts, prot.seal.manifest.get(&path), &prot.allow);
    // An open that is not an exec (only with marks.rs's benchmark mask): looked up like an exec,
    // then allowed.
    if !ev.mask().contains(MaskFlags::FAN_OPEN_EXEC_PERM) {
        allow(sh, fd);
        return None;
    }
    // 2, only for what would not simply be allowed (a sealed exec, the hot path, needs no
    // look at the process): a process that cannot be looked at any more is judged (fail closed).
    let judged = |j: &Judgement| {
        matches!(j, Judgement::Sealed | Judgement::AllowedByPattern(_))
            || mount_ns(pid).is_none_or(|ns| ns == prot.mnt_ns)
    };
    if !judged(&j) {
        allow(sh, fd);
        return None;
    }
    if j == Judgement::NeedsContent {
        let deadline = Instant::now() + sh.deadline;
        return Some(Arc::new(Pending { ev, prot, path, key, pid, deadline, answered: AtomicBool::new(false) }));
    }
    let v = decide::verdict(prot.mode, &j);
    respond(sh, fd, &prot, v);
    report(sh, &prot, &path, pid, v);
    None
}

/// A hashing thread: hashes, caches, judges and answers (unless the deadline did).
pub(super) fn hash_loop(sh: Arc<Shared>, rx: Arc<std::sync::Mutex<mpsc::Receiver<Arc<Pending>>>>) {
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let p = {
            let Ok(guard) = rx.lock() else { return };
            match guard.recv() {
                Ok(p) => p,
                Err(_) => return,
            }
        };
        let digest = hash(p.fd(), &mut buf, p.deadline + FILL_GRACE);
        let v = match digest {
            Some(d) => {
                // Cached only when nothing changed while it was read.
                if crate::sys::fstat(p.fd()).map(|st| StatKey::of(&st)).ok() == Some(p.key) {
                    if let Ok(mut c) = sh.cache.lock() {
                        c.insert(p.key, d, SystemTime::now());
                    }
                }
                let facts = Facts { path: &p.path, deleted: false, size: p.key.size, sha256: Some(&d) };
                decide::verdict(p.prot.mode, &decide::judge(&facts, p.prot.seal.manifest.get(&p.path), &p.prot.allow))
            }
            None => decide::undecided(p.prot.mode),
        };
        finish(&sh, &p, v);
    }
}

/// SHA-256 of the whole file through the event's fd (its reads raise no events), or None on
/// an error or past `until`.
fn hash(fd: BorrowedFd<'_>, buf: &mut [u8], until: Instant) -> Option<[u8; 32]> {
    let mut h = Sha256::new();
    let mut off = 0u64;
    loop {
        if Instant::now() > until {
            return None;
        }
        let n = crate::sys::pread(fd, buf, off).ok()?;
        if n == 0 {
            return Some(h.finalize().into());
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
}

/// The mount namespace of a process (the inode of `/proc/PID/ns/mnt`).
pub(super) fn mount_ns(pid: i32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/mnt")).ok().map(|m| m.ino())
}

/// Builds and queues the event of an audited or denied exec (at most
/// [`super::EVENTS_PER_WINDOW`] per container per window; the rest are counted).
fn report(sh: &Shared, prot: &Protected, path: &[u8], pid: i32, v: Verdict) {
    let (kind, why, severity, mode) = match v {
        Verdict::Allow => return,
        Verdict::AllowAudited(w) => {
            (alerts::EventKind::ExecAudit, w, alerts::Severity::Warning, crate::config::Mode::Audit)
        }
        Verdict::Deny(w) => (alerts::EventKind::ExecBlocked, w, alerts::Severity::Err, crate::config::Mode::Enforce),
    };
    if !prot.take_event_slot() {
        prot.counters.suppressed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim_end().to_string();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.display().to_string()).unwrap_or_default();
    let shown = display_path(path);
    let what = if v.allows() { "allowed (audit)" } else { "blocked" };
    let message = format!(
        "rootseal: {what} exec of {shown} in container {}: it {} (pid {pid}, {comm} {exe})",
        alerts::short_id(&prot.id),
        why.explain()
    );
    let mut e: Event = prot.template.clone();
    e.time = Event::now_string();
    e.event = kind;
    e.severity = severity;
    e.mode = mode;
    e.violations = vec![ViolationRecord {
        code: crate::verify::Code::ExecNotSealed,
        message: message.trim_start_matches("rootseal: ").to_string(),
        paths: vec![PathChange {
            path: shown.clone(),
            changes: vec![why.as_str().to_string()],
            detail: format!("{shown} {}", why.explain()),
        }],
        total_paths: Some(1),
    }];
    e.message = message;
    e.action = (!v.allows()).then(|| "exec denied (EPERM)".to_string());
    e.process = Some(ProcessInfo { pid, comm, exe });
    if let Ok(tx) = sh.report_tx.lock() {
        let _ = tx.send(Box::new(e));
    }
}

/// The delivering thread: sinks may be slow (a syslog socket, a disk), answers must not be.
pub(super) fn report_loop(sinks: &std::sync::RwLock<(crate::config::Alerts, bool)>, rx: mpsc::Receiver<Box<Event>>) {
    for e in rx {
        let (alerts_cfg, console) = match sinks.read() {
            Ok(s) => s.clone(),
            Err(_) => return,
        };
        let errors = alerts::emit(&alerts_cfg, &e);
        if console || errors.iter().any(|e| matches!(e, alerts::AlertError::Syslog { .. })) {
            eprintln!("{}", crate::monitor::console_line(&e));
        }
        for err in errors {
            tracing::warn!("alert not delivered: {err}");
        }
    }
}
