//! `push`, `pull` and `seal --push`: the CLI side of src/registry/.

use super::*;
use crate::registry::{self, Client, ClientSettings, Reference};
use crate::verify::admit;

/// The registry client the config describes.
pub(super) fn client(cfg: &Config) -> Result<Client, Error> {
    let auth = registry::auth::AuthFile::load(&cfg.registry.auth_file).map_err(registry::RegistryError::from)?;
    Ok(Client::new(ClientSettings {
        certs_dir: cfg.registry.certs_dir.clone(),
        plain_http: cfg.registry.plain_http.clone(),
        timeout: cfg.registry.timeout.get(),
        auth,
    }))
}

pub(super) fn reference(s: &str) -> Result<Reference, Error> {
    Reference::parse(s).map_err(|e| Error::Usage(e.to_string()))
}

/// `rootseal push IMAGE --seal FILE` (and `seal --push`).
/// The line goes to stderr when stdout carries the seal itself (`seal --push` without `--out`).
pub(super) fn push(cfg: &Config, image: &str, seal_bytes: &[u8], to_stderr: bool) -> Result<ExitCode, Error> {
    let image = reference(image)?;
    let client = client(cfg)?;
    let p = registry::push(&client, &image, seal_bytes)?;
    let line = format!(
        "pushed seal to {}@{} (subject {}, indexed by {}; {} requests)",
        image.name(),
        p.artifact,
        p.subject,
        p.indexed_by,
        client.requests()
    );
    if to_stderr {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Verifies a fetched seal against the node's trust store and its policy for `image`, and
/// files it; the line says what happened.
pub(super) fn admit_fetched(
    cfg: &Config,
    trust: &Trust,
    image: &Reference,
    bytes: &[u8],
) -> Result<admit::Admitted, admit::AdmitError> {
    let policy = cfg.node_policy();
    let name = image.to_string();
    let image_rule = crate::policy::rule(&cfg.rules, Some(&name));
    let now = SystemTime::now();
    admit::admit_fetched(&cfg.seal_dir, bytes, |s| {
        verify::judge::seal_policy(&policy, s, trust, image_rule, now).map(|(signers, _)| signers)
    })
}

/// `rootseal pull IMAGE`: exit 0 when a valid seal is stored or was already, 1 when none is
/// valid, 2 on a registry or usage error.
pub(super) fn pull(cfg: &Config, image: &str) -> Result<ExitCode, Error> {
    let image = reference(image)?;
    let trust = TrustStore::new(&cfg.trust_dir).load()?;
    let client = client(cfg)?;
    let pulled = registry::pull(&client, &image, None, &mut |kind, bytes| match kind {
        registry::Kind::Seal => {
            admit_fetched(cfg, &trust, &image, bytes).map(|a| a.line("stored")).map_err(|e| e.to_string())
        }
        registry::Kind::Scan => {
            crate::attest::admit(&cfg.seal_dir, &cfg.cache_dir, &trust, bytes, cfg.vex_max_age(), "stored")
                .map(|(line, _)| line)
                .map_err(|e| e.to_string())
        }
    })?;
    for (_, line) in &pulled.admitted {
        println!("{line}");
    }
    for (what, why) in &pulled.skipped {
        eprintln!("rootseal: skipped {what} of {image}: {why}");
    }
    let scans = pulled.admitted.len() - pulled.seals;
    println!(
        "pull {image}: {} seal(s) stored or present, {} skipped ({} subject(s), {} requests{})",
        pulled.seals,
        pulled.skipped.len(),
        pulled.subjects.len(),
        client.requests(),
        if scans > 0 { format!("; {scans} scan attestation(s) stored or present") } else { String::new() }
    );
    Ok(if pulled.seals == 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `rootseal sync`.
pub(super) fn sync(cfg: &Config, verbose: bool) -> Result<ExitCode, Error> {
    let client = client(cfg)?;
    let summary = crate::sync::run(cfg, &client, &crate::sync::sources(cfg), SystemTime::now())?;
    for (image, outcome) in &summary.results {
        match outcome {
            crate::sync::Outcome::Failed(why) => eprintln!("rootseal: sync {image}: {why}"),
            crate::sync::Outcome::Pulled { stored, skipped, .. } if verbose => {
                for l in stored {
                    println!("{image}: {l}");
                }
                for (what, why) in skipped {
                    println!("{image}: skipped {what}: {why}");
                }
            }
            crate::sync::Outcome::Unchanged if verbose => println!("{image}: unchanged"),
            _ => {}
        }
    }
    println!("{}", summary.line());
    // A store that could not be listed leaves its images unsynced: not a clean run either.
    Ok(if summary.failed > 0 || !summary.problems.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
