//! The DaemonSet's image, built for real (scripts/build-k8s-image.sh, buildah from scratch) from
//! this build's binaries, and its install step (the image's rootseal-node-install, the init
//! container's command) run by podman with the host paths the DaemonSet mounts, pointed at a
//! test directory, against a real containerd with the CRI plugin; then a pod through the
//! installed runtime, a second run that changes nothing, and the uninstall.
//!
//! One substitution: the step's containerd restart (`nsenter --target 1 ... systemctl restart
//! containerd` in the DaemonSet) is `RESTART_COMMAND=touch /host/restart/requested` here, since
//! this machine's systemd containerd is not the test's; the test restarts its containerd when
//! the marker appears, and checks that it does not appear when nothing changed.

use super::env::*;
use crate::containerd::{text, Containerd};
use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Host {
    root: PathBuf,
}

impl Host {
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// podman with an empty hooks directory: the DaemonSet's image is not sealed, and another test
/// (integration/deb.rs) may have the rootseal package's hooks.d JSON installed system-wide
/// while this one runs.
fn podman() -> Command {
    let empty = std::env::temp_dir().join("rootseal-test-no-hooks.d");
    std::fs::create_dir_all(&empty).unwrap();
    let mut c = Command::new("podman");
    c.arg("--hooks-dir").arg(empty);
    c
}

/// `podman run` of the image's install step with the DaemonSet's mounts (host side under
/// `host`), as the init container runs it.
fn run_install(host: &Host, image: &str, action: &str) -> Output {
    let v = |h: &str, c: &str| format!("{}:{c}", host.p(h).display());
    let empty = std::env::temp_dir().join("rootseal-test-no-hooks.d");
    std::fs::create_dir_all(&empty).unwrap();
    Command::new("timeout")
        .args(["-k", "5", "180", "podman", "--hooks-dir"])
        .arg(&empty)
        .args(["run", "--rm", "--privileged", "--network", "none"])
        .args(["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"])
        .args(["-v", &v("opt/rootseal", "/host/opt/rootseal")])
        .args(["-v", &v("etc/rootseal", "/host/etc/rootseal")])
        .args(["-v", &v("etc/containerd", "/host/etc/containerd")])
        .args(["-v", &format!("{}:ro", v("configmap", "/config"))])
        .args(["-v", &format!("{}:ro", v("secret", "/trust"))])
        .args(["-v", &v("restart", "/host/restart")])
        .args(["-e", &format!("HOST_BIN_DIR={}", host.p("opt/rootseal/bin").display())])
        .args(["-e", "RESTART_COMMAND=touch /host/restart/requested"])
        .arg(image)
        .args(["/usr/bin/rootseal-node-install", action])
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn cri_the_daemonset_image_builds_and_installs_rootseal_on_a_real_containerd() {
    let env = Env::new();
    let host = Host { root: env.path("host") };
    for d in ["opt/rootseal", "etc/rootseal", "etc/containerd", "configmap", "secret", "restart"] {
        std::fs::create_dir_all(host.p(d)).unwrap();
    }
    // The ConfigMap's policy: the trust store where the step installs the Secret's keys; the
    // rest in the test's directory.
    let d = env.tmp.path().display();
    let policy = format!(
        "trust_dir = \"{}\"\nseal_dir = \"{d}/seals\"\nstate_dir = \"{d}/state\"\ncache_dir = \"{d}/cache\"\n[alerts]\nsyslog_socket = \"\"\nevents_file = \"{d}/events.jsonl\"\n",
        host.p("etc/rootseal/trust").display()
    );
    std::fs::write(host.p("configmap/config.toml"), &policy).unwrap();
    std::fs::write(env.config_path(), &policy).unwrap();
    let (key, public) = env.keygen("ci-2026");
    std::fs::copy(&public, host.p("secret/ci-2026.pub")).unwrap();
    let containerd_dir = host.p("etc/containerd");
    let pause = Images::pause_name("daemonset");
    std::fs::write(containerd_dir.join("config.toml"), containerd_config(&containerd_dir, &pause)).unwrap();

    // 1. Build the image from this build's binaries.
    let image = format!("test.local/rootseal/node:{}", std::process::id());
    let archive = env.path("node-image.tar");
    let bins = bin().parent().unwrap().to_path_buf();
    let build = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-k8s-image.sh"))
        .arg("--bin-dir")
        .arg(&bins)
        .args(["--name", &image, "--out"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", text(&build));
    let load = Command::new("podman").arg("load").arg("-i").arg(&archive).output().unwrap();
    assert!(load.status.success(), "{}", text(&load));
    struct Rmi(String);
    impl Drop for Rmi {
        fn drop(&mut self) {
            let _ = Command::new("podman").args(["rmi", "-f", &self.0]).output();
        }
    }
    let _rmi = Rmi(image.clone());

    // 2. The install step: binaries, config, keys, the runtime entry, a restart request.
    let o = run_install(&host, &image, "install");
    assert!(o.status.success(), "{}", text(&o));
    assert!(out(&o).contains("containerd's config changed; restarting containerd"), "{}", out(&o));
    for b in ["rootseal", "rootseal-runtime"] {
        assert_eq!(
            std::fs::read(host.p(&format!("opt/rootseal/bin/{b}"))).unwrap(),
            std::fs::read(bins.join(b)).unwrap()
        );
    }
    assert_eq!(std::fs::read_to_string(host.p("etc/rootseal/config.toml")).unwrap(), policy);
    assert_eq!(std::fs::read(host.p("etc/rootseal/trust/ci-2026.pub")).unwrap(), std::fs::read(&public).unwrap());
    let installed = std::fs::read_to_string(containerd_dir.join("config.toml")).unwrap();
    let binary = host.p("opt/rootseal/bin/rootseal-runtime");
    assert!(installed.contains(&format!("BinaryName = \"{}\"", binary.display())), "{installed}");
    assert!(installed.contains("runtimes.runc]"), "the runc entry the CRI default needs: {installed}");
    assert!(host.p("restart/requested").exists(), "a restart was requested");
    std::fs::remove_file(host.p("restart/requested")).unwrap();

    // 3. Again: nothing changes, no restart.
    let o = run_install(&host, &image, "install");
    assert!(o.status.success(), "{}", text(&o));
    assert!(out(&o).contains("nothing changed") && out(&o).contains("unchanged; no restart"), "{}", out(&o));
    assert!(!out(&o).contains("wrote "), "no file rewritten: {}", out(&o));
    assert_eq!(std::fs::read_to_string(containerd_dir.join("config.toml")).unwrap(), installed);
    assert!(!host.p("restart/requested").exists());

    // 4. containerd (re)started on the installed config, with the installed policy: a sealed
    //    pod runs through the installed runtime and hook, a writable one is refused. (The
    //    seals go into the store once the step has created the trust store they verify with.)
    let images = Images::build(&env, &key, "daemonset", false);
    assert_eq!(images.pause, pause);
    let containerd = Containerd::start_in(&containerd_dir, &installed, &host.p("etc/rootseal/config.toml"));
    let mut node = CriNode::attach(env, containerd, key, images, containerd_dir.join("config.toml"));
    let pod = node.pod_config("installed", "default", &[]);
    let pod_id = node.run_pod(&pod, HANDLER).unwrap_or_else(|e| panic!("{e:?}\n{}", node.containerd.log()));
    let id = node
        .create_start(&pod_id, &pod, node.container_config(&pod, "app", &node.app, true, &["cat", "/etc/motd"]))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(node.wait_exit(&id), 0);
    // The image's ctr (what the sync container lists the node's images with) reaches the
    // node's containerd through the socket the DaemonSet mounts.
    let ctr = podman()
        .args(["run", "--rm", "--network", "none", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000"])
        .arg("-v")
        .arg(format!("{}:/run/containerd/containerd.sock", node.containerd.socket().display()))
        .args([&image, "ctr", "-n", "k8s.io", "images", "ls", "-q"])
        .output()
        .unwrap();
    assert!(ctr.status.success() && out(&ctr).contains(&node.app), "{}", text(&ctr));
    let v = node.events().into_iter().find(|e| e["event"] == "verified").expect("verified by the installed hook");
    assert_eq!(v["seal"]["signers"][0], "ci-2026", "the key the step installed: {v}");
    super::assert_blocked(
        node.create_start(&pod_id, &pod, node.container_config(&pod, "rw", &node.app, false, &["true"])),
        "root filesystem is writable",
    );

    // 5. Drain (the pods go), uninstall: the entry goes (a restart is requested), the binaries
    //    stay for tasks still running; after the restart the handler is gone.
    node.remove_pods();
    let o = run_install(&host, &image, "uninstall");
    assert!(o.status.success(), "{}", text(&o));
    assert!(host.p("restart/requested").exists(), "{}", out(&o));
    let after = std::fs::read_to_string(containerd_dir.join("config.toml")).unwrap();
    assert!(!after.contains("rootseal-runtime"), "{after}");
    assert!(host.p("opt/rootseal/bin/rootseal-runtime").exists());
    node.containerd.restart();
    node.reconnect();
    let pod2 = node.pod_config("after-uninstall", "default", &[]);
    let err = node.run_pod(&pod2, HANDLER).expect_err("no rootseal handler after uninstall");
    assert!(err.message().contains("no runtime for \"rootseal\""), "{}", err.message());
}
