//! What goes wrong on a Kubernetes node, each with its outcome: a RuntimeClass handler that is
//! not installed, an image name that disagrees with the seal, a containerd restart under
//! running pods. (An unsealed sandbox image under an enforcing policy: pods.rs.)

use super::assert_blocked;
use super::env::*;

#[test]
fn cri_a_runtime_class_handler_that_is_not_installed_fails_the_pod_before_any_container() {
    let n = CriNode::new("nohandler", NodeSpec::default());
    let pod = n.pod_config("lost", "default", &[]);
    let err = n.run_pod(&pod, "rootseal-typo").expect_err("no such runtime");
    assert!(err.message().contains("no runtime for \"rootseal-typo\" is configured"), "{}", err.message());
    assert!(n.events().is_empty(), "rootseal never ran: {:?}", n.events());
    assert!(n.pods().is_empty(), "no sandbox left behind: {:?}", n.pods());
}

/// The seal covers the bytes, not the name: an image whose CRI name is not the seal's subject
/// still finds its seal by content, and runs; the event names both. A rule for the CRI name
/// still applies (here it requires another key), so a rename cannot escape it.
#[test]
fn cri_an_image_name_that_disagrees_with_the_seal_is_judged_by_both_names() {
    let n = CriNode::new("rename", NodeSpec::default());
    let pid = std::process::id();
    let renamed = format!("test.local/rootseal/renamed:{pid}");
    let archive = crate::images::multi_layer_archive(n.env.tmp.path(), &renamed, "renamed image\n");
    n.seal(&archive, &["--name", "test.local/rootseal/someone-else:1"]);
    n.import(&archive);
    let pod = n.pod_config("renamed", "default", &[]);
    let pod_id = n.run_pod(&pod, HANDLER).unwrap();
    let id = n
        .create_start(&pod_id, &pod, n.container_config(&pod, "app", &renamed, true, &["cat", "/etc/motd"]))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(n.wait_exit(&id), 0);
    let ev = n.events();
    let v = ev.iter().find(|e| e["event"] == "verified" && e["container"]["id"] == id.as_str()).expect("verified");
    assert_eq!(v["image"], renamed.as_str(), "{v}");
    assert_eq!(v["seal"]["name"], "test.local/rootseal/someone-else:1", "{v}");

    n.env.write_config(
        "[[rules]]\nname = \"renamed\"\nimages = [\"test.local/rootseal/renamed:*\"]\nkeys = [\"release\"]\n",
    );
    assert_blocked(
        n.create_start(&pod_id, &pod, n.container_config(&pod, "app2", &renamed, true, &["true"])),
        "requires one of release",
    );
}

/// `systemctl restart containerd` under running pods: the tasks keep running under their
/// shims, the CRI finds them again, the monitor's records stay, and the next start is verified
/// as before.
#[test]
fn cri_a_containerd_restart_keeps_running_pods_and_verification() {
    let mut n = CriNode::new("restart", NodeSpec::default());
    let pod = n.pod_config("long", "default", &[]);
    let pod_id = n.run_pod(&pod, HANDLER).unwrap();
    let id = n
        .create_start(&pod_id, &pod, n.container_config(&pod, "app", &n.app, true, &["sleep", "300"]))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let state = n.env.path("state/containers");
    let records = || std::fs::read_dir(&state).map(|d| d.count()).unwrap_or(0);
    assert_eq!(records(), 1);
    n.containerd.restart();
    n.reconnect();
    assert_eq!(n.status(&id).state, k8s_cri::v1::ContainerState::ContainerRunning as i32, "still running");
    assert!(n.pods().iter().any(|p| p.id == pod_id && p.state == k8s_cri::v1::PodSandboxState::SandboxReady as i32));
    assert_eq!(records(), 1, "the record of the running container stays");
    let id2 = n
        .create_start(&pod_id, &pod, n.container_config(&pod, "after", &n.app, true, &["cat", "/etc/motd"]))
        .unwrap_or_else(|e| panic!("{e:?}\n{}", n.containerd.log()));
    assert_eq!(n.wait_exit(&id2), 0);
    assert!(n.events().iter().any(|e| e["event"] == "verified" && e["container"]["id"] == id2.as_str()));
    let cfg = n.container_config(&pod, "writable", &n.app, false, &["true"]);
    assert_blocked(n.create_start(&pod_id, &pod, cfg), "root filesystem is writable");
}
