//! End-to-end tests against the real runtimes on this machine, as root: runc, crun, podman.
//! Every image and bundle is built by the tests (busybox-static); nothing is mocked.

#[path = "../tests/util.rs"]
mod util;

mod containerd;
mod containerd_install;
mod crash;
mod cri;
mod deb;
mod harness;
mod hostile;
mod images;
mod layers;
mod load;
mod monitor;
mod node_images;
mod podman;
mod prevent;
mod protocol;
mod readme;
mod registry;
mod registry_env;
mod registry_hostile;
mod rollback;
mod runtimes;
mod scan;
mod syslog;
