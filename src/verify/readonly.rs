//! The read-only policy: the container's root must be read-only, and a mount may be writable
//! only where policy allows it (docs/config.md, `[readonly]`).
//!
//! How a mount's writability is decided from config.json:
//! 1. options are applied in order, the last of `ro`/`rw` wins (runc's behaviour);
//! 2. a bind mount (`type = "bind"` or a `bind`/`rbind` option) that ends up `ro` is read-only
//!    only at its top: with `rbind` the submounts under its source stay writable unless `rro`
//!    is given (mount_setattr AT_RECURSIVE), so `["rbind","ro"]` over a source that has
//!    submounts on the host counts as writable;
//! 3. a writable mount passes when its type is in `writable_types` (tmpfs, proc, ...), or, for
//!    bind mounts, when its destination is in `writable_destinations` or its source matches a
//!    `writable_sources` pattern.

use crate::glob;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadonlyPolicy {
    /// Check the root and mounts at all.
    pub enabled: bool,
    /// Mount types that may be writable (kernel-backed, not the image or the host's disk).
    pub writable_types: Vec<String>,
    /// Bind-mount destinations (in the container) that may be writable.
    pub writable_destinations: Vec<String>,
    /// Bind-mount sources (on the host) that may be writable; `*` and `**` patterns.
    pub writable_sources: Vec<String>,
    /// Where a mount may hide sealed content (a non-empty sealed directory or file at or below
    /// its destination, after the image's symlinks); `*` and `**` patterns. Anywhere else such a
    /// mount is a `shadowed` violation: it would run content no seal covers.
    pub shadow_destinations: Vec<String>,
}

impl Default for ReadonlyPolicy {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        ReadonlyPolicy {
            enabled: true,
            writable_types: s(&["tmpfs", "proc", "sysfs", "mqueue", "devpts", "cgroup", "cgroup2", "shm"]),
            writable_destinations: s(&[
                "/etc/hosts",
                "/etc/hostname",
                "/etc/resolv.conf",
                "/dev/shm",
                "/dev/termination-log",
                "/run/.containerenv",
            ]),
            writable_sources: s(&[
                // Kubernetes emptyDir volumes, etc-hosts and termination logs (kubelet).
                "/var/lib/kubelet/pods/*/volumes/kubernetes.io~empty-dir/**",
                "/var/lib/kubelet/pods/*/etc-hosts",
                "/var/lib/kubelet/pods/*/containers/**",
                // containerd's CRI sandbox files (hosts, resolv.conf, hostname, shm).
                "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/**",
                "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/**",
                // podman's per-container files.
                "/var/lib/containers/storage/overlay-containers/*/userdata/**",
                "/run/containers/storage/overlay-containers/*/userdata/**",
            ]),
            // What runc, crun, containerd, podman and kubelet mount over an image: kernel
            // filesystems, device nodes, runtime scratch space and the files a runtime or the
            // kubelet writes for the container.
            shadow_destinations: s(&[
                "/proc",
                "/proc/**",
                "/sys",
                "/sys/**",
                "/dev",
                "/dev/**",
                "/run",
                "/run/**",
                "/tmp",
                "/var/tmp",
                "/etc/hosts",
                "/etc/hostname",
                "/etc/resolv.conf",
                "/var/run/secrets/kubernetes.io/serviceaccount",
                "/var/run/secrets/eks.amazonaws.com/serviceaccount",
            ]),
        }
    }
}

/// One way the spec breaks the read-only policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub code: crate::verify::Code,
    pub message: String,
}

/// What the check needs from the host, gathered at the edge (injectable for tests).
pub struct Facts<'a> {
    /// Host mount points strictly below a path (/proc/self/mountinfo in production).
    pub submounts: &'a dyn Fn(&Path) -> Vec<PathBuf>,
    /// Where in the rootfs the runtime will mount a destination: the destination resolved
    /// through the image's symlinks, confined to the root (None: it cannot be resolved).
    pub landing: &'a dyn Fn(&Path) -> Option<PathBuf>,
}

impl ReadonlyPolicy {
    /// May a mount at the resolved destination `landing` hide sealed content?
    pub fn may_shadow(&self, landing: &[u8]) -> bool {
        let p = String::from_utf8_lossy(landing);
        self.shadow_destinations.iter().any(|g| glob::matches(g, &p))
    }
}

/// Capabilities with which a process can undo a read-only root: `mount -o remount,rw /` and
/// friends need CAP_SYS_ADMIN (mount(2)). Any set counts: the bounding set is what the process
/// (or a setuid or file-capability binary it runs) can reach.
pub const REMOUNT_CAPS: [caps::Capability; 1] = [caps::Capability::CAP_SYS_ADMIN];

/// The capability sets of the spec's process that hold a [`REMOUNT_CAPS`] capability, as
/// "effective CAP_SYS_ADMIN" strings; empty when none does. A name that the `caps` crate does
/// not know cannot be a remount capability.
pub fn remount_capable(spec: &Spec) -> Vec<String> {
    use std::str::FromStr;
    let Some(c) = spec.process().as_ref().and_then(|p| p.capabilities().as_ref()) else {
        return Vec::new();
    };
    let sets = [
        ("bounding", c.bounding()),
        ("effective", c.effective()),
        ("permitted", c.permitted()),
        ("inheritable", c.inheritable()),
        ("ambient", c.ambient()),
    ];
    let mut out = Vec::new();
    for (set, caps) in sets {
        for cap in caps.iter().flatten() {
            let name = cap.to_string();
            let name = if name.starts_with("CAP_") { name } else { format!("CAP_{name}") };
            if caps::Capability::from_str(&name).is_ok_and(|c| REMOUNT_CAPS.contains(&c)) {
                out.push(format!("{set} {name}"));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Checks a spec against the policy.
pub fn check(spec: &Spec, policy: &ReadonlyPolicy, facts: &Facts<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    if !policy.enabled {
        return out;
    }
    let ro_root = spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
    if !ro_root {
        out.push(Violation {
            code: crate::verify::Code::WritableRoot,
            message: "root filesystem is writable (root.readonly is not true); run the container read-only \
                      (--read-only, readOnlyRootFilesystem: true)"
                .into(),
        });
    }
    for m in spec.mounts().as_deref().unwrap_or_default() {
        let dest = m.destination().display().to_string();
        let typ = m.typ().as_deref().unwrap_or("");
        let opts: Vec<&str> = m.options().as_deref().unwrap_or_default().iter().map(String::as_str).collect();
        let is_bind = typ == "bind" || opts.iter().any(|o| *o == "bind" || *o == "rbind");
        let recursive = opts.contains(&"rbind");
        // runc: `ro` is the last of ro/rw; the recursive attribute is the last of rro/rrw, and it
        // is applied after the remount, so `["ro","rrw"]` ends read-write.
        let mut ro = false;
        let mut rec: Option<bool> = None;
        for o in &opts {
            match *o {
                "ro" => ro = true,
                "rw" => ro = false,
                "rro" => rec = Some(true),
                "rrw" => rec = Some(false),
                _ => {}
            }
        }
        if rec == Some(false) {
            ro = false;
        }
        let rro = rec == Some(true);
        // The runtime bind-mounts what the source resolves to: match policy against the
        // resolved path (or, when it does not exist, the lexically cleaned one), never against
        // a path with `..` or symlinks in it.
        let raw_source = m.source().clone().unwrap_or_default();
        let source = std::fs::canonicalize(&raw_source).unwrap_or_else(|_| {
            use std::os::unix::ffi::OsStrExt;
            PathBuf::from(std::ffi::OsStr::from_bytes(&crate::exclude::clean(raw_source.as_os_str().as_bytes())))
        });
        if !is_bind {
            if ro || policy.writable_types.iter().any(|t| t == typ) {
                continue;
            }
            out.push(Violation {
                code: crate::verify::Code::WritableMount,
                message: format!(
                    "{typ} mount at {dest} is writable; mount it read-only or add {typ:?} to [readonly] writable_types"
                ),
            });
            continue;
        }
        // A destination is allowed for where the runtime mounts it, not for its name: an image
        // with `/etc/hosts -> /usr/bin/tool` would get a writable host file over /usr/bin/tool.
        let landing = (facts.landing)(m.destination());
        let by_destination =
            landing.as_deref().is_some_and(|l| policy.writable_destinations.iter().any(|d| Path::new(d) == l));
        let allowed =
            by_destination || policy.writable_sources.iter().any(|p| glob::matches(p, &source.to_string_lossy()));
        if allowed {
            continue;
        }
        if !ro {
            let named = policy.writable_destinations.iter().any(|d| Path::new(d) == m.destination());
            let redirect = match (&landing, named) {
                (Some(l), true) if l != m.destination() => {
                    format!(" (through the image's symlinks it lands on {}, which policy does not allow)", l.display())
                }
                (None, true) => " (where it lands in the rootfs cannot be resolved)".to_string(),
                _ => String::new(),
            };
            out.push(Violation {
                code: crate::verify::Code::WritableMount,
                message: format!(
                    "bind mount of {} at {dest} is writable{redirect}; mount it read-only or allow it in [readonly] writable_sources",
                    source.display()
                ),
            });
        } else if recursive && !rro {
            let subs = (facts.submounts)(&source);
            if let Some(first) = subs.first() {
                out.push(Violation {
                    code: crate::verify::Code::WritableMount,
                    message: format!(
                        "bind mount of {} at {dest} is [\"rbind\",\"ro\"], which leaves its {} submount(s) such as {} writable; use \"rro\" or a non-recursive bind",
                        source.display(),
                        subs.len(),
                        first.display()
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    fn codes(s: &Spec, subs: Vec<PathBuf>) -> Vec<String> {
        let submounts = |_: &Path| subs.clone();
        let facts = Facts { submounts: &submounts, landing: &|d| Some(d.to_path_buf()) };
        check(s, &ReadonlyPolicy::default(), &facts).into_iter().map(|v| v.message).collect()
    }

    #[test]
    fn a_writable_destination_is_allowed_for_where_it_lands() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"mounts":[
            {"destination":"/etc/hosts","type":"bind","source":"/somewhere/hosts","options":["rbind","rw"]}
            ]}"#,
        );
        let none = |_: &Path| Vec::new();
        let elsewhere = |_: &Path| Some(PathBuf::from("/usr/bin/tool"));
        let v = check(&s, &ReadonlyPolicy::default(), &Facts { submounts: &none, landing: &elsewhere });
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0]
            .message
            .contains("at /etc/hosts is writable (through the image's symlinks it lands on /usr/bin/tool"));
        let unresolved = |_: &Path| None;
        let v = check(&s, &ReadonlyPolicy::default(), &Facts { submounts: &none, landing: &unresolved });
        assert_eq!(v.len(), 1, "an unresolvable landing is not allowed by name: {v:?}");
        let same = |d: &Path| Some(d.to_path_buf());
        assert!(check(&s, &ReadonlyPolicy::default(), &Facts { submounts: &none, landing: &same }).is_empty());
    }

    #[test]
    fn sys_admin_in_any_set_can_remount_the_root() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"process":{"cwd":"/","user":{"uid":0,"gid":0},
            "capabilities":{"bounding":["CAP_SYS_ADMIN","CAP_KILL"],"effective":["CAP_KILL"]}}}"#,
        );
        assert_eq!(remount_capable(&s), ["bounding CAP_SYS_ADMIN"]);
        let s = spec(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"process":{"cwd":"/","user":{"uid":0,"gid":0},
            "capabilities":{"bounding":["CAP_KILL","CAP_NET_BIND_SERVICE"]}}}"#,
        );
        assert!(remount_capable(&s).is_empty());
        let s = spec(r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true}}"#);
        assert!(remount_capable(&s).is_empty());
    }

    #[test]
    fn runtime_and_kubelet_mounts_may_shadow_and_others_may_not() {
        let p = ReadonlyPolicy::default();
        for ok in [
            "/proc",
            "/dev/shm",
            "/sys/fs/cgroup",
            "/etc/hosts",
            "/run/secrets/x",
            "/var/run/secrets/kubernetes.io/serviceaccount",
        ] {
            assert!(p.may_shadow(ok.as_bytes()), "{ok}");
        }
        for bad in ["/bin", "/usr", "/etc", "/usr/bin/tool", "/etc/passwd"] {
            assert!(!p.may_shadow(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn root_must_be_read_only() {
        let s = spec(r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":false}}"#);
        assert_eq!(codes(&s, vec![]).len(), 1);
        let s = spec(r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true}}"#);
        assert!(codes(&s, vec![]).is_empty());
    }

    #[test]
    fn mounts_follow_policy() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"mounts":[
            {"destination":"/proc","type":"proc","source":"proc"},
            {"destination":"/tmp","type":"tmpfs","source":"tmpfs","options":["rw"]},
            {"destination":"/etc/hosts","type":"bind","source":"/somewhere/hosts","options":["rbind","rw"]},
            {"destination":"/data","type":"bind","source":"/srv/data","options":["rbind","rw"]},
            {"destination":"/ro","type":"bind","source":"/srv/ro","options":["rbind","ro"]},
            {"destination":"/rro","type":"bind","source":"/srv/ro","options":["rbind","ro","rro"]},
            {"destination":"/flip","type":"bind","source":"/srv/flip","options":["ro","rw"]},
            {"destination":"/rrw","type":"bind","source":"/srv/rrw","options":["rbind","ro","rrw"]},
            {"destination":"/disk","type":"ext4","source":"/dev/sdb"},
            {"destination":"/cache","type":"bind","source":"/var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/cache","options":["rbind","rw"]}
            ]}"#,
        );
        let v = codes(&s, vec![PathBuf::from("/srv/ro/sub")]);
        assert_eq!(v.len(), 5, "{v:#?}");
        assert!(v[0].contains("/srv/data at /data is writable"));
        assert!(v[1].contains("[\"rbind\",\"ro\"]") && v[1].contains("/srv/ro/sub"));
        assert!(v[2].contains("/srv/flip at /flip is writable"));
        assert!(v[3].contains("/srv/rrw at /rrw is writable"), "rrw undoes ro recursively: {v:#?}");
        assert!(v[4].contains("ext4 mount at /disk"));
        // Without submounts the rbind+ro mount is read-only in effect.
        assert_eq!(codes(&s, vec![]).len(), 4);
    }

    #[test]
    fn sources_are_resolved_before_matching_the_allow_list() {
        let s = spec(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},"mounts":[
            {"destination":"/x","type":"bind","source":"/var/lib/containers/storage/overlay-containers/x/userdata/../../../../../../etc","options":["rbind","rw"]}
            ]}"#,
        );
        let v = codes(&s, vec![]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("/etc at /x is writable"), "{v:?}");
    }
}
