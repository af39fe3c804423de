//! The node configuration file (TOML), documented key by key in docs/config.md.
//!
//! Where it comes from: `--config FILE`, else `$ROOTSEAL_CONFIG`, else
//! `/etc/rootseal/config.toml`. A missing default file means built-in defaults; a missing file
//! that was named explicitly is an error. Unknown keys are errors: a typo must not silently
//! turn a protection off.

use crate::policy::{Exemption, Rule};
use crate::readonly::ReadonlyPolicy;
use crate::walk::Limits;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::span::{Span, SpanError};

pub const DEFAULT_PATH: &str = "/etc/rootseal/config.toml";
pub const ENV_VAR: &str = "ROOTSEAL_CONFIG";
const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {}: {source}", path.display())]
    Read { path: PathBuf, source: crate::atomic::ReadError },
    #[error("config {}: {detail}", path.display())]
    Parse { path: PathBuf, detail: String },
    #[error("config {}: {what}", path.display())]
    Invalid { path: PathBuf, what: String },
    #[error("config {}: {key} must be an absolute path, got {value:?}", path.display())]
    Relative { path: PathBuf, key: &'static str, value: PathBuf },
    #[error("config {} is {problem}: whoever can write it chooses the mode and the trust store; run `{fix}`", path.display())]
    Unsafe { path: PathBuf, problem: String, fix: String },
}

/// The mode is the verdict layer's (src/verify/policy.rs); the config names it.
pub use crate::verify::policy::Mode;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub mode: Mode,
    pub trust_dir: PathBuf,
    pub seal_dir: PathBuf,
    pub state_dir: PathBuf,
    /// The verification cache (root-only).
    pub cache_dir: PathBuf,
    pub alerts: Alerts,
    pub limits: Limits,
    pub hook: HookSettings,
    pub readonly: ReadonlyPolicy,
    /// rootseal-runtime, the containerd wrapper.
    pub runtime: RuntimeSettings,
    /// The drift monitor.
    pub monitor: MonitorSettings,
    /// Where seals are pulled from (`rootseal pull`, `rootseal sync`).
    pub registry: RegistrySettings,
    /// The scan gate (docs/scan.md); a rule's `scan` replaces it for the rule's images.
    pub scan: crate::verify::gate::ScanPolicy,
    /// Per-image rules, first match wins.
    pub rules: Vec<Rule>,
    /// Exemptions; when the file has none, [`policy::default_exemptions`] apply.
    pub exempt: Option<Vec<Exemption>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// The real OCI runtime rootseal-runtime execs: a path, or a name looked up in $PATH.
    pub runtime: String,
    /// The rootseal binary the injected hooks run (default: `rootseal` beside rootseal-runtime,
    /// else /usr/bin/rootseal).
    pub hook_binary: Option<PathBuf>,
    /// "createRuntime" (default) or "prestart".
    pub hook_stage: String,
    /// Make every container's root read-only (instead of letting the hook block writable ones).
    pub make_readonly: bool,
    /// With make_readonly: tmpfs mounts added where the spec mounts nothing.
    pub readonly_tmpfs: Vec<String>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            runtime: "runc".into(),
            hook_binary: None,
            hook_stage: "createRuntime".into(),
            make_readonly: false,
            readonly_tmpfs: vec!["/tmp".into(), "/run".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookSettings {
    /// Wall-clock budget for the whole hook, e.g. "10s", "1500ms".
    pub deadline: Span,
    /// Distinct trusted signatures a seal needs (a rule may raise it).
    pub min_signers: usize,
    /// "cached" (default): files unchanged since they were hashed (same inode, size, mtime
    /// and ctime) are not read again; "full": every file is read on every check; "layers":
    /// as cached, and a new overlay rootfs over image layers verified within `layer_ttl` is
    /// not walked at all (src/node/layers.rs, docs/performance.md).
    pub verify: VerifyMode,
    /// How long a verified layer set is trusted without a walk in `verify = "layers"`.
    pub layer_ttl: Span,
    /// Refuse a seal older than the newest one accepted on this node for the same image
    /// repository (src/trust/rollback.rs); `rootseal rollback allow` makes a deliberate rollback.
    pub rollback_protection: bool,
    /// What one rollback watermark guards: "repository" (default: the signed name without its
    /// tag or digest, so an old tag cannot roll a repository back) or "name" (each tag apart).
    pub rollback_scope: crate::rollback::Scope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    #[default]
    Cached,
    Full,
    Layers,
}

impl VerifyMode {
    /// Reads unchanged files from the per-file cache (src/tree/cache.rs)?
    pub fn uses_cache(self) -> bool {
        self != VerifyMode::Full
    }
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings {
            deadline: Span::lit("10s"),
            min_signers: 1,
            verify: VerifyMode::Cached,
            layer_ttl: Span::lit("10m"),
            rollback_protection: true,
            rollback_scope: crate::rollback::Scope::Repository,
        }
    }
}

impl HookSettings {
    pub fn deadline(&self) -> Duration {
        self.deadline.get()
    }

    pub fn layer_ttl(&self) -> Duration {
        self.layer_ttl.get()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// The syslog unix socket; empty disables syslog.
    pub syslog_socket: PathBuf,
    /// The JSON-lines events file; empty disables it.
    pub events_file: PathBuf,
    /// Also raise an event (severity info) for every verified start, saying how it verified
    /// (walked, or layers reused) and how long it took: the audit trail of every start.
    pub verified: bool,
    /// Keep about one `verified` event in this many starts (chosen by container id, so a
    /// container's events are all kept or all not); 1 keeps every one.
    pub verified_sample: u32,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            syslog_socket: "/dev/log".into(),
            events_file: "/var/log/rootseal/events.jsonl".into(),
            verified: true,
            verified_sample: 1,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Enforce,
            trust_dir: "/etc/rootseal/trust".into(),
            seal_dir: "/var/lib/rootseal/seals".into(),
            state_dir: "/run/rootseal".into(),
            cache_dir: "/var/cache/rootseal".into(),
            alerts: Alerts::default(),
            limits: Limits::default(),
            hook: HookSettings::default(),
            readonly: ReadonlyPolicy::default(),
            runtime: RuntimeSettings::default(),
            monitor: MonitorSettings::default(),
            registry: RegistrySettings::default(),
            scan: crate::verify::gate::ScanPolicy::default(),
            rules: Vec::new(),
            exempt: None,
        }
    }
}

impl Config {
    /// The scan policies a container answers to: the `scan` of the rule for the runtime's
    /// image name (only when the runtime reported it: a name the container's creator set must
    /// not choose a laxer policy) and the CRI's pod namespace, and of the rule for the seal's
    /// signed name; `[scan]` when neither rule has one. The gate must pass each.
    pub fn scan_policies(
        &self,
        runtime_image: Option<&str>,
        namespace: Option<&str>,
        seal_name: &str,
    ) -> Vec<&crate::verify::gate::ScanPolicy> {
        let mut out: Vec<&crate::verify::gate::ScanPolicy> = Vec::new();
        let runtime_rule = crate::policy::rule_for(&self.rules, runtime_image, namespace);
        for rule in [runtime_rule, crate::policy::rule(&self.rules, Some(seal_name))] {
            if let Some(p) = rule.and_then(|r| r.scan.as_ref()) {
                if !out.iter().any(|o| std::ptr::eq(*o, p)) {
                    out.push(p);
                }
            }
        }
        if out.is_empty() {
            out.push(&self.scan);
        }
        out
    }

    /// The oldest VEX document any policy accepts (`[scan]` and every rule's `scan`): what an
    /// import lets in; each container is judged by its own policy's `vex_max_age`.
    pub fn vex_max_age(&self) -> Duration {
        self.rules
            .iter()
            .filter_map(|r| r.scan.as_ref())
            .chain([&self.scan])
            .map(|p| p.vex_max_age.get())
            .max()
            .unwrap_or_default()
    }

    /// The policy the shared judgement needs (src/verify/judge.rs).
    pub fn node_policy(&self) -> crate::verify::judge::NodePolicy<'_> {
        crate::verify::judge::NodePolicy { mode: self.mode, rules: &self.rules, min_signers: self.hook.min_signers }
    }

    /// Loads the config named by `explicit`, else by `$ROOTSEAL_CONFIG`, else the default path.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let env = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()).map(PathBuf::from);
        let (path, must_exist) = match (explicit, env) {
            (Some(p), _) => (p.to_path_buf(), true),
            (None, Some(p)) => (p, true),
            (None, None) => (PathBuf::from(DEFAULT_PATH), false),
        };
        if !must_exist && !path.exists() {
            return Ok((Config::default(), None));
        }
        let cfg = Config::from_file(&path)?;
        Ok((cfg, Some(path)))
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let f = std::fs::File::open(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source: crate::atomic::ReadError::Io { path: path.into(), source },
        })?;
        // Run as root (the hook, the monitor), the config must be root's and closed to others.
        if crate::sys::euid() == 0 {
            if let Some((problem, fix)) = f.metadata().ok().and_then(|m| crate::trust::rule_broken(path, &m, "go-w")) {
                return Err(ConfigError::Unsafe { path: path.into(), problem, fix });
            }
        }
        let bytes = crate::atomic::read_file_bounded(f, path, MAX_CONFIG_BYTES)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ConfigError::Parse { path: path.into(), detail: "not UTF-8 text".into() })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            detail: e.to_string().lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>().join(" "),
        })?;
        for (key, value) in [
            ("trust_dir", &cfg.trust_dir),
            ("seal_dir", &cfg.seal_dir),
            ("state_dir", &cfg.state_dir),
            ("cache_dir", &cfg.cache_dir),
        ] {
            if !value.is_absolute() {
                return Err(ConfigError::Relative { path: path.into(), key, value: value.clone() });
            }
        }
        let invalid = |what: String| ConfigError::Invalid { path: path.into(), what };
        if !cfg.hook.deadline.within(Duration::from_millis(100), Duration::from_secs(600)) {
            return Err(invalid(format!(
                "[hook] deadline {:?} must be a duration between 100ms and 600s, e.g. \"10s\"",
                cfg.hook.deadline.as_str()
            )));
        }
        if !cfg.hook.layer_ttl.within(Duration::ZERO, Duration::from_secs(86400)) {
            return Err(invalid(format!(
                "[hook] layer_ttl {:?} must be a duration of at most 24h, e.g. \"10m\" (0s: never reuse)",
                cfg.hook.layer_ttl.as_str()
            )));
        }
        for (key, v) in [("interval", &cfg.monitor.interval), ("scan_deadline", &cfg.monitor.scan_deadline)] {
            if !v.within(Duration::from_millis(100), Duration::from_secs(7 * 86400)) {
                return Err(invalid(format!(
                    "[monitor] {key} {:?} must be a duration between 100ms and 7 days, e.g. \"60s\"",
                    v.as_str()
                )));
            }
        }
        if !cfg.monitor.prevent_deadline.within(Duration::from_millis(10), Duration::from_secs(60)) {
            return Err(invalid(format!(
                "[monitor] prevent_deadline {:?} must be a duration between 10ms and 60s, e.g. \"3s\"",
                cfg.monitor.prevent_deadline.as_str()
            )));
        }
        if let Err(why) = cfg.monitor.full_rehash_period() {
            return Err(invalid(why));
        }
        if cfg.runtime.hook_stage != "createRuntime" && cfg.runtime.hook_stage != "prestart" {
            return Err(invalid(format!(
                "[runtime] hook_stage {:?} must be \"createRuntime\" or \"prestart\"",
                cfg.runtime.hook_stage
            )));
        }
        if cfg.runtime.hook_binary.as_ref().is_some_and(|b| !b.is_absolute()) {
            return Err(invalid(
                "[runtime] hook_binary must be an absolute path (runtimes run hooks by absolute path)".into(),
            ));
        }
        if !cfg.registry.timeout.within(Duration::from_millis(100), Duration::from_secs(600)) {
            return Err(invalid(format!(
                "[registry] timeout {:?} must be a duration between 100ms and 600s, e.g. \"10s\"",
                cfg.registry.timeout.as_str()
            )));
        }
        if !(1..=64).contains(&cfg.registry.concurrency) || !(1..=10).contains(&cfg.registry.attempts) {
            return Err(invalid("[registry] concurrency must be 1 to 64 and attempts 1 to 10".into()));
        }
        for i in &cfg.registry.images {
            if let Err(e) = crate::registry::Reference::parse(i) {
                return Err(invalid(format!("[registry] images: {e}")));
            }
        }
        if let Some(p) = cfg.scan.problem() {
            return Err(invalid(format!("[scan] {p}")));
        }
        for r in &cfg.rules {
            if let Some(p) = r.scan.as_ref().and_then(|s| s.problem()) {
                return Err(invalid(format!("rule {:?}: scan: {p}", r.name)));
            }
        }
        if cfg.hook.min_signers == 0 {
            return Err(invalid("[hook] min_signers must be at least 1".into()));
        }
        for r in &cfg.rules {
            if r.images.is_empty() && r.namespaces.is_empty() {
                return Err(invalid(format!("rule {:?} matches nothing: give images or namespaces patterns", r.name)));
            }
            if r.min_signers == Some(0) {
                return Err(invalid(format!("rule {:?}: min_signers must be at least 1", r.name)));
            }
        }
        for e in cfg.exemptions() {
            if e.images.is_empty() && e.annotations.is_empty() {
                return Err(invalid(format!("exemption {:?} matches nothing: give images or annotations", e.name)));
            }
        }
        Ok(cfg)
    }

    /// The exemptions in force.
    pub fn exemptions(&self) -> Vec<Exemption> {
        self.exempt.clone().unwrap_or_else(crate::policy::default_exemptions)
    }
}

/// `[monitor]` in the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorSettings {
    /// Time between full scans of each container.
    pub interval: Span,
    /// Budget for one container's scan; exceeding it is a scan failure.
    pub scan_deadline: Span,
    /// Prometheus textfile-collector output; empty disables it.
    pub metrics_file: PathBuf,
    /// Watch the directories backing each rootfs with inotify for near-real-time detection.
    pub watch: bool,
    /// Most inotify watches the monitor adds in all; past it, containers are scanned on the
    /// interval only (and the status says so).
    pub max_watches: usize,
    /// What to do on drift when no rule says otherwise.
    pub action: crate::policy::Action,
    /// Most paths listed in one drift event (the total is always given).
    pub max_event_paths: usize,
    /// Time between scans of a container that re-hash every file, whatever the verification
    /// cache says; "0" turns them off. A write through a shared writable mapping to a page
    /// that is already dirty moves neither mtime nor ctime, so a cached scan cannot see it:
    /// this bounds how long such a change goes unseen.
    pub full_rehash: Span,
    /// Drift prevention (src/monitor/prevent/, docs/monitor.md): "off", "audit" (an exec of a
    /// file not in the container's seal runs and raises `exec-audit`) or "enforce" (it fails
    /// with EPERM and raises `exec-blocked`). A rule's `prevent` replaces it for its images.
    pub prevent: crate::policy::Prevent,
    /// Paths every protected container may execute although they are not in its seal.
    pub allow_exec: Vec<String>,
    /// Longest time one exec waits for its verdict (hashing a file not yet in the cache);
    /// past it the exec is answered by the mode: denied in enforce, allowed in audit.
    pub prevent_deadline: Span,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            interval: Span::lit("60s"),
            scan_deadline: Span::lit("30s"),
            metrics_file: PathBuf::new(),
            watch: true,
            max_watches: 8192,
            action: crate::policy::Action::Alert,
            max_event_paths: 100,
            full_rehash: Span::lit("1h"),
            prevent: crate::policy::Prevent::Off,
            allow_exec: Vec::new(),
            prevent_deadline: Span::lit("3s"),
        }
    }
}

impl MonitorSettings {
    pub fn interval(&self) -> Duration {
        self.interval.get()
    }

    pub fn scan_deadline(&self) -> Duration {
        self.scan_deadline.get()
    }

    /// `full_rehash`: None when off ("0"), else between 1 second and 30 days; Err: why not.
    pub fn full_rehash_period(&self) -> Result<Option<Duration>, String> {
        let d = self.full_rehash.get();
        if d.is_zero() {
            Ok(None)
        } else if self.full_rehash.within(Duration::from_secs(1), Duration::from_secs(30 * 86400)) {
            Ok(Some(d))
        } else {
            Err(format!(
                "[monitor] full_rehash {:?} must be \"0\" (off) or a duration between 1s and 30 days, e.g. \"1h\"",
                self.full_rehash.as_str()
            ))
        }
    }

    /// Checked at load: in range.
    pub fn full_rehash(&self) -> Option<Duration> {
        Some(self.full_rehash.get()).filter(|d| !d.is_zero())
    }
}

/// `[registry]` in the config: how `pull` and `sync` reach registries (docs/registry.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// Credentials: a Docker `config.json` / containers `auth.json` (`podman login --authfile`).
    pub auth_file: PathBuf,
    /// Extra CAs per registry: `certs_dir/<host[:port]>/*.crt` (containerd's `certs.d` layout).
    pub certs_dir: PathBuf,
    /// Registries (`host:port`) spoken to over plain HTTP: development registries only.
    pub plain_http: Vec<String>,
    /// Images to sync besides those the node has (references).
    pub images: Vec<String>,
    /// Deadline of each request, whole: connect, redirects, headers and body (a 64 MiB seal
    /// at the default 10 s needs about 55 Mbit/s; raise it for slow links).
    pub timeout: Span,
    /// Images synced at once.
    pub concurrency: usize,
    /// Attempts per image when the registry is unreachable or overloaded (429, 5xx).
    pub attempts: u32,
    /// containerd's socket, whose images (every namespace) are synced; empty: none.
    pub containerd_address: PathBuf,
    /// Sync podman's images (`podman images`) too.
    pub podman: bool,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            auth_file: "/etc/rootseal/auth.json".into(),
            certs_dir: "/etc/rootseal/certs.d".into(),
            plain_http: Vec::new(),
            images: Vec::new(),
            timeout: Span::lit("10s"),
            concurrency: 4,
            attempts: 3,
            containerd_address: "/run/containerd/containerd.sock".into(),
            podman: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_and_unknown_keys_are_errors() {
        let text = r#"
mode = "audit"
trust_dir = "/t"
seal_dir = "/s"
state_dir = "/st"
[alerts]
syslog_socket = "/dev/log"
events_file = "/e.jsonl"
[limits]
max_depth = 10
max_entries = 100
max_path_bytes = 200
max_total_bytes = 300
[hook]
deadline = "2s"
min_signers = 1
[readonly]
enabled = true
writable_types = ["tmpfs"]
writable_destinations = ["/etc/hosts"]
writable_sources = ["/srv/**"]
[[rules]]
name = "prod"
images = ["registry.example/prod/**"]
keys = ["ci-2026"]
mode = "enforce"
min_signers = 2
[[exempt]]
name = "pause"
images = ["registry.k8s.io/pause:*"]
annotations = { "io.kubernetes.cri.container-type" = "sandbox" }
"#;
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(c.mode, Mode::Audit);
        assert_eq!(c.limits.max_depth, 10);
        assert_eq!(c.alerts.events_file, PathBuf::from("/e.jsonl"));
        let err = Config::parse("moed = \"audit\"", Path::new("c.toml")).unwrap_err().to_string();
        assert!(err.contains("c.toml") && err.contains("moed"), "{err}");
        let err = Config::parse("mode = \"off\"", Path::new("c.toml")).unwrap_err().to_string();
        assert!(err.contains("off"), "{err}");
        let err = Config::parse("trust_dir = \"rel\"", Path::new("c.toml")).unwrap_err().to_string();
        assert!(err.contains("absolute"), "{err}");
        assert_eq!(Config::parse("", Path::new("c.toml")).unwrap(), Config::default());
    }

    #[test]
    fn namespace_rules_parse_and_choose_scan_policies() {
        let text = r#"
[[rules]]
name = "system"
namespaces = ["kube-system"]
mode = "audit"
scan = { require = true, max_severity = "critical" }
[[rules]]
name = "prod"
images = ["registry.example/prod/**"]
scan = { require = true, max_severity = "high" }
"#;
        let cfg = Config::parse(text, Path::new("c.toml")).unwrap();
        let severities = |image: Option<&str>, ns: Option<&str>, seal: &str| -> Vec<String> {
            cfg.scan_policies(image, ns, seal).iter().map(|p| format!("{:?}", p.max_severity)).collect()
        };
        assert_eq!(severities(None, Some("kube-system"), "other:1"), ["Critical"]);
        assert_eq!(severities(None, Some("kube-system"), "registry.example/prod/app:1"), ["Critical", "High"]);
        assert_eq!(severities(None, None, "registry.example/prod/app:1"), ["High"]);
        let err = Config::parse("[[rules]]\nname = \"empty\"\n", Path::new("c.toml")).unwrap_err().to_string();
        assert!(err.contains("matches nothing: give images or namespaces"), "{err}");
    }
}
