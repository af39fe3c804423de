//! Mount exclusion (docs/digest.md §5): which paths a verification ignores because the runtime
//! creates or mounts over them before an OCI hook runs.
//!
//! For every mount destination of the bundle's config.json:
//! 1. clean it lexically (`.`/`..`/repeated slashes; relative destinations are taken from `/`,
//!    as runc does);
//! 2. resolve it component by component through the *sealed* manifest's symlinks, confined to
//!    the root, the way runc's securejoin resolves it in the rootfs (the seal's symlinks are
//!    signed content, the disk's are not trusted);
//! 3. the resolved path and its whole subtree are excluded on both sides;
//! 4. its proper ancestors may be created by the runtime: on the disk side a *directory* at an
//!    ancestor path that the seal does not have is ignored; an ancestor the seal has is compared
//!    as usual.
//!
//! Nothing else is excluded.

use crate::manifest::{Entry, Kind, Manifest};
use std::collections::BTreeSet;

/// How many symlinks one destination may traverse before we give up (Linux's MAXSYMLINKS).
const MAX_LINKS: usize = 40;

#[derive(Debug, Default, Clone)]
pub struct Exclusions {
    /// Resolved mount destinations; each excludes itself and its subtree.
    roots: BTreeSet<Vec<u8>>,
    /// Proper ancestors of those, which a runtime may have created as empty directories.
    ancestors: BTreeSet<Vec<u8>>,
    /// The first component of every root (`/proc` for `/proc/sys`): a path under none of them
    /// is excluded by none, which most paths of a tree are (a quick answer for every walk).
    tops: BTreeSet<Vec<u8>>,
    /// Entries a runtime creates outside any mount, ignored on the disk side only when the
    /// seal has nothing at that path and the entry is exactly this (path, kind).
    artifacts: Vec<(Vec<u8>, Kind)>,
}

/// podman (libpod) creates `/etc/mtab -> /proc/mounts` in the rootfs when the image has no
/// `/etc/mtab` (libpod `container_internal_linux.go`, "make sure /etc/mtab exists").
pub fn libpod_artifacts() -> Vec<(Vec<u8>, Kind)> {
    vec![(b"/etc/mtab".to_vec(), Kind::Symlink { target: b"/proc/mounts".to_vec() })]
}

impl Exclusions {
    /// Exclusions for `destinations` (from config.json `mounts[].destination`), resolved
    /// against the sealed manifest.
    pub fn new<S: AsRef<[u8]>>(destinations: &[S], sealed: &Manifest) -> Exclusions {
        let mut ex = Exclusions::default();
        for d in destinations {
            let resolved = resolve(&clean(d.as_ref()), sealed);
            if resolved.is_empty() {
                // A mount over "/" itself: nothing below the root could be verified. Keep the
                // empty root so `is_excluded` reports everything; callers treat that as a policy
                // question, not as a pass.
                ex.roots.insert(Vec::new());
                continue;
            }
            let mut i = 1;
            while let Some(pos) = resolved[i..].iter().position(|&b| b == b'/') {
                ex.ancestors.insert(resolved[..i + pos].to_vec());
                i += pos + 1;
            }
            ex.tops.insert(top(&resolved).to_vec());
            ex.roots.insert(resolved);
        }
        ex
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.artifacts.is_empty()
    }

    /// Adds runtime artifacts (see [`libpod_artifacts`]).
    pub fn with_artifacts(mut self, artifacts: Vec<(Vec<u8>, Kind)>) -> Exclusions {
        self.artifacts.extend(artifacts);
        self
    }

    /// True when `e` is exactly a runtime artifact (whatever the seal says).
    pub fn is_artifact(&self, e: &Entry) -> bool {
        self.artifacts.iter().any(|(p, k)| *p == e.path && *k == e.kind)
    }

    /// The resolved mount destinations.
    pub fn destinations(&self) -> impl Iterator<Item = &[u8]> {
        self.roots.iter().map(|r| r.as_slice())
    }

    /// True when `path` is a mount destination or lies below one.
    pub fn is_excluded(&self, path: &[u8]) -> bool {
        // Every root that is a prefix of `path` sorts at or before it; check the candidates
        // that share the first component cheaply by walking path's own ancestors instead.
        if self.roots.contains(&Vec::new()) {
            return true;
        }
        if !self.tops.contains(top(path)) {
            return false;
        }
        if self.roots.contains(path) {
            return true;
        }
        let mut end = path.len();
        while let Some(pos) = path[..end].iter().rposition(|&b| b == b'/') {
            if pos == 0 {
                break;
            }
            if self.roots.contains(&path[..pos]) {
                return true;
            }
            end = pos;
        }
        false
    }

    /// The sealed side: every entry that is not excluded.
    pub fn apply_sealed(&self, sealed: &Manifest) -> Manifest {
        sealed.filtered(|e| self.keep_sealed(e))
    }

    /// Whether a sealed entry is compared.
    pub fn keep_sealed(&self, e: &Entry) -> bool {
        !self.is_excluded(&e.path)
    }

    /// Whether an on-disk entry is compared (see [`Exclusions::apply_found`]).
    pub fn keep_found(&self, e: &Entry, sealed: &Manifest) -> bool {
        let unsealed_artifact = self.is_artifact(e) && sealed.get(&e.path).is_none();
        !(self.is_excluded(&e.path) || self.is_runtime_ancestor(e, sealed) || unsealed_artifact)
    }

    /// The disk side: every entry that is not excluded, minus runtime-created ancestor
    /// directories the seal does not have.
    pub fn apply_found(&self, found: &Manifest, sealed: &Manifest) -> Manifest {
        found.filtered(|e| self.keep_found(e, sealed))
    }

    /// True when a runtime artifact lives at `path` (whatever its kind).
    pub fn is_artifact_path(&self, path: &[u8]) -> bool {
        self.artifacts.iter().any(|(p, _)| p == path)
    }

    /// True when `path` is a proper ancestor of a mount destination (a runtime may create it).
    pub fn is_ancestor(&self, path: &[u8]) -> bool {
        self.ancestors.contains(path)
    }

    fn is_runtime_ancestor(&self, e: &Entry, sealed: &Manifest) -> bool {
        e.kind == Kind::Dir && self.ancestors.contains(&e.path) && sealed.get(&e.path).is_none()
    }
}

/// The first component of an absolute path, with its slash (`/usr` of `/usr/bin/ls`).
fn top(path: &[u8]) -> &[u8] {
    match path.iter().skip(1).position(|&b| b == b'/') {
        Some(i) => &path[..i + 1],
        None => path,
    }
}

/// Why a mount destination is not already clean, or None when it is: absolute, single
/// slashes, no `.` or `..` component, no trailing slash (`/` itself is clean).
///
/// Such a destination is refused rather than cleaned: runc 1.1.x, 1.2.0-1.2.7 and 1.3.0-1.3.2
/// resolve it with securejoin, which applies `..` *after* following symlinks, so in a
/// merged-/usr image (`/bin -> usr/bin`) `/bin/../usr` lands on /usr/usr while a lexical clean
/// says /usr: the exclusion would hide all of /usr from the comparison.
pub fn unclean(dest: &[u8]) -> Option<&'static str> {
    if dest.first() != Some(&b'/') {
        return Some("is relative");
    }
    if dest == b"/" {
        return None;
    }
    if dest.ends_with(b"/") {
        return Some("ends with a slash");
    }
    for c in dest[1..].split(|&b| b == b'/') {
        match c {
            b"" => return Some("has an empty component (//)"),
            b"." => return Some("has a `.` component"),
            b".." => return Some("has a `..` component"),
            _ => {}
        }
    }
    None
}

/// Lexically cleans an absolute path: no `.`, no `..` above the root, single slashes, no
/// trailing slash. The root is the empty path.
pub fn clean(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    join(&parts)
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    out
}

/// Resolves a clean path through the manifest's symlinks, never leaving the root (a `..` at
/// the root stays at the root, an absolute target restarts at the root).
pub fn resolve(path: &[u8], m: &Manifest) -> Vec<u8> {
    resolve_with(path, |p| match m.get(p).map(|e| &e.kind) {
        Some(Kind::Symlink { target }) => Some(target.clone()),
        _ => None,
    })
}

/// [`resolve`] over any tree: `link(path)` is the symlink target at a symlink-free `path`, or
/// None when it is not a symlink (the disk side uses [`crate::walk::symlink_at`]).
pub fn resolve_with(path: &[u8], link: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut todo: Vec<Vec<u8>> =
        path.split(|&b| b == b'/').filter(|c| !c.is_empty()).rev().map(|c| c.to_vec()).collect();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_slice() {
            b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let mut cand: Vec<&[u8]> = done.iter().map(|v| v.as_slice()).collect();
        cand.push(&c);
        let cand = join(&cand);
        match link(&cand) {
            Some(target) if links < MAX_LINKS => {
                links += 1;
                if target.first() == Some(&b'/') {
                    done.clear();
                }
                for t in target.split(|&b| b == b'/').filter(|c| !c.is_empty()).rev() {
                    todo.push(t.to_vec());
                }
            }
            _ => done.push(c),
        }
    }
    join(&done.iter().map(|v| v.as_slice()).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: Kind) -> Entry {
        Entry { path: path.as_bytes().to_vec(), mode: 0o755, uid: 0, gid: 0, kind }
    }
    fn dir(path: &str) -> Entry {
        entry(path, Kind::Dir)
    }
    fn link(path: &str, target: &str) -> Entry {
        entry(path, Kind::Symlink { target: target.as_bytes().to_vec() })
    }

    #[test]
    fn only_clean_absolute_destinations_pass() {
        for ok in ["/", "/proc", "/etc/hosts", "/run/secrets/kubernetes.io/serviceaccount", "/a..b/.c"] {
            assert_eq!(unclean(ok.as_bytes()), None, "{ok}");
        }
        for (bad, why) in [
            ("/bin/../usr", "`..`"),
            ("/usr/./bin", "`.`"),
            ("//usr", "empty"),
            ("/usr//bin", "empty"),
            ("/usr/", "slash"),
            ("usr", "relative"),
            ("", "relative"),
            ("/..", "`..`"),
        ] {
            assert!(unclean(bad.as_bytes()).is_some_and(|w| w.contains(why)), "{bad}");
        }
    }

    #[test]
    fn cleans_like_runc() {
        assert_eq!(clean(b"/proc"), b"/proc");
        assert_eq!(clean(b"proc/"), b"/proc");
        assert_eq!(clean(b"//a/./b/../c"), b"/a/c");
        assert_eq!(clean(b"/../../etc"), b"/etc");
        assert_eq!(clean(b"/"), b"");
    }

    #[test]
    fn resolves_through_sealed_symlinks_inside_the_root() {
        let m = Manifest::from_entries(vec![
            dir("/run"),
            dir("/var"),
            link("/var/run", "../run"),
            link("/abs", "/run"),
            link("/loop", "/loop"),
            link("/up", "../../../.."),
        ]);
        assert_eq!(resolve(b"/var/run/secrets", &m), b"/run/secrets");
        assert_eq!(resolve(b"/abs/x", &m), b"/run/x");
        assert_eq!(resolve(b"/up/etc", &m), b"/etc");
        // A loop ends after MAX_LINKS expansions instead of spinning.
        assert_eq!(resolve(b"/loop", &m), b"/loop");
    }

    #[test]
    fn excludes_destinations_subtrees_and_runtime_created_ancestors_only() {
        let sealed = Manifest::from_entries(vec![
            dir("/etc"),
            entry("/etc/hosts", Kind::Fifo),
            entry("/etc/passwd", Kind::Fifo),
            dir("/proc"),
            entry("/proc/fake", Kind::Fifo),
            dir("/procfs"),
        ]);
        let ex = Exclusions::new(&["/proc", "/etc/hosts", "/run/secrets/kubernetes.io/serviceaccount"], &sealed);
        let kept: Vec<String> =
            ex.apply_sealed(&sealed).entries().iter().map(|e| String::from_utf8(e.path.clone()).unwrap()).collect();
        assert_eq!(kept, ["/etc", "/etc/passwd", "/procfs"]);

        let found = Manifest::from_entries(vec![
            dir("/etc"),
            entry("/etc/hosts", Kind::CharDev { major: 1, minor: 3 }),
            entry("/etc/passwd", Kind::Fifo),
            dir("/procfs"),
            dir("/run"),
            dir("/run/secrets"),
            dir("/run/secrets/kubernetes.io"),
            dir("/run/secrets/kubernetes.io/serviceaccount"),
            entry("/run/other", Kind::Fifo),
            entry("/run/secrets/kubernetes.io/x", Kind::Fifo),
        ]);
        let kept: Vec<String> = ex
            .apply_found(&found, &sealed)
            .entries()
            .iter()
            .map(|e| String::from_utf8(e.path.clone()).unwrap())
            .collect();
        assert_eq!(kept, ["/etc", "/etc/passwd", "/procfs", "/run/other", "/run/secrets/kubernetes.io/x"]);
        assert!(ex.is_excluded(b"/proc/1/status"));
        assert!(!ex.is_excluded(b"/procfs"));
        assert!(!ex.is_excluded(b"/etc"));
    }

    #[test]
    fn is_excluded_is_exactly_at_or_below_a_destination() {
        let ex = Exclusions::new(&["/a/b", "/c", "/d/e/f"], &Manifest::default());
        let naive = |p: &[u8]| ex.destinations().any(|r| p == r || (p.starts_with(r) && p.get(r.len()) == Some(&b'/')));
        for p in [
            "/a", "/a/b", "/a/b/x", "/a/bc", "/ab/b", "/c", "/c/x/y", "/cc", "/d", "/d/e", "/d/e/f", "/d/e/f/g",
            "/d/e/fg", "/x", "/x/a/b",
        ] {
            assert_eq!(ex.is_excluded(p.as_bytes()), naive(p.as_bytes()), "{p}");
        }
        assert!(Exclusions::new(&["/"], &Manifest::default()).is_excluded(b"/anything"));
    }

    #[test]
    fn a_libpod_mtab_is_ignored_only_when_the_seal_has_none_and_it_is_exact() {
        let none = Manifest::from_entries(vec![dir("/etc")]);
        let ex = Exclusions::new::<&str>(&[], &none).with_artifacts(libpod_artifacts());
        let found = Manifest::from_entries(vec![dir("/etc"), link("/etc/mtab", "/proc/mounts")]);
        assert_eq!(ex.apply_found(&found, &none).len(), 1);
        let other = Manifest::from_entries(vec![dir("/etc"), link("/etc/mtab", "/etc/shadow")]);
        assert_eq!(ex.apply_found(&other, &none).len(), 2);
        // When the image has its own /etc/mtab, the disk's is compared as usual.
        let sealed = Manifest::from_entries(vec![dir("/etc"), link("/etc/mtab", "../proc/self/mounts")]);
        assert_eq!(ex.apply_found(&found, &sealed).len(), 2);
    }

    #[test]
    fn an_ancestor_that_is_a_file_on_disk_is_not_excused() {
        let sealed = Manifest::from_entries(vec![]);
        let ex = Exclusions::new(&["/run/secrets"], &sealed);
        let found = Manifest::from_entries(vec![entry("/run", Kind::Fifo)]);
        assert_eq!(ex.apply_found(&found, &sealed).len(), 1);
    }
}
