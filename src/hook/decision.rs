//! What the hook decided: the stages it runs at, the violations, and the decision with
//! everything an alert, the summary line and the state record need.

use super::*;

/// The OCI hook stages (runtime-spec config.md#posix-platform-hooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Stage {
    pub fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "prestart" => Stage::Prestart,
            "createRuntime" => Stage::CreateRuntime,
            "createContainer" => Stage::CreateContainer,
            "startContainer" => Stage::StartContainer,
            "poststart" => Stage::Poststart,
            "poststop" => Stage::Poststop,
            _ => return None,
        })
    }

    /// The stage implied by the state's status: runc reports `creating` at prestart and
    /// createRuntime, crun `created`; `running` at poststart, `stopped` at poststop.
    pub fn from_status(status: &str) -> Option<Stage> {
        match status {
            "creating" | "created" => Some(Stage::Prestart),
            "running" => Some(Stage::Poststart),
            "stopped" => Some(Stage::Poststop),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Prestart => "prestart",
            Stage::CreateRuntime => "createRuntime",
            Stage::CreateContainer => "createContainer",
            Stage::StartContainer => "startContainer",
            Stage::Poststart => "poststart",
            Stage::Poststop => "poststop",
        }
    }

    /// prestart and createRuntime run in the runtime's namespace before pivot_root, where the
    /// rootfs and its mount points are visible as the seal describes them. createContainer runs
    /// in the container's mount namespace after the mounts are made, so it does not verify.
    pub(super) fn verifies(self) -> bool {
        matches!(self, Stage::Prestart | Stage::CreateRuntime)
    }
}

/// One reason not to run the container.
#[derive(Debug, Clone)]
pub struct Violation {
    pub code: Code,
    pub message: String,
    pub diffs: Vec<Difference>,
    /// The validly signed seal the rootfs was compared with, for a `tampered` violation.
    pub seal: Option<(SealInfo, PathBuf)>,
}

impl From<judge::Refusal> for Violation {
    fn from(r: judge::Refusal) -> Violation {
        Violation::new(r.code, r.message)
    }
}

impl Violation {
    pub(super) fn new(code: Code, message: impl Into<String>) -> Violation {
        Violation { code, message: message.into(), diffs: Vec::new(), seal: None }
    }
}

/// What the hook (or `check`) decided, with everything an alert needs.
#[derive(Debug, Clone)]
pub struct Decision {
    pub mode: Mode,
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: Option<PathBuf>,
    pub image: Option<String>,
    pub rule: Option<String>,
    pub exemption: Option<String>,
    pub seal: Option<SealInfo>,
    pub seal_path: Option<PathBuf>,
    /// The verified seal's (subject name, created) when a pass raises its rollback watermark.
    pub accepted: Option<(String, SystemTime)>,
    pub violations: Vec<Violation>,
    /// Problems that do not change the verdict (a cache that could not be written), printed
    /// after the reason line.
    pub warnings: Vec<String>,
    /// How a pass was reached without a walk (`verify = "layers"`), for the summary line.
    pub via: Option<String>,
    /// What policy allowed that it would otherwise refuse, with the rule's reason (logged in
    /// the event).
    pub allowances: Vec<String>,
    /// How long the decision took (the hook's start to its verdict).
    pub elapsed: Option<Duration>,
    /// config.json's mount destinations when the bundle was read: what was excluded.
    pub mount_destinations: Vec<PathBuf>,
    /// The `io.container.manager` annotation (runtime artifacts).
    pub manager: Option<String>,
    /// The rootfs directory that was walked (or whose layers were reused).
    pub root_identity: Option<state::RootIdentity>,
    /// The Kubernetes pod, for a container of containerd's CRI.
    pub pod: Option<crate::node::pod::PodInfo>,
}

impl Decision {
    pub(super) fn new(id: &str, bundle: &Path, mode: Mode) -> Decision {
        Decision {
            mode,
            id: id.into(),
            bundle: bundle.into(),
            rootfs: None,
            image: None,
            rule: None,
            exemption: None,
            seal: None,
            seal_path: None,
            accepted: None,
            violations: Vec::new(),
            warnings: Vec::new(),
            via: None,
            allowances: Vec::new(),
            elapsed: None,
            mount_destinations: Vec::new(),
            manager: None,
            root_identity: None,
            pod: None,
        }
    }

    /// Runs the container?
    pub fn allowed(&self) -> bool {
        self.violations.is_empty() || self.mode == Mode::Audit
    }

    /// The one line runc, containerd and podman show to the user.
    pub fn summary(&self) -> String {
        let id = short_id(&self.id);
        if let Some(e) = &self.exemption {
            return format!("rootseal: container {id} exempted by {e:?}, not verified");
        }
        let Some(first) = self.violations.first() else {
            let seal =
                self.seal.as_ref().map(|s| format!(" against seal {} ({})", s.digest, s.name)).unwrap_or_default();
            let via = self.via.as_ref().map(|v| format!(" ({v})")).unwrap_or_default();
            return format!("rootseal: verified container {id}{seal}{via}");
        };
        let more = match self.violations.len() {
            1 => String::new(),
            n => format!(" (+{} more violation{})", n - 1, if n > 2 { "s" } else { "" }),
        };
        let verb = if self.mode == Mode::Audit { "audit: would block" } else { "blocked" };
        format!("rootseal: {verb} container {id}: {}{more}", first.message)
    }

    /// The event for the alert sinks.
    pub fn event(&self, source: alerts::Source, stage: Option<Stage>, pid: Option<i32>) -> Event {
        use alerts::{EventKind, Severity};
        let (event, severity) = if self.exemption.is_some() {
            (EventKind::Exempted, Severity::Notice)
        } else if self.violations.is_empty() {
            (EventKind::Verified, Severity::Info)
        } else if self.mode == Mode::Audit {
            (EventKind::Audit, Severity::Warning)
        } else {
            (EventKind::Blocked, Severity::Err)
        };
        Event {
            time: Event::now_string(),
            host: alerts::hostname(),
            source,
            event,
            severity,
            mode: self.mode,
            container: Some(ContainerInfo {
                id: display_path(self.id.as_bytes()),
                bundle: self.bundle.display().to_string(),
                rootfs: self.rootfs.as_ref().map(|r| r.display().to_string()),
                pid,
                pod: self.pod.clone(),
            }),
            stage: stage.map(|s| s.name().to_string()),
            image: self.image.clone(),
            seal: self.seal.clone(),
            rule: self.rule.clone(),
            exemption: self.exemption.clone(),
            violations: self
                .violations
                .iter()
                .map(|v| ViolationRecord {
                    code: v.code,
                    message: v.message.clone(),
                    paths: v
                        .diffs
                        .iter()
                        .take(EVENT_PATHS)
                        .map(|d| PathChange {
                            path: display_path(&d.path),
                            changes: d.changes.iter().map(|c| c.class().to_string()).collect(),
                            detail: d.to_string(),
                        })
                        .collect(),
                    total_paths: (!v.diffs.is_empty()).then_some(v.diffs.len()),
                })
                .collect(),
            message: self.summary(),
            action: None,
            allowances: self.allowances.clone(),
            process: None,
            elapsed_ms: self.elapsed.map(|e| e.as_millis() as u64),
        }
    }
}
