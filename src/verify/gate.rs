//! The scan gate, pure: is there a fresh, signed scan of this seal's tree that passes the
//! node's severity policy? Facts in (the policy, the scan and VEX records filed for the seal's
//! subject, `now`), a verdict out; nothing is read here. The hook calls it after integrity
//! passes; the monitor calls it again while the container runs (a scan that expires, a newer
//! scan that reports findings).
//!
//! 1. Only scans signed by a key the policy allows (`keys`; empty: any trusted key) count.
//! 2. The newest of them (by its signed scan time) is judged.
//! 3. It must be at most `max_age` old, and so must the vulnerability database it used, when
//!    the report says when that was built.
//! 4. Its findings at or above `max_severity` block, except those `ignore`d (until their
//!    `until`) and those a signed OpenVEX statement declares `not_affected` for this image.

use crate::scan::report::{Finding, Severity};
use crate::span::Span;
use crate::verify::code::Code;
use crate::verify::judge::Refusal;
use crate::verify::Signer;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// `[scan]` in the config, and `scan` in a `[[rules]]` entry (which replaces it for the
/// rule's images).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanPolicy {
    /// Without a passing scan, the container is refused (audit mode: alerted).
    pub require: bool,
    /// Findings at or above this severity block.
    pub max_severity: Severity,
    /// The oldest scan (by its signed scan time) that counts; also the oldest vulnerability
    /// database, where the report says when it was built.
    pub max_age: Span,
    /// Findings that do not count, until their `until` (RFC 3339; none: for ever).
    pub ignore: Vec<Ignore>,
    /// Trusted keys (by name) whose scans and VEX documents count; empty: any trusted key.
    /// Scanning is a role apart from sealing: name the scanner's keys here.
    pub keys: Vec<String>,
    /// The oldest OpenVEX document (from its `last_updated`, else `timestamp`) that counts: a
    /// `not_affected` is a judgement of its day.
    pub vex_max_age: Span,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        ScanPolicy {
            require: false,
            max_severity: Severity::Critical,
            max_age: Span::lit("7d"),
            ignore: Vec::new(),
            keys: Vec::new(),
            vex_max_age: Span::lit("90d"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignore {
    pub id: String,
    #[serde(default)]
    pub until: Option<String>,
}

impl Ignore {
    fn applies(&self, id: &str, now: SystemTime) -> bool {
        self.id.eq_ignore_ascii_case(id)
            && match &self.until {
                None => true,
                Some(u) => humantime::parse_rfc3339_weak(u).is_ok_and(|t| now < t),
            }
    }
}

impl ScanPolicy {
    /// What is wrong with it, for the config loader.
    pub fn problem(&self) -> Option<String> {
        if self.max_age.get() < Duration::from_secs(60) {
            return Some(format!("max_age {:?} is under a minute", self.max_age.as_str()));
        }
        if self.vex_max_age.get() < Duration::from_secs(60) {
            return Some(format!("vex_max_age {:?} is under a minute", self.vex_max_age.as_str()));
        }
        self.ignore.iter().find_map(|i| match &i.until {
            Some(u) if humantime::parse_rfc3339_weak(u).is_err() => {
                Some(format!("ignore {:?}: until {u:?} is not an RFC 3339 time such as 2027-01-31T00:00:00Z", i.id))
            }
            _ if i.id.is_empty() => Some("ignore: an entry has an empty id".into()),
            _ => None,
        })
    }
}

/// A verified scan attestation, as filed at import (src/attest/store.rs): what the gate needs,
/// without the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// The attestation envelope's digest (`sha256:…`).
    pub attestation: String,
    /// The tree digest it covers (`sha256:…`).
    pub subject: String,
    /// The image manifest digest it also names, when it does.
    #[serde(default)]
    pub image: Option<String>,
    /// The signed scan time (RFC 3339).
    pub scanned_at: String,
    #[serde(default)]
    pub db_updated_at: Option<String>,
    pub signers: Vec<Signer>,
    pub scanner: String,
    pub format: String,
    pub findings: Vec<Finding>,
}

/// A verified OpenVEX document, as filed: its statements, each reduced to what the gate
/// matches on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VexRecord {
    pub attestation: String,
    pub id: String,
    pub signers: Vec<Signer>,
    /// When the document was last issued or updated (RFC 3339).
    pub updated_at: String,
    pub statements: Vec<VexLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VexLine {
    /// The vulnerability's name and aliases.
    pub ids: Vec<String>,
    /// Every name of the product the statement is about.
    pub products: Vec<String>,
    /// The product's subcomponents the statement is about (purls or names); empty: the product
    /// as a whole. A finding is excused only in a package named here.
    #[serde(default)]
    pub subcomponents: Vec<String>,
    pub not_affected: bool,
    /// When the statement was known (RFC 3339): the latest statement for a finding wins.
    pub at: String,
}

/// What the image is, for VEX product matching.
#[derive(Debug, Clone, Default)]
pub struct Product<'a> {
    /// The seal's tree digest (`sha256:…`).
    pub tree: &'a str,
    /// The seal's subject name (`registry.example/app:1.4`).
    pub name: &'a str,
    /// The image manifest digest, when known.
    pub image: Option<&'a str>,
}

impl Product<'_> {
    /// A VEX product id names this image: the tree or image digest, the name with or without
    /// its tag, or a purl `pkg:oci/…@sha256:…` carrying one of the digests.
    pub fn matches(&self, id: &str) -> bool {
        let repo = self.name.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or(self.name, |(r, _)| r);
        let digests = [Some(self.tree), self.image];
        id == self.name
            || id == repo
            || digests.iter().flatten().any(|d| *d == id)
            || (id.starts_with("pkg:oci/")
                && digests
                    .iter()
                    .flatten()
                    .any(|d| id.contains(&format!("@{}", d.replace(':', "%3A"))) || id.contains(&format!("@{d}"))))
    }
}

/// A VEX subcomponent (a purl `pkg:TYPE/[NS/]NAME[@VERSION]`, or a bare name) names the
/// package of a finding whose subject is `NAME@VERSION`: same name, and same version when the
/// purl has one.
pub fn names_package(component: &str, finding_subject: &str) -> bool {
    let (pkg, version) = finding_subject.split_once('@').unwrap_or((finding_subject, ""));
    if pkg.is_empty() {
        return false;
    }
    let c = component.split(['?', '#']).next().unwrap_or(component);
    let (path, cv) = match c.rsplit_once('@') {
        Some((p, v)) if !p.is_empty() => (p, Some(v.replace("%3A", ":").replace("%3a", ":"))),
        _ => (c, None),
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    name == pkg && cv.is_none_or(|v| v == version)
}

/// The scan that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    pub attestation: String,
    pub scanned_at: String,
    /// Findings at or above the threshold that VEX or `ignore` excused.
    pub excused: usize,
}

fn time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

fn age(t: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or_default()
}

fn days(d: Duration) -> String {
    let h = d.as_secs() / 3600;
    if h >= 48 {
        format!("{}d", h / 24)
    } else {
        format!("{h}h")
    }
}

/// Steps 1–4 for the seal `seal` (its short digest, for messages) and `product`.
pub fn judge(
    policy: &ScanPolicy,
    seal: &str,
    product: &Product<'_>,
    records: &[ScanRecord],
    vex: &[VexRecord],
    now: SystemTime,
) -> Result<Passed, Refusal> {
    let allowed = |signers: &[Signer]| policy.keys.is_empty() || signers.iter().any(|s| policy.keys.contains(&s.name));
    // 1. Signed by a scan key.
    let counted: Vec<&ScanRecord> = records.iter().filter(|r| allowed(&r.signers)).collect();
    let Some(newest) = counted.iter().filter_map(|r| Some((time(&r.scanned_at)?, *r))).max_by_key(|(t, _)| *t) else {
        let message = match records.first() {
            Some(r) => format!(
                "scan of seal {seal} is signed by {} but [scan] keys allows only {}; sign scans with a scan key",
                r.signers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
                policy.keys.join(", ")
            ),
            None => format!(
                "no signed scan of seal {seal}; scan the image and attest it (`rootseal attest scan REPORT --seal SEAL --key KEY`), then import or push it"
            ),
        };
        return Err(Refusal { code: Code::ScanMissing, message });
    };
    let (at, r) = newest;
    // 3. Fresh, and so is its database.
    let max = policy.max_age.get();
    if age(at, now) > max {
        return Err(Refusal {
            code: Code::ScanStale,
            message: format!(
                "newest scan of seal {seal} is {} old (scanned {}), over [scan] max_age {}; rescan the image and attest it",
                days(age(at, now)),
                r.scanned_at,
                policy.max_age
            ),
        });
    }
    if let Some(db) = r.db_updated_at.as_deref().and_then(time).filter(|db| age(*db, now) > max) {
        return Err(Refusal {
            code: Code::ScanStale,
            message: format!(
                "newest scan of seal {seal} used a vulnerability database {} old (built {}), over [scan] max_age {}; update the scanner's database and rescan",
                days(age(db, now)),
                humantime::format_rfc3339_seconds(db),
                policy.max_age
            ),
        });
    }
    // 4. Findings over the threshold, less those excused. The image manifest digest the scan
    // names (its second subject, which `attest scan` takes from the seal) names the image too
    // when the caller knows none: the hook sees a tree, while vexctl names an image by its
    // manifest digest (`pkg:oci/app@sha256%3A…`).
    let product = &Product { tree: product.tree, name: product.name, image: product.image.or(r.image.as_deref()) };
    let over: Vec<&Finding> = r.findings.iter().filter(|f| f.severity >= policy.max_severity).collect();
    // VEX documents by a scan key, young enough; the latest statement about a finding in this
    // image decides (OpenVEX: a later statement supersedes an earlier one).
    let vex_max = policy.vex_max_age.get();
    let lines: Vec<&VexLine> = vex
        .iter()
        .filter(|v| allowed(&v.signers) && time(&v.updated_at).is_some_and(|t| age(t, now) <= vex_max))
        .flat_map(|v| v.statements.iter())
        .collect();
    let excused = |f: &Finding| {
        policy.ignore.iter().any(|i| i.applies(&f.id, now))
            || lines
                .iter()
                .filter(|l| {
                    l.ids.iter().any(|i| i.eq_ignore_ascii_case(&f.id))
                        && l.products.iter().any(|p| product.matches(p))
                        && (l.subcomponents.is_empty() || l.subcomponents.iter().any(|c| names_package(c, &f.subject)))
                })
                .max_by_key(|l| time(&l.at))
                .is_some_and(|l| l.not_affected)
    };
    let blocking: Vec<&&Finding> = over.iter().filter(|f| !excused(f)).collect();
    if blocking.is_empty() {
        return Ok(Passed {
            attestation: r.attestation.clone(),
            scanned_at: r.scanned_at.clone(),
            excused: over.len(),
        });
    }
    let mut sorted = blocking.clone();
    sorted.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.id.cmp(&b.id)));
    let shown: Vec<String> = sorted
        .iter()
        .take(5)
        .map(|f| {
            if f.subject.is_empty() {
                format!("{} ({})", f.id, f.severity)
            } else {
                format!("{} ({}, {})", f.id, f.severity, f.subject)
            }
        })
        .collect();
    Err(Refusal {
        code: Code::ScanFindings,
        message: format!(
            "scan of seal {seal} ({}) has {} finding(s) at or above {}: {}{}; fix the image, or excuse them with a signed OpenVEX statement or [scan] ignore",
            r.scanned_at,
            blocking.len(),
            policy.max_severity,
            shown.join(", "),
            if blocking.len() > 5 { format!(" and {} more", blocking.len() - 5) } else { String::new() }
        ),
    })
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
