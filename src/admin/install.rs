//! `rootseal install containerd` / `rootseal uninstall containerd`: a CRI runtime entry that runs
//! containers through rootseal-runtime, edited into containerd's config without disturbing the
//! rest of it (comments and layout kept, via toml_edit).
//!
//! Where the entry goes, by config `version`:
//! - 1 (no `version` key; containerd 1.x legacy): `plugins.cri.containerd.runtimes.NAME`
//! - 2 (containerd 1.6, 1.7): `plugins."io.containerd.grpc.v1.cri".containerd.runtimes.NAME`
//! - 3 (containerd 2.x): `plugins."io.containerd.cri.v1.runtime".containerd.runtimes.NAME`
//!
//! The entry is `runtime_type = "io.containerd.runc.v2"` with `options.BinaryName` pointing at
//! rootseal-runtime; `--set-default` also sets the CRI's `default_runtime_name`. Every change is
//! written atomically after a backup of the previous file; a change that leaves the text as it
//! was writes nothing.

use std::path::{Path, PathBuf};
use toml_edit::{value, DocumentMut, Item, Table};

pub const DEFAULT_CONFIG: &str = "/etc/containerd/config.toml";
pub const DEFAULT_BINARY: &str = "/usr/bin/rootseal-runtime";
pub const RUNC_V2: &str = "io.containerd.runc.v2";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("containerd config {}: {what}", path.display())]
    Config { path: PathBuf, what: String },
    #[error("containerd config {}: version {version} is not one rootseal knows (1, 2 or 3)", path.display())]
    Version { path: PathBuf, version: i64 },
    #[error("containerd refuses the new config {}: {detail}; nothing was changed", path.display())]
    Rejected { path: PathBuf, detail: String },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: crate::atomic::WriteError },
}

pub struct Request<'a> {
    pub config: &'a Path,
    pub name: &'a str,
    pub binary: &'a Path,
    pub set_default: bool,
}

/// The outcome of a (dry) run: the old and new text.
pub struct Change {
    pub old: String,
    pub new: String,
    pub version: i64,
}

impl Change {
    pub fn is_noop(&self) -> bool {
        self.old == self.new
    }

    pub fn diff(&self, path: &Path) -> String {
        similar::TextDiff::from_lines(&self.old, &self.new)
            .unified_diff()
            .context_radius(3)
            .header(&path.display().to_string(), &format!("{} (rootseal)", path.display()))
            .to_string()
    }
}

fn read(path: &Path) -> Result<String, InstallError> {
    match std::fs::read(path) {
        Ok(b) => {
            String::from_utf8(b).map_err(|_| InstallError::Config { path: path.into(), what: "is not UTF-8".into() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(InstallError::Config { path: path.into(), what: e.to_string() }),
    }
}

/// The config version for a new, empty file: 3 for containerd 2.x, else 2.
fn version_for_new_file() -> i64 {
    let out = std::process::Command::new("containerd").arg("--version").output();
    match out {
        Ok(o)
            if String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .any(|w| w.starts_with("v2.") || w.starts_with("2.")) =>
        {
            3
        }
        _ => 2,
    }
}

fn cri_path(version: i64) -> &'static [&'static str] {
    match version {
        1 => &["plugins", "cri", "containerd"],
        2 => &["plugins", "io.containerd.grpc.v1.cri", "containerd"],
        _ => &["plugins", "io.containerd.cri.v1.runtime", "containerd"],
    }
}

fn parse(path: &Path, text: &str) -> Result<(DocumentMut, i64), InstallError> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| InstallError::Config {
        path: path.into(),
        what: e.to_string().replace('\n', " "),
    })?;
    let version = match doc.get("version") {
        None if text.trim().is_empty() => {
            let v = version_for_new_file();
            doc.insert("version", value(v));
            v
        }
        None => 1,
        Some(v) => v
            .as_integer()
            .ok_or_else(|| InstallError::Config { path: path.into(), what: "version is not an integer".into() })?,
    };
    if !(1..=3).contains(&version) {
        return Err(InstallError::Version { path: path.into(), version });
    }
    Ok((doc, version))
}

/// Walks (creating implicit tables) to the CRI `containerd` table.
fn cri_table<'d>(doc: &'d mut DocumentMut, version: i64, path: &Path) -> Result<&'d mut Table, InstallError> {
    let mut t: &mut Table = doc.as_table_mut();
    for key in cri_path(version) {
        let item = t.entry(key).or_insert_with(|| {
            let mut nt = Table::new();
            nt.set_implicit(true);
            Item::Table(nt)
        });
        t = item
            .as_table_mut()
            .ok_or_else(|| InstallError::Config { path: path.into(), what: format!("{key} is not a table") })?;
    }
    Ok(t)
}

/// Computes the installed config (nothing is written).
pub fn plan_install(req: &Request<'_>) -> Result<Change, InstallError> {
    let old = read(req.config)?;
    let (mut doc, version) = parse(req.config, &old)?;
    let cri = cri_table(&mut doc, version, req.config)?;
    if req.set_default && cri.get("default_runtime_name").and_then(|v| v.as_str()) != Some(req.name) {
        cri.insert("default_runtime_name", value(req.name));
    }
    // Start from runc's options (SystemdCgroup and the like) so pods behave as under runc.
    let runc_options: Option<Table> = cri
        .get("runtimes")
        .and_then(|r| r.get("runc"))
        .and_then(|r| r.get("options"))
        .and_then(|o| o.as_table())
        .cloned();
    let runtimes = cri.entry("runtimes").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let runtimes = runtimes
        .as_table_mut()
        .ok_or_else(|| InstallError::Config { path: req.config.into(), what: "runtimes is not a table".into() })?;
    let fresh = !runtimes.contains_key(req.name);
    let entry = runtimes.entry(req.name).or_insert_with(|| Item::Table(Table::new()));
    let entry = entry.as_table_mut().ok_or_else(|| InstallError::Config {
        path: req.config.into(),
        what: format!("runtimes.{} is not a table", req.name),
    })?;
    if entry.get("runtime_type").and_then(|v| v.as_str()) != Some(RUNC_V2) {
        entry.insert("runtime_type", value(RUNC_V2));
    }
    let options = entry.entry("options").or_insert_with(|| {
        let mut t = runc_options.filter(|_| fresh).unwrap_or_default();
        t.set_implicit(false);
        Item::Table(t)
    });
    let options = options
        .as_table_mut()
        .ok_or_else(|| InstallError::Config { path: req.config.into(), what: "options is not a table".into() })?;
    let binary = req.binary.display().to_string();
    if options.get("BinaryName").and_then(|v| v.as_str()) != Some(binary.as_str()) {
        options.insert("BinaryName", value(binary));
    }
    // containerd's CRI plugin falls back to a built-in `runc` runtime only while no `runtimes`
    // table exists: once ours is there, the runtime that `default_runtime_name` names (runc
    // unless set) must have an entry too, or the plugin fails to load ("no corresponding
    // runtime configured in containerd.runtimes for containerd default_runtime_name = runc")
    // and the kubelet loses its runtime, while `containerd config dump` still succeeds.
    let cri = cri_table(&mut doc, version, req.config)?;
    let default = cri.get("default_runtime_name").and_then(|v| v.as_str()).unwrap_or("runc").to_string();
    let runtimes = cri.get_mut("runtimes").and_then(Item::as_table_mut).expect("inserted above");
    if !runtimes.contains_key(&default) {
        if default != "runc" {
            return Err(InstallError::Config {
                path: req.config.into(),
                what: format!(
                    "default_runtime_name = {default:?} names no runtimes.{default} entry, so containerd's CRI plugin cannot load; add that entry or set the default to runc"
                ),
            });
        }
        let mut runc = Table::new();
        runc.insert("runtime_type", value(RUNC_V2));
        runtimes.insert("runc", Item::Table(runc));
    }
    place_beside_cri(&mut doc, version);
    Ok(Change { old, new: doc.to_string(), version })
}

/// Puts the tables this install created (they have no position yet) right after the last table
/// of the CRI plugin, where a person reading the file looks for runtimes, instead of at the end
/// of the file after unrelated plugins.
fn place_beside_cri(doc: &mut DocumentMut, version: i64) {
    fn visit(t: &mut Table, f: &mut dyn FnMut(&mut Table)) {
        for (_, item) in t.iter_mut() {
            if let Some(sub) = item.as_table_mut() {
                f(sub);
                visit(sub, f);
            }
        }
    }
    let plugin = cri_path(version)[..2].to_vec();
    let mut under_cri: Option<usize> = None;
    {
        let mut t: Option<&mut Table> = Some(doc.as_table_mut());
        for key in &plugin {
            t = t.and_then(|t| t.get_mut(key)).and_then(Item::as_table_mut);
        }
        if let Some(t) = t {
            let mut last = t.position();
            visit(t, &mut |sub| last = last.max(sub.position()));
            under_cri = last;
        }
    }
    let Some(after) = under_cri else { return };
    let mut new = 0;
    visit(doc.as_table_mut(), &mut |t| {
        if t.position().is_none() && !t.is_implicit() {
            new += 1;
        }
    });
    let mut next = after + 1;
    visit(doc.as_table_mut(), &mut |t| match t.position() {
        Some(p) if p > after => t.set_position(p + new),
        None if !t.is_implicit() => {
            t.set_position(next);
            next += 1;
        }
        _ => {}
    });
}

/// Computes the uninstalled config: the runtime entry removed, and a default that pointed at it
/// set back to runc.
pub fn plan_uninstall(config: &Path, name: &str) -> Result<Change, InstallError> {
    let old = read(config)?;
    if old.trim().is_empty() {
        return Ok(Change { new: old.clone(), old, version: 0 });
    }
    let (mut doc, version) = parse(config, &old)?;
    let cri = cri_table(&mut doc, version, config)?;
    let mut changed = false;
    if cri.get("default_runtime_name").and_then(|v| v.as_str()) == Some(name) {
        cri.insert("default_runtime_name", value("runc"));
        changed = true;
    }
    if let Some(r) = cri.get_mut("runtimes").and_then(|r| r.as_table_mut()) {
        changed |= r.remove(name).is_some();
    }
    let new = if changed { doc.to_string() } else { old.clone() };
    Ok(Change { old, new, version })
}

/// True when `cmd --version` runs.
pub fn which(cmd: &str) -> bool {
    std::process::Command::new(cmd).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Asks containerd itself whether it accepts `text` (when containerd is installed).
fn validate_with_containerd(path: &Path, text: &str) -> Result<(), InstallError> {
    if std::process::Command::new("containerd").arg("--version").output().is_err() {
        return Ok(());
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".rootseal-validate-{}.toml", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| InstallError::Config { path: tmp.clone(), what: e.to_string() })?;
    let out = std::process::Command::new("containerd").arg("--config").arg(&tmp).args(["config", "dump"]).output();
    let _ = std::fs::remove_file(&tmp);
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(InstallError::Rejected {
            path: path.into(),
            detail: String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("config dump failed").to_string(),
        }),
        Err(e) => Err(InstallError::Rejected { path: path.into(), detail: e.to_string() }),
    }
}

/// How a throwaway containerd judged a config's CRI plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CriStatus {
    /// The CRI plugin loaded.
    Loaded,
    /// The config disables or does not load the CRI plugin on purpose (`disabled_plugins`).
    Skipped,
    /// The CRI plugin failed to load: containerd's reason.
    Failed(String),
}

/// Why a throwaway containerd could not say whether the CRI plugin loads ([`cri_status`]): a
/// warning, never a refusal.
#[derive(Debug, thiserror::Error)]
pub enum CriCheckError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    /// The daemon's log file (its path is not in the message).
    #[error("{error}")]
    Log { path: PathBuf, error: std::io::Error },
    #[error("cannot start containerd: {error}")]
    Spawn { error: std::io::Error },
    #[error("containerd exited ({status}) on this config: {log}")]
    Exited { status: std::process::ExitStatus, log: String },
    #[error("containerd did not answer `ctr plugins ls` within 20 s")]
    NoAnswer,
    #[error("containerd did not open its socket within 20 s")]
    NoSocket,
}

/// Starts a throwaway containerd on `text` (its own root, state and socket in a private temp
/// directory, so the node's containerd is untouched) and asks it whether the CRI plugin loaded:
/// `containerd config dump` accepts configs on which the CRI plugin then fails (a default
/// runtime without an entry), and that failure takes the kubelet's runtime away. Bounded: 20 s
/// for the socket, then the daemon is ended.
pub fn cri_status(text: &str) -> Result<CriStatus, CriCheckError> {
    use std::os::unix::fs::DirBuilderExt;
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("rootseal-cri-check-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|error| CriCheckError::Io { path: dir.clone(), error })?;
    let result = (|| {
        let cfg = dir.join("config.toml");
        std::fs::write(&cfg, text).map_err(|error| CriCheckError::Io { path: cfg.clone(), error })?;
        let sock = dir.join("c.sock");
        let log_path = dir.join("log");
        let log_err = |error| CriCheckError::Log { path: log_path.clone(), error };
        let log = std::fs::File::create(&log_path).map_err(log_err)?;
        let mut child = std::process::Command::new("containerd")
            .arg("--config")
            .arg(&cfg)
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--address")
            .arg(&sock)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(log_err)?)
            .stderr(log)
            .spawn()
            .map_err(|error| CriCheckError::Spawn { error })?;
        let started = std::time::Instant::now();
        let listed = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Err(CriCheckError::Exited { status, log: last_error(&log_path) });
            }
            if sock.exists() {
                let out =
                    std::process::Command::new("ctr").arg("--address").arg(&sock).args(["plugins", "ls"]).output();
                match out {
                    Ok(o) if o.status.success() => break Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
                    _ if started.elapsed() > std::time::Duration::from_secs(20) => break Err(CriCheckError::NoAnswer),
                    _ => {}
                }
            } else if started.elapsed() > std::time::Duration::from_secs(20) {
                break Err(CriCheckError::NoSocket);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM);
        let stop = std::time::Instant::now();
        while child.try_wait().ok().flatten().is_none() && stop.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        let listed = listed?;
        // TYPE ID PLATFORMS STATUS
        let status = listed
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some("cri") && l.contains("io.containerd.grpc.v1"))
            .and_then(|l| l.split_whitespace().last().map(str::to_string));
        Ok(match status.as_deref() {
            Some("ok") => CriStatus::Loaded,
            Some("error") => CriStatus::Failed(last_error(&log_path)),
            _ => CriStatus::Skipped,
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The CRI plugin's load error from a containerd log, or its last line.
fn last_error(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("failed to load plugin") && l.contains("cri"))
        .or_else(|| text.lines().rev().find(|l| l.contains("level=error") || l.contains("level=fatal")))
        .or_else(|| text.lines().last())
        .unwrap_or("(no log)");
    line.split(" error=").nth(1).unwrap_or(line).trim_matches('"').to_string()
}

/// Writes the change: backup of the old file first (when there was one), then the new text.
/// Returns the backup path.
pub fn apply(path: &Path, change: &Change) -> Result<Option<PathBuf>, InstallError> {
    if change.is_noop() {
        return Ok(None);
    }
    validate_with_containerd(path, &change.new)?;
    if which("containerd") && which("ctr") {
        match cri_status(&change.new) {
            Ok(CriStatus::Failed(why)) => {
                return Err(InstallError::Rejected {
                    path: path.into(),
                    detail: format!("containerd's CRI plugin fails to load on it ({why})"),
                })
            }
            Ok(_) => {}
            // Not being able to start a throwaway containerd (no privileges, a port the config
            // pins already taken) must not stop an install that config dump accepted.
            Err(why) => eprintln!("rootseal: warning: could not test the CRI plugin on the new config: {why}"),
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644);
    let backup = if path.exists() {
        let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace(':', "");
        // Never overwrite an earlier backup (two changes in one second): number them.
        let mut n = 0;
        loop {
            let suffix = if n == 0 { String::new() } else { format!(".{n}") };
            let b = PathBuf::from(format!("{}.rootseal-backup-{stamp}{suffix}", path.display()));
            match crate::atomic::write_new(&b, change.old.as_bytes(), mode) {
                Ok(()) => break Some(b),
                Err(crate::atomic::WriteError::Exists { .. }) if n < 1000 => n += 1,
                Err(source) => return Err(InstallError::Write { path: b, source }),
            }
        }
    } else {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| InstallError::Config { path: d.into(), what: e.to_string() })?;
        }
        None
    };
    crate::atomic::write(path, change.new.as_bytes(), mode)
        .map_err(|source| InstallError::Write { path: path.into(), source })?;
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(text: &str, set_default: bool) -> Change {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.toml");
        std::fs::write(&p, text).unwrap();
        plan_install(&Request { config: &p, name: "rootseal", binary: Path::new(DEFAULT_BINARY), set_default }).unwrap()
    }

    fn get<'a>(doc: &'a toml_edit::DocumentMut, path: &[&str]) -> Option<&'a Item> {
        let mut item = doc.as_item();
        for k in path {
            item = item.get(k)?;
        }
        Some(item)
    }

    #[test]
    fn version_2_keeps_comments_and_other_runtimes() {
        let text = "version = 2\n# our registry mirrors\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"runc\" # keep\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n    runtime_type = \"io.containerd.runc.v2\"\n";
        let c = install(text, false);
        assert_eq!(c.version, 2);
        assert!(c.new.contains("# our registry mirrors") && c.new.contains("# keep"), "{}", c.new);
        let doc: DocumentMut = c.new.parse().unwrap();
        let base = ["plugins", "io.containerd.grpc.v1.cri", "containerd"];
        let rt = |k: &[&str]| get(&doc, &[&base[..], k].concat()).and_then(|i| i.as_str().map(str::to_string));
        assert_eq!(rt(&["runtimes", "rootseal", "runtime_type"]).as_deref(), Some(RUNC_V2));
        assert_eq!(rt(&["runtimes", "rootseal", "options", "BinaryName"]).as_deref(), Some(DEFAULT_BINARY));
        assert_eq!(rt(&["default_runtime_name"]).as_deref(), Some("runc"));
        assert_eq!(rt(&["runtimes", "runc", "runtime_type"]).as_deref(), Some(RUNC_V2));
        // Idempotent.
        let again = install(&c.new, false);
        assert!(again.is_noop(), "{}", again.diff(Path::new("x")));
    }

    /// Debian 12's stock config: version 2, a CRI plugin table that names no runtimes.
    const DEBIAN_STOCK: &str = "version = 2\n\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    [plugins.\"io.containerd.grpc.v1.cri\".cni]\n      bin_dir = \"/usr/lib/cni\"\n      conf_dir = \"/etc/cni/net.d\"\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = \"/var/lib/containerd/opt\"\n";

    #[test]
    fn the_default_runtime_keeps_an_entry_and_ours_sits_with_the_cri_plugin() {
        let c = install(DEBIAN_STOCK, false);
        let doc: DocumentMut = c.new.parse().unwrap();
        let base = ["plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes"];
        assert_eq!(
            get(&doc, &[&base[..], &["runc", "runtime_type"]].concat()).and_then(|i| i.as_str()),
            Some(RUNC_V2),
            "the CRI default (runc) needs its entry once runtimes exist: {}",
            c.new
        );
        let ours = c.new.find("runtimes.rootseal]").unwrap();
        assert!(
            c.new.find(".cni]").unwrap() < ours && ours < c.new.find("io.containerd.internal.v1.opt").unwrap(),
            "{}",
            c.new
        );
        assert!(install(&c.new, false).is_noop());
        // A default naming a runtime without an entry is refused, untouched.
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.toml");
        let text =
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"kata\"\n";
        std::fs::write(&p, text).unwrap();
        let err = plan_install(&Request {
            config: &p,
            name: "rootseal",
            binary: Path::new(DEFAULT_BINARY),
            set_default: false,
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("default_runtime_name = \"kata\" names no runtimes.kata entry"), "{err}");
    }

    #[test]
    fn runc_options_are_carried_over_and_backups_never_collide() {
        let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n    SystemdCgroup = true\n";
        let c = install(text, false);
        let doc: DocumentMut = c.new.parse().unwrap();
        let o = ["plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "rootseal", "options"];
        assert_eq!(
            get(&doc, &[&o[..], &["SystemdCgroup"]].concat()).and_then(|i| i.as_bool()),
            Some(true),
            "{}",
            c.new
        );
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.toml");
        std::fs::write(&p, "version = 2\n").unwrap();
        let req = Request { config: &p, name: "rootseal", binary: Path::new(DEFAULT_BINARY), set_default: false };
        let b1 = apply(&p, &plan_install(&req).unwrap()).unwrap().unwrap();
        let b2 = apply(&p, &plan_uninstall(&p, "rootseal").unwrap()).unwrap().unwrap();
        assert_ne!(b1, b2);
        assert_eq!(std::fs::read_to_string(&b1).unwrap(), "version = 2\n", "the original survives");
    }

    #[test]
    fn versions_1_and_3_use_their_plugin_paths() {
        let c = install("[plugins.cri]\n  sandbox_image = \"pause:3.9\"\n", true);
        assert_eq!(c.version, 1);
        let doc: DocumentMut = c.new.parse().unwrap();
        assert_eq!(
            get(&doc, &["plugins", "cri", "containerd", "default_runtime_name"]).unwrap().as_str(),
            Some("rootseal")
        );
        assert!(get(&doc, &["plugins", "cri", "containerd", "runtimes", "rootseal", "options", "BinaryName"]).is_some());
        let c = install("version = 3\n", true);
        let doc: DocumentMut = c.new.parse().unwrap();
        let base = ["plugins", "io.containerd.cri.v1.runtime", "containerd"];
        assert_eq!(get(&doc, &[&base[..], &["default_runtime_name"]].concat()).unwrap().as_str(), Some("rootseal"));
        assert!(get(&doc, &[&base[..], &["runtimes", "rootseal", "runtime_type"]].concat()).is_some());
    }

    #[test]
    fn uninstall_removes_the_entry_and_restores_the_default() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.toml");
        let original = "version = 2\n# comment\n";
        std::fs::write(&p, original).unwrap();
        let req = Request { config: &p, name: "rootseal", binary: Path::new(DEFAULT_BINARY), set_default: true };
        let c = plan_install(&req).unwrap();
        let backup = apply(&p, &c).unwrap().expect("a backup of the previous file");
        assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);
        let u = plan_uninstall(&p, "rootseal").unwrap();
        assert!(!u.is_noop());
        assert!(!u.new.contains("rootseal-runtime") && u.new.contains("default_runtime_name = \"runc\""), "{}", u.new);
        assert!(u.new.contains("# comment"));
        apply(&p, &u).unwrap();
        assert!(plan_uninstall(&p, "rootseal").unwrap().is_noop());
    }

    #[test]
    fn a_broken_config_is_refused_untouched() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.toml");
        std::fs::write(&p, "version = 2\n[plugins\n").unwrap();
        let err = plan_install(&Request { config: &p, name: "rootseal", binary: Path::new("/x"), set_default: false })
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("config.toml"), "{err}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "version = 2\n[plugins\n");
        std::fs::write(&p, "version = 7\n").unwrap();
        assert!(matches!(
            plan_install(&Request { config: &p, name: "rootseal", binary: Path::new("/x"), set_default: false }),
            Err(InstallError::Version { .. })
        ));
    }
}
