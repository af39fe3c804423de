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

pub mod runtime;

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
    fn verifies(self) -> bool {
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
    fn new(code: Code, message: impl Into<String>) -> Violation {
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
}

impl Decision {
    fn new(id: &str, bundle: &Path, mode: Mode) -> Decision {
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
    pub fn event(&self, source: &'static str, stage: Option<Stage>, pid: Option<i32>) -> Event {
        let (event, severity) = if self.exemption.is_some() {
            ("exempted", "notice")
        } else if self.violations.is_empty() {
            ("verified", "info")
        } else if self.mode == Mode::Audit {
            ("audit", "warning")
        } else {
            ("blocked", "err")
        };
        Event {
            time: Event::now_string(),
            host: alerts::hostname(),
            source,
            event,
            severity,
            mode: self.mode,
            container: ContainerInfo {
                id: display_path(self.id.as_bytes()),
                bundle: self.bundle.display().to_string(),
                rootfs: self.rootfs.as_ref().map(|r| r.display().to_string()),
                pid,
            },
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
            elapsed_ms: self.elapsed.map(|e| e.as_millis() as u64),
        }
    }
}

/// Container ids in messages (moved to alerts, where events are rendered).
pub use crate::alerts::short_id;

/// Steps 3 to 6: decide about a bundle. Never fails: every error becomes a violation.
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
    d.image = policy::image_name(&bundle.annotations);
    // A name the container's creator set (`rootseal.dev/image`) may select candidates and a
    // stricter rule, never an exemption by image nor a rule's audit mode (docs/hook.md).
    let trusted_name = policy::image_name_from_runtime(&bundle.annotations);
    let exempt_by = if trusted_name { d.image.as_deref() } else { None };
    if let Some(e) = policy::exemption(&cfg.exemptions(), exempt_by, &bundle.annotations) {
        d.exemption = Some(e.name.clone());
        return d;
    }
    // Until a seal verifies, only the runtime's image name selects a rule: the subject name of
    // a seal that does not verify must not change the mode.
    let image_rule = policy::rule(&cfg.rules, d.image.as_deref());
    let image_rule_owned;
    let image_rule = match image_rule {
        Some(r) if !trusted_name && r.mode == Some(Mode::Audit) && cfg.mode == Mode::Enforce => {
            image_rule_owned = policy::Rule { mode: Some(Mode::Enforce), ..r.clone() };
            Some(&image_rule_owned)
        }
        r => r,
    };
    let eff = judge::effective(&cfg.node_policy(), &image_rule.into_iter().collect::<Vec<_>>());
    d.mode = eff.mode;
    d.rule = eff.names.first().cloned();
    mount_policy(cfg, &bundle, image_rule, &mut d);
    integrity(cfg, &bundle, image_rule, deadline, &mut d);
    d
}

/// Step 5: the mounts and the root as the runtime will make them: clean destinations, the
/// read-only policy for where each mount lands, and no capability that undoes a read-only root.
fn mount_policy(cfg: &Config, bundle: &Bundle, rule: Option<&policy::Rule>, d: &mut Decision) {
    for dest in bundle.mount_destinations() {
        if let Some(why) = crate::exclude::unclean(&dest) {
            d.violations.push(Violation::new(Code::MountUnclean,
                format!(
                    "mount destination {:?} {why}: runc applies `..` after following the image's symlinks, so it may mount elsewhere than the path reads; write it as a clean absolute path",
                    display_path(&dest)
                ),
            ));
        }
    }
    if !cfg.readonly.enabled {
        return;
    }
    // Where each destination lands, through the symlinks on disk. The integrity check then
    // requires the disk's symlinks on the way to every destination to be the sealed ones
    // (mount-redirect), so this is also where the seal says it lands.
    let root = walk::open_root(&bundle.root).ok();
    let landing = |dest: &Path| -> Option<PathBuf> {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let dest = dest.as_os_str().as_bytes();
        if crate::exclude::unclean(dest).is_some() {
            return None;
        }
        let root = root.as_ref()?;
        let p = crate::exclude::resolve_with(dest, |p| walk::symlink_at(root.as_fd(), p));
        Some(if p.is_empty() { PathBuf::from("/") } else { PathBuf::from(std::ffi::OsString::from_vec(p)) })
    };
    let facts = readonly::Facts { submounts: &readonly::host_submounts, landing: &landing };
    for v in readonly::check(&bundle.spec, &cfg.readonly, &facts) {
        d.violations.push(Violation::new(v.code, v.message));
    }
    let capable = readonly::remount_capable(&bundle.spec);
    if !capable.is_empty() {
        match rule.and_then(|r| r.allow_remount.as_ref().map(|why| (r, why))) {
            Some((r, why)) => d.allowances.push(format!(
                "{} allowed by rule {:?} (allow_remount: {why})",
                capable.join(", "),
                r.name
            )),
            None => d.violations.push(Violation::new(Code::RemountCapable,
                format!(
                    "the process holds {} and can remount the read-only root read-write; drop CAP_SYS_ADMIN (no --privileged), or give the image's rule allow_remount = \"REASON\"",
                    capable.join(", ")
                ),
            )),
        }
    }
}

/// `ROOTSEAL_TRACE=1`: phase timings, with the resident and peak memory after each phase, on
/// stderr, for profiling the hook.
fn trace(phase: &str, since: &mut Instant) {
    if std::env::var_os("ROOTSEAL_TRACE").is_some() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        };
        eprintln!(
            "rootseal: trace: {phase} {:.1} ms, rss {} KiB, peak {} KiB",
            since.elapsed().as_secs_f64() * 1000.0,
            kib("VmRSS:").unwrap_or(0),
            kib("VmHWM:").unwrap_or(0)
        );
    }
    *since = Instant::now();
}

fn integrity(cfg: &Config, bundle: &Bundle, image_rule: Option<&policy::Rule>, deadline: Instant, d: &mut Decision) {
    let mut t = Instant::now();
    let trust = match TrustStore::new(&cfg.trust_dir).load() {
        Ok(t) => t,
        Err(e) => {
            d.violations.push(Violation::new(Code::TrustStore, format!("cannot verify: {e}")));
            return;
        }
    };
    trace("trust store", &mut t);
    let now = SystemTime::now();
    let layer_set = (cfg.hook.verify == VerifyMode::Layers).then(|| layer_set(&bundle.root)).flatten();
    if let Some((overlay, lowers, identity)) = &layer_set {
        d.root_identity = *identity;
        let reused = reuse_layers(cfg, bundle, &trust, image_rule, overlay, lowers, now);
        trace("layers (record, upper, seal trust)", &mut t);
        match reused {
            Ok((v, age)) => {
                d.via = Some(format!("layers {} verified {age}s ago, not walked", layers::describe(lowers)));
                accept(d, v);
                return;
            }
            Err(why) => trace_note(&format!("layers not reused: {why}")),
        }
    }
    // Sizes first (walk::Options::expected): when the bundle names its seal, a file whose size or
    // type differs from that seal's entry is a difference without reading it.
    let pinned: Option<Seal> = bundle
        .annotations
        .get(policy::SEAL_ANNOTATION)
        .and_then(|v| TreeDigest::parse(v))
        .and_then(|digest| SealStore::new(&cfg.seal_dir).get(&digest).ok().flatten())
        .and_then(|bytes| Seal::parse_owned(bytes).ok());
    let expected = pinned.as_ref().map(|s| &s.manifest);
    let (found, unread) = match walk_rootfs(cfg, &bundle.root, deadline, expected, &mut d.warnings) {
        Ok((m, unread, identity)) => {
            d.root_identity = identity;
            (m, unread)
        }
        Err(e) => {
            d.violations.push(Violation::new(Code::Rootfs, e));
            return;
        }
    };
    trace("walk (with cache load/save)", &mut t);
    let store = SealStore::new(&cfg.seal_dir);
    // Exact candidates first; the sketch is computed only when none of them verifies (it
    // costs a pass over every file on the start path).
    let exact = match candidates(&store, bundle, d.image.as_deref(), &found) {
        Ok(c) => c,
        Err(e) => {
            d.violations.push(Violation::new(Code::SealStore, e));
            return;
        }
    };
    trace("candidates (content key)", &mut t);
    let mut best: Option<Violation> = None;
    let mut queue = exact;
    let mut similar_added = false;
    // Files left unread carry no hash: this walk can be judged against the named seal only.
    if unread > 0 {
        queue = pinned.iter().map(|s| s.digest).collect();
        similar_added = true;
    }
    let mut i = 0;
    loop {
        if i == queue.len() {
            if similar_added {
                break;
            }
            similar_added = true;
            match similar_candidates(&store, &found, &queue) {
                Ok(more) => queue.extend(more),
                Err(e) => {
                    d.violations.push(Violation::new(Code::SealStore, e));
                    return;
                }
            }
            trace("candidates (sketch)", &mut t);
            continue;
        }
        if i >= MAX_CANDIDATES || Instant::now() >= deadline {
            break;
        }
        // A similar seal that verifies is a pass like any other (same checks, same compare).
        let r = check_candidate(cfg, &store, &trust, bundle, &found, &queue[i], now, image_rule);
        i += 1;
        trace("seal parse, checks and compare", &mut t);
        match r {
            Ok(mut v) => {
                // A record describes the tree's content: never from a walk that left files unread.
                let memo = v.memo.take().filter(|_| unread == 0);
                if let (Some((overlay, lowers, _)), Some((memo, skeleton))) = (&layer_set, memo) {
                    if let Some(rec) = layers::record_for(overlay, lowers.clone(), skeleton, &v.exclusions, memo) {
                        if let Err(e) = layers::save(&cfg.cache_dir, &rec) {
                            d.warnings.push(e.to_string());
                        }
                    }
                    trace("layers (record written)", &mut t);
                }
                accept(d, v);
                return;
            }
            Err(v) => keep_best(&mut best, v),
        }
    }
    if queue.is_empty() {
        let hint = if d.image.is_some() {
            String::new()
        } else {
            format!("; to see what differs from a sealed image, set annotation {}=IMAGE", policy::IMAGE_ANNOTATIONS[2])
        };
        d.violations.push(Violation::new(Code::Unsigned,
            format!(
                "no seal in {} matches this rootfs (content key {}): the image is unsigned or was modified; seal it and run `rootseal trust import`{hint}",
                cfg.seal_dir.display(),
                store::content_key(&found).short()
            ),
        ));
        return;
    }
    let Some(best) = best else {
        d.violations
            .push(Violation::new(Code::Deadline, "verification exceeded its deadline before any seal was checked"));
        return;
    };
    if let Some((info, path)) = &best.seal {
        d.seal = Some(info.clone());
        d.seal_path = Some(path.clone());
    }
    d.violations.push(best);
}

/// A pass: the seal, the rules that applied, the watermark to raise.
fn accept(d: &mut Decision, v: Verified) {
    d.mode = v.effective.mode;
    d.rule = (!v.effective.names.is_empty()).then(|| v.effective.names.join(", "));
    d.accepted = v.raise.map(|created| (v.info.name.clone(), created));
    d.seal = Some(v.info);
    d.seal_path = Some(v.path);
}

/// `ROOTSEAL_TRACE=1`: a line of context between phases.
fn trace_note(what: &str) {
    if std::env::var_os("ROOTSEAL_TRACE").is_some() {
        eprintln!("rootseal: trace: {}", display_path(what.as_bytes()));
    }
}

/// The overlay under a rootfs and its lowers' identities, when there is one (else a trace
/// note), with the identity of the rootfs directory.
fn layer_set(rootfs: &Path) -> Option<(layers::Overlay, Vec<layers::Layer>, Option<state::RootIdentity>)> {
    let found = walk::open_root(rootfs).map_err(|e| e.to_string()).and_then(|fd| {
        let o = layers::overlay_of(fd.as_fd())?;
        Ok((layers::identify(&o)?, o, root_identity(&fd)))
    });
    match found {
        Ok((lowers, o, id)) => Some((o, lowers, id)),
        Err(why) => {
            trace_note(&format!("layers: {why}"));
            None
        }
    }
}

/// `verify = "layers"`: a pass without a walk, from a layer record (src/node/layers.rs), with the
/// seal judged against trust, policy and the rollback watermark now. Err: why not (the walk
/// then decides, with its full reasons).
fn reuse_layers(
    cfg: &Config,
    bundle: &Bundle,
    trust: &Trust,
    image_rule: Option<&policy::Rule>,
    overlay: &layers::Overlay,
    lowers: &[layers::Layer],
    now: SystemTime,
) -> Result<(Verified, u64), String> {
    let store = SealStore::new(&cfg.seal_dir);
    let r = layers::reusable(
        &cfg.cache_dir,
        overlay,
        lowers,
        &bundle.mount_destinations(),
        runtime_artifacts(bundle),
        |landing| cfg.readonly.may_shadow(landing),
        |d| store.path_for(d),
        cfg.hook.layer_ttl(),
        now,
    )?;
    let digest = r.seal.tree_digest().ok_or("the record's seal digest is malformed")?;
    if let Some(v) = bundle.annotations.get(policy::SEAL_ANNOTATION) {
        if TreeDigest::parse(v) != Some(digest) {
            return Err(format!("annotation {} names another seal", policy::SEAL_ANNOTATION));
        }
    }
    let (signers, effective) = judge::memo_policy(
        &cfg.node_policy(),
        &r.seal.name,
        &digest,
        &r.seal.keyids,
        r.seal.expires(),
        trust,
        image_rule,
        now,
    )
    .map_err(|v| v.message)?;
    let info = SealInfo {
        digest: digest.to_string(),
        name: r.seal.name.clone(),
        signers: signers.iter().map(|s| s.name.clone()).collect(),
    };
    let path = store.path_for(&digest);
    let created = r.seal.created();
    let raise = cfg.hook.rollback_protection
        && check_rollback(cfg, &r.seal.name, created, &digest, &info, &path).map_err(|v| v.message)?;
    let age = now
        .duration_since(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(r.verified_at))
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let v = Verified {
        info,
        path,
        raise: raise.then_some(created),
        effective,
        memo: None,
        exclusions: Exclusions::default(),
    };
    Ok((v, age))
}

/// Keeps the most telling reason ([`Code::rank`]), else the first.
fn keep_best(best: &mut Option<Violation>, v: Violation) {
    if best.as_ref().is_none_or(|b| v.code.rank() > b.code.rank()) {
        *best = Some(v);
    }
}

/// A candidate seal that verified, with the rules that then apply.
struct Verified {
    info: SealInfo,
    path: PathBuf,
    /// The seal's `created`, when a pass must raise its name's rollback watermark to it.
    raise: Option<SystemTime>,
    effective: Effective,
    /// What a layer record needs of the seal and the tree (`verify = "layers"` walks only).
    memo: Option<(layers::SealMemo, Manifest)>,
    /// The mount exclusions the compare applied.
    exclusions: Exclusions,
}

/// Walks a rootfs, through the verification cache in `verify = "cached"` mode (docs/performance.md):
/// unchanged files are not read again. The cache is rewritten when anything was hashed.
/// Also returns the identity of the directory walked (for the state record).
pub fn walk_rootfs(
    cfg: &Config,
    rootfs: &Path,
    deadline: Instant,
    expected: Option<&Manifest>,
    warnings: &mut Vec<String>,
) -> Result<(Manifest, usize, Option<state::RootIdentity>), String> {
    let fd = walk::open_root(rootfs).map_err(|e| e.to_string())?;
    let identity = root_identity(&fd);
    let cached = cfg.hook.verify.uses_cache();
    let root_id = if cached { crate::cache::RootId::of(&fd).ok() } else { None };
    let cache = match &root_id {
        Some(id) => crate::cache::load(&cfg.cache_dir, rootfs, id).0,
        None => crate::cache::Cache::default(),
    };
    let opts = walk::Options {
        limits: cfg.limits,
        deadline: Some(deadline),
        cache: root_id.is_some().then_some(&cache),
        want_cache: root_id.is_some(),
        expected,
        ..walk::Options::default()
    };
    let w = walk::walk_cached(rootfs, fd, &opts).map_err(|e| e.to_string())?;
    drop(cache);
    crate::sys::release_free_memory();
    if let (Some(id), Some(new)) = (root_id, &w.cache) {
        // A cache that cannot be written only costs speed next time.
        if let Err(e) = crate::cache::save(&cfg.cache_dir, rootfs, &id, new) {
            warnings.push(e.to_string());
        }
    }
    Ok((w.manifest, w.unread, identity))
}

/// The (dev, ino, mount id) of an opened rootfs, taken from the very fd that is walked.
fn root_identity(fd: &impl AsFd) -> Option<state::RootIdentity> {
    crate::sys::statx_mount(fd.as_fd()).ok().map(|(dev, ino, mnt_id)| state::RootIdentity { dev, ino, mnt_id })
}

/// Seal candidates, most specific first: the seal annotation, the content key, the image name,
/// then the most similar sketches.
fn candidates(
    store: &SealStore,
    bundle: &Bundle,
    image: Option<&str>,
    found: &Manifest,
) -> Result<Vec<TreeDigest>, String> {
    let mut out: Vec<TreeDigest> = Vec::new();
    if let Some(v) = bundle.annotations.get(policy::SEAL_ANNOTATION) {
        let d = TreeDigest::parse(v).ok_or_else(|| {
            format!("annotation {}={v:?} is not a tree digest (sha256:<64 hex>)", policy::SEAL_ANNOTATION)
        })?;
        out.push(d);
    }
    // The content key of the tree as found, and of the tree without the runtime's artifacts
    // (an image may or may not have its own /etc/mtab).
    let artifacts = runtime_artifacts(bundle);
    let mut keys = vec![store::content_key(found)];
    if found.entries().iter().any(|e| artifacts.iter().any(|(p, k)| *p == e.path && *k == e.kind)) {
        let without = found.filtered(|e| !artifacts.iter().any(|(p, k)| *p == e.path && *k == e.kind));
        keys.push(store::content_key(&without));
    }
    for key in keys {
        for d in store.by_content(&key).map_err(|e| e.to_string())? {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    if let Some(name) = image {
        // Newest first: the index appends.
        for d in store.by_name(name).map_err(|e| e.to_string())?.into_iter().rev() {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// Seals similar to the rootfs (sketch), not already tried: only to name what changed when no
/// exact candidate verified, since a modified rootfs no longer has its seal's content key.
fn similar_candidates(store: &SealStore, found: &Manifest, tried: &[TreeDigest]) -> Result<Vec<TreeDigest>, String> {
    Ok(store
        .by_sketch(found)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(d, _)| d)
        .filter(|d| !tried.contains(d))
        .take(3)
        .collect())
}

/// What this bundle's runtime creates in the rootfs outside any mount.
fn runtime_artifacts(bundle: &Bundle) -> Vec<(Vec<u8>, crate::manifest::Kind)> {
    match bundle.annotations.get("io.container.manager").map(String::as_str) {
        Some("libpod") => crate::exclude::libpod_artifacts(),
        _ => Vec::new(),
    }
}

// The violation is the common outcome here and is moved once; boxing it buys nothing.
#[allow(clippy::too_many_arguments, clippy::result_large_err)]
fn check_candidate(
    cfg: &Config,
    store: &SealStore,
    trust: &Trust,
    bundle: &Bundle,
    found: &Manifest,
    digest: &TreeDigest,
    now: SystemTime,
    image_rule: Option<&policy::Rule>,
) -> Result<Verified, Violation> {
    let path = store.path_for(digest);
    let bytes = match store.get(digest) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(Violation::new(
                Code::Unsigned,
                format!(
                    "no seal {} in {}; import it with `rootseal trust import`",
                    digest.short(),
                    cfg.seal_dir.display()
                ),
            ))
        }
        Err(e) => return Err(Violation::new(Code::SealStore, e.to_string())),
    };
    let seal = Seal::parse_owned(bytes)
        .map_err(|e| Violation::new(Code::SealInvalid, format!("seal {} is invalid: {e}", path.display())))?;
    if seal.digest != *digest {
        return Err(Violation::new(
            Code::SealInvalid,
            format!("seal {} is filed under {} but seals {}", path.display(), digest.short(), seal.digest.short()),
        ));
    }
    let (signers, eff) = judge::seal_policy(&cfg.node_policy(), &seal, trust, image_rule, now)?;
    let info = SealInfo {
        digest: seal.digest.to_string(),
        name: seal.name.clone(),
        signers: signers.iter().map(|s| s.name.clone()).collect(),
    };
    // runc resolves a mount destination through the symlinks *on disk*: a symlink planted at or
    // above a destination would redirect the mount over a sealed path. Both must agree.
    for dest in bundle.mount_destinations() {
        let lexical = crate::exclude::clean(&dest);
        let in_seal = crate::exclude::resolve(&lexical, &seal.manifest);
        let on_disk = crate::exclude::resolve(&lexical, found);
        if in_seal != on_disk {
            return Err(Violation::new(Code::MountRedirect,
                format!(
                    "mount destination {} resolves to {} on disk but to {} in seal {}: a symlink on disk would redirect the mount",
                    display_path(&lexical),
                    display_path(&on_disk),
                    display_path(&in_seal),
                    seal.digest.short()
                ),
            ));
        }
    }
    let ex = Exclusions::new(&bundle.mount_destinations(), &seal.manifest).with_artifacts(runtime_artifacts(bundle));
    if ex.destinations().any(|p| p.is_empty()) {
        return Err(Violation::new(Code::MountOverRoot, "a mount over / hides the whole sealed rootfs"));
    }
    let diffs = verify::compare(&seal, found, Some(&ex));
    if diffs.is_empty() {
        shadowing(cfg, bundle, &seal, &info, &path)?;
        // A watermark to raise on a pass: only for a seal newer than the node's (or the first).
        let raise =
            cfg.hook.rollback_protection && check_rollback(cfg, &seal.name, seal.created, &seal.digest, &info, &path)?;
        let memo = (cfg.hook.verify == VerifyMode::Layers)
            .then(|| layers::SealMemo::new(&seal, signers.iter().map(|s| s.keyid.clone()).collect(), &path))
            .flatten()
            .map(|m| (m, layers::skeleton(found, &ex, &seal.manifest)));
        return Ok(Verified { info, path, raise: raise.then_some(seal.created), effective: eff, memo, exclusions: ex });
    }
    Err(Violation {
        code: Code::Tampered,
        message: verify::describe_mismatch(&diffs, MESSAGE_PATHS, &seal, &signers),
        diffs,
        seal: Some((info, path)),
    })
}

/// A mount that hides sealed content (a non-empty sealed directory, or a sealed non-empty
/// file, at its destination as the seal resolves it) runs content no seal covers: a read-only
/// bind of a host directory at /bin passes the read-only policy and is excluded from the
/// comparison. Only `[readonly] shadow_destinations` may do that.
#[allow(clippy::result_large_err)]
fn shadowing(cfg: &Config, bundle: &Bundle, seal: &Seal, info: &SealInfo, path: &Path) -> Result<(), Violation> {
    for dest in bundle.mount_destinations() {
        let landing = crate::exclude::resolve(&crate::exclude::clean(&dest), &seal.manifest);
        if landing.is_empty() || cfg.readonly.may_shadow(&landing) {
            continue;
        }
        let hidden = match seal.manifest.get(&landing).map(|e| &e.kind) {
            Some(crate::manifest::Kind::Dir) => seal.manifest.has_below(&landing),
            Some(crate::manifest::Kind::File { size, .. }) => *size > 0,
            _ => false,
        };
        if hidden {
            let via = if landing == crate::exclude::clean(&dest) {
                String::new()
            } else {
                format!(" (mount destination {})", display_path(&dest))
            };
            return Err(Violation {
                code: Code::Shadowed,
                message: format!(
                    "a mount at {}{via} hides sealed content of seal {}, so the container would run files no seal covers; mount it elsewhere, or allow the path in [readonly] shadow_destinations",
                    display_path(&landing),
                    seal.digest.short()
                ),
                diffs: Vec::new(),
                seal: Some((info.clone(), path.to_path_buf())),
            });
        }
    }
    Ok(())
}

/// A seal older than the newest one this node accepted for the same image name is refused
/// (src/trust/rollback.rs). Checked only for a seal that verified and matches: the name is signed.
/// Ok(true) when the seal is newer than the watermark (or there is none): a pass raises it.
#[allow(clippy::result_large_err)]
fn check_rollback(
    cfg: &Config,
    name: &str,
    created: SystemTime,
    digest: &TreeDigest,
    info: &SealInfo,
    path: &Path,
) -> Result<bool, Violation> {
    match Watermarks::new(&cfg.seal_dir, cfg.hook.rollback_scope).check(name, created) {
        Ok(rollback::Verdict::Newer) => Ok(true),
        Ok(rollback::Verdict::Current) => Ok(false),
        Ok(rollback::Verdict::RolledBack(w)) => Err(Violation {
            code: Code::Rollback,
            message: format!(
                "seal {} for {:?} was created {} but this node already accepted seal {} created {} (a rollback); if the rollback is deliberate, run `rootseal rollback allow {:?} --seal {}`",
                digest.short(),
                name,
                humantime::format_rfc3339_seconds(created),
                TreeDigest::parse(&w.seal).map(|d| d.short()).unwrap_or(w.seal),
                w.created,
                name,
                digest,
            ),
            diffs: Vec::new(),
            seal: Some((info.clone(), path.to_path_buf())),
        }),
        Err(e) => Err(Violation::new(Code::RollbackStore, format!("cannot check for a rollback: {e}"))),
    }
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
            let _ = alerts::emit(&a, &d.event("hook", None, None));
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
        for e in alerts::emit(&cfg.alerts, &d.event("hook", stage, pid)) {
            let _ = writeln!(stderr, "rootseal: warning: alert not delivered: {e}");
        }
    }
    // A block writes exactly one line, the reason: runc and containerd show a hook's whole
    // stderr, but podman shows one line of it, and which one depends on its version. Warnings (a
    // cache not written, an alert not delivered) follow on lines of their own only when the
    // container runs (doctor reports an undeliverable sink).
    let mut warnings = d.warnings.clone();
    if alert {
        for e in alerts::emit(&cfg.alerts, &d.event("hook", stage, pid)) {
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
