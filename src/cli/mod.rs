//! The `rootseal` command line: the contract CI pipelines and operators script against.
//!
//! Exit codes: 0 success; 1 a verification verdict said no (untrusted, tampered, expired,
//! revoked, malformed seal); 2 usage, configuration or I/O errors.

mod attest;
mod commands;
mod registry;
use commands::*;

use crate::config::Config;
use crate::error::Error;
use crate::keys::{self, PublicKey};
use crate::manifest::{display_path, Manifest, TreeDigest};
use crate::seal::{self, Seal, SealRequest};
use crate::store::SealStore;
use crate::trust::{Trust, TrustStore};
use crate::verify::{self, Rejection};
use crate::walk;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

#[derive(Parser, Debug)]
#[command(name = "rootseal", version, about = "Seal container root filesystems and verify them at container start")]
pub struct Cli {
    /// Config file (else $ROOTSEAL_CONFIG, else /etc/rootseal/config.toml); give it before
    /// the command
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate an ed25519 key pair: PREFIX.key (PKCS#8 PEM, 0600) and PREFIX.pub (SPKI PEM)
    Keygen {
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
    /// Print the canonical digest of a root filesystem directory, an OCI image layout, an OCI
    /// archive or a docker-archive
    Digest {
        path: PathBuf,
        #[command(flatten)]
        select: ImageSelect,
        /// Print JSON with entry and byte counts
        #[arg(long)]
        json: bool,
        /// Print the canonical manifest instead of the digest
        #[arg(long, conflicts_with = "json")]
        manifest: bool,
    },
    /// Seal a root filesystem directory or an image (layout, OCI archive, docker-archive): a
    /// signed DSSE envelope over its digest and manifest
    Seal {
        path: PathBuf,
        #[command(flatten)]
        select: ImageSelect,
        /// Private key (PKCS#8 PEM)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Subject name (default: the image's reference, else "rootfs")
        #[arg(long)]
        name: Option<String>,
        /// Expiry: an RFC 3339 time or a duration from now such as 90d
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// Creation time to sign, RFC 3339 (default: $SOURCE_DATE_EPOCH when set, else now).
        /// Nodes refuse a seal older than one they accepted for the same name
        #[arg(long, value_name = "TIME")]
        created: Option<String>,
        /// Write the seal here (atomically) instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also store the seal in the registry next to this image (as `rootseal push` does)
        #[arg(long, value_name = "IMAGE_REF")]
        push: Option<String>,
    },
    /// Store a seal in a registry as an OCI artifact referring to the image it was made from
    Push {
        /// The image in the registry: host[:port]/repository[:tag][@digest]
        image: String,
        #[arg(long, value_name = "FILE")]
        seal: PathBuf,
    },
    /// Sign a scanner's report as an in-toto attestation of a sealed image (docs/scan.md)
    Attest {
        #[command(subcommand)]
        what: AttestCommand,
    },
    /// Fetch an image's seals from its registry, verify them and file them in the seal store
    /// (exit 0: a valid seal is stored, 1: none is valid, 2: registry or usage error)
    Pull {
        /// The image in the registry: host[:port]/repository[:tag][@digest]
        image: String,
    },
    /// Fetch the seals of every image on this node (containerd, podman) and of [registry]
    /// images, ahead of time (exit 0: all synced, 1: some image failed, 2: config or trust error)
    Sync {
        /// Print each image's outcome, not only the summary
        #[arg(long)]
        verbose: bool,
    },
    /// Verify a root filesystem directory against a seal
    Verify {
        path: PathBuf,
        #[arg(long, value_name = "FILE")]
        seal: PathBuf,
        #[command(flatten)]
        trust: TrustSource,
        #[arg(long)]
        json: bool,
    },
    /// Run as an OCI hook (reads the container state on stdin); STAGE is inferred from the
    /// state's status when omitted
    Hook {
        /// prestart, createRuntime, createContainer, startContainer, poststart or poststop
        stage: Option<String>,
    },
    /// Decide about a bundle offline, as the hook would at container start
    Check {
        bundle: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the OCI hooks.d JSON (podman, CRI-O) for this installation
    HooksJson {
        /// Path of the rootseal binary on the node
        #[arg(long, default_value = "/usr/bin/rootseal")]
        binary: PathBuf,
        /// Config file the hook should read (default: the hook's default lookup)
        #[arg(long = "hook-config", value_name = "FILE")]
        hook_config: Option<PathBuf>,
    },
    /// Add a containerd runtime that runs containers through rootseal-runtime
    Install {
        #[command(subcommand)]
        target: InstallTarget,
    },
    /// Remove what `install` added
    Uninstall {
        #[command(subcommand)]
        target: UninstallTarget,
    },
    /// Re-verify running containers against their seals (a daemon; --once scans once)
    Monitor {
        /// Scan every container once, print the result and exit: 0 clean, 1 drift, 2 a scan failed
        #[arg(long)]
        once: bool,
    },
    /// What the monitor is watching: each container's seal, last scan and drift
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Is this node protected? Checks config, trust store, seals, runtime integration, monitor,
    /// syslog and mode, with a fix for each failure; exits 1 when it is not protected
    Doctor {
        #[arg(long)]
        json: bool,
        /// containerd's config file to look for the runtime entry in
        #[arg(long, value_name = "PATH", default_value = crate::install::DEFAULT_CONFIG)]
        containerd_config: PathBuf,
        /// OCI hooks.d directories, lowest priority first
        #[arg(long = "hooks-dir", value_name = "DIR")]
        hooks_dirs: Vec<PathBuf>,
    },
    /// Print a deployable file: the monitor's systemd unit, the tmpfiles.d entry, the man page
    /// or bash completions
    Generate {
        #[arg(value_parser = ["monitor-unit", "sync-unit", "sync-timer", "tmpfiles", "man", "completions-bash"])]
        what: String,
        /// Path of the rootseal binary on the node
        #[arg(long, default_value = "/usr/bin/rootseal")]
        binary: String,
    },
    /// Manage the node's trust store
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// Rollback protection: the newest seal accepted per image name on this node
    Rollback {
        #[command(subcommand)]
        command: RollbackCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum RollbackCommand {
    /// List the watermarks: per image name, the newest seal a container start accepted
    List {
        #[arg(long)]
        json: bool,
    },
    /// Allow a deliberate rollback: set NAME's watermark to an older seal from the seal store
    Allow {
        name: String,
        /// The seal's tree digest (sha256:HEX), as `rootseal trust import` printed it
        #[arg(long, value_name = "sha256:HEX")]
        seal: String,
    },
    /// Forget NAME's watermark (the next accepted seal sets it again)
    Forget { name: String },
}

/// Which image of an archive to read.
#[derive(Args, Debug)]
pub struct ImageSelect {
    /// Platform of a multi-platform image, os/arch[/variant] (default: this host's)
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    /// The image to read when an archive holds several (its ref name or RepoTag)
    #[arg(long = "ref", value_name = "REFERENCE")]
    reference: Option<String>,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct TrustSource {
    /// Trust exactly this public key
    #[arg(long, value_name = "PUB")]
    key: Option<PathBuf>,
    /// Trust the keys and revocations of this trust directory
    #[arg(long, value_name = "DIR")]
    trust_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum InstallTarget {
    /// A CRI runtime entry in containerd's config (versions 1, 2 and 3)
    Containerd {
        /// containerd's config file
        #[arg(long, value_name = "PATH", default_value = crate::install::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Also make it containerd's default CRI runtime
        #[arg(long)]
        set_default: bool,
        /// Print the change as a diff and write nothing
        #[arg(long)]
        dry_run: bool,
        /// The runtime's name in containerd (RuntimeClass handler)
        #[arg(long, default_value = "rootseal")]
        name: String,
        /// Path of rootseal-runtime on the node
        #[arg(long, value_name = "PATH", default_value = crate::install::DEFAULT_BINARY)]
        runtime_binary: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum UninstallTarget {
    /// Remove the runtime entry (and a default pointing at it) from containerd's config
    Containerd {
        #[arg(long, value_name = "PATH", default_value = crate::install::DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, default_value = "rootseal")]
        name: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AttestCommand {
    /// Wrap a scan report (Trivy JSON or cosign-vuln, Grype JSON, in-toto vulns v0.2) in a
    /// signed attestation whose subject is the seal's tree
    Scan {
        report: PathBuf,
        /// Private key (PKCS#8 PEM) of a scan key
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The seal of the image that was scanned
        #[arg(long, value_name = "SEAL_FILE", required_unless_present = "image", conflicts_with = "image")]
        seal: Option<PathBuf>,
        /// The image that was scanned: its newest seal in the registry names the subject
        #[arg(long, value_name = "IMAGE_REF")]
        image: Option<String>,
        /// Write the attestation here (atomically) instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also store the attestation in the registry next to this image (docs/registry.md)
        #[arg(long, value_name = "IMAGE_REF")]
        push: Option<String>,
    },
    /// Sign an OpenVEX v0.2.0 document (e.g. from vexctl) as an attestation about a sealed
    /// image, so that its `not_affected` statements can excuse scan findings (docs/scan.md)
    Vex {
        vex: PathBuf,
        /// Private key (PKCS#8 PEM) of a key the nodes trust for VEX ([scan] keys)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The seal of the image the document is about
        #[arg(long, value_name = "SEAL_FILE", required_unless_present = "image", conflicts_with = "image")]
        seal: Option<PathBuf>,
        /// The image the document is about: its newest seal in the registry names the subject
        #[arg(long, value_name = "IMAGE_REF")]
        image: Option<String>,
        /// Write the signed document here (atomically) instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Also store it in the registry next to this image (docs/registry.md)
        #[arg(long, value_name = "IMAGE_REF")]
        push: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Trust a public key (SPKI PEM)
    Add {
        key: PathBuf,
        /// Name for the key (default: the file name without .pub)
        #[arg(long)]
        name: Option<String>,
    },
    /// List trusted keys
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop trusting a key
    Remove { name: String },
    /// Revoke a key id or a tree digest on this node
    Revoke {
        #[arg(long, value_name = "KEYID", required_unless_present = "digest", conflicts_with = "digest")]
        key: Option<String>,
        #[arg(long, value_name = "sha256:HEX")]
        digest: Option<String>,
    },
    /// Verify a seal (or a scan attestation, or an OpenVEX document) against the trusted keys
    /// and file it in the seal store
    Import { seal: PathBuf },
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    crate::trace::init(match cli.command {
        Command::Monitor { .. } => crate::trace::Program::Monitor,
        _ => crate::trace::Program::Cli,
    });
    match cli.command {
        Command::Keygen { out } => {
            let (k, p, public) = keys::keygen(&out)?;
            println!("wrote {} and {} (keyid {})", k.display(), p.display(), public.keyid);
            Ok(ExitCode::SUCCESS)
        }
        Command::Digest { path, select, json, manifest } => {
            let cfg = load_config(cli.config.as_deref())?;
            let (m, image) = tree_cli(&path, &select, &cfg)?;
            let mut out = std::io::stdout().lock();
            if manifest {
                out.write_all(&m.to_canonical()).map_err(Error::Stdout)?;
            } else if json {
                let mut v = json!({
                    "digest": m.digest().to_string(),
                    "entries": m.len(),
                    "fileBytes": m.file_bytes(),
                    "digestSpec": crate::manifest::HEADER,
                });
                if let Some(i) = image {
                    v["image"] = serde_json::to_value(i).expect("serialises");
                }
                writeln!(out, "{v}").map_err(Error::Stdout)?;
            } else {
                writeln!(out, "{}", m.digest()).map_err(Error::Stdout)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Seal { path, select, key, name, expires, created, out, push } => {
            let cfg = load_config(cli.config.as_deref())?;
            let sk = keys::load_signing_key(&key)?;
            let now = creation_time(created.as_deref())?;
            let expires = expires.map(|e| parse_expiry(&e, now)).transpose()?;
            let (m, image) = tree_cli(&path, &select, &cfg)?;
            let name = name
                .or_else(|| image.as_ref().map(|i| i.reference.clone()).filter(|r| !r.is_empty()))
                .unwrap_or_else(|| "rootfs".into());
            if name.is_empty() || name.len() > 1024 || name.chars().any(char::is_control) {
                return Err(Error::Usage("--name must be 1 to 1024 printable characters".into()));
            }
            let bytes = seal::create(&SealRequest { manifest: &m, name: &name, created: now, expires, image }, &sk);
            let to_stdout = out.is_none();
            match out {
                Some(out) => {
                    crate::atomic::write(&out, &bytes, 0o644).map_err(Error::Write)?;
                    eprintln!(
                        "sealed {} as {} ({} entries) into {}",
                        path.display(),
                        m.digest(),
                        m.len(),
                        out.display()
                    );
                }
                None => std::io::stdout().lock().write_all(&bytes).map_err(Error::Stdout)?,
            }
            match push {
                Some(image) => registry::push(&cfg, &image, &bytes, to_stdout),
                None => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Push { image, seal } => {
            let cfg = load_config(cli.config.as_deref())?;
            registry::push(&cfg, &image, &read_seal(&seal)?, false)
        }
        Command::Attest { what: AttestCommand::Scan { report, key, seal, image, out, push } } => {
            let cfg = load_config(cli.config.as_deref())?;
            let to = attest::Target {
                seal: seal.as_deref(),
                image: image.as_deref(),
                out: out.as_deref(),
                push: push.as_deref(),
            };
            attest::scan(&cfg, &report, &key, to)
        }
        Command::Attest { what: AttestCommand::Vex { vex, key, seal, image, out, push } } => {
            let cfg = load_config(cli.config.as_deref())?;
            let to = attest::Target {
                seal: seal.as_deref(),
                image: image.as_deref(),
                out: out.as_deref(),
                push: push.as_deref(),
            };
            attest::vex(&cfg, &vex, &key, to)
        }
        Command::Pull { image } => {
            let cfg = load_config(cli.config.as_deref())?;
            registry::pull(&cfg, &image)
        }
        Command::Sync { verbose } => {
            let cfg = load_config(cli.config.as_deref())?;
            registry::sync(&cfg, verbose)
        }
        Command::Verify { path, seal, trust, json } => {
            let cfg = load_config(cli.config.as_deref())?;
            let trust = match (&trust.key, &trust.trust_dir) {
                (Some(k), _) => Trust::single(PublicKey::load(k)?, k),
                (None, Some(d)) => TrustStore::new(d).load()?,
                (None, None) => unreachable!("clap requires one of --key, --trust-dir"),
            };
            let seal_bytes = read_seal(&seal)?;
            // Sizes first: a file whose size or type differs from the sealed entry is a
            // difference without reading it (walk::Options::expected). The seal is not checked
            // yet, but it is the very seal `verify` compares with and rejects if forged, so
            // trusting its sizes for what not to read changes no verdict.
            let parsed = Seal::parse(&seal_bytes).ok();
            let found = walk_cli(&path, &cfg, parsed.as_ref().map(|s| &s.manifest))?;
            let result = verify::verify(&seal_bytes, &found, None, &trust, SystemTime::now());
            report_verify(&path, &seal, &found, result, json)
        }
        Command::Hook { stage } => {
            let cfg = Config::load(cli.config.as_deref()).map(|(c, _)| c);
            Ok(crate::hook::run(stage.as_deref(), cfg))
        }
        Command::Check { bundle, json } => {
            let cfg = load_config(cli.config.as_deref())?;
            let bundle =
                std::path::absolute(&bundle).map_err(|e| Error::Usage(format!("{}: {e}", bundle.display())))?;
            // A bundle that is not there is a usage error, not a verdict about a container.
            match std::fs::metadata(bundle.join("config.json")) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(Error::Usage(format!("{}/config.json is not a regular file", bundle.display()))),
                Err(_) if !bundle.is_dir() => {
                    return Err(Error::Usage(format!(
                        "no bundle at {}: give the directory that holds config.json (containerd: /run/containerd/io.containerd.runtime.v2.task/NAMESPACE/ID; podman: podman inspect --format '{{{{.StaticDir}}}}' NAME)",
                        bundle.display()
                    )))
                }
                Err(e) => {
                    return Err(Error::Usage(format!(
                        "{} is not an OCI bundle: {}/config.json: {e}",
                        bundle.display(),
                        bundle.display()
                    )))
                }
            }
            let id = bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "bundle".into());
            let deadline = std::time::Instant::now() + cfg.hook.deadline();
            let d = crate::hook::decide(&cfg, &id, &bundle, deadline);
            if json {
                let ev = d.event(crate::alerts::Source::Check, None, None);
                println!("{}", serde_json::json!({"allowed": d.allowed(), "event": ev}));
            } else {
                println!("{}", d.summary());
                for v in d.violations.iter().skip(1) {
                    println!("  also: {} ({})", v.message, v.code);
                }
            }
            Ok(if d.allowed() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::HooksJson { binary, hook_config } => {
            print!("{}", crate::hook::hooks_json(&binary, hook_config.as_deref()));
            Ok(ExitCode::SUCCESS)
        }
        Command::Install {
            target: InstallTarget::Containerd { config, set_default, dry_run, name, runtime_binary },
        } => {
            let req = crate::install::Request { config: &config, name: &name, binary: &runtime_binary, set_default };
            let change = crate::install::plan_install(&req)?;
            report_install(
                &config,
                &change,
                dry_run,
                "installed",
                &format!("runtime {name:?} ({})", runtime_binary.display()),
            )
        }
        Command::Uninstall { target: UninstallTarget::Containerd { config, dry_run, name } } => {
            let change = crate::install::plan_uninstall(&config, &name)?;
            report_install(&config, &change, dry_run, "removed", &format!("runtime {name:?}"))
        }
        Command::Monitor { once } => {
            let (cfg, path) = Config::load(cli.config.as_deref())?;
            let code = crate::monitor::run(cfg, cli.config.clone().or(path), once)?;
            Ok(ExitCode::from(code))
        }
        Command::Status { json } => {
            let cfg = load_config(cli.config.as_deref())?;
            let st = crate::monitor::status(&cfg.state_dir)?;
            // A status file outlives its monitor: say when it no longer describes a running one.
            let stale = crate::monitor::stale(&st, std::time::SystemTime::now());
            if json {
                let mut v = serde_json::to_value(&st).expect("serialises");
                v["stale"] = stale.clone().map(serde_json::Value::from).unwrap_or(serde_json::Value::Null);
                println!("{v}");
            } else {
                if let Some(why) = &stale {
                    println!(
                        "STALE: {why}; what follows is from {} and may be wrong; restart the monitor (systemctl restart rootseal-monitor, or your supervisor)",
                        st.updated
                    );
                }
                println!("monitor pid {}, updated {}, interval {}", st.pid, st.updated, st.interval);
                if st.watch_limited {
                    println!("note: inotify watch limit reached; some containers are scanned on the interval only");
                }
                for c in &st.containers {
                    let res = match c.result {
                        crate::monitor::Outcome::Clean => "clean".to_string(),
                        crate::monitor::Outcome::Pending => "not scanned yet".to_string(),
                        crate::monitor::Outcome::Failed => {
                            format!("scan failed: {}", c.error.as_deref().unwrap_or("?"))
                        }
                        crate::monitor::Outcome::Drift => format!(
                            "DRIFT ({} path(s)): {}",
                            c.drift_count,
                            c.rootfs_replaced
                                .iter()
                                .chain(c.drift_paths.iter().take(3))
                                .cloned()
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    };
                    // Drift prevention, when on for it (docs/monitor.md#drift-prevention).
                    let prevent = match &c.prevention {
                        Some(p) if p.active => {
                            format!("\tprevent {} ({} denied, {} audited)", p.mode, p.denied, p.audited)
                        }
                        Some(p) => format!(
                            "\tprevent {} NOT ACTIVE: {}",
                            p.mode,
                            p.error.as_deref().unwrap_or("not attached yet")
                        ),
                        None => String::new(),
                    };
                    println!(
                        "{}\t{}\t{}\t{}\tlast scan {}\t{res}{prevent}",
                        crate::hook::short_id(&c.id),
                        c.pod.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                        c.image.as_deref().unwrap_or("-"),
                        c.seal_digest.as_deref().map(|d| &d[..d.len().min(19)]).unwrap_or("-"),
                        c.last_scan.as_deref().unwrap_or("never"),
                    );
                }
                if st.containers.is_empty() {
                    println!("no containers are being watched");
                }
            }
            Ok(if stale.is_some() { ExitCode::from(1) } else { ExitCode::SUCCESS })
        }
        Command::Doctor { json, containerd_config, hooks_dirs } => {
            let mut places = crate::doctor::Places { containerd_config, ..Default::default() };
            if !hooks_dirs.is_empty() {
                places.hooks_dirs = hooks_dirs;
            }
            let checks = crate::doctor::run(Config::load(cli.config.as_deref()), &places);
            let ok = crate::doctor::protected(&checks);
            if json {
                println!("{}", json!({"protected": ok, "checks": checks}));
            } else {
                for c in &checks {
                    let tag = match c.status {
                        crate::doctor::Status::Ok => "ok  ",
                        crate::doctor::Status::Warn => "warn",
                        crate::doctor::Status::Fail => "FAIL",
                    };
                    println!("{tag}  {}: {}", c.name, c.detail);
                    if let Some(f) = &c.fix {
                        println!("      fix: {f}");
                    }
                }
                println!("{}", if ok { "this node is protected" } else { "this node is NOT protected" });
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Generate { what, binary } => {
            match what.as_str() {
                "monitor-unit" => print!("{}", crate::packaging::monitor_unit(&binary)),
                "sync-unit" => print!("{}", crate::packaging::sync_unit(&binary)),
                "sync-timer" => print!("{}", crate::packaging::sync_timer()),
                "man" => {
                    use clap::CommandFactory;
                    use std::io::Write as _;
                    let page = crate::packaging::man_page(Cli::command()).map_err(Error::Stdout)?;
                    std::io::stdout().write_all(&page).map_err(Error::Stdout)?;
                }
                "completions-bash" => {
                    use clap::CommandFactory;
                    clap_complete::generate(
                        clap_complete::Shell::Bash,
                        &mut Cli::command(),
                        "rootseal",
                        &mut std::io::stdout(),
                    );
                }
                _ => print!("{}", crate::packaging::tmpfiles()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Trust { command } => {
            let cfg = load_config(cli.config.as_deref())?;
            trust_command(command, &cfg)
        }
        Command::Rollback { command } => {
            let cfg = load_config(cli.config.as_deref())?;
            rollback_command(command, &cfg)
        }
    }
}
