//! The OCI hook: at container start, verify the bundle's rootfs against its seal and enforce a
//! read-only root; at poststop, clean up. Also the offline `rootseal check BUNDLE`.
//!
//! The sequence for prestart/createRuntime (docs/hook.md):
//! 1. arm a watchdog for the whole hook's deadline (a hang must never hold a container start);
//! 2. read the OCI state from stdin (bounded in size and time) and parse it strictly;
//! 3. load the bundle's config.json, resolve root.path;
//! 4. exempt? (by image name or annotations) → allow, alert "exempted";
//! 5. read-only policy: root.readonly and every mount;
//! 6. integrity: walk the rootfs, find candidate seals, check each against trusted, unrevoked
//!    keys, the rule's required keys and expiry, and compare manifests after mount exclusion;
//! 7. enforce: any violation → exit 1 with one line on stderr; audit: exit 0 and alert;
//! 8. on a pass (or an audit pass) write the state record for the drift monitor.
//!
//! Any error is a violation: in enforce mode it blocks.

mod decision;
mod gate;
mod integrity;
mod mounts;
pub mod runtime;

pub use decision::{Decision, Stage, Violation};
use integrity::integrity;
pub use integrity::walk_rootfs;
use mounts::mount_policy;

use crate::alerts::{self, ContainerInfo, Event, PathChange, SealInfo, ViolationRecord};
use crate::config::{Config, Mode, VerifyMode};
use crate::exclude::Exclusions;
use crate::layers;
use crate::manifest::{display_path, Difference, Manifest, TreeDigest};
use crate::oci::{self, Bundle};
use crate::policy;
use crate::readonly;
use crate::rollback::{self, Watermarks};
use crate::seal::Seal;
use crate::state;
use crate::store::{self, SealStore};
use crate::trust::{Trust, TrustStore};
use crate::verify::{self, judge, judge::Effective, Code};
use crate::walk;
use std::io::Write as _;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// At most this many candidate seals are parsed and compared per check.
pub const MAX_CANDIDATES: usize = 8;

/// How many differing paths a block message names.
pub const MESSAGE_PATHS: usize = 5;
/// How many differing paths an event lists.
pub const EVENT_PATHS: usize = 100;

/// Container ids in messages (moved to alerts, where events are rendered).
pub use crate::alerts::short_id;

/// Steps 3 to 7: decide about a bundle. Never fails: every error becomes a violation.
pub fn decide(cfg: &Config, id: &str, bundle_dir: &Path, deadline: Instant) -> Decision {
    let mut d = Decision::new(id, bundle_dir, cfg.mode);
    let bundle = match Bundle::load(bundle_dir) {
        Ok(b) => b,
        Err(e) => {
            d.violations.push(Violation::new(Code::Bundle, e.to_string()));
            return d;
        }
    };
    d.rootfs = Some(bundle.root.clone());
    d.mount_destinations =
        bundle.mount_destinations().into_iter().map(|b| PathBuf::from(std::ffi::OsString::from_vec(b))).collect();
    d.manager = bundle.annotations.get("io.container.manager").cloned();
    // Under a CRI runtime, only that runtime's own annotations (and not the other CRI
    // runtime's, which a pod can set) name the image, the pod and the sandbox.
    let annotations = policy::runtime_annotations(&bundle.annotations);
    d.pod = crate::node::pod::PodInfo::from_annotations(&annotations);
    d.image = policy::image_name(&annotations);
    // A name the container's creator set (`rootseal.dev/image`) may select candidates and a
    // stricter rule, never an exemption by image nor a rule's audit mode (docs/hook.md).
    let trusted_name = policy::image_name_from_runtime(&annotations);
    let exempt_by = if trusted_name { d.image.as_deref() } else { None };
    if let Some(e) = policy::exemption(&cfg.exemptions(), exempt_by, &annotations) {
        d.exemption = Some(e.name.clone());
        return d;
    }
    // Until a seal verifies, only the runtime's image name selects a rule: the subject name of
    // a seal that does not verify must not change the mode. The namespace is the CRI's own.
    let image_rule = policy::rule_for(&cfg.rules, d.image.as_deref(), policy::pod_namespace(&annotations));
    let image_rule_owned;
    let image_rule = match image_rule {
        Some(r)
            if !r.images.is_empty() && !trusted_name && r.mode == Some(Mode::Audit) && cfg.mode == Mode::Enforce =>
        {
            image_rule_owned = policy::Rule { mode: Some(Mode::Enforce), ..r.clone() };
            Some(&image_rule_owned)
        }
        r => r,
    };
    let eff = judge::effective(&cfg.node_policy(), &image_rule.into_iter().collect::<Vec<_>>());
    d.mode = eff.mode;
    d.rule = eff.names.first().cloned();
    mount_policy(cfg, &bundle, image_rule, &mut d);
    // The trust store, loaded once for integrity (step 6) and the scan gate (step 7).
    let mut t = Instant::now();
    let trust = match TrustStore::new(&cfg.trust_dir).load() {
        Ok(t) => t,
        Err(e) => {
            d.violations.push(Violation::new(Code::TrustStore, format!("cannot verify: {e}")));
            return d;
        }
    };
    integrity::trace("trust store", &mut t);
    integrity(cfg, &bundle, &trust, image_rule, deadline, &mut d);
    let runtime_image = if trusted_name { d.image.clone() } else { None };
    gate::scan_gate(cfg, &mut d, &trust, runtime_image.as_deref());
    d
}

/// The walk's share of the hook's budget: it stops first, so that the hook still has time to
/// say why, alert and exit before the watchdog ends it. The reserve is at least a tenth of the
/// budget and up to half of it or 1 s: a loaded machine needs an absolute margin to finish the
/// decision, which a tenth of a short budget is not.
pub fn walk_budget(budget: Duration) -> Duration {
    let reserve = (budget / 10).max((budget / 2).min(Duration::from_secs(1)));
    budget.saturating_sub(reserve)
}

static CONTAINER_FOR_WATCHDOG: OnceLock<String> = OnceLock::new();

/// Step 1: a thread that ends the process at the deadline, whatever the hook is doing. In
/// enforce mode (or before the mode is known) that blocks; in audit mode it allows.
fn arm_watchdog(budget: Duration, mode: Mode, alerts: Option<crate::config::Alerts>) {
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        let id = CONTAINER_FOR_WATCHDOG.get().map(|s| short_id(s)).unwrap_or_else(|| "(unknown)".into());
        let verb = if mode == Mode::Audit { "audit: would block" } else { "blocked" };
        let line = format!("rootseal: {verb} container {id}: verification exceeded its {budget:?} deadline; raise [hook] deadline or check the disk\n");
        if let (Mode::Audit, Some(a)) = (mode, alerts) {
            let mut d =
                Decision::new(CONTAINER_FOR_WATCHDOG.get().map(String::as_str).unwrap_or(""), Path::new(""), mode);
            d.violations.push(Violation::new(Code::Deadline, line.trim_end().trim_start_matches("rootseal: ")));
            let _ = alerts::emit(&a, &d.event(alerts::Source::Hook, None, None));
        }
        crate::sys::write_stderr_and_exit(line.as_bytes(), if mode == Mode::Audit { 0 } else { 1 });
    });
}

/// `rootseal hook [STAGE]`: the whole hook. Returns the exit code.
pub fn run(stage_arg: Option<&str>, config: Result<Config, crate::config::ConfigError>) -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let id = CONTAINER_FOR_WATCHDOG.get().map(|s| short_id(s)).unwrap_or_else(|| "(unknown)".into());
        let msg: String = info.to_string().chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        eprintln!("rootseal: blocked container {id}: internal error ({msg}); please report this");
    }));
    let cfg = match config {
        Ok(c) => c,
        Err(e) => {
            // Without a config the mode is unknown: a verifying stage fails closed.
            arm_watchdog(Duration::from_secs(10), Mode::Enforce, None);
            let state = oci::read_state_from(std::io::stdin().as_fd(), Duration::from_secs(5))
                .ok()
                .and_then(|b| oci::parse_state(&b).ok());
            let id = state.as_ref().map(|s| short_id(s.id())).unwrap_or_else(|| "(unknown)".into());
            let stage = match stage_arg {
                Some(s) => Stage::parse(s),
                None => state.as_ref().and_then(|s| Stage::from_status(&s.status().to_string())),
            };
            return match stage {
                Some(Stage::Poststop) => {
                    eprintln!("rootseal: poststop of container {id}: {e}; its state record was not removed");
                    ExitCode::from(1)
                }
                Some(s) if !s.verifies() => ExitCode::SUCCESS,
                _ => {
                    eprintln!("rootseal: blocked container {id}: {e}; fix the config (the mode is unknown, so rootseal fails closed)");
                    ExitCode::from(1)
                }
            };
        }
    };
    let start = Instant::now();
    let budget = cfg.hook.deadline();
    // The watchdog fires before the rules are known: it allows (audit) only when no rule could
    // make this container enforced.
    let strictest = if cfg.mode == Mode::Audit && cfg.rules.iter().all(|r| r.mode.unwrap_or(cfg.mode) == Mode::Audit) {
        Mode::Audit
    } else {
        Mode::Enforce
    };
    arm_watchdog(budget, strictest, Some(cfg.alerts.clone()));
    // The walk's own deadline comes first, so that it ends with a reason and an alert.
    let deadline = start + walk_budget(budget);

    let fail = |cfg: &Config, id: &str, bundle: &Path, code: Code, msg: String| -> ExitCode {
        let mut d = Decision::new(id, bundle, cfg.mode);
        d.violations.push(Violation::new(code, msg));
        finish(cfg, &d, None, None)
    };
    let bytes = match oci::read_state_from(std::io::stdin().as_fd(), budget.mul_f64(0.5)) {
        Ok(b) => b,
        Err(e) => return fail(&cfg, "(unknown)", Path::new(""), Code::State, e.to_string()),
    };
    let st = match oci::parse_state(&bytes) {
        Ok(s) => s,
        Err(e) => return fail(&cfg, "(unknown)", Path::new(""), Code::State, e.to_string()),
    };
    let _ = CONTAINER_FOR_WATCHDOG.set(st.id().to_string());
    let stage = match stage_arg {
        Some(s) => match Stage::parse(s) {
            Some(s) => s,
            None => return fail(&cfg, st.id(), st.bundle(), Code::Usage, format!("unknown hook stage {s:?}")),
        },
        None => {
            let status = st.status().to_string();
            match Stage::from_status(&status) {
                Some(s) => s,
                None => {
                    return fail(
                        &cfg,
                        st.id(),
                        st.bundle(),
                        Code::State,
                        format!("cannot infer the hook stage from status {status:?}; pass it as an argument"),
                    )
                }
            }
        }
    };
    match stage {
        Stage::Poststart | Stage::StartContainer | Stage::CreateContainer => ExitCode::SUCCESS,
        // Only this container's own record (same id and bundle, its process gone): a blocked
        // container with the id of a running one must not end the monitoring of that one.
        Stage::Poststop => match state::remove(&cfg.state_dir, st.id(), st.bundle(), st.pid().filter(|p| *p > 0)) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rootseal: poststop of container {}: {e}", short_id(st.id()));
                ExitCode::from(1)
            }
        },
        s if s.verifies() => {
            if let Err(e) = state::check_id(st.id()) {
                return fail(&cfg, st.id(), st.bundle(), Code::State, e.to_string());
            }
            let mut d = decide(&cfg, st.id(), st.bundle(), deadline);
            d.elapsed = Some(start.elapsed());
            finish(&cfg, &d, Some(stage), *st.pid())
        }
        _ => ExitCode::SUCCESS,
    }
}

/// Whether container `id` is in the `verified` events' sample of one in `every` (by a hash of
/// the id: stateless across hook processes, and all or none of one container's events).
fn sampled(id: &str, every: u32) -> bool {
    use sha2::Digest as _;
    match every {
        0 => false,
        1 => true,
        n => {
            let h = sha2::Sha256::digest(id.as_bytes());
            u32::from_le_bytes([h[0], h[1], h[2], h[3]]) % n == 0
        }
    }
}

/// Step 7 and 8: alert, write the state record, print the line, choose the exit code.
fn finish(cfg: &Config, d: &Decision, stage: Option<Stage>, pid: Option<i32>) -> ExitCode {
    let record =
        (d.allowed() && d.exemption.is_none() && d.rootfs.is_some() && state::check_id(&d.id).is_ok()).then(|| {
            state::Record {
                version: state::VERSION,
                id: d.id.clone(),
                bundle: d.bundle.clone(),
                rootfs: d.rootfs.clone().unwrap_or_default(),
                image: d.image.clone(),
                seal_digest: d.seal.as_ref().map(|s| s.digest.clone()),
                seal_path: d.seal_path.clone(),
                pid,
                pid_start_time: pid.and_then(state::pid_start_time),
                verdict: if d.violations.is_empty() { "verified".into() } else { "audit".into() },
                mode: d.mode.to_string(),
                time: Event::now_string(),
                mount_destinations: Some(d.mount_destinations.clone()),
                manager: d.manager.clone(),
                root: d.root_identity,
                pod: d.pod.clone(),
            }
        });
    // A running container with this id and bundle (under another runc root) keeps its record:
    // this one is not written, and that is a violation (enforce blocks, audit alerts).
    let conflict = record.as_ref().and_then(|r| state::check_free(&cfg.state_dir, r).err());
    let with_conflict;
    let d = match &conflict {
        Some(e) => {
            let mut c = d.clone();
            c.violations.push(Violation::new(Code::RecordConflict, format!("cannot record the container: {e}")));
            with_conflict = c;
            &with_conflict
        }
        None => d,
    };
    let mut stderr = std::io::stderr().lock();
    let alert = d.exemption.is_some() || !d.violations.is_empty();
    if !alert
        && d.seal.is_some()
        && (!d.allowances.is_empty() || (cfg.alerts.verified && sampled(&d.id, cfg.alerts.verified_sample)))
    {
        for e in alerts::emit(&cfg.alerts, &d.event(alerts::Source::Hook, stage, pid)) {
            let _ = writeln!(stderr, "rootseal: warning: alert not delivered: {e}");
        }
    }
    // A block writes exactly one line, the reason: runc and containerd show a hook's whole
    // stderr, but podman shows one line of it, and which one depends on its version. Warnings (a
    // cache not written, an alert not delivered) follow on lines of their own only when the
    // container runs (doctor reports an undeliverable sink).
    let mut warnings = d.warnings.clone();
    if alert {
        for e in alerts::emit(&cfg.alerts, &d.event(alerts::Source::Hook, stage, pid)) {
            warnings.push(format!("alert not delivered: {e}"));
        }
        let _ = writeln!(stderr, "{}", d.summary());
    }
    if d.allowed() {
        for w in &warnings {
            let _ = writeln!(stderr, "rootseal: warning: container {}: {w}", short_id(&d.id));
        }
    }
    if let (true, Some((name, created)), Some(seal)) = (d.violations.is_empty(), &d.accepted, &d.seal) {
        // Not recording weakens rollback protection for later starts but does not make this
        // start wrong: warn, do not block.
        if let Err(e) = Watermarks::new(&cfg.seal_dir, cfg.hook.rollback_scope).accept(name, *created, &seal.digest) {
            let _ = writeln!(
                stderr,
                "rootseal: warning: container {}: rollback watermark for {name:?} not recorded: {e}",
                short_id(&d.id)
            );
        }
    }
    if let (Some(rec), None, true) = (&record, &conflict, d.allowed()) {
        if let Err(e) = state::write(&cfg.state_dir, rec) {
            // The monitor will not watch this container: that is a violation of its own.
            let _ = writeln!(stderr, "rootseal: cannot record container {}: {e}", short_id(&d.id));
            if d.mode == Mode::Enforce {
                return ExitCode::from(1);
            }
        }
    }
    if d.allowed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The hooks.d JSON for podman and CRI-O (`rootseal hooks-json`).
pub fn hooks_json(binary: &Path, config: Option<&Path>) -> String {
    let mut args = vec!["rootseal".to_string()];
    if let Some(c) = config {
        args.push("--config".into());
        args.push(c.display().to_string());
    }
    args.push("hook".into());
    let v = serde_json::json!({
        "version": "1.0.0",
        "hook": { "path": binary.display().to_string(), "args": args, "timeout": 30 },
        "when": { "always": true },
        "stages": ["prestart", "poststop"],
    });
    serde_json::to_string_pretty(&v).expect("serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_parse_and_infer() {
        assert_eq!(Stage::from_status("creating"), Some(Stage::Prestart));
        assert_eq!(Stage::from_status("created"), Some(Stage::Prestart));
        assert_eq!(Stage::from_status("stopped"), Some(Stage::Poststop));
        assert_eq!(Stage::from_status("paused"), None);
        assert_eq!(Stage::parse("createRuntime"), Some(Stage::CreateRuntime));
        assert!(Stage::parse("prestart ").is_none());
    }

    #[test]
    fn short_ids_are_safe() {
        assert_eq!(short_id("3f2a9c0d1e2f3a4b"), "3f2a9c0d1e2f..");
        assert_eq!(short_id("abc"), "abc");
        assert!(!short_id("a\nb\x1b").contains('\n'));
    }

    #[test]
    fn hooks_json_matches_the_committed_file() {
        let committed = include_str!("../../hooks/rootseal.json");
        assert_eq!(hooks_json(Path::new("/usr/bin/rootseal"), None), committed);
    }
}
