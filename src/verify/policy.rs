//! Policy scoping (docs/config.md): which image a container runs, which rule applies to it
//! (required keys, mode), and whether it is exempt.

use crate::glob;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Annotations that name the image, in the order they are consulted: the CRI runtimes' own
/// first (containerd and CRI-O set them from the pull, not from the pod spec), then ours, which
/// whoever creates the container sets (podman --annotation, a runc bundle).
pub const IMAGE_ANNOTATIONS: [&str; 3] =
    ["io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName", "rootseal.dev/image"];
/// An annotation naming the seal (tree digest) explicitly; rootseal-runtime may set it.
pub const SEAL_ANNOTATION: &str = "rootseal.dev/seal";

/// The prefix of the annotations containerd's CRI plugin sets (`io.kubernetes.cri.*`).
pub const CONTAINERD_CRI_PREFIX: &str = "io.kubernetes.cri.";
/// The prefix of the annotations CRI-O sets (`io.kubernetes.cri-o.*`).
pub const CRI_O_PREFIX: &str = "io.kubernetes.cri-o.";
/// containerd's CRI: `sandbox` on a pod's sandbox (pause) container, `container` otherwise.
pub const CONTAINERD_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// CRI-O's counterpart of [`CONTAINERD_CONTAINER_TYPE`].
pub const CRI_O_CONTAINER_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
/// containerd's CRI: the pod's namespace (from the kubelet's RunPodSandbox request).
pub const CONTAINERD_POD_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";

/// The annotations a decision may rely on: the container's annotations without those of the
/// CRI runtime it is not running under (docs/kubernetes.md, "Who sets the annotations").
///
/// Each CRI runtime sets its own family of annotations after it copies the pod's (containerd
/// 1.6's `WithAnnotation` calls in `container_create_linux.go` and `sandbox_run_linux.go` come
/// after the `pod_annotations` pass-through, so a pod cannot override `io.kubernetes.cri.*`),
/// but nothing stops a pod from setting the other family's. So:
/// 1. CRI-O's container-type present: CRI-O's family counts, containerd's is dropped (under
///    containerd, rootseal-runtime has already removed every `io.kubernetes.cri-o.*`, so a
///    CRI-O mark reaching the hook comes from CRI-O, whose pods may set containerd's keys);
/// 2. containerd's container-type alone: containerd's family counts, CRI-O's is dropped;
/// 3. neither (podman, ctr, runc): everything counts, as the creator set every annotation and
///    is trusted as much as the runtime is.
pub fn runtime_annotations(annotations: &HashMap<String, String>) -> HashMap<String, String> {
    let drop = if annotations.contains_key(CRI_O_CONTAINER_TYPE) {
        Some(CONTAINERD_CRI_PREFIX)
    } else if annotations.contains_key(CONTAINERD_CONTAINER_TYPE) {
        Some(CRI_O_PREFIX)
    } else {
        None
    };
    annotations
        .iter()
        .filter(|(k, _)| drop.is_none_or(|p| !k.starts_with(p)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The pod namespace a CRI runtime reported, from annotations filtered by
/// [`runtime_annotations`]. Only containerd's CRI plugin's is read (CRI-O's is not tested).
pub fn pod_namespace(trusted: &HashMap<String, String>) -> Option<&str> {
    trusted
        .get(CONTAINERD_POD_NAMESPACE)
        .filter(|_| trusted.contains_key(CONTAINERD_CONTAINER_TYPE))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// What a violation does: block the container (enforce) or let it run with an alert (audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Block what fails verification.
    #[default]
    Enforce,
    /// Allow, but alert.
    Audit,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        })
    }
}

/// What the drift monitor does when a running container drifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Raise the drift event only.
    #[default]
    Alert,
    /// SIGKILL the container's init through its pidfd.
    Kill,
    /// Freeze the container's cgroup.
    Freeze,
}

/// Drift prevention (`[monitor] prevent`, a rule's `prevent`; src/monitor/prevent/): what the
/// monitor does when a protected container executes a file that is not in its seal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Prevent {
    /// No fanotify marks: execs are not judged.
    #[default]
    Off,
    /// Judged; an exec outside the seal runs and raises `exec-audit`.
    Audit,
    /// Judged; an exec outside the seal fails with EPERM and raises `exec-blocked`.
    Enforce,
}

impl Prevent {
    pub fn as_str(self) -> &'static str {
        match self {
            Prevent::Off => "off",
            Prevent::Audit => "audit",
            Prevent::Enforce => "enforce",
        }
    }
}

impl std::fmt::Display for Prevent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule: images matching `images` (and, when given, pods in a namespace matching
/// `namespaces`) need a signature by one of `keys` (when non-empty) and are handled in `mode`
/// (when set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// Image name patterns; empty matches every image (then `namespaces` must be given).
    #[serde(default)]
    pub images: Vec<String>,
    /// Kubernetes namespace patterns, matched against the namespace containerd's CRI plugin
    /// reports (`io.kubernetes.cri.sandbox-namespace`); empty: not scoped by namespace. A rule
    /// with namespaces never matches a container outside the CRI.
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub min_signers: Option<usize>,
    /// What the drift monitor does on drift (default: `[monitor] action`).
    #[serde(default)]
    pub drift_action: Option<Action>,
    /// Why these images may run with CAP_SYS_ADMIN (which can remount a read-only root
    /// read-write): without it such a container is a `remount-capable` violation. The reason is
    /// logged in every event for the container.
    #[serde(default)]
    pub allow_remount: Option<String>,
    /// The scan gate for these images, replacing `[scan]` (docs/scan.md).
    #[serde(default)]
    pub scan: Option<crate::verify::gate::ScanPolicy>,
    /// Drift prevention for these images (default: `[monitor] prevent`).
    #[serde(default)]
    pub prevent: Option<Prevent>,
    /// Paths (as the container sees them; `*`, `**`, `?` as in src/tree/glob.rs) that these
    /// images may execute although they are not in the seal, added to `[monitor] allow_exec`.
    #[serde(default)]
    pub allow_exec: Vec<String>,
}

/// An exemption: a container whose image matches one of `images`, or whose annotations
/// include all of `annotations`, is not verified (and the exemption is logged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    pub name: String,
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Exemptions in force when the config has no `[[exempt]]`: Kubernetes pod sandboxes (the pause
/// container), as containerd's CRI and CRI-O mark them.
pub fn default_exemptions() -> Vec<Exemption> {
    vec![
        Exemption {
            name: "kubernetes-sandbox".into(),
            images: vec![],
            annotations: BTreeMap::from([("io.kubernetes.cri.container-type".into(), "sandbox".into())]),
        },
        Exemption {
            name: "cri-o-sandbox".into(),
            images: vec![],
            annotations: BTreeMap::from([("io.kubernetes.cri-o.ContainerType".into(), "sandbox".into())]),
        },
    ]
}

/// The image name a runtime told us about, from the first annotation that has one.
pub fn image_name(annotations: &HashMap<String, String>) -> Option<String> {
    IMAGE_ANNOTATIONS.iter().find_map(|k| annotations.get(*k)).filter(|v| !v.is_empty()).cloned()
}

/// True when the image name comes from a CRI runtime's own annotation (containerd and CRI-O
/// set it from the image they pulled; a pod spec cannot), false when from `rootseal.dev/image`,
/// which whoever creates the container sets. Only a runtime-reported name may select a rule
/// that relaxes (audit) or an exemption by image: a creator-set name can only make the
/// decision stricter.
pub fn image_name_from_runtime(annotations: &HashMap<String, String>) -> bool {
    IMAGE_ANNOTATIONS[..2].iter().any(|k| annotations.get(*k).is_some_and(|v| !v.is_empty()))
}

/// The first exemption that applies.
pub fn exemption<'a>(
    exemptions: &'a [Exemption],
    image: Option<&str>,
    annotations: &HashMap<String, String>,
) -> Option<&'a Exemption> {
    exemptions.iter().find(|e| {
        let by_image = image.is_some_and(|i| e.images.iter().any(|p| glob::matches(p, i)));
        let by_annotation =
            !e.annotations.is_empty() && e.annotations.iter().all(|(k, v)| annotations.get(k) == Some(v));
        by_image || by_annotation
    })
}

/// The first rule whose image patterns match `image`, among the rules not scoped by namespace
/// (for a container outside the CRI, or a name alone: a seal's subject, a sync's image).
pub fn rule<'a>(rules: &'a [Rule], image: Option<&str>) -> Option<&'a Rule> {
    rule_for(rules, image, None)
}

/// The first rule that applies to a container of `image` in pod namespace `namespace`: its
/// image patterns match (or it has none) and its namespace patterns match (or it has none).
pub fn rule_for<'a>(rules: &'a [Rule], image: Option<&str>, namespace: Option<&str>) -> Option<&'a Rule> {
    rules.iter().find(|r| {
        let by_image = match image {
            Some(i) => r.images.is_empty() || r.images.iter().any(|p| glob::matches(p, i)),
            None => r.images.is_empty() && !r.namespaces.is_empty(),
        };
        let by_namespace =
            r.namespaces.is_empty() || namespace.is_some_and(|n| r.namespaces.iter().any(|p| glob::matches(p, n)));
        by_image && by_namespace
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandboxes_are_exempt_by_default_and_rules_match_by_image() {
        let ann = HashMap::from([("io.kubernetes.cri.container-type".to_string(), "sandbox".to_string())]);
        let ex = default_exemptions();
        assert_eq!(exemption(&ex, None, &ann).unwrap().name, "kubernetes-sandbox");
        assert!(exemption(&ex, Some("x"), &HashMap::new()).is_none());
        let rules = vec![Rule {
            name: "prod".into(),
            images: vec!["registry.example/prod/**".into()],
            namespaces: vec![],
            keys: vec!["ci-2026".into()],
            mode: Some(Mode::Enforce),
            min_signers: None,
            drift_action: None,
            allow_remount: None,
            scan: None,
            prevent: None,
            allow_exec: Vec::new(),
        }];
        assert_eq!(rule(&rules, Some("registry.example/prod/team/app:1")).unwrap().name, "prod");
        assert!(rule(&rules, Some("registry.example/dev/app:1")).is_none());
        assert!(rule(&rules, None).is_none());
        let named =
            HashMap::from([("io.kubernetes.cri.image-name".to_string(), "docker.io/library/nginx:1".to_string())]);
        assert_eq!(image_name(&named).unwrap(), "docker.io/library/nginx:1");
    }

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn namespace_rules_match_only_the_cri_namespace() {
        let mk = |name: &str, images: &[&str], namespaces: &[&str]| Rule {
            name: name.into(),
            images: images.iter().map(|s| s.to_string()).collect(),
            namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
            keys: vec![],
            mode: Some(Mode::Audit),
            min_signers: None,
            drift_action: None,
            allow_remount: None,
            scan: None,
            prevent: None,
            allow_exec: vec![],
        };
        let rules =
            vec![mk("sys-app", &["app:*"], &["kube-system"]), mk("sys", &[], &["kube-*"]), mk("app", &["app:*"], &[])];
        assert_eq!(rule_for(&rules, Some("app:1"), Some("kube-system")).unwrap().name, "sys-app");
        assert_eq!(rule_for(&rules, Some("other:1"), Some("kube-public")).unwrap().name, "sys");
        assert_eq!(rule_for(&rules, None, Some("kube-system")).unwrap().name, "sys");
        assert_eq!(rule_for(&rules, Some("app:1"), Some("default")).unwrap().name, "app");
        assert_eq!(rule_for(&rules, Some("app:1"), None).unwrap().name, "app");
        assert!(rule_for(&rules, Some("other:1"), None).is_none());
        assert!(rule_for(&rules, None, None).is_none());
        assert_eq!(rule(&rules, Some("app:1")).unwrap().name, "app", "a name alone never selects a namespace rule");
    }

    #[test]
    fn each_cri_runtime_is_trusted_for_its_own_annotations_only() {
        // Under CRI-O, a pod's forged containerd keys are dropped.
        let cri_o = ann(&[
            (CRI_O_CONTAINER_TYPE, "container"),
            ("io.kubernetes.cri-o.ImageName", "registry.example/app:1"),
            (CONTAINERD_CONTAINER_TYPE, "sandbox"),
            (CONTAINERD_POD_NAMESPACE, "kube-system"),
            ("io.kubernetes.cri.image-name", "registry.example/trusted:1"),
            ("rootseal.dev/image", "x"),
        ]);
        let t = runtime_annotations(&cri_o);
        assert_eq!(t.len(), 3, "{t:?}");
        assert!(exemption(&default_exemptions(), None, &t).is_none());
        assert_eq!(image_name(&t).as_deref(), Some("registry.example/app:1"));
        assert_eq!(pod_namespace(&t), None);
        let sandbox = ann(&[(CRI_O_CONTAINER_TYPE, "sandbox")]);
        assert_eq!(
            exemption(&default_exemptions(), None, &runtime_annotations(&sandbox)).unwrap().name,
            "cri-o-sandbox"
        );
        // Under containerd: its own family kept, CRI-O's dropped.
        let containerd = ann(&[
            (CONTAINERD_CONTAINER_TYPE, "container"),
            (CONTAINERD_POD_NAMESPACE, "team-a"),
            ("io.kubernetes.cri-o.ImageName", "registry.example/trusted:1"),
        ]);
        let t = runtime_annotations(&containerd);
        assert_eq!(pod_namespace(&t), Some("team-a"));
        assert!(!image_name_from_runtime(&t) && image_name(&t).is_none(), "{t:?}");
        // Outside the CRI: everything kept (the creator is the runtime's user).
        let podman = ann(&[("io.container.manager", "libpod"), ("rootseal.dev/image", "app:1")]);
        assert_eq!(runtime_annotations(&podman), podman);
        assert_eq!(
            pod_namespace(&ann(&[(CONTAINERD_POD_NAMESPACE, "kube-system")])),
            None,
            "no CRI type, no namespace"
        );
    }
}
