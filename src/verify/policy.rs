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

/// A rule: images matching `images` need a signature by one of `keys` (when non-empty) and
/// are handled in `mode` (when set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub images: Vec<String>,
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

/// The first rule whose image patterns match `image`.
pub fn rule<'a>(rules: &'a [Rule], image: Option<&str>) -> Option<&'a Rule> {
    let image = image?;
    rules.iter().find(|r| r.images.iter().any(|p| glob::matches(p, image)))
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
}
