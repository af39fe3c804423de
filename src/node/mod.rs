//! The node's facts: the OCI state and bundle a runtime hands the hook ([`oci`]), the hook's
//! records of verified containers ([`state`]), overlay layers and their records ([`layers`]),
//! what a running container sees and how to end it ([`container_root`], [`containment`]), the
//! images containerd and podman hold ([`images`]), the Kubernetes pod of a CRI container
//! ([`pod`]), and
//! (the raw syscalls are [`crate::sys`], a foundation below every layer).

pub mod container_root;
pub mod containment;
pub mod images;
pub mod layers;
pub mod mountinfo;
pub mod oci;
pub mod pod;
pub mod state;
