//! `rootseal doctor`: is this node protected? Item by item, each failure with its fix.

use crate::config::{Config, Mode};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Where to look for runtime integration (defaults are the distribution paths).
pub struct Places {
    pub containerd_config: PathBuf,
    pub hooks_dirs: Vec<PathBuf>,
}

impl Default for Places {
    fn default() -> Self {
        Places {
            containerd_config: crate::install::DEFAULT_CONFIG.into(),
            hooks_dirs: vec!["/usr/share/containers/oci/hooks.d".into(), "/etc/containers/oci/hooks.d".into()],
        }
    }
}

fn check(name: &'static str, status: Status, detail: impl Into<String>, fix: Option<&str>) -> Check {
    Check { name, status, detail: detail.into(), fix: fix.map(str::to_string) }
}

fn version_of(cmd: &str) -> Option<String> {
    let out = std::process::Command::new(cmd).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().next().map(|l| l.trim().to_string())
}

/// Runs every check. `config` is the result of loading the config (and from where).
pub fn run(config: Result<(Config, Option<PathBuf>), crate::config::ConfigError>, places: &Places) -> Vec<Check> {
    use Status::*;
    let mut out = Vec::new();
    // 1. Binaries.
    let me = std::env::current_exe().ok();
    let wrapper = me.as_ref().and_then(|e| e.parent()).map(|d| d.join("rootseal-runtime")).filter(|p| p.is_file());
    let mut versions = vec![format!("rootseal {}", env!("CARGO_PKG_VERSION"))];
    versions.push(match &wrapper {
        Some(w) => format!("rootseal-runtime at {}", w.display()),
        None => "rootseal-runtime not found beside rootseal".into(),
    });
    for rt in ["runc", "crun", "containerd", "podman"] {
        if let Some(v) = version_of(rt) {
            versions.push(v);
        }
    }
    out.push(check("binaries", Ok, versions.join("; "), None));

    // 2. Config.
    let cfg = match config {
        Result::Ok((cfg, Some(p))) => {
            out.push(check("config", Ok, format!("{} parses", p.display()), None));
            cfg
        }
        Result::Ok((cfg, None)) => {
            out.push(check(
                "config",
                Warn,
                format!("no {}: built-in defaults (enforce mode)", crate::config::DEFAULT_PATH),
                Some("install the package's commented default, or write one (docs/config.md)"),
            ));
            cfg
        }
        Err(e) => {
            out.push(check(
                "config",
                Fail,
                e.to_string(),
                Some("fix the file; the hook blocks every container until it parses"),
            ));
            return out;
        }
    };

    // 3-4. Trust store and keys.
    match crate::trust::TrustStore::new(&cfg.trust_dir).load() {
        Result::Ok(t) if t.keys.is_empty() => out.push(check(
            "trust store",
            Fail,
            format!(
                "{} has no trusted keys: every container is blocked (or alerted in audit mode)",
                cfg.trust_dir.display()
            ),
            Some("rootseal trust add CI-KEY.pub --name NAME"),
        )),
        Result::Ok(t) => {
            let names: Vec<&str> = t.keys.iter().map(|k| k.name.as_str()).collect();
            out.push(check(
                "trust store",
                Ok,
                format!(
                    "{}: {} trusted key(s) ({}), permissions safe",
                    cfg.trust_dir.display(),
                    t.keys.len(),
                    names.join(", ")
                ),
                None,
            ))
        }
        Err(e) => out.push(check("trust store", Fail, e.to_string(), Some("see docs/config.md, trust store layout"))),
    }

    // 5. Seal store.
    match std::fs::read_dir(&cfg.seal_dir) {
        Result::Ok(rd) => {
            let n = rd.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "json")).count();
            out.push(if n == 0 {
                check(
                    "seal store",
                    Warn,
                    format!("{} is readable but holds no seals: no image can pass", cfg.seal_dir.display()),
                    Some("rootseal trust import IMAGE.seal.json"),
                )
            } else {
                check("seal store", Ok, format!("{}: {n} seal(s)", cfg.seal_dir.display()), None)
            });
        }
        Err(e) => out.push(check(
            "seal store",
            Fail,
            format!("{}: {e}", cfg.seal_dir.display()),
            Some("create it (the package's tmpfiles.d entry does) and import seals"),
        )),
    }

    // 6. Runtime integration: which runtimes on this node are covered, and which are not.
    let containerd_installed = crate::install::which("containerd");
    let containerd_text = std::fs::read_to_string(&places.containerd_config).ok();
    let mut covered = Vec::new();
    let mut uncovered = Vec::new();
    let entry = containerd_text.as_deref().map(containerd_entry).unwrap_or_default();
    match (&entry, containerd_installed) {
        (Some(e), _) => covered.push(format!("containerd ({e} in {})", places.containerd_config.display())),
        (None, true) => uncovered.push(format!(
            "containerd (no rootseal runtime entry in {}: its containers start unverified)",
            places.containerd_config.display()
        )),
        (None, false) => {}
    }
    let mut masked = Vec::new();
    let mut hook_files = Vec::new();
    for (i, dir) in places.hooks_dirs.iter().enumerate() {
        let Result::Ok(rd) = std::fs::read_dir(dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let ours = std::fs::read_to_string(&p).map(|t| t.contains("rootseal")).unwrap_or(false);
            // A later directory (the /etc one) masks a file of the same name in an earlier one.
            let masked_by = places.hooks_dirs[i + 1..]
                .iter()
                .map(|d| d.join(e.file_name()))
                .find(|m| m.exists() && !std::fs::read_to_string(m).map(|t| t.contains("rootseal")).unwrap_or(false));
            match (ours, masked_by) {
                (true, None) => hook_files.push(p.display().to_string()),
                (true, Some(m)) => masked.push(format!("{} is masked by {}", p.display(), m.display())),
                _ => {}
            }
        }
    }
    for rt in ["podman", "crio"] {
        let installed = crate::install::which(rt);
        match (hook_files.first(), installed) {
            (Some(f), true) => covered.push(format!("{rt} (OCI hook {f})")),
            (None, true) => uncovered.push(format!("{rt} (no hooks.d file calls rootseal)")),
            _ => {}
        }
    }
    if covered.is_empty() && !hook_files.is_empty() {
        covered.push(format!("OCI hook {} (podman, CRI-O)", hook_files.join(", ")));
    }
    let fix = "containerd: rootseal install containerd, then run pods with runtimeClassName: rootseal (make it the default with --set-default once audit mode is clean, docs/containerd.md); podman and CRI-O: the package's /usr/share/containers/oci/hooks.d/rootseal.json";
    out.push(match (covered.is_empty(), uncovered.is_empty()) {
        (false, true) => check("runtime integration", Ok, format!("covered: {}", covered.join("; ")), None),
        (false, false) => check(
            "runtime integration",
            Warn,
            format!("covered: {}; NOT covered: {}", covered.join("; "), uncovered.join("; ")),
            Some(fix),
        ),
        (true, _) => {
            let mut why = vec!["nothing verifies containers".to_string()];
            why.extend(masked.iter().cloned());
            why.extend(uncovered.iter().map(|u| format!("not covered: {u}")));
            check("runtime integration", Fail, why.join("; "), Some(fix))
        }
    });
    // 6b. containerd's CRI plugin must still load on the node's config (a runtimes table
    // without the default runtime's entry takes the kubelet's runtime away).
    if let (Some(text), true, true) = (&containerd_text, containerd_installed, crate::install::which("ctr")) {
        out.push(match crate::install::cri_status(text) {
            Result::Ok(crate::install::CriStatus::Loaded) => check(
                "containerd CRI",
                Ok,
                format!("the CRI plugin loads on {} (tested on a throwaway containerd)", places.containerd_config.display()),
                None,
            ),
            Result::Ok(crate::install::CriStatus::Skipped) => check(
                "containerd CRI",
                Ok,
                format!("{} does not load the CRI plugin (disabled)", places.containerd_config.display()),
                None,
            ),
            Result::Ok(crate::install::CriStatus::Failed(why)) => check(
                "containerd CRI",
                Fail,
                format!(
                    "containerd's CRI plugin fails to load on {}: {why}; the kubelet has no runtime",
                    places.containerd_config.display()
                ),
                Some("rootseal install containerd (it adds the runtimes.runc entry the default needs), then systemctl restart containerd"),
            ),
            Err(why) => check("containerd CRI", Warn, format!("could not test the CRI plugin: {why}"), None),
        });
    }

    // 7. Monitor.
    let interval = cfg.monitor.interval();
    out.push(match crate::monitor::status(&cfg.state_dir) {
        Result::Ok(st) => {
            let age = humantime::parse_rfc3339_weak(&st.updated)
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or(Duration::MAX);
            let alive = Path::new(&format!("/proc/{}", st.pid)).exists();
            if alive && age <= interval * 3 + Duration::from_secs(5) {
                check(
                    "monitor",
                    Ok,
                    format!(
                        "pid {} watching {} container(s), status {}s old",
                        st.pid,
                        st.containers.len(),
                        age.as_secs()
                    ),
                    None,
                )
            } else {
                check(
                    "monitor",
                    Fail,
                    format!(
                        "status file is {}s old and pid {} is {}",
                        age.as_secs(),
                        st.pid,
                        if alive { "alive but stuck" } else { "gone" }
                    ),
                    Some("systemctl restart rootseal-monitor; journalctl -u rootseal-monitor"),
                )
            }
        }
        Err(_) => check(
            "monitor",
            Fail,
            format!("no status file under {}: the drift monitor is not running", cfg.state_dir.display()),
            Some("systemctl enable --now rootseal-monitor"),
        ),
    });

    // 7a. Drift prevention, per container, as the monitor last wrote it.
    let prevent_wanted =
        cfg.monitor.prevent != crate::policy::Prevent::Off || cfg.rules.iter().any(|r| r.prevent.is_some());
    if let (true, Result::Ok(st)) = (prevent_wanted, crate::monitor::status(&cfg.state_dir)) {
        let judged: Vec<_> = st.containers.iter().filter(|c| c.prevention.is_some()).collect();
        let active: Vec<_> = judged.iter().filter(|c| c.prevention.as_ref().is_some_and(|p| p.active)).collect();
        let mut detail = format!(
            "{} of {} container(s) protected ({} mode by default)",
            active.len(),
            judged.len(),
            cfg.monitor.prevent
        );
        for c in &judged {
            let p = c.prevention.as_ref().expect("filtered");
            detail.push_str(&format!(
                "; {} {}{}",
                crate::alerts::short_id(&c.id),
                if p.active { p.mode.as_str() } else { "NOT ACTIVE" },
                p.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
            ));
        }
        let status = if active.len() == judged.len() { Ok } else { Warn };
        out.push(check(
            "prevention",
            status,
            detail,
            (status != Ok)
                .then_some("rootseal status --json shows why; the monitor attaches containers at their first scan"),
        ));
    }

    // 7b. Seal sync (a warning at most: seals may also arrive by `trust import`).
    out.push(match crate::sync::State::load(&cfg.cache_dir) {
        Some(st) => {
            let age = humantime::parse_rfc3339_weak(&st.finished)
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or(Duration::MAX);
            if st.failed > 0 {
                let first = st.failures.iter().next().map(|(i, why)| format!("; {i}: {why}")).unwrap_or_default();
                check(
                    "sync",
                    Warn,
                    format!("last sync {}s ago: {} of {} image(s) failed{first}", age.as_secs(), st.failed, st.images),
                    Some("rootseal sync --verbose; journalctl -u rootseal-sync"),
                )
            } else if age > Duration::from_secs(3600) {
                check(
                    "sync",
                    Warn,
                    format!(
                        "the last sync finished {}s ago ({} image(s)): new seals are not arriving",
                        age.as_secs(),
                        st.images
                    ),
                    Some("systemctl enable --now rootseal-sync.timer"),
                )
            } else {
                check(
                    "sync",
                    Ok,
                    format!("last sync {}s ago: {} image(s), none failed", age.as_secs(), st.images),
                    None,
                )
            }
        }
        None => check(
            "sync",
            Warn,
            format!(
                "no sync has run ({} is missing): seals arrive only by `rootseal trust import`",
                crate::sync::State::path(&cfg.cache_dir).display()
            ),
            Some("configure [registry] and run systemctl enable --now rootseal-sync.timer"),
        ),
    });

    // 8. Syslog.
    let sock = &cfg.alerts.syslog_socket;
    out.push(if sock.as_os_str().is_empty() {
        check(
            "syslog",
            Warn,
            "syslog alerts are off ([alerts] syslog_socket is empty)",
            Some("set [alerts] syslog_socket = \"/dev/log\""),
        )
    } else {
        let events = &cfg.alerts.events_file;
        let events_ok = !events.as_os_str().is_empty()
            && std::fs::OpenOptions::new().append(true).create(true).open(events).is_ok();
        match std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.connect(sock)) {
            Result::Ok(()) => check("syslog", Ok, format!("{} accepts datagrams", sock.display()), None),
            // Nodes without systemd or a syslog daemon (a container image, a minimal VM) still
            // keep every event in the events file: a warning, not a failure.
            Err(e) if events_ok => check(
                "syslog",
                Warn,
                format!("{}: {e}: alerts go to the events file {} only", sock.display(), events.display()),
                Some("start a syslog daemon (rsyslogd, busybox syslogd, systemd-journald), or set [alerts] syslog_socket = \"\" to rely on the events file; without systemd, run `rootseal monitor` under your supervisor (s6, runit, supervisord, or the DaemonSet in packaging/kubernetes)"),
            ),
            Err(e) => check(
                "syslog",
                Fail,
                format!("{}: {e}, and no writable events file: alerts reach nobody", sock.display()),
                Some("start a syslog daemon (rsyslog, systemd-journald) or set [alerts] events_file"),
            ),
        }
    });

    // 9. Mode.
    out.push(match cfg.mode {
        Mode::Enforce => check("mode", Ok, "enforce: violations block containers", None),
        Mode::Audit => check(
            "mode",
            Warn,
            "audit: violations are allowed and alerted, nothing is blocked",
            Some("set mode = \"enforce\" in the config once the alerts are clean"),
        ),
    });
    out
}

/// How the containerd config runs containers through rootseal-runtime, if it does: the runtime
/// entry's name, and whether it is the CRI default.
fn containerd_entry(text: &str) -> Option<String> {
    let doc: toml_edit::DocumentMut = text.parse().ok()?;
    for base in [
        &["plugins", "io.containerd.grpc.v1.cri", "containerd"][..],
        &["plugins", "cri", "containerd"],
        &["plugins", "io.containerd.cri.v1.runtime", "containerd"],
    ] {
        let mut item = doc.as_item();
        for k in base {
            match item.get(k) {
                Some(i) => item = i,
                None => break,
            }
        }
        let Some(runtimes) = item.get("runtimes").and_then(|r| r.as_table_like()) else { continue };
        for (name, rt) in runtimes.iter() {
            let binary = rt.get("options").and_then(|o| o.get("BinaryName")).and_then(|b| b.as_str()).unwrap_or("");
            if binary.ends_with("rootseal-runtime") {
                let default = item.get("default_runtime_name").and_then(|d| d.as_str()) == Some(name);
                return Some(if default {
                    format!("runtime {name:?}, the CRI default: every pod")
                } else {
                    format!("runtime {name:?} for pods with runtimeClassName: {name}, not the default; ctr bypasses the CRI runtimes: `ctr run --runc-binary /usr/bin/rootseal-runtime`")
                });
            }
        }
    }
    None
}

/// The node is protected when no check failed.
pub fn protected(checks: &[Check]) -> bool {
    checks.iter().all(|c| c.status != Status::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_node_is_not_protected_and_says_how_to_fix_it() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().display();
        let cfg = Config::parse(
            &format!("trust_dir = \"{d}/trust\"\nseal_dir = \"{d}/seals\"\nstate_dir = \"{d}/state\"\ncache_dir = \"{d}/cache\"\n[alerts]\nsyslog_socket = \"{d}/none.sock\"\n"),
            Path::new("c.toml"),
        )
        .unwrap();
        let places =
            Places { containerd_config: t.path().join("containerd.toml"), hooks_dirs: vec![t.path().join("hooks.d")] };
        let checks = run(Result::Ok((cfg, Some("c.toml".into()))), &places);
        assert!(!protected(&checks));
        let failed: Vec<&str> = checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.name).collect();
        assert_eq!(failed, ["trust store", "seal store", "runtime integration", "monitor", "syslog"]);
        assert!(checks.iter().filter(|c| c.status != Status::Ok).all(|c| c.fix.is_some()));
    }

    /// Issue 14, item 5: a node without syslog whose events file works is not failed for it,
    /// and the fix names a way to run without systemd.
    #[test]
    fn no_syslog_with_a_working_events_file_is_a_warning() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().display();
        let cfg = Config::parse(
            &format!("trust_dir = \"{d}/trust\"\nseal_dir = \"{d}/seals\"\nstate_dir = \"{d}/state\"\ncache_dir = \"{d}/cache\"\n[alerts]\nsyslog_socket = \"{d}/none.sock\"\nevents_file = \"{d}/events.jsonl\"\n"),
            Path::new("c.toml"),
        )
        .unwrap();
        let places =
            Places { containerd_config: t.path().join("containerd.toml"), hooks_dirs: vec![t.path().join("hooks.d")] };
        let checks = run(Result::Ok((cfg, Some("c.toml".into()))), &places);
        let syslog = checks.iter().find(|c| c.name == "syslog").unwrap();
        assert_eq!(syslog.status, Status::Warn, "{syslog:?}");
        assert!(syslog.detail.contains("events.jsonl only"), "{syslog:?}");
        assert!(syslog.fix.as_deref().unwrap().contains("without systemd"), "{syslog:?}");
    }
}
