//! `attest scan` and the attestation side of `trust import`: the CLI of src/attest/.

use super::*;
use crate::attest::{self, Subject};
use crate::scan::report;

/// The largest report read (the parser's own limit).
const MAX_REPORT_FILE: u64 = report::MAX_REPORT_BYTES as u64;

/// `rootseal attest scan REPORT --key KEY (--seal SEAL | --image IMAGE) [--out FILE] [--push IMAGE]`.
pub(super) fn scan(cfg: &Config, report_path: &Path, key: &Path, to: Target<'_>) -> Result<ExitCode, Error> {
    let sk = keys::load_signing_key(key)?;
    let bytes = read_input(report_path, MAX_REPORT_FILE, "scan report")?;
    let r = report::parse(&bytes).map_err(|e| Error::Usage(format!("{}: {e}", report_path.display())))?;
    let (s, subjects) = subjects(cfg, &to)?;
    let statement = attest::scan_statement(&bytes, &r, &subjects)
        .map_err(|e| Error::Usage(format!("{}: {e}", report_path.display())))?;
    let over = |sev| r.findings.iter().filter(|f| f.severity >= sev).count();
    let summary = format!(
        "attested {} scan ({} finding(s): {} critical, {} high or above) of seal {} ({})",
        r.format,
        r.findings.len(),
        over(report::Severity::Critical),
        over(report::Severity::High),
        s.digest,
        s.name
    );
    emit(cfg, &s, &attest::sign(&statement, &sk), &summary, &to, "scan attestation")
}

/// `rootseal attest vex VEX --key KEY (--seal SEAL | --image IMAGE) [--out FILE] [--push IMAGE]`:
/// an OpenVEX v0.2.0 document signed as an in-toto statement about the sealed tree, as
/// `trust import` and the scan gate take it (docs/scan.md, "VEX").
pub(super) fn vex(cfg: &Config, vex_path: &Path, key: &Path, to: Target<'_>) -> Result<ExitCode, Error> {
    let sk = keys::load_signing_key(key)?;
    let bytes = read_input(vex_path, crate::scan::vex::MAX_VEX_BYTES as u64, "VEX document")?;
    let (s, subjects) = subjects(cfg, &to)?;
    let (statement, doc) = attest::vex_statement(&bytes, &subjects).map_err(|e| {
        Error::Usage(format!("{}: {e}; fix the document (OpenVEX v0.2.0, e.g. vexctl create)", vex_path.display()))
    })?;
    let summary = format!(
        "attested VEX document {} ({} statement(s), version {}) about seal {} ({})",
        doc.id,
        doc.statements.len(),
        doc.version,
        s.digest,
        s.name
    );
    emit(cfg, &s, &attest::sign(&statement, &sk), &summary, &to, "VEX attestation")
}

/// What an attestation is about and where it goes.
pub(super) struct Target<'a> {
    pub seal: Option<&'a Path>,
    pub image: Option<&'a str>,
    pub out: Option<&'a Path>,
    pub push: Option<&'a str>,
}

fn read_input(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, Error> {
    crate::atomic::read_bounded(path, max).map_err(|e| match e {
        crate::atomic::ReadError::TooLarge { path, max } => Error::Usage(format!(
            "{what} {} is larger than {max} bytes; rootseal reads a {what} up to that size",
            path.display()
        )),
        e => Error::Read(e),
    })
}

/// The seal named by `--seal` or `--image`, and the subjects of an attestation about it: its
/// tree, and the image manifest it was sealed from when the seal records one.
fn subjects(cfg: &Config, to: &Target<'_>) -> Result<(Seal, Vec<Subject>), Error> {
    let (seal_bytes, what) = match (to.seal, to.image) {
        (Some(p), _) => (read_seal(p)?, format!("seal {}", p.display())),
        (None, Some(i)) => {
            let client = super::registry::client(cfg)?;
            (crate::registry::newest_seal(&client, &super::registry::reference(i)?)?, format!("the newest seal of {i}"))
        }
        (None, None) => return Err(Error::Usage("give --seal SEAL_FILE or --image IMAGE_REF".into())),
    };
    let s = Seal::parse(&seal_bytes).map_err(|e| Error::Rejected { what, why: Rejection::Malformed(e) })?;
    let mut subjects = vec![Subject { name: s.name.clone(), sha256: s.digest.hex() }];
    if let Some(d) = s.predicate.image.as_ref().and_then(|i| i.manifest_digest.as_deref()) {
        if let Some(hex) = d.strip_prefix("sha256:") {
            subjects.push(Subject {
                name: s.predicate.image.as_ref().map(|i| i.reference.clone()).unwrap_or_default(),
                sha256: hex.into(),
            });
        }
    }
    Ok((s, subjects))
}

/// Writes the envelope to `--out` (atomically) or stdout, says so on stderr, and pushes it
/// next to the image with `--push`.
fn emit(
    cfg: &Config,
    s: &Seal,
    envelope: &[u8],
    summary: &str,
    to: &Target<'_>,
    kind: &str,
) -> Result<ExitCode, Error> {
    // Every node refuses an envelope over this size (trust import, pull, sync, the hook's
    // reads): say so here, in CI, instead of writing one that no node takes.
    if envelope.len() as u64 > crate::seal::MAX_SEAL_BYTES {
        return Err(Error::Usage(format!(
            "the signed {kind} would be {} bytes (the input in base64, signed), over the {} byte envelope limit every node enforces; nothing written. Make the input smaller (Trivy: leave out --list-all-pkgs, or scan with fewer scanners) or split it",
            envelope.len(),
            crate::seal::MAX_SEAL_BYTES
        )));
    }
    match to.out {
        Some(out) => {
            crate::atomic::write(out, envelope, 0o644).map_err(Error::Write)?;
            eprintln!("{summary} into {}", out.display());
        }
        None => {
            std::io::stdout().lock().write_all(envelope).map_err(Error::Stdout)?;
            eprintln!("{summary}");
        }
    }
    if let Some(image) = to.push {
        let client = super::registry::client(cfg)?;
        let target = super::registry::reference(image)?;
        let made_from = s.predicate.image.as_ref().and_then(|i| i.manifest_digest.clone());
        let p = crate::registry::push_attestation(&client, &target, envelope, made_from, &s.digest.to_string())?;
        eprintln!(
            "pushed {kind} to {}@{} (subject {}, indexed by {})",
            target.name(),
            p.artifact,
            p.subject,
            p.indexed_by
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The statement's predicate type, without verifying anything: which kind of file this is.
pub(super) fn predicate_type(bytes: &[u8]) -> Option<String> {
    let (pae, header_len, _) = Seal::open_envelope(bytes).ok()?;
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "predicateType")]
        predicate_type: String,
    }
    serde_json::from_slice::<Head>(&pae[header_len..]).ok().map(|h| h.predicate_type)
}

/// `trust import FILE` of a scan attestation or VEX document: verified, then filed.
pub(super) fn import(cfg: &Config, trust: &Trust, path: &Path, bytes: &[u8]) -> Result<ExitCode, Error> {
    match attest::admit(&cfg.seal_dir, &cfg.cache_dir, trust, bytes, cfg.vex_max_age(), "imported") {
        Ok((line, _)) => {
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        // The store could not be written: an error of this node (exit 2), not a verdict.
        Err(attest::AttestError::Store(e)) => Err(Error::Usage(e.to_string())),
        Err(why) => Err(Error::AttestationRefused { what: format!("attestation {}", path.display()), why }),
    }
}
