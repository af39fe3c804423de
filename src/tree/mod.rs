//! The tree: a safe walk of a hostile root filesystem ([`walk`]) into the canonical
//! [`manifest`] and its digest, the per-file verification [`cache`], which paths a runtime
//! mounts over ([`exclude`]), and path patterns ([`glob`]).

pub mod cache;
pub mod exclude;
pub mod glob;
pub(crate) mod hash;
pub mod manifest;
pub mod walk;
