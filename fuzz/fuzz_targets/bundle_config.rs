//! A bundle's config.json (untrusted: whoever creates the container writes it), then what the
//! hook derives from it without touching the disk: the read-only policy verdict, the image name
//! and exemption, and the mount exclusions against a sealed manifest with symlinks.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rootseal::exclude::{self, Exclusions};
use rootseal::manifest::{Entry, Kind, Manifest};
use rootseal::oci::Bundle;
use rootseal::policy;
use rootseal::readonly::{self, ReadonlyPolicy};
use rootseal_fuzz::{check_manifest, is_clean};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A sealed manifest with the symlinks mount destinations are resolved through: relative,
/// absolute, `..` above the root, a loop, a chain.
fn sealed() -> &'static Manifest {
    static M: OnceLock<Manifest> = OnceLock::new();
    M.get_or_init(|| {
        let e = |path: &str, kind: Kind| Entry { path: path.as_bytes().to_vec(), mode: 0o755, uid: 0, gid: 0, kind };
        let l = |path: &str, target: &str| e(path, Kind::Symlink { target: target.as_bytes().to_vec() });
        let f = |path: &str| e(path, Kind::File { size: 0, sha256: [0; 32], cap: None });
        Manifest::from_entries(vec![
            e("/etc", Kind::Dir),
            f("/etc/hosts"),
            l("/etc/mtab", "/proc/mounts"),
            e("/run", Kind::Dir),
            e("/var", Kind::Dir),
            l("/var/run", "../run"),
            l("/var/up", "../../../.."),
            l("/abs", "/var/run/secrets"),
            l("/loop", "loop2"),
            l("/loop2", "/loop"),
            l("/chain", "abs/x/../y"),
            e("/usr", Kind::Dir),
            e("/usr/lib", Kind::Dir),
            l("/lib", "usr/lib"),
            f("/usr/lib/libc.so"),
        ])
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = Path::new("/run/containerd/io.containerd.runtime.v2.task/k8s.io/fuzz");
    let Ok(bundle) = Bundle::from_config_bytes(dir, data) else { return };
    assert!(bundle.root.is_absolute(), "root {:?} is not absolute", bundle.root);
    let _ = bundle.root_readonly();

    // The read-only policy, with the defaults and with every writable type allowed; a fixed
    // submount list stands in for /proc/self/mountinfo.
    let submounts = |p: &Path| vec![p.join("submount")];
    // Destinations land where the sealed manifest's symlinks take them (the hook resolves them
    // on disk, through the same algorithm).
    let landing = |d: &Path| {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        let d = d.as_os_str().as_bytes();
        if exclude::unclean(d).is_some() {
            return None;
        }
        let p = exclude::resolve(d, sealed());
        Some(if p.is_empty() { PathBuf::from("/") } else { PathBuf::from(std::ffi::OsString::from_vec(p)) })
    };
    let facts = readonly::Facts { submounts: &submounts, landing: &landing };
    let default = ReadonlyPolicy::default();
    let violations = readonly::check(&bundle.spec, &default, &facts);
    if !bundle.root_readonly() {
        assert!(violations.iter().any(|v| v.code == "writable-root"), "a writable root passed");
    }
    for v in &violations {
        assert!(!v.message.is_empty());
    }
    let off = ReadonlyPolicy { enabled: false, ..ReadonlyPolicy::default() };
    assert!(readonly::check(&bundle.spec, &off, &facts).is_empty(), "a disabled policy found violations");
    let lax = ReadonlyPolicy { writable_sources: vec!["**".into()], ..ReadonlyPolicy::default() };
    let none = |_: &Path| Vec::<PathBuf>::new();
    let _ = readonly::check(&bundle.spec, &lax, &readonly::Facts { submounts: &none, landing: &landing });
    // Capabilities that can remount the root: parsed, never a panic.
    for set in readonly::remount_capable(&bundle.spec) {
        assert!(set.contains("CAP_SYS_ADMIN"), "{set}");
    }
    for d in bundle.mount_destinations() {
        let _ = exclude::unclean(&d);
        let _ = default.may_shadow(&d);
    }

    // Image name and exemption, as the hook decides them.
    let image = policy::image_name(&bundle.annotations);
    let _ = policy::exemption(&policy::default_exemptions(), image.as_deref(), &bundle.annotations);

    // Mount exclusion (docs/digest.md §5).
    let sealed = sealed();
    let dests = bundle.mount_destinations();
    let ex = Exclusions::new(&dests, sealed);
    for d in &dests {
        let lexical = exclude::clean(d);
        assert!(lexical.is_empty() || is_clean(&lexical), "clean({d:?}) = {lexical:?}");
        let resolved = exclude::resolve(&lexical, sealed);
        assert!(resolved.is_empty() || is_clean(&resolved), "resolve({lexical:?}) = {resolved:?}");
        assert!(ex.is_excluded(&resolved) || resolved.is_empty(), "destination {resolved:?} is not excluded");
        if !resolved.is_empty() {
            let mut below = resolved.clone();
            below.extend_from_slice(b"/below");
            assert!(ex.is_excluded(&below), "{below:?} below a destination is not excluded");
        }
    }
    let kept = ex.apply_sealed(sealed);
    check_manifest(&kept);
    for e in kept.entries() {
        assert!(!ex.is_excluded(&e.path));
    }
    let found = ex.apply_found(sealed, sealed);
    assert_eq!(found, kept, "the sealed tree itself, on disk, differs from the seal after exclusion");
});
