//! packaging/kubernetes: every manifest parses, and the fields that must agree do (names,
//! labels, paths, the runtime handler, the policy the node will read).

use std::collections::BTreeMap;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

fn load() -> BTreeMap<String, Yaml> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes");
    let mut out = BTreeMap::new();
    let files = std::fs::read_dir(&dir).unwrap().chain(std::fs::read_dir(dir.join("examples")).unwrap());
    for e in files.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let text = std::fs::read_to_string(&p).unwrap();
            let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            for d in docs {
                let kind = d["kind"].as_str().unwrap_or_else(|| panic!("{}: no kind", p.display())).to_string();
                assert!(d["apiVersion"].as_str().is_some(), "{}: no apiVersion", p.display());
                assert!(d["metadata"]["name"].as_str().is_some(), "{}: no name", p.display());
                out.insert(kind, d);
            }
        }
    }
    out
}

fn s(y: &Yaml) -> &str {
    y.as_str().unwrap_or_else(|| panic!("not a string: {y:?}"))
}

#[test]
fn manifests_parse_and_agree() {
    let m = load();
    for k in ["Namespace", "RuntimeClass", "ConfigMap", "Secret", "DaemonSet", "Pod"] {
        assert!(m.contains_key(k), "a {k} manifest");
    }
    // `kubectl apply -f packaging/kubernetes/` applies files in name order: the namespace first.
    let mut names: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert_eq!(names[0], "00-namespace.yaml");
    let ns = s(&m["Namespace"]["metadata"]["name"]);
    for k in ["ConfigMap", "Secret", "DaemonSet"] {
        assert_eq!(s(&m[k]["metadata"]["namespace"]), ns, "{k} is in the namespace");
    }
    let ds = &m["DaemonSet"];
    // Selector matches the template's labels.
    let sel = ds["spec"]["selector"]["matchLabels"].as_hash().unwrap();
    let labels = ds["spec"]["template"]["metadata"]["labels"].as_hash().unwrap();
    for (k, v) in sel {
        assert_eq!(labels.get(k), Some(v), "selector label {k:?} is on the pods");
    }
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostPID"].as_bool(), Some(true), "the monitor needs host pids for pidfds");
    // RuntimeClass handler = the name the init step installs; both select the same nodes.
    let handler = s(&m["RuntimeClass"]["handler"]);
    // The init step is the image's rootseal-node-install (integration/k8s_image.rs runs it),
    // told the handler name and the host's binary directory by its environment.
    let init_container = &spec["initContainers"][0];
    assert_eq!(s(&init_container["command"][0]), "/usr/bin/rootseal-node-install");
    let init_env: BTreeMap<&str, &str> =
        init_container["env"].as_vec().unwrap().iter().map(|e| (s(&e["name"]), s(&e["value"]))).collect();
    assert_eq!(init_env["RUNTIME_NAME"], handler, "install uses the RuntimeClass handler name");
    let init = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kubernetes/image/rootseal-node-install"),
    )
    .unwrap();
    assert!(init.contains("--name \"$RUNTIME_NAME\""), "{init}");
    assert_eq!(m["RuntimeClass"]["scheduling"]["nodeSelector"], spec["nodeSelector"]);
    // Volumes referenced exist, and the ConfigMap and Secret they name exist.
    let volumes: BTreeMap<&str, &Yaml> = spec["volumes"].as_vec().unwrap().iter().map(|v| (s(&v["name"]), v)).collect();
    for c in spec["initContainers"].as_vec().unwrap().iter().chain(spec["containers"].as_vec().unwrap()) {
        for vm in c["volumeMounts"].as_vec().unwrap() {
            assert!(volumes.contains_key(s(&vm["name"])), "volume {:?} is declared", vm["name"]);
        }
    }
    assert_eq!(s(&volumes["config"]["configMap"]["name"]), s(&m["ConfigMap"]["metadata"]["name"]));
    assert_eq!(s(&volumes["trust"]["secret"]["secretName"]), s(&m["Secret"]["metadata"]["name"]));
    // The policy the node will read parses, and its paths are the host paths the DaemonSet
    // mounts, at the same place in the monitor.
    let cfg = rootseal::config::Config::parse(s(&m["ConfigMap"]["data"]["config.toml"]), Path::new("configmap.yaml"))
        .expect("the ConfigMap's config.toml is a valid rootseal config");
    let monitor = &spec["containers"][0];
    let mounted: BTreeMap<&str, &str> = monitor["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|vm| (s(&vm["mountPath"]), s(&volumes[s(&vm["name"])]["hostPath"]["path"])))
        .collect();
    for (what, p) in [
        ("state_dir", cfg.state_dir.clone()),
        ("cache_dir", cfg.cache_dir.clone()),
        ("events dir", cfg.alerts.events_file.parent().unwrap().to_path_buf()),
        ("seal_dir parent", cfg.seal_dir.parent().unwrap().to_path_buf()),
        ("trust_dir parent", cfg.trust_dir.parent().unwrap().to_path_buf()),
    ] {
        let p = p.display().to_string();
        assert_eq!(mounted.get(p.as_str()).copied(), Some(p.as_str()), "{what} {p} is mounted from the same host path");
    }
    // The hook binary the wrapper injects is where the init step installs it on the host.
    let hook = cfg.runtime.hook_binary.as_ref().expect("hook_binary is set").display().to_string();
    assert!(init.contains("BIN=/host/opt/rootseal/bin\n") && hook.starts_with("/opt/rootseal/bin/"), "{hook}");
    assert_eq!(format!("{}/rootseal", init_env["HOST_BIN_DIR"]), hook);
    assert!(init.contains("--runtime-binary \"$HOST_BIN_DIR/rootseal-runtime\""));
    // The example pod uses the class, read-only.
    let pod = &m["Pod"]["spec"];
    assert_eq!(s(&pod["runtimeClassName"]), s(&m["RuntimeClass"]["metadata"]["name"]));
    assert_eq!(pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
}
