//! `rootseal-runtime`: a runc-compatible wrapper for containerd (which has no hooks.d), in the
//! pattern of nvidia-container-runtime.
//!
//! On `create` and `run`:
//! 1. find the bundle (`--bundle`/`-b`, else the working directory) and load its config.json;
//! 2. build the new spec as data: add the rootseal hooks (createRuntime or prestart, and
//!    poststop) unless present, and, when `[runtime] make_readonly` is set, make the root
//!    read-only with tmpfs at `readonly_tmpfs` where nothing is mounted yet; remove any
//!    `io.kubernetes.cri-o.*` annotation (containerd never sets them: under this wrapper they
//!    come from a pod, and would claim CRI-O's trust, `policy::runtime_annotations`);
//! 3. validate it (it must still parse as an OCI spec);
//! 4. write it atomically (temp file, fsync, rename) and exec the real runtime with the
//!    original arguments.
//!
//! Every other verb execs the real runtime unchanged. On any error nothing is written and
//! nothing is executed: the wrapper exits 1 with a reason (also in runc's JSON log, which the
//! containerd shim reports).

use crate::config::{Config, RuntimeSettings};
use serde_json::{json, Value};
use std::ffi::{CString, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("bundle {}: {what}", bundle.display())]
    Bundle { bundle: PathBuf, what: String },
    #[error("bundle {}: {error}", bundle.display())]
    Spec { bundle: PathBuf, error: SpecError },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: crate::atomic::WriteError },
    #[error("real runtime {runtime:?} {what}; set [runtime] runtime in the config")]
    Runtime { runtime: String, what: String },
    #[error("cannot exec {}: {source}", path.display())]
    Exec { path: PathBuf, source: std::io::Error },
}

/// Why the rootseal hooks cannot be added to a bundle's config.json (step 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("config.json is not a JSON object")]
    NotAnObject,
    #[error("[runtime] hook_stage {stage:?} must be \"createRuntime\" or \"prestart\"")]
    HookStage { stage: String },
    #[error("config.json hooks is not an object")]
    HooksNotAnObject,
    #[error("config.json hooks.{stage} is not an array")]
    HookListNotAnArray { stage: String },
    #[error("config.json root is not an object")]
    RootNotAnObject,
    #[error("config.json mounts is not an array")]
    MountsNotAnArray,
}

/// runc's global options that take a value (runc --help).
const VALUE_FLAGS: [&str; 5] = ["--log", "--log-format", "--root", "--criu", "--rootless"];

/// The parsed command line: global options, the verb and its arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct Invocation {
    pub verb: Option<String>,
    pub bundle: Option<PathBuf>,
    pub log: Option<PathBuf>,
    pub log_json: bool,
}

pub fn parse_args(args: &[OsString]) -> Invocation {
    let mut inv = Invocation { verb: None, bundle: None, log: None, log_json: false };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if inv.verb.is_none() {
            if let Some(flag) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')).filter(|_| a.starts_with('-')) {
                let (name, inline) = match flag.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (flag.to_string(), None),
                };
                let takes_value = VALUE_FLAGS.contains(&format!("--{name}").as_str());
                let value = if takes_value && inline.is_none() {
                    i += 1;
                    args.get(i).map(|v| v.to_string_lossy().into_owned())
                } else {
                    inline
                };
                match name.as_str() {
                    "log" => inv.log = value.map(PathBuf::from),
                    "log-format" => inv.log_json = value.as_deref() == Some("json"),
                    _ => {}
                }
                i += 1;
                continue;
            }
            inv.verb = Some(a.into_owned());
            i += 1;
            continue;
        }
        // Verb arguments: only --bundle/-b matters.
        if a == "--bundle" || a == "-b" {
            inv.bundle = args.get(i + 1).map(PathBuf::from);
            i += 2;
            continue;
        }
        if let Some(v) = a.strip_prefix("--bundle=").or_else(|| a.strip_prefix("-b=")) {
            inv.bundle = Some(PathBuf::from(v));
        }
        i += 1;
    }
    inv
}

/// True for the verbs whose spec the wrapper rewrites: every verb that makes a container from
/// a bundle (`restore` too: a checkpoint restores into a new container from the bundle's spec).
pub fn modifies(inv: &Invocation) -> bool {
    matches!(inv.verb.as_deref(), Some("create") | Some("run") | Some("restore"))
}

/// True when a hook entry runs the rootseal binary `ours`: the same path, or (through another
/// path, a symlink, `..`) the same file.
fn runs_binary(entry: &Value, ours: &Path) -> bool {
    let Some(path) = entry.get("path").and_then(Value::as_str) else { return false };
    if Path::new(path) == ours {
        return true;
    }
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), std::fs::metadata(ours)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Step 2: the new spec, as data. Returns the spec and whether anything changed.
pub fn modify_spec(
    spec: &Value,
    settings: &RuntimeSettings,
    hook_binary: &Path,
    config_path: Option<&Path>,
    deadline_s: u64,
) -> Result<(Value, bool), SpecError> {
    let mut spec = spec.clone();
    let obj = spec.as_object_mut().ok_or(SpecError::NotAnObject)?;
    let mut changed = false;
    let stage = settings.hook_stage.as_str();
    if stage != "createRuntime" && stage != "prestart" {
        return Err(SpecError::HookStage { stage: stage.into() });
    }
    let hook = |st: &str| {
        let mut args = vec!["rootseal".to_string()];
        if let Some(c) = config_path {
            args.push("--config".into());
            args.push(c.display().to_string());
        }
        args.push("hook".into());
        args.push(st.into());
        json!({ "path": hook_binary.display().to_string(), "args": args, "timeout": deadline_s + 5 })
    };
    let hooks = obj.entry("hooks").or_insert_with(|| json!({}));
    let hooks = hooks.as_object_mut().ok_or(SpecError::HooksNotAnObject)?;
    // Every entry for the rootseal binary, in any stage, is replaced by the canonical ones: an
    // entry the spec brought (`hook poststart`, another --config, ROOTSEAL_CONFIG in its env)
    // must never stand in for the verifying hook.
    let before = Value::Object(hooks.clone());
    for (st, list) in hooks.iter_mut() {
        let list = list.as_array_mut().ok_or_else(|| SpecError::HookListNotAnArray { stage: st.clone() })?;
        list.retain(|h| !runs_binary(h, hook_binary));
    }
    for st in [stage, "poststop"] {
        let list = hooks.entry(st).or_insert_with(|| json!([]));
        let list = list.as_array_mut().ok_or_else(|| SpecError::HookListNotAnArray { stage: st.into() })?;
        // Ours first: nothing else should run before the rootfs is verified.
        list.insert(0, hook(st));
    }
    hooks.retain(|_, list| list.as_array().is_none_or(|l| !l.is_empty()));
    if Value::Object(hooks.clone()) != before {
        changed = true;
    }
    // containerd never sets CRI-O's annotations; its CRI plugin passes a pod's annotations
    // through when the runtime's `pod_annotations` allows them, so here they are a pod's.
    if let Some(Value::Object(ann)) = obj.get_mut("annotations") {
        let n = ann.len();
        ann.retain(|k, _| !k.starts_with(crate::policy::CRI_O_PREFIX));
        changed |= ann.len() != n;
    }
    if settings.make_readonly {
        let root = obj.entry("root").or_insert_with(|| json!({"path": "rootfs"}));
        let root = root.as_object_mut().ok_or(SpecError::RootNotAnObject)?;
        if root.get("readonly") != Some(&Value::Bool(true)) {
            root.insert("readonly".into(), Value::Bool(true));
            changed = true;
        }
        let mounts = obj.entry("mounts").or_insert_with(|| json!([]));
        let mounts = mounts.as_array_mut().ok_or(SpecError::MountsNotAnArray)?;
        for dest in &settings.readonly_tmpfs {
            let taken = mounts.iter().any(|m| m.get("destination").and_then(Value::as_str) == Some(dest.as_str()));
            if !taken {
                let mode = if dest == "/tmp" || dest == "/var/tmp" { "mode=1777" } else { "mode=755" };
                mounts.push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", mode]}));
                changed = true;
            }
        }
    }
    Ok((spec, changed))
}

/// Resolves the real runtime: an absolute path as is, a bare name through $PATH. Refuses to
/// resolve to this wrapper itself (an exec loop).
pub fn resolve_runtime(name: &str) -> Result<PathBuf, RuntimeError> {
    let err = |what: &str| RuntimeError::Runtime { runtime: name.into(), what: what.into() };
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect()).unwrap_or_default()
    };
    let me = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok());
    for c in candidates {
        if let Ok(meta) = std::fs::metadata(&c) {
            use std::os::unix::fs::PermissionsExt;
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                if me.is_some() && c.canonicalize().ok() == me {
                    return Err(err("is rootseal-runtime itself"));
                }
                return Ok(c);
            }
        }
    }
    Err(err("was not found or is not executable"))
}

/// The rootseal binary the hooks call: `[runtime] hook_binary`, else `rootseal` next to this
/// wrapper, else /usr/bin/rootseal.
pub fn hook_binary(settings: &RuntimeSettings) -> PathBuf {
    if let Some(p) = &settings.hook_binary {
        return p.clone();
    }
    if let Some(sibling) = std::env::current_exe().ok().and_then(|e| e.parent().map(|d| d.join("rootseal"))) {
        if sibling.is_file() {
            return sibling;
        }
    }
    PathBuf::from("/usr/bin/rootseal")
}

/// Steps 1 to 4 for `create`/`run`; returns the runtime to exec. Writes nothing on error.
pub fn prepare(inv: &Invocation, cfg: &Config, config_path: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let runtime = resolve_runtime(&cfg.runtime.runtime)?;
    if !modifies(inv) {
        return Ok(runtime);
    }
    let bundle = match &inv.bundle {
        Some(b) => b.clone(),
        None => {
            std::env::current_dir().map_err(|e| RuntimeError::Bundle { bundle: ".".into(), what: e.to_string() })?
        }
    };
    let bad = |what: String| RuntimeError::Bundle { bundle: bundle.clone(), what };
    let path = bundle.join("config.json");
    let bytes = crate::atomic::read_bounded(&path, crate::oci::MAX_CONFIG_BYTES).map_err(|e| bad(e.to_string()))?;
    crate::json::check_no_duplicates(&bytes).map_err(|e| bad(format!("config.json: {e}")))?;
    let spec: Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("config.json: {e}")))?;
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone())
        .map_err(|e| bad(format!("config.json is not a valid OCI spec: {e}")))?;
    let deadline = cfg.hook.deadline().as_secs().max(1);
    let (new, changed) = modify_spec(&spec, &cfg.runtime, &hook_binary(&cfg.runtime), config_path, deadline)
        .map_err(|error| RuntimeError::Spec { bundle: bundle.clone(), error })?;
    if changed {
        serde_json::from_value::<oci_spec::runtime::Spec>(new.clone())
            .map_err(|e| bad(format!("the modified spec does not validate: {e}")))?;
        let mut out = serde_json::to_vec_pretty(&new).expect("serialises");
        out.push(b'\n');
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
        crate::atomic::write(&path, &out, mode).map_err(|source| RuntimeError::Write { path: path.clone(), source })?;
    }
    Ok(runtime)
}

/// Replaces this process with `runtime args...`.
pub fn exec(runtime: &Path, args: &[OsString]) -> RuntimeError {
    let prog = CString::new(runtime.as_os_str().as_bytes()).expect("paths hold no NUL");
    let mut argv = vec![prog.clone()];
    argv.extend(args.iter().map(|a| CString::new(a.clone().into_vec()).unwrap_or_else(|_| CString::new("?").unwrap())));
    let err = nix::unistd::execv(&prog, &argv).expect_err("execv returns only on error");
    RuntimeError::Exec { path: runtime.into(), source: err.into() }
}

/// Reports an error the way runc does, so the containerd shim shows it: a JSON line in the
/// --log file when --log-format json was given, and one line on stderr.
pub fn report(inv: &Invocation, msg: &str) {
    eprintln!("rootseal-runtime: {msg}");
    if let (Some(log), true) = (&inv.log, inv.log_json) {
        use std::io::Write;
        let line = json!({"level": "error", "msg": format!("rootseal-runtime: {msg}"), "time": crate::alerts::Event::now_string()});
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).create(true).open(log) {
            let _ = writeln!(f, "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_what_the_containerd_shim_passes() {
        let inv = parse_args(&args(&[
            "--root",
            "/run/containerd/runc/default",
            "--log",
            "/b/log.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/b/init.pid",
            "id1",
        ]));
        assert_eq!(inv.verb.as_deref(), Some("create"));
        assert_eq!(inv.bundle.as_deref(), Some(Path::new("/b")));
        assert_eq!(inv.log.as_deref(), Some(Path::new("/b/log.json")));
        assert!(inv.log_json);
        let inv = parse_args(&args(&["--debug", "--root=/x", "run", "-b", "/c", "id"]));
        assert_eq!((inv.verb.as_deref(), inv.bundle.as_deref()), (Some("run"), Some(Path::new("/c"))));
        let inv = parse_args(&args(&["--root", "/r", "state", "id"]));
        assert_eq!(inv.verb.as_deref(), Some("state"));
        assert_eq!(inv.bundle, None);
    }

    #[test]
    fn adds_hooks_once_and_makes_the_root_read_only_on_request() {
        let spec = json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "mounts": [{"destination": "/run", "type": "tmpfs", "source": "tmpfs"}]});
        let mut s = RuntimeSettings::default();
        let bin = Path::new("/usr/bin/rootseal");
        let (out, changed) = modify_spec(&spec, &s, bin, Some(Path::new("/etc/rootseal/config.toml")), 10).unwrap();
        assert!(changed);
        assert_eq!(
            out["hooks"]["createRuntime"][0]["args"],
            json!(["rootseal", "--config", "/etc/rootseal/config.toml", "hook", "createRuntime"])
        );
        assert_eq!(out["hooks"]["poststop"][0]["path"], "/usr/bin/rootseal");
        assert_eq!(out["root"].get("readonly"), None, "not asked to make it read-only");
        let (_, again) = modify_spec(&out, &s, bin, Some(Path::new("/etc/rootseal/config.toml")), 10).unwrap();
        assert!(!again, "idempotent");
        s.make_readonly = true;
        let (ro, _) = modify_spec(&spec, &s, bin, None, 10).unwrap();
        assert_eq!(ro["root"]["readonly"], true);
        let dests: Vec<&str> =
            ro["mounts"].as_array().unwrap().iter().map(|m| m["destination"].as_str().unwrap()).collect();
        assert_eq!(dests, ["/run", "/tmp"], "/run was already mounted");
        s.hook_stage = "poststart".into();
        assert!(modify_spec(&spec, &s, bin, None, 10).is_err());
    }

    #[test]
    fn cri_o_annotations_a_pod_passed_through_containerd_are_removed() {
        let spec = json!({"ociVersion": "1.0.2", "root": {"path": "rootfs", "readonly": true}, "annotations": {
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri-o.ContainerType": "sandbox",
            "io.kubernetes.cri-o.ImageName": "registry.example/trusted:1",
            "team": "a",
        }});
        let s = RuntimeSettings::default();
        let (out, changed) = modify_spec(&spec, &s, Path::new("/usr/bin/rootseal"), None, 10).unwrap();
        assert!(changed);
        assert_eq!(out["annotations"], json!({"io.kubernetes.cri.container-type": "container", "team": "a"}));
        let (_, again) = modify_spec(&out, &s, Path::new("/usr/bin/rootseal"), None, 10).unwrap();
        assert!(!again);
    }

    #[test]
    fn every_entry_for_the_hook_binary_is_replaced_by_the_canonical_ones() {
        let t = tempfile::tempdir().unwrap();
        let bin = t.path().join("rootseal");
        std::fs::write(&bin, b"").unwrap();
        std::os::unix::fs::symlink(&bin, t.path().join("alias")).unwrap();
        let b = bin.display().to_string();
        let alias = t.path().join("alias").display().to_string();
        let spec = json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "hooks": {
            "createRuntime": [{"path": b, "args": ["rootseal", "--config", "/tmp/evil.toml", "hook", "createRuntime"]}],
            "poststart": [{"path": b, "args": ["rootseal", "hook", "poststart"]}, {"path": "/bin/true"}],
            "prestart": [{"path": alias, "args": ["rootseal", "hook", "prestart"], "env": ["ROOTSEAL_CONFIG=/tmp/evil.toml"]}],
            "poststop": [{"path": b, "args": ["rootseal", "hook", "poststop"]}]
        }});
        let s = RuntimeSettings::default();
        let (out, changed) = modify_spec(&spec, &s, &bin, Some(Path::new("/etc/rootseal/config.toml")), 10).unwrap();
        assert!(changed);
        let canonical = |st: &str| json!({"path": b, "args": ["rootseal", "--config", "/etc/rootseal/config.toml", "hook", st], "timeout": 15});
        assert_eq!(out["hooks"]["createRuntime"], json!([canonical("createRuntime")]));
        assert_eq!(out["hooks"]["poststop"], json!([canonical("poststop")]));
        assert_eq!(out["hooks"]["poststart"], json!([{"path": "/bin/true"}]), "other hooks stay");
        assert_eq!(out["hooks"].get("prestart"), None, "the aliased entry is gone");
        let (_, again) = modify_spec(&out, &s, &bin, Some(Path::new("/etc/rootseal/config.toml")), 10).unwrap();
        assert!(!again, "idempotent");
        let inv = parse_args(&[
            OsString::from("restore"),
            OsString::from("--bundle"),
            OsString::from("/b"),
            OsString::from("id"),
        ]);
        assert!(modifies(&inv) && inv.bundle.as_deref() == Some(Path::new("/b")));
    }
}
