//! The operator's tools: `install`/`uninstall containerd` ([`install`]), `doctor`
//! ([`doctor`]), and the deployable files the binary generates ([`packaging`]).

pub mod doctor;
pub mod install;
pub mod packaging;
