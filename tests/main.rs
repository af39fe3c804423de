//! The `rootseal` CLI contract and library properties, against real files and the real binary.

mod util;

mod bad_input;
mod cache;
mod digest_props;
mod kubernetes;
mod openssl_interop;
mod walk_safety;
mod workflow;
