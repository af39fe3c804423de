//! `rootseal sync`: fetch, ahead of time, the seals of every image this node has (containerd,
//! every namespace including Kubernetes' `k8s.io`, and podman) and of `[registry] images`, so
//! that the hook finds them in the local seal store when a container starts. Run by
//! `rootseal-sync.timer` and by the Kubernetes DaemonSet.
//!
//! 1. List the node's images (src/node/images.rs); a store that cannot be listed is reported
//!    and the others are synced.
//! 2. For each image (by the digest the node has, when known), `concurrency` at a time: the
//!    registry's current fingerprint (image manifest + referrer listings); unchanged since the
//!    last successful sync → nothing else is fetched.
//! 3. Otherwise pull (src/registry/mod.rs): each seal verified before it is stored.
//! 4. Transient failures (unreachable, 429, 5xx) are retried `attempts` times with
//!    exponential backoff and jitter; what still fails raises `sync-failed`. Nothing is ever
//!    removed from the seal store: a failed sync leaves the node as it was.
//! 5. The state (fingerprints, last run) is written atomically to `cache_dir/sync.json`; the
//!    summary is one line and `doctor` reports the last run.

use crate::alerts::{self, Event, EventKind, Severity, Source};
use crate::config::Config;
use crate::node::images::{self, Sources};
use crate::registry::{self, Client, Reference};
use crate::trust::{Trust, TrustStore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

const STATE_FILE: &str = "sync.json";
const MAX_STATE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    #[error(transparent)]
    Registry(#[from] registry::RegistryError),
    #[error("cannot write the sync state: {0}")]
    State(crate::atomic::WriteError),
}

/// What the last sync left for the next one (and for `doctor`).
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    /// When the last sync finished (RFC 3339).
    pub finished: String,
    pub images: usize,
    pub failed: usize,
    /// Per image reference: the fingerprint of its last successful pull.
    pub fingerprints: BTreeMap<String, String>,
    /// Per image reference pinned by digest: the subjects it resolved to (not fetched again).
    #[serde(default)]
    pub subjects: BTreeMap<String, Vec<String>>,
    /// Per image reference that failed last time: why.
    #[serde(default)]
    pub failures: BTreeMap<String, String>,
    /// The trusted keys and policy the fingerprints were taken under: when they change, every
    /// image is pulled again (a seal skipped as untrusted may be trusted now).
    #[serde(default)]
    pub policy: String,
}

impl State {
    pub fn path(cache_dir: &Path) -> PathBuf {
        cache_dir.join(STATE_FILE)
    }

    /// The last state; none (or an unreadable one, which only costs requests) is empty.
    pub fn load(cache_dir: &Path) -> Option<State> {
        let bytes = crate::atomic::read_bounded(&State::path(cache_dir), MAX_STATE_BYTES).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// One image's outcome.
#[derive(Debug)]
pub enum Outcome {
    Unchanged,
    /// Pulled: the lines of the seals stored (new or already there), and the skipped ones.
    Pulled {
        stored: Vec<String>,
        /// New seals filed.
        new: usize,
        /// New scan attestations filed.
        new_scans: usize,
        skipped: Vec<(String, String)>,
    },
    Failed(String),
}

#[derive(Debug, Default)]
pub struct Summary {
    pub images: usize,
    pub unchanged: usize,
    pub new_seals: usize,
    pub new_scans: usize,
    pub failed: usize,
    pub requests: u64,
    pub elapsed: Duration,
    /// Stores that could not be listed.
    pub problems: Vec<String>,
    pub results: Vec<(String, Outcome)>,
}

impl Summary {
    pub fn line(&self) -> String {
        format!(
            "sync: {} image(s): {} unchanged, {} new seal(s), {} failed; {} registry request(s) in {:.1}s{}{}",
            self.images,
            self.unchanged,
            self.new_seals,
            self.failed,
            self.requests,
            self.elapsed.as_secs_f64(),
            if self.new_scans > 0 { format!("; {} new scan attestation(s)", self.new_scans) } else { String::new() },
            if self.problems.is_empty() {
                String::new()
            } else {
                format!("; not listed: {}", self.problems.join("; "))
            }
        )
    }
}

/// The node's stores as the config names them.
pub fn sources(cfg: &Config) -> Sources {
    Sources {
        containerd_address: Some(cfg.registry.containerd_address.clone()).filter(|p| !p.as_os_str().is_empty()),
        podman: cfg.registry.podman.then(|| PathBuf::from("podman")),
        timeout: cfg.registry.timeout.get().max(Duration::from_secs(5)),
        ..Sources::default()
    }
}

/// The references to sync: the node's images (pinned to the digest the node has) and the
/// configured ones, each once.
pub fn targets(cfg: &Config, listing: &images::Listing) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, digest) in images::unique_references(&listing.images) {
        let Ok(r) = Reference::parse(&name) else { continue };
        let r = match digest {
            Some(d) if registry::reference::is_digest(&d) => r.at(&d),
            _ => r,
        };
        out.push(r.to_string());
    }
    out.extend(cfg.registry.images.iter().cloned());
    out.sort();
    out.dedup();
    out
}

/// Runs one sync. `client` is shared by the workers (its request count is the summary's).
pub fn run(cfg: &Config, client: &Client, sources: &Sources, now: SystemTime) -> Result<Summary, SyncError> {
    let started = Instant::now();
    let trust = TrustStore::new(&cfg.trust_dir).load()?;
    let listing = images::list(sources);
    let problems: Vec<String> = listing.problems.iter().filter(|p| !p.is_absent()).map(|p| p.to_string()).collect();
    let targets = targets(cfg, &listing);
    let policy = policy_id(cfg, &trust);
    let last = State::load(&cfg.cache_dir).filter(|s| s.policy == policy).unwrap_or_default();
    let queue = Mutex::new(targets.clone());
    let results = Mutex::new(Vec::new());
    // Fetches run in parallel; filing in the seal store does not. Two names of one image
    // (containerd's and podman's, a tag in `k8s.io`) bring the same seal at the same time, and
    // SealStore::put's index updates are read-modify-write: in parallel they counted one seal
    // as new several times and could lose an index line of another image.
    let filing = Mutex::new(());
    let workers = cfg.registry.concurrency.min(targets.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let Some(image) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else { break };
                let known = last.fingerprints.get(&image).map(|fp| registry::Known {
                    fingerprint: fp.clone(),
                    subjects: last.subjects.get(&image).cloned().unwrap_or_default(),
                });
                let (outcome, fp) = sync_one(cfg, client, &trust, &filing, &image, known.as_ref());
                results.lock().unwrap_or_else(|e| e.into_inner()).push((image, outcome, fp));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut state = State { images: results.len(), policy, ..State::default() };
    let mut summary = Summary { images: results.len(), problems, ..Summary::default() };
    for (image, outcome, fp) in results {
        match &outcome {
            Outcome::Unchanged => summary.unchanged += 1,
            Outcome::Pulled { new, new_scans, .. } => {
                summary.new_seals += new;
                summary.new_scans += new_scans;
            }
            Outcome::Failed(why) => {
                summary.failed += 1;
                state.failures.insert(image.clone(), why.clone());
            }
        }
        // A failure records no fingerprint: the next run pulls again.
        if let Some(k) = fp {
            if image.contains('@') {
                state.subjects.insert(image.clone(), k.subjects);
            }
            state.fingerprints.insert(image.clone(), k.fingerprint);
        }
        // A failure is raised when it is new (or its reason changed), not at every run.
        let repeated = matches!(&outcome, Outcome::Failed(why) if last.failures.get(&image) == Some(why));
        if !repeated {
            emit(cfg, &image, &outcome);
        }
        summary.results.push((image, outcome));
    }
    state.failed = summary.failed;
    state.finished = humantime::format_rfc3339_seconds(now + started.elapsed()).to_string();
    summary.requests = client.requests();
    summary.elapsed = started.elapsed();
    save_state(&cfg.cache_dir, &state)?;
    Ok(summary)
}

/// What decides whether a fetched seal is admitted: the trusted keys, the revocations, the
/// rules and the mode.
fn policy_id(cfg: &Config, trust: &Trust) -> String {
    let mut keys: Vec<String> = trust.keys.iter().map(|k| format!("{}={}", k.name, k.key.keyid)).collect();
    keys.sort();
    let text = format!("{keys:?} {:?} {:?} {:?} {}", trust.revoked, cfg.rules, cfg.mode, cfg.hook.min_signers);
    registry::client::sha256_digest(text.as_bytes())
}

fn save_state(cache_dir: &Path, state: &State) -> Result<(), SyncError> {
    std::fs::create_dir_all(cache_dir).map_err(|source| {
        SyncError::State(crate::atomic::WriteError::Io { op: "create", path: cache_dir.into(), source })
    })?;
    let bytes = serde_json::to_vec_pretty(state).expect("the state serialises");
    crate::atomic::write(&State::path(cache_dir), &bytes, 0o600).map_err(SyncError::State)
}

/// One image, retried on transient failures. Returns the outcome and the fingerprint to keep.
fn sync_one(
    cfg: &Config,
    client: &Client,
    trust: &Trust,
    filing: &Mutex<()>,
    image: &str,
    known: Option<&registry::Known>,
) -> (Outcome, Option<registry::Known>) {
    let r = match Reference::parse(image) {
        Ok(r) => r,
        Err(e) => return (Outcome::Failed(e.to_string()), None),
    };
    // Rules name images by tag: a node's image pinned as `name:tag@sha256:…` is matched as
    // `name:tag`.
    let rule_name = match &r.tag {
        Some(_) => Reference { digest: None, ..r.clone() }.to_string(),
        None => r.to_string(),
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut new = 0;
        let mut new_scans = 0;
        let result = registry::pull(client, &r, known, &mut |kind, bytes| {
            let _filing = filing.lock().unwrap_or_else(|e| e.into_inner());
            if kind == registry::Kind::Scan {
                let (line, fresh) =
                    crate::attest::admit(&cfg.seal_dir, &cfg.cache_dir, trust, bytes, cfg.vex_max_age(), "stored")
                        .map_err(|e| e.to_string())?;
                new_scans += usize::from(fresh);
                return Ok(line);
            }
            let a = crate::verify::admit::admit_fetched(&cfg.seal_dir, bytes, |s| {
                let policy = cfg.node_policy();
                let rule = crate::policy::rule(&cfg.rules, Some(&rule_name));
                crate::verify::judge::seal_policy(&policy, s, trust, rule, SystemTime::now())
                    .map(|(signers, _)| signers)
            })
            .map_err(|e| e.to_string())?;
            if !a.unchanged {
                new += 1;
            }
            Ok(a.line("stored"))
        });
        match result {
            Ok(p) => {
                let known = registry::Known { fingerprint: p.fingerprint, subjects: p.subjects };
                if p.unchanged {
                    return (Outcome::Unchanged, Some(known));
                }
                let stored = p.admitted.into_iter().map(|(_, l)| l).collect();
                return (Outcome::Pulled { stored, new, new_scans, skipped: p.skipped }, Some(known));
            }
            Err(e) if e.transient() && attempt < cfg.registry.attempts => {
                std::thread::sleep(backoff(attempt));
            }
            Err(e) => return (Outcome::Failed(e.to_string()), None),
        }
    }
}

/// 0.5 s × 2^(attempt-1), times a random factor in [0.5, 1.5): retries of many nodes do not
/// arrive at the registry together.
pub fn backoff(attempt: u32) -> Duration {
    use rand_core::RngCore;
    let base = 500u64 << attempt.saturating_sub(1).min(6);
    let jitter = 500 + u64::from(rand_core::OsRng.next_u32() % 1000);
    Duration::from_millis(base * jitter / 1000)
}

fn emit(cfg: &Config, image: &str, outcome: &Outcome) {
    let (kind, severity, message) = match outcome {
        Outcome::Pulled { new, new_scans, stored, .. } if *new + *new_scans > 0 => (
            EventKind::SealSynced,
            Severity::Info,
            format!(
                "rootseal: synced {new} new seal(s){} of {image}: {}",
                if *new_scans > 0 { format!(" and {new_scans} new scan attestation(s)") } else { String::new() },
                stored.join("; ")
            ),
        ),
        Outcome::Failed(why) => {
            (EventKind::SyncFailed, Severity::Warning, format!("rootseal: cannot sync the seals of {image}: {why}"))
        }
        _ => return,
    };
    let event = Event {
        time: Event::now_string(),
        host: alerts::hostname(),
        source: Source::Sync,
        event: kind,
        severity,
        mode: cfg.mode,
        container: None,
        stage: None,
        image: Some(image.to_string()),
        seal: None,
        rule: None,
        exemption: None,
        violations: Vec::new(),
        message,
        action: None,
        elapsed_ms: None,
        allowances: Vec::new(),
        process: None,
    };
    for e in alerts::emit(&cfg.alerts, &event) {
        eprintln!("rootseal: sync: alert not delivered: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_jittered() {
        for attempt in 1..=4 {
            let d = backoff(attempt);
            let base = 500u64 << (attempt - 1);
            assert!(
                d >= Duration::from_millis(base / 2) && d < Duration::from_millis(base * 3 / 2),
                "{attempt}: {d:?}"
            );
        }
    }

    #[test]
    fn targets_pin_the_node_digest_and_add_configured_images() {
        let d = format!("sha256:{}", "a".repeat(64));
        let listing = images::Listing {
            images: vec![
                images::NodeImage {
                    store: images::Store::Podman,
                    reference: "127.0.0.1:5000/app:1".into(),
                    digest: Some(d.clone()),
                },
                images::NodeImage {
                    store: images::Store::Containerd { namespace: "k8s.io".into() },
                    reference: "127.0.0.1:5000/app:1".into(),
                    digest: Some(d.clone()),
                },
            ],
            problems: Vec::new(),
        };
        let mut cfg = Config::default();
        cfg.registry.images = vec!["registry.example/team/tool:2".into()];
        assert_eq!(
            targets(&cfg, &listing),
            [format!("127.0.0.1:5000/app:1@{d}"), "registry.example/team/tool:2".to_string()]
        );
    }
}
