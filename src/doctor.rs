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

    // 6. Runtime integration.
    let mut found = Vec::new();
    if let Result::Ok(text) = std::fs::read_to_string(&places.containerd_config) {
        if text.contains("rootseal-runtime") {
            found.push(format!("containerd runtime entry in {}", places.containerd_config.display()));
        }
    }
    let mut masked = Vec::new();
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
                (true, None) => found.push(format!("OCI hook {}", p.display())),
                (true, Some(m)) => masked.push(format!("{} is masked by {}", p.display(), m.display())),
                _ => {}
            }
        }
    }
    out.push(match (found.is_empty(), masked.is_empty()) {
        (false, _) => check("runtime integration", Ok, found.join("; "), None),
        (true, false) => check("runtime integration", Fail, masked.join("; "), Some("remove the masking file, or make it call rootseal")),
        (true, true) => check(
            "runtime integration",
            Fail,
            "no containerd runtime entry and no OCI hooks.d file calls rootseal: nothing verifies containers",
            Some("rootseal install containerd --set-default (containerd), or install hooks/rootseal.json into /usr/share/containers/oci/hooks.d (podman, CRI-O)"),
        ),
    });

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
        match std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.connect(sock)) {
            Result::Ok(()) => check("syslog", Ok, format!("{} accepts datagrams", sock.display()), None),
            Err(e) => check(
                "syslog",
                Fail,
                format!("{}: {e}: alerts reach only the events file", sock.display()),
                Some("start a syslog daemon (rsyslog, systemd-journald) or fix [alerts] syslog_socket"),
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
}
