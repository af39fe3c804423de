//! Step 5 and the mount half of step 6: clean destinations, the read-only policy for where
//! each mount lands, remount capabilities, and mounts that hide sealed content (docs/hook.md).

use super::*;

/// Step 5: the mounts and the root as the runtime will make them: clean destinations, the
/// read-only policy for where each mount lands, and no capability that undoes a read-only root.
pub(super) fn mount_policy(cfg: &Config, bundle: &Bundle, rule: Option<&policy::Rule>, d: &mut Decision) {
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
    let facts = readonly::Facts { submounts: &crate::node::mountinfo::submounts_below, landing: &landing };
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

/// A mount that hides sealed content (a non-empty sealed directory, or a sealed non-empty
/// file, at its destination as the seal resolves it) runs content no seal covers: a read-only
/// bind of a host directory at /bin passes the read-only policy and is excluded from the
/// comparison. Only `[readonly] shadow_destinations` may do that.
#[allow(clippy::result_large_err)]
pub(super) fn shadowing(
    cfg: &Config,
    bundle: &Bundle,
    seal: &Seal,
    info: &SealInfo,
    path: &Path,
) -> Result<(), Violation> {
    for dest in bundle.mount_destinations() {
        let landing = crate::exclude::resolve(&crate::exclude::clean(&dest), &seal.manifest);
        if landing.is_empty() || cfg.readonly.may_shadow(&landing) {
            continue;
        }
        let hidden = match seal.manifest.get(&landing).map(|e| &e.kind) {
            // A directory the seal lists only through its entries (no entry of its own) hides
            // them just as well.
            Some(crate::manifest::Kind::Dir) | None => seal.manifest.has_below(&landing),
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
