//! One container's scan: its seal and exclusions prepared from the state record, the walk of
//! what it runs in (`/proc/PID/root`), the comparison, the events and the drift action.

use super::*;

/// Why a running container could not be verified (a `scan-failed` event).
#[derive(Debug, thiserror::Error)]
pub(super) enum ScanError {
    #[error(transparent)]
    Trust(#[from] Arc<crate::trust::TrustError>),
    #[error("the state record names no seal")]
    NoSeal,
    #[error("seal {} is no longer readable ({error}); re-import it", path.display())]
    SealUnreadable { path: PathBuf, error: std::io::Error },
    #[error(transparent)]
    ReadSeal(#[from] crate::atomic::ReadError),
    #[error("seal {} is invalid: {error}", path.display())]
    SealInvalid { path: PathBuf, error: crate::seal::SealError },
    /// The seal file now holds another seal than the one the container started with.
    #[error(
        "seal {} now seals {}, not the {} the container started with",
        path.display(),
        now.short(),
        started.as_deref().unwrap_or("?")
    )]
    SealChanged { path: PathBuf, now: crate::manifest::TreeDigest, started: Option<String> },
    /// Trust and policy refuse the seal now (a key revoked, the seal expired, a rule).
    #[error("{}", .0.message)]
    Refused(crate::verify::judge::Refusal),
    #[error(transparent)]
    Bundle(#[from] crate::oci::OciError),
    #[error(
        "mount destination {:?} {why}: where runc mounted it is unknown, so the scan cannot exclude it; recreate the container with clean destinations",
        display_path(destination)
    )]
    UncleanDestination { destination: Vec<u8>, why: &'static str },
    #[error("the container's process could not be identified")]
    NoProcess,
    #[error(transparent)]
    Root(#[from] crate::container_root::ContainerRootError),
    #[error(transparent)]
    Walk(#[from] walk::WalkError),
}

impl Monitor {
    pub(super) fn prepare(&mut self, id: &str) -> Result<(), ScanError> {
        let trust = self.trust.clone()?;
        let cfg = &self.cfg;
        let w = self.watched.get_mut(id).expect("watched");
        let seal_path = w
            .rec
            .seal_path
            .clone()
            .or_else(|| {
                w.rec
                    .seal_digest
                    .as_deref()
                    .and_then(crate::manifest::TreeDigest::parse)
                    .map(|d| crate::store::SealStore::new(&cfg.seal_dir).path_for(&d))
            })
            .ok_or(ScanError::NoSeal)?;
        let meta = std::fs::metadata(&seal_path)
            .map_err(|error| ScanError::SealUnreadable { path: seal_path.clone(), error })?;
        let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
        if w.seal.as_ref().is_none_or(|(_, s)| *s != stamp) {
            let seal = match self.seals.get(&seal_path).filter(|(s, _)| *s == stamp) {
                Some((_, seal)) => Arc::clone(seal),
                None => {
                    let bytes = crate::atomic::read_bounded(&seal_path, crate::seal::MAX_SEAL_BYTES)?;
                    let seal = Arc::new(
                        Seal::parse_owned(bytes)
                            .map_err(|error| ScanError::SealInvalid { path: seal_path.clone(), error })?,
                    );
                    self.seals.insert(seal_path.clone(), (stamp, Arc::clone(&seal)));
                    seal
                }
            };
            if w.rec.seal_digest.as_deref() != Some(seal.digest.to_string().as_str()) {
                return Err(ScanError::SealChanged {
                    path: seal_path,
                    now: seal.digest,
                    started: w.rec.seal_digest.clone(),
                });
            }
            w.seal = Some((seal, stamp));
            w.exclusions = None;
            w.sig_memo = None;
        }
        // Every scan, the same trust and policy checks as at start (keys, revocation, expiry,
        // rules): a key revoked or a seal expired since the start is a scan failure now.
        {
            let seal = &w.seal.as_ref().expect("loaded above").0;
            let namespace = w.rec.pod.as_ref().map(|p| p.namespace.as_str());
            let image_rule = policy::rule_for(&cfg.rules, w.rec.image.as_deref(), namespace);
            let now = SystemTime::now();
            let keys: Vec<String> = trust.keys.iter().map(|k| k.key.keyid.clone()).collect();
            let memo = w.sig_memo.as_ref().filter(|(k, _)| *k == keys).and_then(|(_, verifying)| {
                crate::verify::judge::memo_policy(
                    &cfg.node_policy(),
                    &seal.name,
                    &seal.digest,
                    verifying,
                    seal.expires,
                    &trust,
                    image_rule,
                    now,
                )
                .ok()
            });
            // Anything but a pass from the memo is judged in full, for the full reason.
            let (signers, _) = match memo {
                Some(pass) => pass,
                None => {
                    let pass = crate::verify::judge::seal_policy(&cfg.node_policy(), seal, &trust, image_rule, now)
                        .map_err(ScanError::Refused)?;
                    w.sig_memo = Some((keys, verify::verifying_keys(seal, &trust)));
                    pass
                }
            };
            w.signer_keyids = signers.iter().map(|s| s.keyid.clone()).collect();
            w.signers = signers.into_iter().map(|s| s.name).collect();
        }
        if w.exclusions.is_none() {
            let seal = &w.seal.as_ref().expect("loaded above").0;
            // The destinations the hook excluded at start, from the record: config.json is
            // the bundle owner's to edit, and a mount entry added to it afterwards (which runc
            // never mounted) would otherwise hide drift under its destination. Only a version
            // 1 record (an older hook) falls back to today's config.json.
            let (dests, manager): (Vec<Vec<u8>>, Option<String>) = match &w.rec.mount_destinations {
                Some(d) => {
                    use std::os::unix::ffi::OsStrExt;
                    (d.iter().map(|p| p.as_os_str().as_bytes().to_vec()).collect(), w.rec.manager.clone())
                }
                None => {
                    let bundle = crate::oci::Bundle::load(&w.rec.bundle)?;
                    (bundle.mount_destinations(), bundle.annotations.get("io.container.manager").cloned())
                }
            };
            // A destination that is not clean may land elsewhere than it reads (runc applies
            // `..` after symlinks): its exclusion cannot be trusted, so nothing passes.
            if let Some((d, why)) = dests.iter().find_map(|d| crate::exclude::unclean(d).map(|w| (d, w))) {
                return Err(ScanError::UncleanDestination { destination: d.clone(), why });
            }
            let artifacts = match manager.as_deref() {
                Some("libpod") => crate::exclude::libpod_artifacts(),
                _ => Vec::new(),
            };
            w.exclusions = Some(Exclusions::new(&dests, &seal.manifest).with_artifacts(artifacts));
        }
        Ok(())
    }

    pub(super) fn scan_one(&mut self, id: &str) -> Vec<Event> {
        let started = Instant::now();
        let cpu0 = crate::sys::cpu_seconds();
        let prepared = self.prepare(id);
        let deadline = Instant::now() + self.cfg.monitor.scan_deadline();
        let limits = self.cfg.limits;
        let max_paths = self.cfg.monitor.max_event_paths;
        let action = self.action_for(id);
        let cached = self.cfg.hook.verify.uses_cache();
        let cache_dir = self.cfg.cache_dir.clone();
        let layers_mode = self.cfg.hook.verify == crate::config::VerifyMode::Layers;
        let seal_dir = self.cfg.seal_dir.clone();
        let layer_ttl = self.cfg.hook.layer_ttl();
        let mut layer_set = None;
        let mut replaced: Option<String> = None;
        let mut not_entered = false;
        let full_rehash = self.cfg.monitor.full_rehash();
        let w = self.watched.get_mut(id).expect("watched");
        // A periodic scan reads every file: the cache is rebuilt, not consulted.
        let full = cached && full_rehash.is_some_and(|p| w.last_full.elapsed() >= p);
        let result: Result<Vec<Difference>, ScanError> = prepared.and_then(|()| {
            let (seal, _) = w.seal.as_ref().expect("prepared");
            let pidfd = w.pidfd.as_ref().ok_or(ScanError::NoProcess)?;
            let just_watched =
                w.outcome == Outcome::Pending && w.since.elapsed() < crate::container_root::NOT_ENTERED_GRACE;
            let seen = crate::container_root::open(&w.rec, pidfd, just_watched)?;
            if seen.not_entered {
                not_entered = true;
                return Ok(Vec::new());
            }
            replaced = seen.replaced;
            // Not the verified tree (another root altogether): nothing of it is walked.
            let Some(fd) = seen.fd else { return Ok(Vec::new()) };
            if layers_mode {
                // The layer record describes the host's overlay mount: judged on the host
                // path, and only when that path is still the directory the container runs in.
                layer_set = seen.host.as_ref().and_then(|h| {
                    crate::layers::overlay_of(h.as_fd()).and_then(|o| Ok((crate::layers::identify(&o)?, o))).ok()
                });
            }
            // The cache is keyed by the host path's identity (the hook's too), which the
            // container's root matches when `seen.host` is Some.
            let root_id = match (&seen.host, cached) {
                (Some(h), true) => crate::cache::RootId::of(h).ok(),
                _ => None,
            };
            // A periodic full scan rebuilds the cache instead of consulting it.
            let prior = match (&root_id, w.cache.take()) {
                _ if full => Some(crate::cache::Cache::default()),
                (Some(id), Some((cid, c))) if cid == *id => Some(c),
                _ => None,
            };
            // The container's view has its mounts on top (proc, sys, dev, binds): the walk does
            // not cross mounts, so the recorded destinations are pruned, unopened. A mount the
            // container made itself elsewhere stops the walk (a scan failure, never a pass).
            let ex = w.exclusions.clone().unwrap_or_default();
            let prune = move |p: &[u8]| ex.is_excluded(p);
            let opts = walk::Options {
                limits,
                prune: Some(&prune),
                deadline: Some(deadline),
                // The periodic full re-hash bounds how long a change the stat key cannot see
                // (a write through a mapping on overlay or tmpfs) goes unseen, so the monitor
                // keeps its cache there; without it, only where stat keys are sound.
                cache_any_fs: full_rehash.is_some(),
                // Sizes first: a file whose size or type differs from the seal is drift unread.
                expected: Some(&seal.manifest),
                ..walk::Options::default()
            };
            let slot = crate::verify::scan::CacheSlot { cache_dir: &cache_dir, rootfs: &w.rec.rootfs, root: root_id };
            let scanned = crate::verify::scan::walk(&slot, fd, prior, opts)?;
            if let Some(e) = scanned.save_error {
                tracing::warn!("warning: {e}");
            }
            if let (Some(id), Some(c)) = (slot.root, scanned.cache) {
                w.cache = Some((id, c.without_racy(SystemTime::now())));
            }
            let walked = scanned.walked;
            if full {
                w.last_full = Instant::now();
                w.full_scans += 1;
            }
            let diffs = verify::compare(seal, &walked.manifest, w.exclusions.as_ref());
            if let Some((lowers, overlay)) = &layer_set {
                // Drift seen through an overlay: the next start over these layers walks again.
                // A clean scan renews the layers' record (src/node/layers.rs).
                let record = crate::layers::record_path(&cache_dir, lowers);
                let fresh = std::fs::symlink_metadata(&record)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age < layer_ttl / 4);
                let renewed = if diffs.is_empty() && fresh {
                    None
                } else if diffs.is_empty() {
                    let path = crate::store::SealStore::new(&seal_dir).path_for(&seal.digest);
                    crate::layers::SealMemo::new(seal, w.signer_keyids.clone(), &path)
                        .zip(w.exclusions.as_ref())
                        .and_then(|(memo, ex)| {
                            let skeleton = crate::layers::skeleton(&walked.manifest, ex, &seal.manifest);
                            crate::layers::record_for(overlay, lowers.clone(), skeleton, ex, memo)
                        })
                        .map(|rec| crate::layers::save(&cache_dir, &rec))
                } else {
                    Some(crate::layers::forget(&cache_dir, lowers))
                };
                if let Some(Err(e)) = renewed {
                    tracing::warn!("warning: {e}");
                }
            }
            Ok(diffs)
        });
        self.stats.scans += 1;
        let dur = started.elapsed().as_secs_f64();
        self.stats.last_duration = dur;
        self.stats.duration_sum += dur;
        self.stats.cpu_sum += crate::sys::cpu_seconds() - cpu0;
        w.last_scan = Some(SystemTime::now());
        let mut events = Vec::new();
        if not_entered && result.is_ok() {
            // Between the hook (prestart) and runc's pivot_root: nothing to judge yet.
            return events;
        }
        match result {
            Err(e) => {
                // The reason as the operator reads it: a new event only when it changes.
                let why = e.to_string();
                self.stats.failures += 1;
                w.outcome = Outcome::Failed;
                if w.last_error.as_deref() != Some(why.as_str()) {
                    events.push(event(
                        w,
                        alerts::EventKind::ScanFailed,
                        alerts::Severity::Warning,
                        vec![violation(crate::verify::Code::ScanFailed, &why, &[], max_paths)],
                        format!("rootseal: cannot verify running container {}: {why}", crate::alerts::short_id(id)),
                        None,
                    ));
                }
                w.last_error = Some(why);
            }
            Ok(diffs) if diffs.is_empty() && replaced.is_none() => {
                w.last_error = None;
                if w.reported.take().is_some() {
                    events.push(event(
                        w,
                        alerts::EventKind::Recovered,
                        alerts::Severity::Notice,
                        Vec::new(),
                        format!("rootseal: container {} matches its seal again", crate::alerts::short_id(id)),
                        None,
                    ));
                }
                w.outcome = Outcome::Clean;
                w.drift.clear();
                w.replaced = None;
            }
            Ok(diffs) => {
                w.last_error = None;
                w.outcome = Outcome::Drift;
                let mut set: BTreeSet<Vec<u8>> = diffs.iter().map(|d| d.path.clone()).collect();
                if let Some(r) = &replaced {
                    // Not a path: a NUL never occurs in one.
                    set.insert(format!("\0rootfs-replaced {r}").into_bytes());
                }
                if w.reported.as_ref() != Some(&set) {
                    let outcome = if w.action_taken.is_none() { take_action(w, action) } else { None };
                    // A failed kill or freeze is tried again at the next drift change.
                    if let Some((a, true)) = &outcome {
                        w.action_taken = Some(a.clone());
                    }
                    let act = outcome.map(|(a, _)| a);
                    self.stats.drift_events += 1;
                    let mut first: Vec<String> = replaced.iter().cloned().collect();
                    first.extend(diffs.iter().take(5).map(|d| d.to_string()));
                    let more =
                        if diffs.len() > 5 { format!("; and {} more path(s)", diffs.len() - 5) } else { String::new() };
                    let act_text = act.as_ref().map(|a| format!("; action: {a}")).unwrap_or_default();
                    let msg = format!(
                        "rootseal: container {} drifted from its seal: {}{more}{act_text}",
                        crate::alerts::short_id(id),
                        first.join("; ")
                    );
                    let mut vs = Vec::new();
                    if !diffs.is_empty() {
                        vs.push(violation(crate::verify::Code::Drift, &msg, &diffs, max_paths));
                    }
                    if let Some(r) = &replaced {
                        vs.push(violation(crate::verify::Code::RootfsReplaced, r, &[], max_paths));
                    }
                    events.push(event(w, alerts::EventKind::Drift, alerts::Severity::Err, vs, msg, act));
                    w.reported = Some(set);
                }
                w.drift = diffs;
                w.replaced = replaced;
            }
        }
        events.extend(self.gate_check(id));
        events
    }

    pub(super) fn action_for(&self, id: &str) -> Action {
        let Some(w) = self.watched.get(id) else { return Action::Alert };
        let name = w.rec.image.clone().or_else(|| w.seal.as_ref().map(|(s, _)| s.name.clone()));
        let namespace = w.rec.pod.as_ref().map(|p| p.namespace.as_str());
        policy::rule_for(&self.cfg.rules, name.as_deref(), namespace)
            .and_then(|r| r.drift_action)
            .unwrap_or(self.cfg.monitor.action)
    }
}

pub(super) fn violation(code: crate::verify::Code, msg: &str, diffs: &[Difference], max: usize) -> ViolationRecord {
    ViolationRecord {
        code,
        message: msg.trim_start_matches("rootseal: ").into(),
        paths: diffs
            .iter()
            .take(max)
            .map(|d| PathChange {
                path: display_path(&d.path),
                changes: d.changes.iter().map(|c| c.class().to_string()).collect(),
                detail: d.to_string(),
            })
            .collect(),
        total_paths: (!diffs.is_empty()).then_some(diffs.len()),
    }
}

pub(super) fn event(
    w: &Watched,
    kind: alerts::EventKind,
    severity: alerts::Severity,
    violations: Vec<ViolationRecord>,
    message: String,
    action: Option<String>,
) -> Event {
    Event {
        time: Event::now_string(),
        host: alerts::hostname(),
        source: alerts::Source::Monitor,
        event: kind,
        severity,
        mode: if w.rec.mode == "audit" { Mode::Audit } else { Mode::Enforce },
        container: Some(ContainerInfo {
            id: display_path(w.rec.id.as_bytes()),
            bundle: w.rec.bundle.display().to_string(),
            rootfs: Some(w.rec.rootfs.display().to_string()),
            pid: w.rec.pid,
            pod: w.rec.pod.clone(),
        }),
        stage: None,
        image: w.rec.image.clone(),
        seal: w.rec.seal_digest.as_ref().map(|d| SealInfo {
            digest: d.clone(),
            name: w.seal.as_ref().map(|(s, _)| s.name.clone()).unwrap_or_default(),
            signers: w.signers.clone(),
        }),
        rule: None,
        exemption: None,
        violations,
        message,
        action,
        allowances: Vec::new(),
        process: None,
        elapsed_ms: None,
    }
}

/// Runs the drift action. Returns what was done, for the event, and whether it worked.
pub(super) fn take_action(w: &Watched, action: Action) -> Option<(String, bool)> {
    match action {
        Action::Alert => None,
        Action::Kill => Some(match (&w.pidfd, w.rec.pid) {
            (Some(fd), Some(pid)) => match crate::containment::kill(fd.as_fd(), pid) {
                Ok(what) => (what, true),
                Err(e) => (format!("kill failed: {e}"), false),
            },
            _ => ("kill not possible: the container's process could not be identified".into(), false),
        }),
        Action::Freeze => Some(match w.rec.pid.filter(|_| w.pidfd.is_some()) {
            Some(pid) => match crate::containment::freeze(pid) {
                Ok(p) => (format!("frozen: {} set", p.display()), true),
                Err(e) => (format!("freeze failed: {e}"), false),
            },
            None => ("freeze not possible: the container's process could not be identified".into(), false),
        }),
    }
}
