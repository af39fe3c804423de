//! Drift prevention: a protected container cannot execute a file that is not in its seal.
//!
//! One fanotify group (`FAN_CLASS_CONTENT`) for the monitor; each protected container's mounts
//! carry a `FAN_OPEN_EXEC_PERM` mount mark (marks.rs); every execve of a file on them waits for
//! this process's answer (answer.rs), decided from the seal's manifest (decide.rs) with a digest
//! cache by file identity and stat key (cache.rs).
//!
//! The monitor's main thread attaches a container once its scan found it running in its root
//! (so a container started before the monitor is attached on the first scan), marks mounts the
//! container gained at every later scan, and detaches it when it stops. When the monitor stops,
//! the kernel allows every exec still waiting and every later one (the group is gone): prevention
//! is only as alive as the monitor (docs/monitor.md).

mod answer;
pub mod cache;
pub mod decide;
pub mod marks;

use crate::alerts::Event;
use crate::config::Alerts;
use crate::policy::Prevent;
use crate::seal::Seal;
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Digests kept (about 100 bytes each).
const CACHE_ENTRIES: usize = 16384;
/// Events per container per window; more are counted (`suppressed`), not sent.
const EVENTS_PER_WINDOW: u32 = 20;
const EVENT_WINDOW: Duration = Duration::from_secs(10);
const HASH_THREADS: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum PreventError {
    #[error("cannot create the fanotify group: {0}; drift prevention needs root with CAP_SYS_ADMIN (under the shipped systemd unit, add the drop-in of docs/monitor.md, \"Drift prevention\") and a kernel with CONFIG_FANOTIFY_ACCESS_PERMISSIONS")]
    Group(nix::Error),
    #[error("cannot start a prevention thread: {0}")]
    Thread(std::io::Error),
    #[error("the container's mount namespace cannot be read (pid {0} gone?)")]
    Namespace(i32),
    #[error(transparent)]
    Mark(#[from] marks::MarkError),
}

/// Verdict counts of one container (since it was attached).
#[derive(Debug, Default)]
pub struct Counters {
    pub allowed: AtomicU64,
    pub audited: AtomicU64,
    pub denied: AtomicU64,
    pub suppressed: AtomicU64,
}

/// What the answering threads know of one protected container.
pub struct Protected {
    pub id: String,
    pub mode: Prevent,
    pub seal: Arc<Seal>,
    pub allow: Vec<String>,
    /// The inode of its init's `/proc/PID/ns/mnt`.
    pub mnt_ns: u64,
    /// Its events' common fields (container, image, seal).
    pub template: Event,
    pub counters: Arc<Counters>,
    window: Arc<Mutex<(Instant, u32)>>,
}

impl Protected {
    fn take_event_slot(&self) -> bool {
        let Ok(mut w) = self.window.lock() else { return false };
        if w.0.elapsed() >= EVENT_WINDOW {
            *w = (Instant::now(), 0);
        }
        w.1 += 1;
        w.1 <= EVENTS_PER_WINDOW
    }
}

/// Shared by the main thread and the answering threads.
struct Shared {
    fan: Fanotify,
    /// Mount id → the container that owns the mount.
    containers: RwLock<HashMap<u64, Arc<Protected>>>,
    cache: Mutex<cache::DigestCache>,
    stop: AtomicBool,
    deadline: Duration,
    report_tx: Mutex<mpsc::Sender<Box<Event>>>,
    sinks: Arc<RwLock<(Alerts, bool)>>,
}

/// A container's protection as the status shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreventionStatus {
    pub mode: Prevent,
    /// Its mounts are marked and its execs judged.
    pub active: bool,
    /// Where the container sees its marked mounts.
    pub mounts: Vec<String>,
    pub allowed: u64,
    pub audited: u64,
    pub denied: u64,
    /// Events not sent (more than 20 in 10 s).
    pub suppressed: u64,
    /// Why it is not active, or which mounts could not be marked.
    pub error: Option<String>,
}

/// The main thread's record of one attached container.
pub struct Attachment {
    pub prot: Arc<Protected>,
    /// The marked mounts: id → where the container sees it.
    pub mounts: BTreeMap<u64, String>,
    pub skipped: Vec<String>,
}

impl Attachment {
    pub fn status(&self) -> PreventionStatus {
        let c = &self.prot.counters;
        PreventionStatus {
            mode: self.prot.mode,
            active: !self.mounts.is_empty(),
            mounts: self.mounts.values().cloned().collect(),
            allowed: c.allowed.load(Ordering::Relaxed),
            audited: c.audited.load(Ordering::Relaxed),
            denied: c.denied.load(Ordering::Relaxed),
            suppressed: c.suppressed.load(Ordering::Relaxed),
            error: (!self.skipped.is_empty()).then(|| format!("not marked: {}", self.skipped.join("; "))),
        }
    }
}

/// What the monitor needs to protect one container.
pub struct Request {
    pub id: String,
    pub pid: i32,
    pub mode: Prevent,
    pub seal: Arc<Seal>,
    pub allow: Vec<String>,
    pub template: Event,
}

/// The fanotify group and its threads.
pub struct Prevention {
    shared: Arc<Shared>,
}

impl Prevention {
    /// Creates the group and starts the threads.
    pub fn start(deadline: Duration, sinks: (Alerts, bool)) -> Result<Prevention, PreventError> {
        let fan = Fanotify::init(
            InitFlags::FAN_CLASS_CONTENT | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(PreventError::Group)?;
        let (report_tx, report_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            fan,
            containers: RwLock::new(HashMap::new()),
            cache: Mutex::new(cache::DigestCache::new(CACHE_ENTRIES)),
            stop: AtomicBool::new(false),
            deadline,
            report_tx: Mutex::new(report_tx),
            sinks: Arc::new(RwLock::new(sinks)),
        });
        let (hash_tx, hash_rx) = mpsc::sync_channel(answer::HASH_QUEUE);
        let hash_rx = Arc::new(Mutex::new(hash_rx));
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name.into()).spawn(f).map(|_| ()).map_err(PreventError::Thread)
        };
        for i in 0..HASH_THREADS {
            let (sh, rx) = (Arc::clone(&shared), Arc::clone(&hash_rx));
            spawn(&format!("prevent-hash{i}"), Box::new(move || answer::hash_loop(sh, rx)))?;
        }
        let sinks = Arc::clone(&shared.sinks);
        spawn("prevent-report", Box::new(move || answer::report_loop(&sinks, report_rx)))?;
        let sh = Arc::clone(&shared);
        spawn(
            "prevent-answer",
            Box::new(move || {
                // Without this thread every exec in a protected container would wait forever
                // (the group stays open while other threads hold it): a panic here ends the
                // process, the kernel then allows every waiting exec, and the supervisor
                // restarts the monitor.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer::read_loop(sh, hash_tx)));
                if r.is_err() {
                    eprintln!("rootseal monitor: the drift prevention thread panicked; exiting so that the kernel allows waiting execs");
                    std::process::abort();
                }
            }),
        )?;
        Ok(Prevention { shared })
    }

    /// After a reload: where events go.
    pub fn set_sinks(&self, sinks: (Alerts, bool)) {
        if let Ok(mut s) = self.shared.sinks.write() {
            *s = sinks;
        }
    }

    /// Protects a container: its mount namespace is read, its mounts marked and registered.
    /// `prior`: the attachment so far (a reload, or a scan looking for new mounts), whose
    /// counters and marked mounts are kept.
    pub fn attach(&self, req: Request, prior: Option<&Attachment>) -> Result<Attachment, PreventError> {
        let mnt_ns = answer::mount_ns(req.pid).ok_or(PreventError::Namespace(req.pid))?;
        let (counters, window, mut mounts) = match prior {
            Some(a) if a.prot.mnt_ns == mnt_ns => {
                (Arc::clone(&a.prot.counters), Arc::clone(&a.prot.window), a.mounts.clone())
            }
            _ => (Arc::default(), Arc::new(Mutex::new((Instant::now(), 0))), BTreeMap::new()),
        };
        let prot = Arc::new(Protected {
            id: req.id,
            mode: req.mode,
            seal: req.seal,
            allow: req.allow,
            mnt_ns,
            template: req.template,
            counters,
            window,
        });
        // Marked, then registered: an exec between the two finds no owner and is allowed (the
        // container's first scan is a moment after its start anyway; docs/monitor.md).
        let pass = {
            let known = mounts.clone();
            marks::mark_mounts(&self.shared.fan, req.pid, &|id| known.contains_key(&id))?
        };
        // A mount gone since is no longer this container's: its id may come back for another.
        let gone: Vec<u64> = mounts.keys().filter(|id| !pass.present.contains(id)).copied().collect();
        for m in &pass.marked {
            mounts.insert(m.mnt_id, m.mount_point.display().to_string());
        }
        // The write lock is held for map updates only: no I/O under it (an answering thread
        // waits for it, and the main thread's own opens may wait for an answer).
        if let Ok(mut c) = self.shared.containers.write() {
            for id in &gone {
                mounts.remove(id);
                if c.get(id).is_some_and(|p| p.id == prot.id) {
                    c.remove(id);
                }
            }
            for id in mounts.keys() {
                c.insert(*id, Arc::clone(&prot));
            }
        }
        Ok(Attachment { prot, mounts, skipped: pass.skipped })
    }

    /// Stops judging a container's mounts (it stopped; or its mode is now off).
    pub fn detach(&self, a: &Attachment) {
        if let Ok(mut c) = self.shared.containers.write() {
            for id in a.mounts.keys() {
                // Only if still this container's (a reused mount id may be another's now).
                if c.get(id).is_some_and(|p| p.id == a.prot.id) {
                    c.remove(id);
                }
            }
        }
    }

    /// Digest cache use, for the metrics: (entries, hits, misses).
    pub fn cache_stats(&self) -> (usize, u64, u64) {
        self.shared.cache.lock().map(|c| (c.len(), c.hits, c.misses)).unwrap_or_default()
    }
}

impl Drop for Prevention {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}
