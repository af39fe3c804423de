//! End-to-end tests against the real runtimes on this machine, as root: runc, crun, podman.
//! Every image and bundle is built by the tests (busybox-static); nothing is mocked.

#[path = "../tests/util.rs"]
mod util;

mod containerd;
mod deb;
mod harness;
mod images;
mod monitor;
mod podman;
mod protocol;
mod runtimes;
mod syslog;
