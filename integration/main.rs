//! End-to-end tests against the real runtimes on this machine, as root: runc, crun, podman.
//! Every image and bundle is built by the tests (busybox-static); nothing is mocked.

#[path = "../tests/util.rs"]
mod util;

mod containerd;
mod crash;
mod deb;
mod harness;
mod hostile;
mod images;
mod layers;
mod load;
mod monitor;
mod podman;
mod protocol;
mod readme;
mod rollback;
mod runtimes;
mod syslog;
