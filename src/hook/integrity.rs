//! Step 6: integrity. The walk (through the cache), the candidate seals, each judged against
//! trust and policy (src/verify/judge.rs) and compared after mount exclusion, the rollback
//! watermark, and `verify = "layers"` reuse.

use super::mounts::shadowing;
use super::*;

/// Why the seal candidates cannot be listed, or why a layer record is not reused (the walk
/// then decides).
#[derive(Debug, thiserror::Error)]
pub(super) enum IntegrityError {
    #[error("annotation {}={value:?} is not a tree digest (sha256:<64 hex>)", policy::SEAL_ANNOTATION)]
    SealAnnotation { value: String },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Layers(#[from] layers::LayersError),
    #[error("annotation {} names another seal", policy::SEAL_ANNOTATION)]
    OtherSeal,
    /// Trust, policy or the rollback watermark refuse the record's seal now.
    #[error("{}", .0.message)]
    Refused(judge::Refusal),
}

/// `ROOTSEAL_TRACE=1` (src/trace.rs): the phase's time, with the resident and peak memory
/// after it, for profiling the hook.
pub(super) fn trace(phase: &str, since: &mut Instant) {
    if tracing::enabled!(tracing::Level::DEBUG) {
        let (rss, peak) = crate::trace::memory_kib();
        let ms = since.elapsed().as_secs_f64() * 1000.0;
        tracing::debug!("{phase} {ms:.1} ms, rss {rss} KiB, peak {peak} KiB");
    }
    *since = Instant::now();
}

pub(super) fn integrity(
    cfg: &Config,
    bundle: &Bundle,
    trust: &Trust,
    image_rule: Option<&policy::Rule>,
    deadline: Instant,
    d: &mut Decision,
) {
    let mut t = Instant::now();
    let now = SystemTime::now();
    let layer_set = (cfg.hook.verify == VerifyMode::Layers).then(|| layer_set(&bundle.root)).flatten();
    if let Some((overlay, lowers, identity)) = &layer_set {
        d.root_identity = *identity;
        let reused = reuse_layers(cfg, bundle, trust, image_rule, overlay, lowers, now);
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
            d.violations.push(Violation::new(Code::Rootfs, e.to_string()));
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
            d.violations.push(Violation::new(Code::SealStore, e.to_string()));
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
                    d.violations.push(Violation::new(Code::SealStore, e.to_string()));
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
        let r = check_candidate(cfg, &store, trust, bundle, &found, &queue[i], now, image_rule);
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
pub(super) fn accept(d: &mut Decision, v: Verified) {
    d.mode = v.effective.mode;
    d.rule = (!v.effective.names.is_empty()).then(|| v.effective.names.join(", "));
    d.accepted = v.raise.map(|created| (v.info.name.clone(), created));
    d.seal = Some(v.info);
    d.seal_path = Some(v.path);
}

/// `ROOTSEAL_TRACE=1`: a line of context between phases.
pub(super) fn trace_note(what: &str) {
    tracing::debug!("{}", display_path(what.as_bytes()));
}

/// The overlay under a rootfs and its lowers' identities, when there is one (else a trace
/// note), with the identity of the rootfs directory.
pub(super) fn layer_set(rootfs: &Path) -> Option<(layers::Overlay, Vec<layers::Layer>, Option<state::RootIdentity>)> {
    let fd = match walk::open_root(rootfs) {
        Ok(fd) => fd,
        Err(why) => {
            trace_note(&format!("layers: {why}"));
            return None;
        }
    };
    let found = layers::overlay_of(fd.as_fd()).and_then(|o| Ok((layers::identify(&o)?, o)));
    match found {
        Ok((lowers, o)) => Some((o, lowers, root_identity(&fd))),
        Err(why) => {
            trace_note(&format!("layers: {why}"));
            None
        }
    }
}

/// `verify = "layers"`: a pass without a walk, from a layer record (src/node/layers.rs), with the
/// seal judged against trust, policy and the rollback watermark now. Err: why not (the walk
/// then decides, with its full reasons).
pub(super) fn reuse_layers(
    cfg: &Config,
    bundle: &Bundle,
    trust: &Trust,
    image_rule: Option<&policy::Rule>,
    overlay: &layers::Overlay,
    lowers: &[layers::Layer],
    now: SystemTime,
) -> Result<(Verified, u64), IntegrityError> {
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
    let digest = r.seal.tree_digest().ok_or(layers::LayersError::MalformedSealDigest)?;
    if let Some(v) = bundle.annotations.get(policy::SEAL_ANNOTATION) {
        if TreeDigest::parse(v) != Some(digest) {
            return Err(IntegrityError::OtherSeal);
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
    .map_err(IntegrityError::Refused)?;
    let info = SealInfo {
        digest: digest.to_string(),
        name: r.seal.name.clone(),
        signers: signers.iter().map(|s| s.name.clone()).collect(),
    };
    let path = store.path_for(&digest);
    let created = r.seal.created();
    let raise = cfg.hook.rollback_protection
        && check_rollback(cfg, &r.seal.name, created, &digest, &info, &path)
            .map_err(|v| IntegrityError::Refused(judge::Refusal { code: v.code, message: v.message }))?;
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
pub(super) fn keep_best(best: &mut Option<Violation>, v: Violation) {
    if best.as_ref().is_none_or(|b| v.code.rank() > b.code.rank()) {
        *best = Some(v);
    }
}

/// A candidate seal that verified, with the rules that then apply.
pub(super) struct Verified {
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
) -> Result<(Manifest, usize, Option<state::RootIdentity>), walk::WalkError> {
    let fd = walk::open_root(rootfs)?;
    let identity = root_identity(&fd);
    let root = if cfg.hook.verify.uses_cache() { crate::cache::RootId::of(&fd).ok() } else { None };
    let slot = crate::verify::scan::CacheSlot { cache_dir: &cfg.cache_dir, rootfs, root };
    let opts = walk::Options { limits: cfg.limits, deadline: Some(deadline), expected, ..walk::Options::default() };
    let scanned = crate::verify::scan::walk(&slot, fd, None, opts)?;
    drop(scanned.cache);
    crate::sys::release_free_memory();
    if let Some(e) = scanned.save_error {
        // A cache that cannot be written only costs speed next time.
        warnings.push(e.to_string());
    }
    let w = scanned.walked;
    Ok((w.manifest, w.unread, identity))
}

/// The (dev, ino, mount id) of an opened rootfs, taken from the very fd that is walked.
pub(super) fn root_identity(fd: &impl AsFd) -> Option<state::RootIdentity> {
    crate::sys::statx_mount(fd.as_fd()).ok().map(|(dev, ino, mnt_id)| state::RootIdentity { dev, ino, mnt_id })
}

/// Seal candidates, most specific first: the seal annotation, the content key, the image name,
/// then the most similar sketches.
pub(super) fn candidates(
    store: &SealStore,
    bundle: &Bundle,
    image: Option<&str>,
    found: &Manifest,
) -> Result<Vec<TreeDigest>, IntegrityError> {
    let mut out: Vec<TreeDigest> = Vec::new();
    if let Some(v) = bundle.annotations.get(policy::SEAL_ANNOTATION) {
        let d = TreeDigest::parse(v).ok_or_else(|| IntegrityError::SealAnnotation { value: v.clone() })?;
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
        for d in store.by_content(&key)? {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    if let Some(name) = image {
        // Newest first: the index appends.
        for d in store.by_name(name)?.into_iter().rev() {
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

/// Seals similar to the rootfs (sketch), not already tried: only to name what changed when no
/// exact candidate verified, since a modified rootfs no longer has its seal's content key.
pub(super) fn similar_candidates(
    store: &SealStore,
    found: &Manifest,
    tried: &[TreeDigest],
) -> Result<Vec<TreeDigest>, IntegrityError> {
    Ok(store.by_sketch(found)?.into_iter().map(|(d, _)| d).filter(|d| !tried.contains(d)).take(3).collect())
}

/// What this bundle's runtime creates in the rootfs outside any mount.
pub(super) fn runtime_artifacts(bundle: &Bundle) -> Vec<(Vec<u8>, crate::manifest::Kind)> {
    match bundle.annotations.get("io.container.manager").map(String::as_str) {
        Some("libpod") => crate::exclude::libpod_artifacts(),
        _ => Vec::new(),
    }
}

// The violation is the common outcome here and is moved once; boxing it buys nothing.
#[allow(clippy::too_many_arguments, clippy::result_large_err)]
pub(super) fn check_candidate(
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

/// A seal older than the newest one this node accepted for the same image name is refused
/// (src/trust/rollback.rs). Checked only for a seal that verified and matches: the name is signed.
/// Ok(true) when the seal is newer than the watermark (or there is none): a pass raises it.
#[allow(clippy::result_large_err)]
pub(super) fn check_rollback(
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
