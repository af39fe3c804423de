//! rootseal: seal a container root filesystem in CI, verify it on the node at container start.
//!
//! The folders are the layers, lowest first; data flows down (a lower layer never imports a
//! higher one):
//!
//! | folder | what |
//! |---|---|
//! | [`tree`] | the walk of a hostile tree, the canonical manifest and its digest, the per-file cache, mount exclusion, path patterns |
//! | [`image`] | images as input: OCI layouts and archives, docker-archives, layers applied in memory |
//! | [`scan`] | the scan gate's inputs: scanner reports (Trivy, Grype, in-toto vulns) and OpenVEX documents, parsed and checked |
//! | [`seal`] | the DSSE envelope and in-toto statement; the seal store and its indexes |
//! | [`trust`] | keys, the trust store and revocations, rollback watermarks |
//! | [`verify`] | the verdict steps, the read-only policy, rules and exemptions |
//! | [`node`] | the node's facts: OCI state and bundle, state records, overlay layers, a container's root and processes |
//! | [`hook`] | the OCI hook and the runc wrapper that brings it to containerd |
//! | [`monitor`] | the drift monitor |
//! | [`admin`] | `install`/`uninstall containerd`, `doctor`, generated deployable files |
//!
//! Beside them: [`config`], [`alerts`] (events and sinks), [`cli`] (the command line), and the
//! foundations [`sys`] (raw syscalls, the only module with `unsafe` code), [`atomic`] (writes)
//! and [`json`] (strict parsing). The old flat paths
//! (`rootseal::walk`, `rootseal::seal::store`'s `rootseal::store`, ...) are re-exported.

#![deny(unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod atomic;
pub mod attest;
pub mod cli;
pub mod config;
pub mod error;
pub mod hook;
pub mod image;
pub mod json;
pub mod monitor;
pub mod node;
pub mod registry;
pub mod scan;
pub mod seal;
pub mod span;
pub mod sync;
#[allow(unsafe_code)]
pub mod sys;
pub mod trace;
pub mod tree;
pub mod trust;
pub mod verify;

pub use admin::{doctor, install, packaging};
pub use error::Error;
pub use hook::runtime;
pub use node::{container_root, containment, layers, oci, state};
pub use seal::store;
pub use tree::{cache, exclude, glob, manifest, walk};
pub use trust::{keys, rollback};
pub use verify::{policy, readonly};
