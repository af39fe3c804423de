//! `rootseal install containerd` and `uninstall` on real containerd configs: what containerd 1.6
//! accepts, and whether its CRI plugin still loads (in a containerd started on the result).

use crate::containerd::Containerd;
use crate::util::*;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

#[test]
fn install_writes_a_config_containerd_accepts() {
    let env = Env::new();
    let cfg = env.path("containerd.toml");
    std::fs::write(&cfg, "version = 2\n# site settings\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"runc\"\n").unwrap();
    let (out, _) = env.expect(
        0,
        [
            OsStr::new("install"),
            OsStr::new("containerd"),
            OsStr::new("--config"),
            cfg.as_os_str(),
            OsStr::new("--dry-run"),
        ],
    );
    assert!(out.contains("+BinaryName = \"/usr/bin/rootseal-runtime\"") && out.contains("dry run"), "{out}");
    assert!(!std::fs::read_to_string(&cfg).unwrap().contains("rootseal"), "dry run writes nothing");
    let (out, _) = env.expect(
        0,
        [
            OsStr::new("install"),
            OsStr::new("containerd"),
            OsStr::new("--config"),
            cfg.as_os_str(),
            OsStr::new("--set-default"),
        ],
    );
    assert!(out.contains("restart containerd") && out.contains("previous file saved as"), "{out}");
    let (out, _) = env.expect(
        0,
        [
            OsStr::new("install"),
            OsStr::new("containerd"),
            OsStr::new("--config"),
            cfg.as_os_str(),
            OsStr::new("--set-default"),
        ],
    );
    assert!(out.contains("nothing changed"), "{out}");
    let dump = Command::new("containerd").arg("--config").arg(&cfg).args(["config", "dump"]).output().unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("default_runtime_name = \"rootseal\""), "{dump}");
    assert!(dump.contains("BinaryName = \"/usr/bin/rootseal-runtime\""), "{dump}");
    assert!(std::fs::read_to_string(&cfg).unwrap().contains("# site settings"));
    env.expect(0, [OsStr::new("uninstall"), OsStr::new("containerd"), OsStr::new("--config"), cfg.as_os_str()]);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(!text.contains("rootseal-runtime") && text.contains("default_runtime_name = \"runc\""), "{text}");
}

/// Debian 12's stock /etc/containerd/config.toml: version 2, a CRI plugin table naming no
/// runtimes (the CRI plugin then uses its built-in runc).
const DEBIAN_STOCK: &str = "version = 2\n\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    [plugins.\"io.containerd.grpc.v1.cri\".cni]\n      bin_dir = \"/usr/lib/cni\"\n      conf_dir = \"/etc/cni/net.d\"\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = \"/var/lib/containerd/opt\"\n";

/// The STATUS of the CRI plugin in a real containerd started on `config` (own root, state and
/// socket): "ok" or "error".
fn cri_plugin_status(env: &Env, config: &Path) -> String {
    let name = format!("cri-{}", config.file_name().unwrap().to_string_lossy());
    let c = Containerd::start_with(env, &name, &std::fs::read_to_string(config).unwrap());
    let listed = String::from_utf8_lossy(&c.ctr(&["plugins", "ls"]).stdout).into_owned();
    listed
        .lines()
        .find(|l| l.starts_with("io.containerd.grpc.v1") && l.split_whitespace().nth(1) == Some("cri"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("missing")
        .to_string()
}

/// Issue 14, item 1: `install containerd` on Debian's stock config used to add a `runtimes`
/// table without the `runc` entry the CRI default names, and the CRI plugin failed to load
/// after a restart while `containerd config dump` and doctor said all was well.
#[test]
fn install_on_debians_stock_config_keeps_the_cri_plugin_loading_and_doctor_checks_it() {
    let env = Env::new();
    let stock = env.path("stock.toml");
    std::fs::write(&stock, DEBIAN_STOCK).unwrap();
    assert_eq!(cri_plugin_status(&env, &stock), "ok", "the stock config loads the CRI plugin");
    let installed = env.path("installed.toml");
    std::fs::write(&installed, DEBIAN_STOCK).unwrap();
    env.expect(0, [OsStr::new("install"), OsStr::new("containerd"), OsStr::new("--config"), installed.as_os_str()]);
    assert_eq!(cri_plugin_status(&env, &installed), "ok", "{}", std::fs::read_to_string(&installed).unwrap());
    let doctor = |cfg: &Path| {
        let o =
            env.run([OsStr::new("doctor"), OsStr::new("--json"), OsStr::new("--containerd-config"), cfg.as_os_str()]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["checks"].as_array().unwrap().iter().find(|c| c["name"] == "containerd CRI").cloned().expect("a CRI check")
    };
    assert_eq!(doctor(&installed)["status"], "ok");

    // What the previous install wrote: the CRI plugin fails, and doctor now says so.
    let broken = env.path("broken.toml");
    std::fs::write(
        &broken,
        format!("{DEBIAN_STOCK}[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rootseal]\n  runtime_type = \"io.containerd.runc.v2\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rootseal.options]\n    BinaryName = \"/usr/bin/rootseal-runtime\"\n"),
    )
    .unwrap();
    assert!(Command::new("containerd")
        .arg("--config")
        .arg(&broken)
        .args(["config", "dump"])
        .output()
        .unwrap()
        .status
        .success());
    assert_eq!(cri_plugin_status(&env, &broken), "error", "the failure mode this guards against");
    let c = doctor(&broken);
    assert_eq!(c["status"], "fail", "{c}");
    assert!(c["detail"].as_str().unwrap().contains("default_runtime_name"), "{c}");
    // And install repairs it.
    env.expect(0, [OsStr::new("install"), OsStr::new("containerd"), OsStr::new("--config"), broken.as_os_str()]);
    assert_eq!(cri_plugin_status(&env, &broken), "ok");
}
