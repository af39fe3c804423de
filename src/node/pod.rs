//! The Kubernetes pod a container belongs to, as containerd's CRI plugin describes it in the
//! container's annotations (`io.kubernetes.cri.*`, set by the CRI plugin after any pod
//! annotations it passes through, so a pod cannot forge them: src/verify/policy.rs,
//! `runtime_annotations`). Carried into events and state records, so that a block, an audit
//! or a drift names the pod, and `rootseal status` lists it.

use crate::policy;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// containerd's CRI: the pod's name, uid, and the container's name in the pod spec.
pub const POD_NAME: &str = "io.kubernetes.cri.sandbox-name";
pub const POD_UID: &str = "io.kubernetes.cri.sandbox-uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";

/// A CRI container's pod (docs/events.md, `container.pod`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodInfo {
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The container's name in the pod spec; None for the pod's sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The pod's sandbox (pause) container.
    #[serde(default)]
    pub sandbox: bool,
}

impl PodInfo {
    /// The pod, from annotations already filtered by `policy::runtime_annotations` (None
    /// outside containerd's CRI, or when it did not name the pod).
    pub fn from_annotations(trusted: &HashMap<String, String>) -> Option<PodInfo> {
        let namespace = policy::pod_namespace(trusted)?;
        let get = |k: &str| trusted.get(k).filter(|v| !v.is_empty()).cloned();
        let sandbox = trusted.get(policy::CONTAINERD_CONTAINER_TYPE).map(String::as_str) == Some("sandbox");
        Some(PodInfo {
            name: get(POD_NAME)?,
            namespace: namespace.to_string(),
            uid: get(POD_UID),
            container: if sandbox { None } else { get(CONTAINER_NAME) },
            sandbox,
        })
    }
}

impl std::fmt::Display for PodInfo {
    /// `NAMESPACE/POD/CONTAINER`, or `NAMESPACE/POD (sandbox)`, as kubectl names them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.container {
            Some(c) => write!(f, "{}/{}/{c}", self.namespace, self.name),
            None if self.sandbox => write!(f, "{}/{} (sandbox)", self.namespace, self.name),
            None => write!(f, "{}/{}", self.namespace, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_cri_container_and_its_sandbox_name_their_pod() {
        let c = ann(&[
            ("io.kubernetes.cri.container-type", "container"),
            ("io.kubernetes.cri.sandbox-namespace", "team-a"),
            ("io.kubernetes.cri.sandbox-name", "web-0"),
            ("io.kubernetes.cri.sandbox-uid", "u1"),
            ("io.kubernetes.cri.container-name", "app"),
        ]);
        let p = PodInfo::from_annotations(&c).unwrap();
        assert_eq!(p.to_string(), "team-a/web-0/app");
        assert_eq!(p.uid.as_deref(), Some("u1"));
        let mut s = c.clone();
        s.insert("io.kubernetes.cri.container-type".into(), "sandbox".into());
        let p = PodInfo::from_annotations(&s).unwrap();
        assert!(p.sandbox && p.container.is_none());
        assert_eq!(p.to_string(), "team-a/web-0 (sandbox)");
        // Not a CRI container (no type), or no pod name: no pod.
        let mut no_type = c.clone();
        no_type.remove("io.kubernetes.cri.container-type");
        assert!(PodInfo::from_annotations(&no_type).is_none());
        let mut no_name = c;
        no_name.remove("io.kubernetes.cri.sandbox-name");
        assert!(PodInfo::from_annotations(&no_name).is_none());
    }

    #[test]
    fn records_without_a_pod_still_parse() {
        let p: PodInfo = serde_json::from_str(r#"{"name":"p","namespace":"n"}"#).unwrap();
        assert!(!p.sandbox && p.uid.is_none());
    }
}
