//! Kubernetes' path through containerd: the CRI plugin of a real containerd 1.6, driven by a
//! real CRI client as the kubelet drives it (integration/cri/env.rs), pods under the runtime
//! handler `rootseal install containerd` registers.

mod bad_input;
mod daemonset;
mod env;
mod pods;

use env::*;

pub(crate) fn assert_blocked(r: Result<String, (Option<String>, tonic::Status)>, expect: &str) -> String {
    match r {
        Ok(id) => panic!("container {id} should have been blocked ({expect})"),
        Err((_, status)) => {
            let m = status.message().to_string();
            assert!(m.contains("rootseal: blocked container") && m.contains(expect), "{expect:?} not in: {m}");
            m
        }
    }
}

#[test]
fn cri_a_sealed_read_only_pod_runs_under_the_rootseal_handler() {
    let n = CriNode::new("sealed", NodeSpec::default());
    let pod = n.pod_config("sealed-app", "default", &[]);
    let pod_id = n.run_pod(&pod, HANDLER).unwrap_or_else(|e| panic!("{e:?}\n{}", n.containerd.log()));
    let cmd = ["sh", "-c", "cat /etc/motd; touch /x 2>/dev/null || echo read-only; touch /data/ok && echo data-writable; cat /var/run/secrets/kubernetes.io/serviceaccount/token; echo; touch /var/run/secrets/kubernetes.io/serviceaccount/x 2>/dev/null || echo token-read-only; echo bye > /dev/termination-log && echo termination-log-writable; test -e /etc/resolv.conf && echo resolv-present; grep -q localhost /etc/hosts && echo hosts-present"];
    let cfg = n.container_config(&pod, "app", &n.app, true, &cmd);
    let id = n.create_start(&pod_id, &pod, cfg).unwrap_or_else(|e| panic!("{e:?}\n{}", n.containerd.log()));
    assert_eq!(n.wait_exit(&id), 0);
    let out = n.logs(&pod, "app");
    assert!(
        out.contains("hello from a sealed pod") && out.contains("read-only") && out.contains("data-writable"),
        "{out}"
    );
    for line in ["not-a-real-token", "token-read-only", "termination-log-writable", "resolv-present", "hosts-present"] {
        assert!(out.contains(line), "{line}: {out}");
    }
    let ev = n.events();
    let verified = ev.iter().find(|e| e["event"] == "verified" && e["container"]["id"] == id.as_str());
    let verified = verified.unwrap_or_else(|| panic!("a verified event for {id}: {ev:?}"));
    assert_eq!(verified["image"], n.app.as_str(), "{verified}");
    // The sandbox ran through the wrapper too, exempt by the CRI's own annotation.
    let exempt = ev.iter().find(|e| e["event"] == "exempted" && e["container"]["id"] == pod_id.as_str());
    assert_eq!(exempt.unwrap_or_else(|| panic!("{ev:?}"))["exemption"], "kubernetes-sandbox");
}

#[test]
fn cri_a_tampered_snapshot_is_refused_with_the_reason_in_the_cri_error() {
    let n = CriNode::new("tamper", NodeSpec::default());
    let pod = n.pod_config("tampered-app", "default", &[]);
    let pod_id = n.run_pod(&pod, HANDLER).unwrap();
    let motd = n.snapshot_file("etc/motd", "hello from a sealed pod\n");
    std::fs::write(&motd, "changed in the snapshot\n").unwrap();
    let cfg = n.container_config(&pod, "app", &n.app, true, &["cat", "/etc/motd"]);
    let m = assert_blocked(n.create_start(&pod_id, &pod, cfg), "/etc/motd content differs from seal");
    assert!(!n.logs(&pod, "app").contains("changed in the snapshot"), "{m}");
    let blocked = n.events().into_iter().rfind(|e| e["event"] == "blocked").expect("a blocked event");
    assert_eq!(blocked["violations"][0]["paths"][0]["path"], "/etc/motd", "{blocked}");
    assert_eq!(blocked["image"], n.app.as_str());
}

#[test]
fn cri_an_unsealed_image_is_refused() {
    let n = CriNode::new("unsealed", NodeSpec::default());
    let other = format!("test.local/rootseal/cri-never-sealed:{}", std::process::id());
    let archive = crate::images::oci_archive(
        n.env.tmp.path(),
        &other,
        vec![(crate::images::busybox_layer().finish(), crate::images::Compression::Gzip)],
    );
    n.import(&archive);
    let pod = n.pod_config("unsealed-app", "default", &[]);
    let pod_id = n.run_pod(&pod, HANDLER).unwrap();
    let cfg = n.container_config(&pod, "app", &other, true, &["cat", "/etc/motd"]);
    let m = assert_blocked(n.create_start(&pod_id, &pod, cfg), "");
    // No seal names it: the hook says so, or compares with the sealed image the tree resembles
    // (the app, whose base layer it shares) and names the differences and that seal's image.
    assert!(m.contains("no seal") || m.contains(&format!("for {}", n.app)), "{m}");
    let blocked = n.events().into_iter().rfind(|e| e["event"] == "blocked").expect("a blocked event");
    assert_eq!(blocked["image"], other.as_str(), "{blocked}");
}

#[test]
fn cri_a_writable_root_is_refused() {
    let n = CriNode::new("writable", NodeSpec::default());
    let pod = n.pod_config("writable-app", "default", &[]);
    let pod_id = n.run_pod(&pod, HANDLER).unwrap();
    let cfg = n.container_config(&pod, "app", &n.app, false, &["cat", "/etc/motd"]);
    assert_blocked(n.create_start(&pod_id, &pod, cfg), "root filesystem is writable");
    // The same pod under the stock runc handler is not rootseal's business: it runs.
    let pod2 = n.pod_config("writable-runc", "default", &[]);
    let pod2_id = n.run_pod(&pod2, "runc").unwrap();
    let cfg = n.container_config(&pod2, "app", &n.app, false, &["cat", "/etc/motd"]);
    let id = n.create_start(&pod2_id, &pod2, cfg).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(n.wait_exit(&id), 0);
    assert!(n.logs(&pod2, "app").contains("hello from a sealed pod"));
}
