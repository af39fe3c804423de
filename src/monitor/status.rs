//! What the monitor tells people: the status file (`rootseal status`), the Prometheus
//! textfile, one console line per event, whether a status file is stale, and systemd
//! (sd_notify).

use super::*;

/// The status file `rootseal status` reads: `<state_dir>/monitor/status.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub updated: String,
    pub pid: u32,
    pub interval: String,
    pub watch_limited: bool,
    pub containers: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub id: String,
    /// The Kubernetes pod, for a container of containerd's CRI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<crate::node::pod::PodInfo>,
    pub image: Option<String>,
    pub seal_digest: Option<String>,
    pub rootfs: String,
    pub last_scan: Option<String>,
    pub result: Outcome,
    pub drift_paths: Vec<String>,
    pub drift_count: usize,
    pub error: Option<String>,
    pub action: Option<String>,
    pub notifications: bool,
    /// Scans of this container that re-hashed every file (`[monitor] full_rehash`).
    #[serde(default)]
    pub full_scans: u64,
    /// Why its root is not the directory the hook verified (`rootfs-replaced`), if so.
    #[serde(default)]
    pub rootfs_replaced: Option<String>,
    /// Drift prevention for it (absent when off).
    #[serde(default)]
    pub prevention: Option<super::prevent::PreventionStatus>,
}

pub fn status_path(state_dir: &Path) -> PathBuf {
    state_dir.join("monitor/status.json")
}

impl Monitor {
    /// Step 5.
    pub fn write_outputs(&self) {
        let status = Status {
            updated: Event::now_string(),
            pid: std::process::id(),
            interval: self.cfg.monitor.interval.to_string(),
            watch_limited: self.watch_limited,
            containers: self
                .watched
                .values()
                .map(|w| ContainerStatus {
                    id: w.rec.id.clone(),
                    pod: w.rec.pod.clone(),
                    image: w.rec.image.clone(),
                    seal_digest: w.rec.seal_digest.clone(),
                    rootfs: w.rec.rootfs.display().to_string(),
                    last_scan: w.last_scan.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
                    result: w.outcome.clone(),
                    drift_paths: w.drift.iter().take(20).map(|d| d.to_string()).collect(),
                    drift_count: w.drift.len(),
                    error: w.last_error.clone(),
                    action: w.action_taken.clone(),
                    notifications: !w.watches.is_empty(),
                    full_scans: w.full_scans,
                    rootfs_replaced: w.replaced.clone(),
                    prevention: self.prevention_status(w),
                })
                .collect(),
        };
        let path = status_path(&self.cfg.state_dir);
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let mut bytes = serde_json::to_vec_pretty(&status).expect("serialises");
        bytes.push(b'\n');
        if let Err(e) = crate::atomic::write(&path, &bytes, 0o644) {
            tracing::warn!("cannot write status: {e}");
        }
        if !self.cfg.monitor.metrics_file.as_os_str().is_empty() {
            let drifted = self.watched.values().filter(|w| w.outcome == Outcome::Drift).count();
            let s = &self.stats;
            let text = format!(
                "# HELP rootseal_monitor_containers Containers being watched.\n# TYPE rootseal_monitor_containers gauge\nrootseal_monitor_containers {}\n\
                 # HELP rootseal_monitor_containers_drifted Watched containers whose rootfs differs from its seal.\n# TYPE rootseal_monitor_containers_drifted gauge\nrootseal_monitor_containers_drifted {drifted}\n\
                 # HELP rootseal_monitor_scans_total Container scans completed or failed.\n# TYPE rootseal_monitor_scans_total counter\nrootseal_monitor_scans_total {}\n\
                 # HELP rootseal_monitor_scan_failures_total Scans that could not complete.\n# TYPE rootseal_monitor_scan_failures_total counter\nrootseal_monitor_scan_failures_total {}\n\
                 # HELP rootseal_monitor_drift_detected_total Drift events raised.\n# TYPE rootseal_monitor_drift_detected_total counter\nrootseal_monitor_drift_detected_total {}\n\
                 # HELP rootseal_monitor_scan_duration_seconds Wall time of container scans.\n# TYPE rootseal_monitor_scan_duration_seconds summary\nrootseal_monitor_scan_duration_seconds_sum {:.6}\nrootseal_monitor_scan_duration_seconds_count {}\n\
                 # HELP rootseal_monitor_last_scan_duration_seconds Wall time of the latest scan.\n# TYPE rootseal_monitor_last_scan_duration_seconds gauge\nrootseal_monitor_last_scan_duration_seconds {:.6}\n\
                 # HELP rootseal_monitor_scan_cpu_seconds_total CPU time spent scanning.\n# TYPE rootseal_monitor_scan_cpu_seconds_total counter\nrootseal_monitor_scan_cpu_seconds_total {:.6}\n",
                self.watched.len(),
                s.scans,
                s.failures,
                s.drift_events,
                s.duration_sum,
                s.scans,
                s.last_duration,
                s.cpu_sum
            );
            // Drift prevention: containers judged now, and every verdict since the start.
            let mut execs = s.execs_retired;
            let mut protected = 0;
            for st in self.watched.values().filter_map(|w| w.protection.as_ref()).map(|a| a.status()) {
                protected += usize::from(st.active);
                for (t, n) in execs.iter_mut().zip([st.allowed, st.audited, st.denied]) {
                    *t += n;
                }
            }
            let text = format!(
                "{text}# HELP rootseal_monitor_prevention_containers Containers whose execs drift prevention judges.\n# TYPE rootseal_monitor_prevention_containers gauge\nrootseal_monitor_prevention_containers {protected}\n\
                 # HELP rootseal_monitor_execs_total Execs in protected containers, by verdict.\n# TYPE rootseal_monitor_execs_total counter\n\
                 rootseal_monitor_execs_total{{verdict=\"allowed\"}} {}\nrootseal_monitor_execs_total{{verdict=\"audited\"}} {}\nrootseal_monitor_execs_total{{verdict=\"denied\"}} {}\n",
                execs[0], execs[1], execs[2]
            );
            if let Err(e) = crate::atomic::write(&self.cfg.monitor.metrics_file, text.as_bytes(), 0o644) {
                tracing::warn!("cannot write metrics: {e}");
            }
        }
    }
}

/// One line per event for a person watching the monitor in a terminal (or a supervisor's log
/// without syslog), as Falco prints its alerts: time, severity, what, which container.
pub fn console_line(e: &Event) -> String {
    let paths: Vec<&str> =
        e.violations.iter().flat_map(|v| v.paths.iter().map(|p| p.detail.as_str())).take(3).collect();
    let detail = if paths.is_empty() {
        e.violations.first().map(|v| v.message.clone()).unwrap_or_else(|| e.message.clone())
    } else {
        paths.join("; ")
    };
    let action = e.action.as_ref().map(|a| format!(" [{a}]")).unwrap_or_default();
    let pod = e.container.as_ref().and_then(|c| c.pod.as_ref()).map(|p| format!(" pod {p}")).unwrap_or_default();
    format!(
        "{} {} {} container {}{pod} ({}): {detail}{action}",
        e.time,
        e.severity.as_str().to_uppercase(),
        e.event,
        crate::alerts::short_id(e.container.as_ref().map(|c| c.id.as_str()).unwrap_or("-")),
        e.image.as_deref().unwrap_or("no image name")
    )
}

/// Why a status file no longer describes a running monitor, if it does not: its process is gone
/// (or is not a rootseal monitor), or it was not updated for two intervals (plus 5 s of slack).
pub fn stale(st: &Status, now: SystemTime) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{}/cmdline", st.pid)).unwrap_or_default();
    if !comm.split('\0').any(|a| a == "monitor") {
        return Some(format!("monitor pid {} is not running", st.pid));
    }
    let interval = humantime::parse_duration(&st.interval).unwrap_or(Duration::from_secs(60));
    let age = humantime::parse_rfc3339_weak(&st.updated).ok().and_then(|t| now.duration_since(t).ok());
    match age {
        Some(a) if a <= interval * 2 + Duration::from_secs(5) => None,
        Some(a) => Some(format!(
            "the status was last updated {}s ago, more than two intervals ({}): pid {} is alive but stuck",
            a.as_secs(),
            st.interval,
            st.pid
        )),
        None => Some(format!("the status's time {:?} cannot be read", st.updated)),
    }
}

/// `rootseal status [--json]`: what the monitor last wrote.
pub fn status(state_dir: &Path) -> Result<Status, MonitorError> {
    let path = status_path(state_dir);
    let bytes = std::fs::read(&path).map_err(|e| MonitorError::Status { path: path.clone(), what: e.to_string() })?;
    serde_json::from_slice(&bytes).map_err(|e| MonitorError::Status { path, what: e.to_string() })
}

/// sd_notify(3): one datagram to $NOTIFY_SOCKET, when systemd gave one.
pub fn sd_notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else { return };
    let _ = sock.set_nonblocking(true);
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(name) {
            let _ = sock.send_to_addr(state.as_bytes(), &addr);
        }
    } else {
        let _ = sock.send_to(state.as_bytes(), Path::new(&path));
    }
}

/// The watchdog interval systemd asked for, if any.
pub(super) fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    Some(Duration::from_micros(usec / 2))
}
