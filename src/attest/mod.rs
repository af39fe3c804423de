//! Signed scan attestations and VEX documents: DSSE envelopes holding an in-toto Statement v1,
//! like seals, signed by keys of the node's trust store.
//!
//! A scan attestation (`rootseal attest scan`) has the cosign vuln predicate
//! (`https://cosign.sigstore.dev/attestation/vuln/v1`): the scanner's report as
//! `scanner.result`, the scan time as `metadata.scanFinishedOn`. Its first subject is the sealed
//! tree (the seal's name and tree digest); a second, when known, the image manifest. A VEX
//! document is an OpenVEX v0.2.0 document as the predicate (`https://openvex.dev/ns/v0.2.0`).
//!
//! Opening one ([`open`]) verifies its signatures against the trust store, parses the report or
//! the VEX document (src/scan/), and reduces it to the record the scan gate judges
//! (src/verify/gate.rs); [`store`] files envelope and record.

pub mod store;

use crate::scan::report::{self, Report};
use crate::scan::vex;
use crate::seal::{Seal, SealError};
use crate::trust::Trust;
use crate::verify::gate::{ScanRecord, VexLine, VexRecord};
use crate::verify::Signer;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const VULN_PREDICATE: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
pub const OPENVEX_PREDICATE: &str = "https://openvex.dev/ns/v0.2.0";
/// A scan time this far ahead of the node's clock is refused (clock skew allowance).
pub const MAX_SKEW: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("not a valid attestation envelope: {0}")]
    Envelope(#[from] SealError),
    #[error("attestation statement: {0}")]
    Statement(String),
    #[error("attestation statement {0}")]
    StatementJson(crate::scan::JsonGateError),
    #[error("attestation predicate type {0:?} is neither a scan ({VULN_PREDICATE}) nor OpenVEX ({OPENVEX_PREDICATE})")]
    PredicateType(String),
    #[error("{0}")]
    Report(#[from] report::ReportError),
    #[error("{0}")]
    Vex(#[from] vex::VexError),
    #[error("the scan report has no scan time; rootseal needs one to judge its age (Trivy: CreatedAt, Grype: descriptor.timestamp)")]
    NoScanTime,
    #[error("the scan time {0} is in the future (this node's clock: {1}); fix the scanner's clock or this node's")]
    Future(String, String),
    #[error("the attestation is not signed by any trusted key{}", .0.as_ref().map(|k| format!(" (key {k} is trusted but its signature does not verify)")).unwrap_or_default())]
    Untrusted(Option<String>),
    #[error("the attestation is signed by revoked key {0}")]
    Revoked(String),
    #[error(transparent)]
    Store(#[from] store::AttestStoreError),
    #[error("the VEX document {id} was last updated {at}, over [scan] vex_max_age {max}; issue a current one")]
    VexExpired { id: String, at: String, max: String },
}

/// A subject of a scan attestation: a name and a sha256 digest (64 hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    pub sha256: String,
}

/// `sha256:<hex>` of an envelope: its name in the store.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", crate::manifest::hex(&sha2::Sha256::digest(bytes)))
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The in-toto statement of a scan attestation for `report` (parsed from `report_bytes`).
/// A Trivy `cosign-vuln` input keeps its own predicate; any other report becomes the
/// predicate's `scanner.result` as it is.
pub fn scan_statement(report_bytes: &[u8], report: &Report, subjects: &[Subject]) -> Result<Vec<u8>, AttestError> {
    let scanned = report.scanned_at.ok_or(AttestError::NoScanTime)?;
    let input: Value = serde_json::from_slice(report_bytes).map_err(|e| AttestError::Statement(e.to_string()))?;
    let predicate = if report.format == report::Format::TrivyCosignVuln {
        input
    } else {
        json!({
            "invocation": {"parameters": null, "uri": "", "event_id": "", "builder.id": "rootseal attest scan"},
            "scanner": {
                "uri": format!("pkg:generic/{}", report.scanner),
                "version": report.scanner_version.clone().unwrap_or_default(),
                "db": {"uri": "", "version": report.db_updated_at.map(rfc3339).unwrap_or_default()},
                "result": input,
            },
            "metadata": {"scanStartedOn": rfc3339(scanned), "scanFinishedOn": rfc3339(scanned)},
        })
    };
    let st = json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects.iter().map(|s| json!({"name": s.name, "digest": {"sha256": s.sha256}})).collect::<Vec<_>>(),
        "predicateType": VULN_PREDICATE,
        "predicate": predicate,
    });
    Ok(serde_json::to_vec(&st).expect("JSON values serialise"))
}

/// The in-toto statement of an OpenVEX document (`rootseal attest vex`): the document, checked
/// as `trust import` will check it (src/scan/vex.rs), as the predicate, about `subjects`.
pub fn vex_statement(vex_bytes: &[u8], subjects: &[Subject]) -> Result<(Vec<u8>, vex::Vex), AttestError> {
    let doc = vex::parse(vex_bytes)?;
    let predicate: Value = serde_json::from_slice(vex_bytes).map_err(|e| AttestError::Statement(e.to_string()))?;
    let st = json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects.iter().map(|s| json!({"name": s.name, "digest": {"sha256": s.sha256}})).collect::<Vec<_>>(),
        "predicateType": OPENVEX_PREDICATE,
        "predicate": predicate,
    });
    Ok((serde_json::to_vec(&st).expect("JSON values serialise"), doc))
}

/// Signs an in-toto statement into a DSSE envelope (the seal's envelope format).
pub fn sign(statement: &[u8], key: &SigningKey) -> Vec<u8> {
    let public = crate::keys::PublicKey::new(key.verifying_key());
    let sig = key.sign(&crate::seal::pae(crate::seal::PAYLOAD_TYPE, statement));
    crate::seal::envelope(statement, &[(public.keyid, sig.to_bytes().to_vec())])
}

/// A verified attestation, reduced to what the gate judges.
#[derive(Debug, Clone)]
pub enum Opened {
    Scan(ScanRecord),
    Vex(VexRecord),
}

/// Step 1 again, at every judgement of filed records: a record is believed from its HMAC
/// without its envelope being verified again, so its signers are checked against the trust
/// store as it is now. A key revoked or removed since the import no longer vouches for a scan
/// or a VEX document (a signer keeps the store's current name for its keyid); a record that no
/// current key vouches for is dropped. No trust store: nothing is vouched for.
pub fn retrust_scans(mut records: Vec<ScanRecord>, trust: Option<&Trust>) -> Vec<ScanRecord> {
    records.retain_mut(|r| current_signers(&mut r.signers, trust));
    records
}

/// [`retrust_scans`] for VEX records.
pub fn retrust_vex(mut records: Vec<VexRecord>, trust: Option<&Trust>) -> Vec<VexRecord> {
    records.retain_mut(|r| current_signers(&mut r.signers, trust));
    records
}

/// Keeps the signers still trusted and unrevoked; true when one is left.
fn current_signers(signers: &mut Vec<Signer>, trust: Option<&Trust>) -> bool {
    let Some(trust) = trust else { return false };
    *signers = signers
        .iter()
        .filter_map(|s| trust.by_keyid(&s.keyid))
        .filter(|k| !trust.revoked.key_revoked(&k.key.keyid))
        .map(|k| Signer { name: k.name.clone(), keyid: k.key.keyid.clone() })
        .collect();
    !signers.is_empty()
}

#[derive(serde::Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<StatementSubject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Value,
}

#[derive(serde::Deserialize)]
struct StatementSubject {
    #[allow(dead_code)]
    name: String,
    digest: std::collections::BTreeMap<String, String>,
}

/// Verifies `bytes` (an envelope) against `trust` and reduces it: signatures first, then the
/// statement and its report or VEX document. `vex_max_age` refuses an old VEX document.
pub fn open(bytes: &[u8], trust: &Trust, now: SystemTime, vex_max_age: Duration) -> Result<Opened, AttestError> {
    let (pae, header_len, signatures) = Seal::open_envelope(bytes)?;
    // 1. Signed by a trusted, unrevoked key.
    let sigs = crate::verify::signatures(&pae, &signatures, trust);
    if sigs.signers.is_empty() {
        return Err(match sigs.revoked {
            Some((name, _)) => AttestError::Revoked(name),
            None => AttestError::Untrusted(sigs.bad),
        });
    }
    let signers: Vec<Signer> = sigs.signers;
    let attestation = digest_of(bytes);
    // 2. The statement: duplicate keys and nesting past the report parsers' depth refused in
    // their words (src/scan/mod.rs), then read.
    let statement = &pae[header_len..];
    crate::scan::check_json(statement, usize::MAX).map_err(AttestError::StatementJson)?;
    let st: Statement = serde_json::from_slice(statement).map_err(|e| AttestError::Statement(e.to_string()))?;
    if st.type_ != STATEMENT_TYPE {
        return Err(AttestError::Statement(format!("_type is {:?}, expected {STATEMENT_TYPE:?}", st.type_)));
    }
    let digests: Vec<String> = st
        .subject
        .iter()
        .map(|s| {
            s.digest
                .get("sha256")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .map(|h| format!("sha256:{h}"))
                .ok_or_else(|| AttestError::Statement("a subject has no sha256 digest of 64 lowercase hex".into()))
        })
        .collect::<Result<_, _>>()?;
    match st.predicate_type.as_str() {
        VULN_PREDICATE | "cosign.sigstore.dev/attestation/vuln/v1" => {
            let Some(subject) = digests.first().cloned() else {
                return Err(AttestError::Statement("it has no subject".into()));
            };
            // 3. The report: the predicate's scanner.result (any format rootseal reads), with
            // the scan time from the predicate when the report has none.
            let predicate = st.predicate;
            let result = predicate
                .pointer("/scanner/result")
                .ok_or_else(|| AttestError::Statement("the vuln predicate has no scanner.result".into()))?;
            let r = report::parse(&serde_json::to_vec(result).expect("JSON values serialise"))?;
            let finished = predicate
                .pointer("/metadata/scanFinishedOn")
                .and_then(Value::as_str)
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
            let scanned = r.scanned_at.or(finished).ok_or(AttestError::NoScanTime)?;
            if scanned > now + MAX_SKEW {
                return Err(AttestError::Future(rfc3339(scanned), rfc3339(now)));
            }
            Ok(Opened::Scan(ScanRecord {
                attestation,
                subject,
                image: digests.get(1).cloned(),
                scanned_at: rfc3339(scanned),
                db_updated_at: r.db_updated_at.map(rfc3339),
                signers,
                scanner: r.scanner,
                format: r.format.as_str().into(),
                findings: r.findings,
            }))
        }
        OPENVEX_PREDICATE | "https://openvex.dev/ns" => {
            let v = vex::parse(&serde_json::to_vec(&st.predicate).expect("JSON values serialise"))?;
            let updated = v.updated_at();
            if v.age(now) > vex_max_age {
                return Err(AttestError::VexExpired {
                    id: v.id,
                    at: rfc3339(updated),
                    max: humantime::format_duration(vex_max_age).to_string(),
                });
            }
            // One line per product: a product's subcomponents stay with it.
            let statements = v
                .statements
                .iter()
                .flat_map(|s| {
                    let ids: Vec<String> =
                        std::iter::once(s.vulnerability.clone()).chain(s.aliases.iter().cloned()).collect();
                    let at = rfc3339(s.known_at(v.timestamp));
                    let not_affected = s.status == vex::VexStatus::NotAffected;
                    s.products.iter().map(move |p| VexLine {
                        ids: ids.clone(),
                        products: p.ids.clone(),
                        subcomponents: p.subcomponents.clone(),
                        not_affected,
                        at: at.clone(),
                    })
                })
                .collect();
            Ok(Opened::Vex(VexRecord { attestation, id: v.id, signers, updated_at: rfc3339(updated), statements }))
        }
        other => Err(AttestError::PredicateType(other.into())),
    }
}

/// Admits a fetched (or imported) attestation: verified, then filed in the store under
/// `seal_dir`. Returns the line that says what it was (`VERB scan attestation …`), and whether
/// it is new. `trust import`, `pull` and `sync` all come here.
pub fn admit(
    seal_dir: &std::path::Path,
    cache_dir: &std::path::Path,
    trust: &Trust,
    bytes: &[u8],
    vex_max_age: Duration,
    verb: &str,
) -> Result<(String, bool), AttestError> {
    let opened = open(bytes, trust, SystemTime::now(), vex_max_age)?;
    let store = store::AttestStore::new(seal_dir, cache_dir);
    let known = store.contains(&opened);
    let path = store.put(bytes, &opened)?;
    let signers = |s: &[Signer]| s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    let line = match &opened {
        Opened::Scan(r) => format!(
            "{verb} scan attestation {} of seal {} ({} finding(s), scanned {}) signed by {} into {}",
            r.attestation,
            r.subject,
            r.findings.len(),
            r.scanned_at,
            signers(&r.signers),
            path.display(),
        ),
        Opened::Vex(v) => format!(
            "{verb} VEX document {} ({} statement(s), updated {}) signed by {} into {}",
            v.id,
            v.statements.len(),
            v.updated_at,
            signers(&v.signers),
            path.display()
        ),
    };
    Ok((if known { format!("{line} (already there)") } else { line }, !known))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
