//! rootseal: seal a container root filesystem in CI, verify it on the node at container start.
//!
//! One module per concept: the walk ([`walk`]) produces a [`manifest`]; a [`seal`] signs its
//! digest; the [`trust`] store says which keys count; [`verify`] decides; [`exclude`] says
//! which paths a runtime mounts over; [`cli`] is the command line.

#![deny(unsafe_code)]

pub mod alerts;
pub mod atomic;
pub mod cache;
pub mod cli;
pub mod config;
pub mod container_root;
pub mod containment;
pub mod doctor;
pub mod error;
pub mod exclude;
pub mod glob;
pub mod hook;
pub mod image;
pub mod install;
pub mod json;
pub mod keys;
pub mod layers;
pub mod manifest;
pub mod monitor;
pub mod oci;
pub mod packaging;
pub mod policy;
pub mod readonly;
pub mod rollback;
pub mod runtime;
pub mod seal;
pub mod state;
pub mod store;
#[allow(unsafe_code)]
pub mod sys;
pub mod trust;
pub mod verify;
pub mod walk;

pub use error::Error;
