//! Pods under the CRI: the sandbox's policy, namespace rules, the pod in events, records,
//! status and drift, and annotations a pod author sets.

use super::assert_blocked;
use super::env::*;
use std::time::{Duration, Instant};

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The documented sandbox policy (docs/kubernetes.md): exempt by default through the CRI's own
/// `io.kubernetes.cri.container-type=sandbox`; with `exempt = []` the pause image is verified
/// like any other, so an unsealed one fails RunPodSandbox with rootseal's reason.
#[test]
fn cri_sandboxes_are_verified_when_exemptions_are_off_and_an_unsealed_pause_is_refused() {
    let n = CriNode::new("sbx-unsealed", NodeSpec { config: "exempt = []", ..Default::default() });
    let pod = n.pod_config("strict", "default", &[]);
    let err = n.run_pod(&pod, HANDLER).expect_err("an unsealed sandbox image under enforce");
    assert!(err.message().contains("rootseal: blocked container"), "{}", err.message());
    let blocked = n.events().into_iter().rfind(|e| e["event"] == "blocked").expect("a blocked event");
    assert_eq!(blocked["container"]["pod"]["sandbox"], true, "{blocked}");
    assert_eq!(blocked["container"]["pod"]["name"], "strict", "{blocked}");

    let n = CriNode::new("sbx-sealed", NodeSpec { config: "exempt = []", seal_pause: true, ..Default::default() });
    let pod = n.pod_config("strict-sealed", "default", &[]);
    let pod_id = n.run_pod(&pod, HANDLER).unwrap_or_else(|e| panic!("a sealed sandbox runs: {e:?}"));
    let ev = n.events();
    let v = ev.iter().find(|e| e["event"] == "verified" && e["container"]["id"] == pod_id.as_str());
    let v = v.unwrap_or_else(|| panic!("the sandbox was verified: {ev:?}"));
    assert_eq!(v["container"]["pod"]["sandbox"], true, "{v}");
    assert!(ev.iter().all(|e| e["event"] != "exempted"), "{ev:?}");
    let cfg = n.container_config(&pod, "app", &n.app, true, &["cat", "/etc/motd"]);
    let id = n.create_start(&pod_id, &pod, cfg).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(n.wait_exit(&id), 0);
}

/// `[[rules]] namespaces`: audit for kube-system (an unsealed image runs and is alerted), while
/// the same image in another namespace is blocked.
#[test]
fn cri_a_namespace_rule_audits_kube_system_and_other_namespaces_stay_enforced() {
    let config = "[[rules]]\nname = \"system\"\nnamespaces = [\"kube-system\"]\nmode = \"audit\"\n";
    let n = CriNode::new("ns", NodeSpec { config, ..Default::default() });
    let other = format!("test.local/rootseal/cri-ns-unsealed:{}", std::process::id());
    let archive = crate::images::multi_layer_archive(n.env.tmp.path(), &other, "not sealed\n");
    n.import(&archive);
    let sys = n.pod_config("dns", "kube-system", &[]);
    let sys_id = n.run_pod(&sys, HANDLER).unwrap();
    let id = n
        .create_start(&sys_id, &sys, n.container_config(&sys, "dns", &other, true, &["cat", "/etc/motd"]))
        .unwrap_or_else(|e| panic!("audit lets it run: {e:?}"));
    assert_eq!(n.wait_exit(&id), 0);
    assert!(n.logs(&sys, "dns").contains("not sealed"));
    let audit = n.events().into_iter().find(|e| e["event"] == "audit").expect("an audit event");
    assert_eq!(audit["rule"], "system", "{audit}");
    assert_eq!(audit["mode"], "audit", "{audit}");
    assert_eq!(audit["container"]["pod"]["namespace"], "kube-system", "{audit}");
    assert_eq!(audit["container"]["pod"]["container"], "dns", "{audit}");

    let app = n.pod_config("web", "shop", &[]);
    let app_id = n.run_pod(&app, HANDLER).unwrap();
    assert_blocked(n.create_start(&app_id, &app, n.container_config(&app, "web", &other, true, &["true"])), "");
}

/// The pod's name, namespace and container name in the hook's event, the state record, the
/// monitor's status (`rootseal status`) and its drift event; the monitor applies the
/// namespace's rule (`drift_action = "kill"`).
#[test]
fn cri_events_records_status_and_drift_name_the_pod() {
    let config =
        "[monitor]\ninterval = \"1s\"\n[[rules]]\nname = \"shop\"\nnamespaces = [\"shop\"]\ndrift_action = \"kill\"\n";
    let n = CriNode::new("podmeta", NodeSpec { config, ..Default::default() });
    let pod = n.pod_config("web-0", "shop", &[]);
    let pod_id = n.run_pod(&pod, HANDLER).unwrap();
    let id = n
        .create_start(&pod_id, &pod, n.container_config(&pod, "app", &n.app, true, &["sleep", "300"]))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let want = serde_json::json!({
        "name": "web-0", "namespace": "shop", "uid": format!("web-0-{}", std::process::id()),
        "container": "app", "sandbox": false,
    });
    let ev = n.events();
    let v = ev.iter().find(|e| e["event"] == "verified" && e["container"]["id"] == id.as_str()).expect("verified");
    assert_eq!(v["container"]["pod"], want, "{v}");
    let records: Vec<serde_json::Value> = std::fs::read_dir(n.env.path("state/containers"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&id))
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["pod"], want, "{}", records[0]);

    let mon = crate::monitor::MonitorProc::start(&n.env);
    let entry = || {
        status_json(&n.env)["containers"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id.as_str()).cloned())
            .unwrap_or_default()
    };
    wait_for("a clean scan of the CRI container", Duration::from_secs(30), || entry()["result"] == "clean");
    assert_eq!(entry()["pod"], want);
    let text = String::from_utf8_lossy(&n.env.run(["status"]).stdout).into_owned();
    assert!(text.lines().any(|l| l.contains("\tshop/web-0/app\t") && l.contains(&n.app)), "{text}");

    std::fs::write(n.snapshot_file("etc/motd", "hello from a sealed pod\n"), "changed under a running pod\n").unwrap();
    let mut drift = None;
    wait_for("a drift event", Duration::from_secs(60), || {
        drift = n.events().into_iter().find(|e| e["source"] == "monitor" && e["event"] == "drift");
        drift.is_some()
    });
    let drift = drift.unwrap();
    assert_eq!(drift["container"]["id"], id.as_str());
    assert_eq!(drift["container"]["pod"], want, "{drift}");
    assert_eq!(drift["violations"][0]["paths"][0]["path"], "/etc/motd");
    assert!(drift["action"].as_str().is_some_and(|a| a.starts_with("killed")), "the namespace rule's kill: {drift}");
    wait_for("the killed container to exit", Duration::from_secs(30), || {
        n.status(&id).state == k8s_cri::v1::ContainerState::ContainerExited as i32
    });
    assert_eq!(mon.stop(), Some(0));
}

/// The most permissive pass-through an operator can configure (`pod_annotations` and
/// `container_annotations` `["*", "*/*"]` on the rootseal runtime): a pod author forges every
/// annotation rootseal reads, and none of them relaxes the policy.
#[test]
fn cri_a_pod_author_cannot_relax_the_policy_through_annotations() {
    let config = r#"[[exempt]]
name = "kubernetes-sandbox"
annotations = { "io.kubernetes.cri.container-type" = "sandbox" }
[[exempt]]
name = "cri-o-sandbox"
annotations = { "io.kubernetes.cri-o.ContainerType" = "sandbox" }
[[exempt]]
name = "trusted-vendor"
images = ["registry.example/trusted/**"]
[[rules]]
name = "system"
namespaces = ["kube-system"]
mode = "audit"
[[rules]]
name = "legacy"
images = ["registry.example/legacy/**"]
mode = "audit"
"#;
    let forged: &[(&str, &str)] = &[
        ("io.kubernetes.cri.container-type", "sandbox"),
        ("io.kubernetes.cri.sandbox-namespace", "kube-system"),
        ("io.kubernetes.cri.image-name", "registry.example/trusted/x:1"),
        ("io.kubernetes.cri-o.ContainerType", "sandbox"),
        ("io.kubernetes.cri-o.ImageName", "registry.example/trusted/x:1"),
        ("rootseal.dev/image", "registry.example/legacy/x:1"),
    ];
    let n = CriNode::new("forge", NodeSpec { config, pass_annotations: true, seal_pause: false });
    let other = format!("test.local/rootseal/cri-forge-unsealed:{}", std::process::id());
    n.import(&crate::images::multi_layer_archive(n.env.tmp.path(), &other, "forged\n"));
    let pod = n.pod_config("forger", "team-a", forged);
    let pod_id = n.run_pod(&pod, HANDLER).unwrap_or_else(|e| panic!("{e:?}"));
    // The sandbox is still exempt by the CRI's own mark (its pause image is not sealed).
    let ev = n.events();
    let sandbox = ev.iter().find(|e| e["container"]["id"] == pod_id.as_str()).expect("the sandbox's event");
    assert_eq!(sandbox["exemption"], "kubernetes-sandbox", "{sandbox}");

    let annotate = |mut c: k8s_cri::v1::ContainerConfig| {
        c.annotations = forged.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        c
    };
    let m = assert_blocked(
        n.create_start(&pod_id, &pod, annotate(n.container_config(&pod, "evil", &other, true, &["cat", "/etc/motd"]))),
        "",
    );
    assert!(!m.contains("exempted"), "{m}");
    let blocked = n.events().into_iter().rfind(|e| e["event"] == "blocked").expect("a blocked event");
    assert!(blocked["exemption"].is_null() && blocked["rule"].is_null(), "{blocked}");
    assert_eq!(blocked["mode"], "enforce");
    assert_eq!(blocked["image"], other.as_str(), "the CRI's image name, not a forged one: {blocked}");
    assert_eq!(blocked["container"]["pod"]["namespace"], "team-a", "{blocked}");

    // The pass-through did happen (containerd's stored spec has the forged keys), the CRI
    // plugin overrode its own keys, and rootseal-runtime removed CRI-O's before runc (and so
    // the hook) saw the spec: a sealed container of the same pod, running, shows both.
    let id = n
        .create_start(&pod_id, &pod, annotate(n.container_config(&pod, "ok", &n.app, true, &["sleep", "300"])))
        .unwrap_or_else(|e| panic!("a sealed container still runs: {e:?}"));
    let info = n.containerd.ctr(&["-n", "k8s.io", "containers", "info", &id]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("ctr containers info");
    let stored = &info["Spec"]["annotations"];
    assert_eq!(stored["io.kubernetes.cri-o.ContainerType"], "sandbox", "passed through: {stored}");
    assert_eq!(stored["rootseal.dev/image"], "registry.example/legacy/x:1", "passed through: {stored}");
    assert_eq!(stored["io.kubernetes.cri.container-type"], "container", "the CRI's own: {stored}");
    assert_eq!(stored["io.kubernetes.cri.sandbox-namespace"], "team-a", "the CRI's own: {stored}");
    assert_eq!(stored["io.kubernetes.cri.image-name"], n.app.as_str(), "the CRI's own: {stored}");
    let bundle = n.containerd.state_dir().join("io.containerd.runtime.v2.task/k8s.io").join(&id).join("config.json");
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    let a = spec["annotations"].as_object().unwrap();
    assert!(!a.keys().any(|k| k.starts_with("io.kubernetes.cri-o.")), "removed by rootseal-runtime: {a:?}");
    assert_eq!(a["io.kubernetes.cri.image-name"], n.app.as_str());
}
