//! Alerts: every block, audit-mode violation and exemption goes to a JSON-lines events file and
//! to syslog (RFC 5424 with structured data). The event schema is in docs/events.md and is
//! shared with the drift monitor.
//!
//! Sinks never stall the caller: syslog datagrams are sent non-blocking (a full or missing
//! socket drops the message and says so on stderr), the events file is one append per event.

use crate::config::{Alerts, Mode};
use serde::Serialize;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use syslog::{Facility, Formatter5424, LogFormat};

/// The structured-data id: RFC 5612's documentation enterprise number until one is assigned.
pub const SD_ID: &str = "rootseal@32473";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub bundle: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The Kubernetes pod, for a container of containerd's CRI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<crate::node::pod::PodInfo>,
}

/// The process an event is about (drift prevention: the one that called execve).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProcessInfo {
    /// As the host numbers it.
    pub pid: i32,
    /// `/proc/PID/comm`: the program name before the exec.
    pub comm: String,
    /// `/proc/PID/exe`: the program before the exec, as the host's mount namespace names it.
    pub exe: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SealInfo {
    pub digest: String,
    pub name: String,
    pub signers: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PathChange {
    pub path: String,
    pub changes: Vec<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ViolationRecord {
    pub code: crate::verify::Code,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathChange>,
    /// How many differing paths there were in all (paths lists at most 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_paths: Option<usize>,
}

/// What an event reports (docs/events.md); the serde names are the events' `event` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Blocked,
    Audit,
    Exempted,
    Verified,
    Drift,
    Recovered,
    ScanFailed,
    /// A running container's scan passed `max_age` (the scan gate, docs/scan.md).
    ScanExpired,
    /// A running container's newest scan reports findings over the threshold.
    ScanFindings,
    /// `rootseal sync` stored new seals of an image.
    SealSynced,
    /// `rootseal sync` could not fetch an image's seals.
    SyncFailed,
    /// Drift prevention refused an exec of a file not in the container's seal (enforce).
    ExecBlocked,
    /// Drift prevention let such an exec run (audit).
    ExecAudit,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Blocked => "blocked",
            EventKind::Audit => "audit",
            EventKind::Exempted => "exempted",
            EventKind::Verified => "verified",
            EventKind::Drift => "drift",
            EventKind::Recovered => "recovered",
            EventKind::ScanFailed => "scan-failed",
            EventKind::ScanExpired => "scan-expired",
            EventKind::ScanFindings => "scan-findings",
            EventKind::SealSynced => "seal-synced",
            EventKind::SyncFailed => "sync-failed",
            EventKind::ExecBlocked => "exec-blocked",
            EventKind::ExecAudit => "exec-audit",
        }
    }

    /// The RFC 5424 MSGID number the syslog sink sends.
    fn msgid(self) -> u32 {
        match self {
            EventKind::Blocked => 1,
            EventKind::Audit => 2,
            EventKind::Exempted => 3,
            EventKind::Drift => 4,
            EventKind::Recovered => 5,
            EventKind::ScanFailed => 6,
            EventKind::SealSynced => 7,
            EventKind::ScanExpired => 9,
            EventKind::ScanFindings => 10,
            EventKind::SyncFailed => 8,
            EventKind::ExecBlocked => 11,
            EventKind::ExecAudit => 12,
            EventKind::Verified => 0,
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent an event is, in syslog's words (the events' `severity` strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Err,
    Warning,
    Notice,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Err => "err",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
        }
    }
}

/// Who raised an event (the events' `source` strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Hook,
    Check,
    Monitor,
    Sync,
}

/// One event (docs/events.md).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub time: String,
    pub host: String,
    pub source: Source,
    pub event: EventKind,
    pub severity: Severity,
    pub mode: Mode,
    /// The container (None for node-wide events: the sync's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seal: Option<SealInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<ViolationRecord>,
    /// The one-line summary an operator reads first.
    pub message: String,
    /// What the monitor did about it (kill, freeze), when it did something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// How long the hook took to decide, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub elapsed_ms: Option<u64>,
    /// What a rule allowed that policy would otherwise refuse, with the rule's reason.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub allowances: Vec<String>,
    /// The process that acted (drift prevention's events).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub process: Option<ProcessInfo>,
}

impl Event {
    pub fn now_string() -> String {
        humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
    }

    fn syslog_severity(&self) -> syslog::Severity {
        match self.severity {
            Severity::Err => syslog::Severity::LOG_ERR,
            Severity::Warning => syslog::Severity::LOG_WARNING,
            Severity::Notice => syslog::Severity::LOG_NOTICE,
            Severity::Info => syslog::Severity::LOG_INFO,
        }
    }

    fn msgid(&self) -> u32 {
        self.event.msgid()
    }
}

/// A container id for messages: at most 12 characters, never a control character.
pub fn short_id(id: &str) -> String {
    let shown = crate::manifest::display_path(id.as_bytes());
    if shown.chars().count() > 12 {
        format!("{}..", shown.chars().take(12).collect::<String>())
    } else {
        shown
    }
}

pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("cannot append to events file {}: {source}", path.display())]
    Events { path: PathBuf, source: std::io::Error },
    #[error("cannot send to syslog socket {}: {source}", path.display())]
    Syslog { path: PathBuf, source: std::io::Error },
}

/// Sends one event to every configured sink. Returns the sink errors (never stops early).
pub fn emit(alerts: &Alerts, event: &Event) -> Vec<AlertError> {
    let mut errors = Vec::new();
    if !alerts.events_file.as_os_str().is_empty() {
        if let Err(source) = append_event(&alerts.events_file, event) {
            errors.push(AlertError::Events { path: alerts.events_file.clone(), source });
        }
    }
    if !alerts.syslog_socket.as_os_str().is_empty() {
        if let Err(source) = send_syslog(&alerts.syslog_socket, event) {
            errors.push(AlertError::Syslog { path: alerts.syslog_socket.clone(), source });
        }
    }
    errors
}

fn append_event(path: &Path, event: &Event) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o750).create(dir)?;
    }
    let mut line = serde_json::to_vec(event).expect("event serialises");
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // One write: appends of one line are not interleaved with other writers' lines.
    f.write_all(&line)
}

/// Formats the event as RFC 5424 (syslog crate) with structured data.
pub fn syslog_line(event: &Event) -> Vec<u8> {
    let fmt = Formatter5424 {
        facility: Facility::LOG_AUTH,
        hostname: Some(event.host.clone()),
        process: "rootseal".into(),
        pid: std::process::id(),
    };
    let mut params = std::collections::BTreeMap::new();
    params.insert("event".to_string(), event.event.to_string());
    params.insert("mode".to_string(), event.mode.to_string());
    if let Some(c) = &event.container {
        params.insert("container".to_string(), c.id.clone());
        if let Some(p) = &c.pod {
            params.insert("pod".to_string(), p.to_string());
        }
    }
    if let Some(i) = &event.image {
        params.insert("image".to_string(), i.clone());
    }
    if let Some(s) = &event.seal {
        params.insert("digest".to_string(), s.digest.clone());
    }
    if let Some(v) = event.violations.first() {
        params.insert("reason".to_string(), v.code.to_string());
    }
    if let Some(e) = &event.exemption {
        params.insert("exemption".to_string(), e.clone());
    }
    if let Some(a) = &event.action {
        params.insert("action".to_string(), a.split(':').next().unwrap_or(a).to_string());
    }
    let data = std::collections::BTreeMap::from([(SD_ID.to_string(), params)]);
    let mut out = Vec::new();
    let _ = fmt.format(&mut out, event.syslog_severity(), (event.msgid(), data, &event.message));
    out
}

fn send_syslog(path: &Path, event: &Event) -> std::io::Result<()> {
    let msg = syslog_line(event);
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    match sock.send_to(&msg, path) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
            // A stream socket: octet-counted framing (RFC 6587), bounded in time.
            let mut s = std::os::unix::net::UnixStream::connect(path)?;
            s.set_write_timeout(Some(std::time::Duration::from_millis(200)))?;
            let mut framed = format!("{} ", msg.len()).into_bytes();
            framed.extend_from_slice(&msg);
            s.write_all(&framed)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events stay byte-compatible: the enums serialise as the documented strings.
    #[test]
    fn event_kinds_severities_and_sources_keep_their_strings() {
        use EventKind::*;
        for k in [
            Blocked,
            Audit,
            Exempted,
            Verified,
            Drift,
            Recovered,
            ScanFailed,
            SealSynced,
            SyncFailed,
            ScanExpired,
            ScanFindings,
            ExecBlocked,
            ExecAudit,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for s in [Severity::Err, Severity::Warning, Severity::Notice, Severity::Info] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(
            serde_json::to_value([Source::Hook, Source::Check, Source::Monitor, Source::Sync]).unwrap(),
            serde_json::json!(["hook", "check", "monitor", "sync"])
        );
    }

    fn event() -> Event {
        Event {
            time: Event::now_string(),
            host: "node1".into(),
            source: Source::Hook,
            event: EventKind::Blocked,
            severity: Severity::Err,
            mode: Mode::Enforce,
            container: Some(ContainerInfo {
                id: "abc".into(),
                bundle: "/b".into(),
                rootfs: None,
                pid: None,
                pod: None,
            }),
            stage: Some("prestart".into()),
            image: Some("app:1".into()),
            seal: None,
            rule: None,
            exemption: None,
            violations: vec![ViolationRecord {
                code: crate::verify::Code::Tampered,
                message: "m".into(),
                paths: vec![],
                total_paths: None,
            }],
            message: "rootseal: blocked container abc: \"quoted\" ]".into(),
            action: None,
            allowances: Vec::new(),
            process: None,
            elapsed_ms: None,
        }
    }

    #[test]
    fn both_sinks_receive_the_event() {
        let t = tempfile::tempdir().unwrap();
        let sock_path = t.path().join("log.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
        let alerts = Alerts {
            syslog_socket: sock_path,
            events_file: t.path().join("ev/events.jsonl"),
            verified: false,
            verified_sample: 1,
        };
        assert!(emit(&alerts, &event()).is_empty());
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).unwrap();
        let line = String::from_utf8_lossy(&buf[..n]);
        assert!(line.starts_with("<35>1 "), "{line}"); // auth.err
        assert!(line.contains("[rootseal@32473 container=\"abc\" event=\"blocked\" image=\"app:1\" mode=\"enforce\" reason=\"tampered\"]"), "{line}");
        let ev = std::fs::read_to_string(t.path().join("ev/events.jsonl")).unwrap();
        let v: serde_json::Value = serde_json::from_str(ev.trim()).unwrap();
        assert_eq!(v["event"], "blocked");
        assert_eq!(v["container"]["id"], "abc");
    }

    #[test]
    fn a_cri_containers_pod_is_in_the_event_and_the_syslog_line() {
        let mut e = event();
        e.container.as_mut().unwrap().pod = Some(crate::node::pod::PodInfo {
            name: "web-0".into(),
            namespace: "shop".into(),
            uid: None,
            container: Some("app".into()),
            sandbox: false,
        });
        let line = String::from_utf8_lossy(&syslog_line(&e)).into_owned();
        assert!(line.contains(" mode=\"enforce\" pod=\"shop/web-0/app\" reason="), "{line}");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v["container"]["pod"],
            serde_json::json!({"name": "web-0", "namespace": "shop", "container": "app", "sandbox": false})
        );
    }

    #[test]
    fn a_missing_or_full_syslog_socket_never_blocks() {
        let t = tempfile::tempdir().unwrap();
        let alerts = Alerts {
            syslog_socket: t.path().join("none.sock"),
            events_file: PathBuf::new(),
            verified: false,
            verified_sample: 1,
        };
        assert_eq!(emit(&alerts, &event()).len(), 1);
        // A bound socket nobody reads: fill its queue, then one more must return at once.
        let p = t.path().join("full.sock");
        let _sock = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
        let alerts = Alerts { syslog_socket: p, events_file: PathBuf::new(), verified: false, verified_sample: 1 };
        let start = std::time::Instant::now();
        let mut failures = 0;
        for _ in 0..2000 {
            failures += emit(&alerts, &event()).len();
        }
        assert!(failures > 0, "the queue should have filled");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }
}
