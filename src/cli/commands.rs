//! The bodies of the longer commands (trust, rollback, verify, install reports) and the
//! helpers they share: loading the config, walking a tree or an image, reading a seal.

use super::*;

/// `seal --created`, else $SOURCE_DATE_EPOCH (reproducible builds), else now.
pub(super) fn creation_time(flag: Option<&str>) -> Result<SystemTime, Error> {
    if let Some(t) = flag {
        return humantime::parse_rfc3339_weak(t).map_err(|_| {
            Error::Usage(format!("--created {t:?} is not an RFC 3339 time such as 2026-11-29T12:00:00Z"))
        });
    }
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => v
            .parse::<u64>()
            .map(|s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s))
            .map_err(|_| Error::Usage(format!("SOURCE_DATE_EPOCH {v:?} is not a number of seconds"))),
        _ => Ok(SystemTime::now()),
    }
}

pub(super) fn rollback_command(cmd: RollbackCommand, cfg: &Config) -> Result<ExitCode, Error> {
    let marks = crate::rollback::Watermarks::new(&cfg.seal_dir, cfg.hook.rollback_scope);
    match cmd {
        RollbackCommand::List { json } => {
            let mut bad = 0;
            let mut rows = Vec::new();
            for r in marks.list()? {
                match r {
                    Ok(w) => rows.push(w),
                    Err(e) => {
                        bad += 1;
                        eprintln!("rootseal: {e}");
                    }
                }
            }
            if json {
                println!("{}", json!({ "watermarks": rows }));
            } else {
                for w in &rows {
                    println!("{}\t{}\t{}\t{} {}", w.name, w.created, w.seal, w.by, w.accepted);
                }
            }
            return Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) });
        }
        RollbackCommand::Allow { name, seal: digest } => {
            let d = TreeDigest::parse(&digest)
                .filter(|_| digest.starts_with("sha256:"))
                .ok_or_else(|| Error::Usage(format!("--seal {digest:?} is not sha256:<64 lowercase hex>")))?;
            let seals = SealStore::new(&cfg.seal_dir);
            let bytes = seals.get(&d)?.ok_or_else(|| {
                Error::Usage(format!(
                    "no seal {d} in {}: import it first with `rootseal trust import`",
                    cfg.seal_dir.display()
                ))
            })?;
            let rejected = |why| Error::Rejected { what: format!("seal {}", seals.path_for(&d).display()), why };
            let s = Seal::parse(&bytes).map_err(|e| rejected(Rejection::Malformed(e)))?;
            // Only a seal that would pass today can be the target of a rollback.
            let trust = TrustStore::new(&cfg.trust_dir).load()?;
            verify::check_seal(&s, &trust, SystemTime::now(), cfg.hook.min_signers).map_err(rejected)?;
            if s.name != name {
                return Err(Error::Usage(format!("seal {d} is for {:?}, not {name:?}", s.name)));
            }
            let before = marks.allow(&name, s.created, &d.to_string())?;
            let was = before.map(|w| format!(" (was {} created {})", w.seal, w.created)).unwrap_or_default();
            println!(
                "rollback allowed: {name} may start seal {d} created {} and newer{was}",
                humantime::format_rfc3339_seconds(s.created)
            );
        }
        RollbackCommand::Forget { name } => {
            let had = marks.forget(&name)?;
            println!("{} {name}", if had { "forgot the watermark of" } else { "no watermark for" });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn load_config(explicit: Option<&Path>) -> Result<Config, Error> {
    Ok(Config::load(explicit)?.0)
}

/// `expected`: the sealed manifest, when the walk is only compared with it (see
/// [`walk::Options::expected`]).
pub(super) fn walk_cli(path: &Path, cfg: &Config, expected: Option<&Manifest>) -> Result<Manifest, Error> {
    // The operator named this path: resolve it (a symlinked directory is fine here), then walk
    // the real directory without following anything inside it.
    let real = std::fs::canonicalize(path)
        .map_err(|source| Error::Walk(walk::WalkError::OpenRoot { root: path.into(), source }))?;
    Ok(walk::walk(&real, &walk::Options { limits: cfg.limits, expected, ..walk::Options::default() })?)
}

/// A rootfs directory is walked; an image is read layer by layer.
pub(super) fn tree_cli(
    path: &Path,
    select: &ImageSelect,
    cfg: &Config,
) -> Result<(Manifest, Option<seal::ImageSource>), Error> {
    let kind = crate::image::detect(path)?;
    if kind == crate::image::InputKind::RootfsDir {
        if select.platform.is_some() || select.reference.is_some() {
            return Err(Error::Usage(format!(
                "{} is a directory, not an image: --platform and --ref do not apply",
                path.display()
            )));
        }
        return Ok((walk_cli(path, cfg, None)?, None));
    }
    let platform = match &select.platform {
        Some(p) => crate::image::Platform::parse(p)
            .ok_or_else(|| Error::Usage(format!("--platform {p:?} is not os/arch[/variant], e.g. linux/amd64")))?,
        None => crate::image::Platform::host(),
    };
    let sel = crate::image::Select { platform, reference: select.reference.clone() };
    let t = crate::image::load(path, &sel, &cfg.limits)?;
    let src = seal::ImageSource {
        reference: t.reference.clone().unwrap_or_default(),
        manifest_digest: t.manifest_digest.clone(),
        config_digest: t.config_digest.clone(),
        layers: t.layers,
    };
    Ok((t.manifest, Some(src)))
}

pub(super) fn report_install(
    config: &Path,
    change: &crate::install::Change,
    dry_run: bool,
    verb: &str,
    what: &str,
) -> Result<ExitCode, Error> {
    if change.is_noop() {
        println!("{}: {what} already {verb}; nothing changed", config.display());
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run {
        print!("{}", change.diff(config));
        println!("(dry run: {} not changed)", config.display());
        return Ok(ExitCode::SUCCESS);
    }
    let backup = crate::install::apply(config, change)?;
    print!("{}", change.diff(config));
    match backup {
        Some(b) => println!(
            "{verb} {what} in {} (config version {}); previous file saved as {}",
            config.display(),
            change.version,
            b.display()
        ),
        None => println!("{verb} {what} in new file {} (config version {})", config.display(), change.version),
    }
    println!("restart containerd to apply: systemctl restart containerd");
    Ok(ExitCode::SUCCESS)
}

pub(super) fn read_seal(path: &Path) -> Result<Vec<u8>, Error> {
    match crate::atomic::read_bounded(path, seal::MAX_SEAL_BYTES) {
        Ok(b) => Ok(b),
        Err(crate::atomic::ReadError::TooLarge { .. }) => Err(Error::Rejected {
            what: format!("seal {}", path.display()),
            why: Rejection::Malformed(seal::SealError::TooLarge),
        }),
        Err(e) => Err(Error::Read(e)),
    }
}

pub(super) fn parse_expiry(s: &str, now: SystemTime) -> Result<SystemTime, Error> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        if t <= now {
            return Err(Error::Usage(format!("--expires {s} is in the past")));
        }
        return Ok(t);
    }
    match humantime::parse_duration(s) {
        Ok(d) if d > Duration::ZERO => Ok(now + d),
        _ => Err(Error::Usage(format!(
            "--expires {s:?} is neither an RFC 3339 time (2027-01-31T00:00:00Z) nor a duration (90d, 12h)"
        ))),
    }
}

pub(super) fn report_verify(
    path: &Path,
    seal_path: &Path,
    found: &Manifest,
    result: Result<(Seal, Vec<verify::Signer>), Rejection>,
    json: bool,
) -> Result<ExitCode, Error> {
    match result {
        Ok((seal, signers)) => {
            if json {
                let v = json!({
                    "verified": true,
                    "path": path.display().to_string(),
                    "digest": seal.digest.to_string(),
                    "name": seal.name,
                    "signers": signers,
                    "entries": found.len(),
                });
                println!("{v}");
            } else {
                let names: Vec<&str> = signers.iter().map(|s| s.name.as_str()).collect();
                println!(
                    "verified {}: {} ({}), signed by {}",
                    path.display(),
                    seal.digest,
                    seal.name,
                    names.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(rej) => {
            if json {
                let diffs: Vec<serde_json::Value> = match &rej {
                    Rejection::Mismatch { diffs, .. } => diffs
                        .iter()
                        .map(|d| {
                            json!({
                                "path": display_path(&d.path),
                                "changes": d.changes.iter().map(|c| json!({"class": c.class(), "detail": c.to_string()})).collect::<Vec<_>>(),
                            })
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let v = json!({
                    "verified": false,
                    "path": path.display().to_string(),
                    "seal": seal_path.display().to_string(),
                    "reason": rej.code(),
                    "message": rej.to_string(),
                    "foundDigest": found.digest().to_string(),
                    "differences": diffs,
                });
                println!("{v}");
            }
            eprintln!("rootseal: verification of {} against {} failed: {rej}", path.display(), seal_path.display());
            Ok(ExitCode::from(1))
        }
    }
}

pub(super) fn trust_command(cmd: TrustCommand, cfg: &Config) -> Result<ExitCode, Error> {
    let store = TrustStore::new(&cfg.trust_dir);
    match cmd {
        TrustCommand::Add { key, name } => {
            let public = PublicKey::load(&key)?;
            let name = match name {
                Some(n) => n,
                None => key.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
            };
            let k = store.add(&public, &name)?;
            println!("trusted {} (keyid {}) as {}", k.name, k.key.keyid, k.path.display());
        }
        TrustCommand::List { json } => {
            let trust = store.load()?;
            if json {
                let keys: Vec<serde_json::Value> = trust
                    .keys
                    .iter()
                    .map(|k| {
                        json!({"name": k.name, "keyid": k.key.keyid, "path": k.path.display().to_string(),
                               "revoked": trust.revoked.key_revoked(&k.key.keyid)})
                    })
                    .collect();
                println!("{}", json!({"keys": keys, "revoked": trust.revoked}));
            } else {
                for k in &trust.keys {
                    let r = if trust.revoked.key_revoked(&k.key.keyid) { " (revoked)" } else { "" };
                    println!("{}\t{}{}", k.name, k.key.keyid, r);
                }
            }
        }
        TrustCommand::Remove { name } => {
            let k = store.remove(&name)?;
            println!("removed {} (keyid {})", k.name, k.key.keyid);
        }
        TrustCommand::Revoke { key, digest } => {
            let digest = match digest {
                Some(d) => Some(
                    TreeDigest::parse(&d)
                        .filter(|_| d.starts_with("sha256:"))
                        .ok_or_else(|| Error::Usage(format!("--digest {d:?} is not sha256:<64 lowercase hex>")))?,
                ),
                None => None,
            };
            let changed = store.revoke(key.as_deref(), digest.as_ref())?;
            let what = key.unwrap_or_else(|| digest.map(|d| d.to_string()).unwrap_or_default());
            println!("{} {what}", if changed { "revoked" } else { "already revoked:" });
        }
        TrustCommand::Import { seal: path } => {
            let trust = store.load()?;
            let bytes = read_seal(&path)?;
            if super::attest::predicate_type(&bytes).is_some_and(|t| t != seal::PREDICATE_TYPE) {
                return super::attest::import(cfg, &trust, &path, &bytes);
            }
            let rejected = |why| Error::Rejected { what: format!("seal {}", path.display()), why };
            let now = SystemTime::now();
            let admitted =
                crate::verify::admit::admit(&cfg.seal_dir, &bytes, |s| verify::check_seal(s, &trust, now, 1));
            let a = match admitted {
                Ok(a) => a,
                Err(crate::verify::admit::AdmitError::Malformed(e)) => return Err(rejected(Rejection::Malformed(e))),
                Err(crate::verify::admit::AdmitError::Refused(why)) => return Err(rejected(why)),
                Err(crate::verify::admit::AdmitError::Store(e)) => return Err(e.into()),
            };
            println!("{}", a.line("imported"));
            let s = a.seal;
            if let Ok(crate::rollback::Verdict::RolledBack(w)) =
                crate::rollback::Watermarks::new(&cfg.seal_dir, cfg.hook.rollback_scope).check(&s.name, s.created)
            {
                eprintln!(
                    "rootseal: note: this node already accepted a newer seal of {:?} ({} created {}): containers of this seal will be refused as a rollback unless you run `rootseal rollback allow {:?} --seal {}`",
                    s.name, w.seal, w.created, s.name, s.digest
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
