//! The drift monitor: re-verifies every running container the hook verified, on an interval
//! and on inotify change notifications, and raises drift, recovered and scan-failed events.
//!
//! One cycle:
//! 1. read the hook's state records (a missing state directory is an empty one);
//! 2. start watching new containers: the record's pid is opened as a pidfd and its start time
//!    checked against the record, so a reused pid is never taken for the container; a record
//!    whose process is gone or is another process is dropped (never acted on);
//! 3. stop watching containers whose record is gone (poststop) or whose pidfd says exited;
//! 4. scan every container that is due: walk its rootfs, compare with the sealed manifest after
//!    mount exclusion. A new set of drifted paths raises one `drift` event (at most
//!    `max_event_paths` paths, with the total: thousands of paths make one summary event) and
//!    runs the rule's action once; a clean scan after drift raises `recovered`; a scan that
//!    cannot complete raises `scan-failed` (when its reason changes), never a silent skip;
//! 5. write the Prometheus textfile and the status file atomically, and notify systemd.
//!
//! Between cycles it sleeps until the next scan is due, an inotify event on a directory backing
//! a rootfs (the overlay's upper and lower directories, or the rootfs itself) makes that
//! container due in 250 ms, SIGHUP reloads config, trust store and seals, SIGTERM stops.

use crate::alerts::{self, ContainerInfo, Event, PathChange, SealInfo, ViolationRecord};
use crate::config::{Config, Mode};
use crate::exclude::Exclusions;
use crate::manifest::{display_path, Difference};
use crate::policy::{self, Action};
use crate::seal::Seal;
use crate::state::{self, Record};
use crate::trust::{Trust, TrustStore};
use crate::{sys, verify, walk};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// `[monitor]` lives in the config (src/config.rs); named here as the monitor knows it.
pub use crate::config::MonitorSettings;

mod gate;
pub mod prevent;
mod protect;
mod scan;
mod status;
use status::watchdog_interval;
pub use status::{console_line, sd_notify, stale, status, status_path, ContainerStatus, Status};

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot set up signal handling: {0}")]
    Signals(nix::Error),
    #[error("cannot read monitor status {}: {what}; is `rootseal monitor` running?", path.display())]
    Status { path: PathBuf, what: String },
}

/// Why a state record's container is not watched: its process cannot be identified.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("the record has no pid, so its process cannot be identified")]
    NoPid,
    #[error("its process {pid} is gone ({error})")]
    Gone { pid: i32, error: std::io::Error },
    #[error("its process {pid} exited")]
    Exited { pid: i32 },
    #[error("pid {pid} now belongs to another process (start time differs)")]
    Reused { pid: i32 },
    #[error("the record has no start time for pid {pid}, so it cannot be identified")]
    NoStartTime { pid: i32 },
}

/// What the last scan of a container found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pending,
    Clean,
    Drift,
    Failed,
}

struct Watched {
    rec: Record,
    pidfd: Option<OwnedFd>,
    /// The seal, and the (mtime, len) of its file when read (a changed file is re-read).
    seal: Option<(Arc<Seal>, (SystemTime, u64))>,
    signers: Vec<String>,
    /// The signers' keyids (for layer records, `verify = "layers"`).
    signer_keyids: Vec<String>,
    /// For the loaded seal and the trust store's keys (by keyid) at the time: the keys whose
    /// signatures verify. Scans judge trust, revocation and expiry from it without verifying
    /// the signatures again; a new seal file or another set of keys verifies them again.
    sig_memo: Option<(Vec<String>, Vec<String>)>,
    exclusions: Option<Exclusions>,
    watches: Vec<WatchDescriptor>,
    due: Instant,
    last_scan: Option<SystemTime>,
    outcome: Outcome,
    drift: Vec<Difference>,
    reported: Option<BTreeSet<Vec<u8>>>,
    last_error: Option<String>,
    action_taken: Option<String>,
    /// The verification cache of this rootfs (docs/performance.md), kept between scans.
    cache: Option<(crate::cache::RootId, crate::cache::Cache)>,
    /// When the last scan that read every file (no cache) ended, or watching began.
    last_full: Instant,
    /// When watching began.
    since: Instant,
    /// The last scan's `rootfs-replaced` finding, if any.
    replaced: Option<String>,
    /// Scans that re-hashed every file ([`MonitorSettings::full_rehash`]).
    full_scans: u64,
    /// The scan gate's last refusal reported for this container (src/monitor/gate.rs).
    gate_reported: Option<String>,
    /// Drift prevention's mode for it (`off` unless configured).
    protect_mode: crate::policy::Prevent,
    /// Its mounts marked and registered (src/monitor/prevent/).
    protection: Option<prevent::Attachment>,
    /// Why prevention is not (fully) active for it.
    protect_error: Option<String>,
}

#[derive(Default)]
struct Stats {
    scans: u64,
    failures: u64,
    drift_events: u64,
    last_duration: f64,
    duration_sum: f64,
    cpu_sum: f64,
    /// Drift prevention's verdicts (allowed, audited, denied) of containers no longer watched:
    /// with the watched ones' counts, the metrics' totals.
    execs_retired: [u64; 3],
}

pub struct Monitor {
    cfg: Config,
    config_path: Option<PathBuf>,
    /// Shared by every scan until the next load.
    trust: Result<Trust, Arc<crate::trust::TrustError>>,
    watched: BTreeMap<String, Watched>,
    inotify: Option<Inotify>,
    /// Watch descriptor → ids of the containers it wakes (newline-separated).
    wds: HashMap<WatchDescriptor, String>,
    /// Container ids (and record files) not watched because their process could not be
    /// identified; forgotten when the record goes away, so a restarted container is watched.
    dropped_stale: BTreeSet<String>,
    stats: Stats,
    watch_limited: bool,
    /// (mtime, len) of the trust dir and its revocations file when the trust store was loaded.
    trust_stamp: Option<(SystemTime, SystemTime)>,
    /// Parsed seals by file, shared by every container of the same image.
    seals: HashMap<PathBuf, ((SystemTime, u64), Arc<Seal>)>,
    /// How many watched containers use each watch descriptor (shared image layers).
    wd_users: HashMap<WatchDescriptor, usize>,
    /// Print one line per event on stderr (a terminal, or no syslog to deliver to).
    pub console: bool,
    /// Drift prevention's fanotify group, started when the first container needs it (or why
    /// it could not be).
    prevention: Option<Result<prevent::Prevention, String>>,
    /// Drift prevention runs in the daemon only (not `--once`).
    protecting: bool,
}

impl Monitor {
    pub fn new(cfg: Config, config_path: Option<PathBuf>) -> Monitor {
        let trust = TrustStore::new(&cfg.trust_dir).load().map_err(Arc::new);
        let inotify =
            if cfg.monitor.watch { Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok() } else { None };
        Monitor {
            cfg,
            config_path,
            trust,
            watched: BTreeMap::new(),
            inotify,
            wds: HashMap::new(),
            dropped_stale: BTreeSet::new(),
            stats: Stats::default(),
            watch_limited: false,
            seals: HashMap::new(),
            wd_users: HashMap::new(),
            trust_stamp: None,
            console: false,
            prevention: None,
            protecting: true,
        }
    }

    /// SIGHUP: re-read config and trust store; watched containers, their drift state and
    /// counters are kept; seals and exclusions are re-read at the next scan.
    pub fn reload(&mut self) {
        match Config::load(self.config_path.as_deref()) {
            Ok((cfg, _)) => self.cfg = cfg,
            Err(e) => tracing::warn!("reload: {e}; keeping the previous config"),
        }
        self.trust = TrustStore::new(&self.cfg.trust_dir).load().map_err(Arc::new);
        self.seals.clear();
        if let Some(Ok(p)) = &self.prevention {
            p.set_sinks((self.cfg.alerts.clone(), self.console));
        }
        for w in self.watched.values_mut() {
            w.seal = None;
            w.exclusions = None;
            w.due = Instant::now();
        }
    }

    /// Steps 1 to 3.
    pub fn refresh(&mut self) {
        // A key added or removed, or a revocation, applies without a SIGHUP.
        let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
        let now = (stamp(&self.cfg.trust_dir), stamp(&self.cfg.trust_dir.join(crate::trust::REVOCATIONS_FILE)));
        if self.trust_stamp != Some(now) {
            self.trust = TrustStore::new(&self.cfg.trust_dir).load().map_err(Arc::new);
            self.trust_stamp = Some(now);
        }
        let dir = self.cfg.state_dir.join("containers");
        let mut records: BTreeMap<String, Record> = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_none_or(|x| x != "json") {
                    continue;
                }
                match std::fs::read(&p)
                    .map_err(|e| e.to_string())
                    .and_then(|b| crate::json::from_slice_strict::<Record>(&b).map_err(|e| e.to_string()))
                {
                    // Keyed by file name: ids are unique only per runc root (src/node/state.rs).
                    Ok(r) if state::check_id(&r.id).is_ok() => {
                        let key = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                        records.insert(key, r);
                    }
                    Ok(_) | Err(_) => {
                        if self.dropped_stale.insert(p.display().to_string()) {
                            tracing::warn!("ignoring unreadable state record {}", p.display());
                        }
                    }
                }
            }
        }
        // A dropped id whose record is gone may come back (a restarted container): forget it.
        self.dropped_stale.retain(|id| records.contains_key(id) || id.contains('/'));
        // Gone: record removed (poststop) or process exited.
        let gone: Vec<String> = self
            .watched
            .iter()
            .filter(|(id, w)| {
                !records.contains_key(*id) || w.pidfd.as_ref().is_some_and(|fd| sys::pidfd_exited(fd.as_fd()))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(w) = self.watched.remove(&id) {
                self.unwatch(&w);
            }
        }
        for (id, rec) in records {
            if self.watched.contains_key(&id) || self.dropped_stale.contains(&id) {
                continue;
            }
            match open_process(&rec) {
                Ok(pidfd) => {
                    let mut w = Watched {
                        rec,
                        pidfd,
                        seal: None,
                        signers: Vec::new(),
                        signer_keyids: Vec::new(),
                        sig_memo: None,
                        exclusions: None,
                        watches: Vec::new(),
                        due: Instant::now(),
                        last_scan: None,
                        outcome: Outcome::Pending,
                        drift: Vec::new(),
                        reported: None,
                        last_error: None,
                        action_taken: None,
                        cache: None,
                        last_full: Instant::now(),
                        since: Instant::now(),
                        replaced: None,
                        full_scans: 0,
                        gate_reported: None,
                        protect_mode: crate::policy::Prevent::Off,
                        protection: None,
                        protect_error: None,
                    };
                    self.add_watches(&id, &mut w);
                    self.watched.insert(id, w);
                }
                Err(why) => {
                    // Never watched, never acted on: the pid is gone or belongs to another
                    // process now.
                    tracing::warn!("not watching container {}: {why}", crate::alerts::short_id(&rec.id));
                    self.dropped_stale.insert(id);
                }
            }
        }
    }

    fn unwatch(&mut self, w: &Watched) {
        if let (Some(Ok(p)), Some(a)) = (&self.prevention, &w.protection) {
            p.detach(a);
            let st = a.status();
            for (t, n) in self.stats.execs_retired.iter_mut().zip([st.allowed, st.audited, st.denied]) {
                *t += n;
            }
        }
        if let Some(ino) = &self.inotify {
            for wd in &w.watches {
                // The kernel gives one descriptor per directory: containers sharing an image
                // layer share it, so it goes only with its last user.
                let users = self.wd_users.entry(*wd).or_insert(1);
                *users -= 1;
                if *users == 0 {
                    self.wd_users.remove(wd);
                    let _ = ino.rm_watch(*wd);
                    self.wds.remove(wd);
                }
            }
        }
    }

    fn add_watches(&mut self, id: &str, w: &mut Watched) {
        let Some(ino) = &self.inotify else { return };
        let flags = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_DONT_FOLLOW
            | AddWatchFlags::IN_ONLYDIR;
        for root in backing_dirs(&w.rec.rootfs) {
            let mut stack = vec![(root, 0u32)];
            while let Some((d, depth)) = stack.pop() {
                if self.wds.len() >= self.cfg.monitor.max_watches {
                    self.watch_limited = true;
                    return;
                }
                match ino.add_watch(&d, flags) {
                    Ok(wd) => {
                        // A shared directory wakes every container that uses it.
                        let key = self.wds.entry(wd).or_default();
                        if !key.split('\n').any(|x| x == id) {
                            if !key.is_empty() {
                                key.push('\n');
                            }
                            key.push_str(id);
                        }
                        *self.wd_users.entry(wd).or_insert(0) += 1;
                        w.watches.push(wd);
                    }
                    Err(e) => {
                        if !self.watch_limited {
                            tracing::warn!(
                                "cannot watch {}: {e}; scanning on the interval only past this point",
                                d.display()
                            );
                        }
                        self.watch_limited = true;
                        return;
                    }
                }
                if depth >= self.cfg.limits.max_depth {
                    continue;
                }
                if let Ok(rd) = std::fs::read_dir(&d) {
                    for e in rd.flatten() {
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            stack.push((e.path(), depth + 1));
                        }
                    }
                }
            }
        }
    }

    /// Drains inotify: containers with activity become due shortly (debounced).
    fn on_inotify(&mut self) {
        let Some(ino) = &self.inotify else { return };
        let mut touched = BTreeSet::new();
        while let Ok(events) = ino.read_events() {
            if events.is_empty() {
                break;
            }
            for e in events {
                if e.mask.contains(nix::sys::inotify::AddWatchFlags::IN_Q_OVERFLOW) {
                    // Events were lost: every container is due.
                    touched.extend(self.watched.keys().cloned());
                }
                if let Some(ids) = self.wds.get(&e.wd) {
                    touched.extend(ids.split('\n').map(str::to_string));
                }
            }
        }
        let soon = Instant::now() + Duration::from_millis(250);
        for id in touched {
            if let Some(w) = self.watched.get_mut(&id) {
                if w.due > soon {
                    w.due = soon;
                }
            }
        }
    }

    /// Step 4 for every due container (all of them with `all`). Returns events raised.
    pub fn scan_due(&mut self, all: bool) -> Vec<Event> {
        let now = Instant::now();
        let ids: Vec<String> =
            self.watched.iter().filter(|(_, w)| all || w.due <= now).map(|(id, _)| id.clone()).collect();
        let mut events = Vec::new();
        for id in ids {
            let ev = self.scan_one(&id);
            // Drift prevention follows the scan: attached once the container runs in its root,
            // new mounts marked, the mode and seal kept current (src/monitor/protect.rs).
            if self.protecting {
                self.protect(&id);
            }
            // A cycle over many containers must not look like a hang to systemd.
            if watchdog_interval().is_some() {
                sd_notify("WATCHDOG=1");
            }
            if let Some(w) = self.watched.get_mut(&id) {
                // A container caught before it entered its root is looked at again soon.
                let wait = if w.outcome == Outcome::Pending {
                    Duration::from_millis(250)
                } else {
                    self.cfg.monitor.interval()
                };
                w.due = Instant::now() + wait;
            }
            for e in ev {
                let errors = alerts::emit(&self.cfg.alerts, &e);
                if self.console || errors.iter().any(|e| matches!(e, alerts::AlertError::Syslog { .. })) {
                    // The event echo has a format of its own (console_line), not a log line.
                    eprintln!("{}", console_line(&e));
                }
                for err in errors {
                    tracing::warn!("alert not delivered: {err}");
                }
                events.push(e);
            }
        }
        events
    }

    fn next_due(&self) -> Duration {
        let now = Instant::now();
        self.watched.values().map(|w| w.due.saturating_duration_since(now)).min().unwrap_or(self.cfg.monitor.interval())
    }

    pub fn drifted(&self) -> usize {
        self.watched.values().filter(|w| w.outcome == Outcome::Drift).count()
    }

    pub fn failed(&self) -> usize {
        self.watched.values().filter(|w| w.outcome == Outcome::Failed).count()
    }

    pub fn watched(&self) -> usize {
        self.watched.len()
    }
}

/// Opens the record's process as a pidfd and checks it is the same process (start time).
fn open_process(rec: &Record) -> Result<Option<OwnedFd>, WatchError> {
    let Some(pid) = rec.pid.filter(|p| *p > 0) else {
        return Err(WatchError::NoPid);
    };
    let fd = sys::pidfd_open(pid).map_err(|error| WatchError::Gone { pid, error })?;
    // The pidfd pins the process: if the start time read now matches the record, the pidfd is
    // that process; if the pid was reused, the start time differs.
    match (rec.pid_start_time, state::pid_start_time(pid)) {
        (Some(want), Some(have)) if want == have => Ok(Some(fd)),
        (Some(_), None) => Err(WatchError::Exited { pid }),
        (Some(_), _) => Err(WatchError::Reused { pid }),
        (None, _) => Err(WatchError::NoStartTime { pid }),
    }
}

/// The directories whose changes change a rootfs: an overlay's upper and lower directories,
/// else the rootfs itself.
fn backing_dirs(rootfs: &Path) -> Vec<PathBuf> {
    use crate::node::mountinfo;
    let mounts = mountinfo::read().unwrap_or_default();
    if let Some(m) = mounts.iter().find(|m| m.mount_point == rootfs) {
        if m.fstype == "overlay" {
            let mut dirs = Vec::new();
            for (k, v) in m.super_option_pairs() {
                match k {
                    "upperdir" => dirs.push(mountinfo::path(v)),
                    "lowerdir" => dirs.extend(v.split(':').map(mountinfo::path)),
                    _ => {}
                }
            }
            if !dirs.is_empty() {
                return dirs;
            }
        }
    }
    vec![rootfs.to_path_buf()]
}

/// `rootseal monitor [--once]`. Returns the exit code: with --once, 0 clean, 1 drift found (or
/// the scan gate refused a container), 2 a scan failed; as a daemon, 0 after SIGTERM.
pub fn run(cfg: Config, config_path: Option<PathBuf>, once: bool) -> Result<u8, MonitorError> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGHUP, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block().map_err(MonitorError::Signals)?;
    let sigfd =
        SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(MonitorError::Signals)?;
    let mut m = Monitor::new(cfg, config_path);
    if once {
        // One scan, printed: the daemon's status and metrics files are left alone, and no
        // exec is judged (prevention lives as long as the daemon).
        m.protecting = false;
        m.refresh();
        m.scan_due(true);
        for w in m.watched.values() {
            let what = match w.outcome {
                Outcome::Clean => "clean".to_string(),
                Outcome::Drift => format!(
                    "drift: {}",
                    w.replaced
                        .iter()
                        .cloned()
                        .chain(w.drift.iter().take(5).map(|d| d.to_string()))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                Outcome::Failed => format!("scan failed: {}", w.last_error.as_deref().unwrap_or("?")),
                Outcome::Pending => "not scanned".into(),
            };
            // The scan gate's refusal is a finding too (src/monitor/gate.rs).
            let what = match (&w.gate_reported, &w.outcome) {
                (Some(g), Outcome::Clean) => format!("scan gate: {g}"),
                (Some(g), _) => format!("{what}; scan gate: {g}"),
                (None, _) => what,
            };
            println!("{}\t{what}", crate::alerts::short_id(&w.rec.id));
        }
        let gated = m.watched.values().filter(|w| w.gate_reported.is_some()).count();
        println!(
            "{} container(s) watched, {} drifted, {} scan failure(s), {} failing the scan gate",
            m.watched(),
            m.drifted(),
            m.failed(),
            gated
        );
        return Ok(if m.failed() > 0 {
            2
        } else if m.drifted() > 0 || gated > 0 {
            1
        } else {
            0
        });
    }
    m.refresh();
    // In a terminal, or where syslog cannot be reached, say that it runs and print each event:
    // a monitor started by hand must not be silent (under systemd with syslog, the journal has it).
    let syslog_ok = !m.cfg.alerts.syslog_socket.as_os_str().is_empty()
        && std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.connect(&m.cfg.alerts.syslog_socket)).is_ok();
    m.console = std::io::IsTerminal::is_terminal(&std::io::stderr()) || !syslog_ok;
    tracing::info!(
        "started (pid {}, config {}, {} mode, interval {}, full re-hash {}): watching {} container(s); events to {}{}",
        std::process::id(),
        m.config_path.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in defaults".into()),
        m.cfg.mode,
        m.cfg.monitor.interval,
        m.cfg.monitor.full_rehash().map(|d| humantime::format_duration(d).to_string()).unwrap_or_else(|| "off".into()),
        m.watched(),
        if m.cfg.alerts.events_file.as_os_str().is_empty() {
            "no events file".to_string()
        } else {
            m.cfg.alerts.events_file.display().to_string()
        },
        if syslog_ok {
            format!(" and syslog {}", m.cfg.alerts.syslog_socket.display())
        } else {
            ", and here (syslog unreachable)".to_string()
        },
    );
    sd_notify("READY=1");
    loop {
        m.refresh();
        m.scan_due(false);
        m.write_outputs();
        sd_notify(&format!("WATCHDOG=1\nSTATUS=watching {} container(s), {} drifted", m.watched(), m.drifted()));
        let mut timeout = m.next_due().max(Duration::from_millis(50));
        if let Some(w) = watchdog_interval() {
            timeout = timeout.min(w);
        }
        // Records appear and vanish as containers start and stop: look at least every second.
        timeout = timeout.min(Duration::from_secs(1));
        let mut fds = vec![libc::pollfd { fd: sigfd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        if let Some(i) = &m.inotify {
            fds.push(libc::pollfd { fd: i.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 });
        }
        let _ = crate::sys::poll(&mut fds, timeout);
        if fds.get(1).is_some_and(|f| f.revents & libc::POLLIN != 0) {
            m.on_inotify();
        }
        while let Ok(Some(sig)) = sigfd.read_signal() {
            match sig.ssi_signo as i32 {
                libc::SIGHUP => {
                    sd_notify("RELOADING=1");
                    m.reload();
                    sd_notify("READY=1");
                }
                _ => {
                    sd_notify("STOPPING=1");
                    m.write_outputs();
                    return Ok(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_never_taken_for_the_container() {
        let me = std::process::id() as i32;
        let mut rec = Record {
            version: 1,
            id: "c".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            image: None,
            seal_digest: None,
            seal_path: None,
            pid: Some(me),
            pid_start_time: state::pid_start_time(me),
            verdict: "verified".into(),
            mode: "enforce".into(),
            time: "t".into(),
            mount_destinations: None,
            manager: None,
            root: None,
            pod: None,
        };
        assert!(open_process(&rec).unwrap().is_some());
        rec.pid_start_time = rec.pid_start_time.map(|t| t + 1);
        assert!(open_process(&rec).unwrap_err().to_string().contains("another process"));
        rec.pid = Some(i32::MAX - 1);
        assert!(open_process(&rec).unwrap_err().to_string().contains("gone"));
    }

    #[test]
    fn full_rehash_is_off_at_zero_and_bounded_otherwise() {
        // Through the real load path: an unparseable value fails there, a bad range at validation.
        let with = |v: &str| {
            crate::config::Config::parse(&format!("[monitor]\nfull_rehash = {v:?}"), std::path::Path::new("c.toml"))
                .map(|c| c.monitor.full_rehash())
                .map_err(|e| e.to_string())
        };
        assert_eq!(with("0"), Ok(None));
        assert_eq!(with("0s"), Ok(None));
        assert_eq!(with("1h"), Ok(Some(Duration::from_secs(3600))));
        assert_eq!(MonitorSettings::default().full_rehash(), Some(Duration::from_secs(3600)));
        for bad in ["500ms", "31days", "soon", ""] {
            assert!(with(bad).unwrap_err().contains("full_rehash"), "{bad:?}");
        }
    }

    #[test]
    fn a_plain_directory_backs_itself() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(backing_dirs(t.path()), vec![t.path().to_path_buf()]);
    }
}
