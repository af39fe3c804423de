//! The four report formats rootseal reads ([`super`] has the table): each one's schema, as
//! borrowed structs naming only the fields used, and how it becomes a [`Report`].

use super::{typed, Finding, FindingKind, Format, Report, ReportError, Severity};
use crate::scan::{parse_time, Zone};
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

fn time(format: Format, field: &'static str, value: &str, zone: Zone) -> Result<Option<SystemTime>, ReportError> {
    parse_time(value, zone).map_err(|why| ReportError::Time {
        format,
        field,
        value: value.chars().take(64).collect(),
        why,
    })
}

fn nonempty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

fn severity(format: Format, id: &str, value: &str) -> Result<Severity, ReportError> {
    Severity::parse(value).ok_or_else(|| ReportError::Severity {
        format,
        id: id.to_string(),
        value: value.chars().take(64).collect(),
    })
}

fn check_id(format: Format, id: &str, place: impl FnOnce() -> String) -> Result<(), ReportError> {
    if id.is_empty() {
        Err(ReportError::EmptyId { format, place: place() })
    } else {
        Ok(())
    }
}

/// The scanner's name from its `uri`: the last path segment before any version, qualifiers
/// or fragment (`pkg:github/aquasecurity/trivy@0.69.1` and `https://github.com/anchore/grype`
/// give `trivy` and `grype`).
fn scanner_name(uri: &str) -> Option<String> {
    let path = uri.split(['@', '?', '#']).next().unwrap_or_default().trim_end_matches('/');
    let name = path.rsplit(['/', ':']).next().unwrap_or_default();
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// `metadata.scanStartedOn` and `scanFinishedOn`, checked to be in order.
fn scan_times(
    format: Format,
    m: &ScanMetadata,
    zone: Zone,
) -> Result<(Option<SystemTime>, Option<SystemTime>), ReportError> {
    let started = time(format, "metadata.scanStartedOn", &m.started, zone)?;
    let finished = time(format, "metadata.scanFinishedOn", &m.finished, zone)?;
    if let (Some(s), Some(f)) = (started, finished) {
        if f < s {
            return Err(ReportError::ScanTimes {
                format,
                started: m.started.to_string(),
                finished: m.finished.to_string(),
            });
        }
    }
    Ok((started, finished))
}

#[derive(Deserialize)]
struct ScanMetadata<'a> {
    #[serde(borrow, rename = "scanStartedOn")]
    started: Cow<'a, str>,
    #[serde(borrow, rename = "scanFinishedOn")]
    finished: Cow<'a, str>,
}

// --- Trivy JSON, alone or inside cosign-vuln ---------------------------------------------------

#[derive(Deserialize)]
struct TrivyReport<'a> {
    #[serde(borrow, rename = "CreatedAt")]
    created_at: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "ArtifactName")]
    artifact_name: Option<Cow<'a, str>>,
    /// Trivy 0.69 and later.
    #[serde(borrow, rename = "Trivy")]
    trivy: Option<TrivyInfo<'a>>,
    /// Absent when nothing was found (`omitempty`): testdata/trivy-0.59.1-fs-clean.json.
    #[serde(borrow, rename = "Results")]
    results: Option<Vec<TrivyResult<'a>>>,
}

#[derive(Deserialize)]
struct TrivyInfo<'a> {
    #[serde(borrow, rename = "Version")]
    version: Option<Cow<'a, str>>,
    /// Client/server mode only: the server's version and databases.
    #[serde(borrow, rename = "Server")]
    server: Option<TrivyServer<'a>>,
}

#[derive(Deserialize)]
struct TrivyServer<'a> {
    #[serde(borrow, rename = "VulnerabilityDB")]
    vulnerability_db: Option<TrivyDb<'a>>,
}

/// trivy-db `pkg/metadata.Metadata`.
#[derive(Deserialize)]
struct TrivyDb<'a> {
    #[serde(borrow, rename = "UpdatedAt")]
    updated_at: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TrivyResult<'a> {
    #[serde(borrow, rename = "Target")]
    target: Cow<'a, str>,
    #[serde(borrow, rename = "Vulnerabilities")]
    vulnerabilities: Option<Vec<TrivyVuln<'a>>>,
    #[serde(borrow, rename = "Secrets")]
    secrets: Option<Vec<TrivySecret<'a>>>,
}

#[derive(Deserialize)]
struct TrivyVuln<'a> {
    #[serde(borrow, rename = "VulnerabilityID")]
    id: Cow<'a, str>,
    #[serde(borrow, rename = "PkgName")]
    pkg: Cow<'a, str>,
    #[serde(borrow, rename = "InstalledVersion")]
    version: Cow<'a, str>,
    #[serde(borrow, rename = "Severity")]
    severity: Cow<'a, str>,
}

/// fanal `types.SecretFinding`.
#[derive(Deserialize)]
struct TrivySecret<'a> {
    #[serde(borrow, rename = "RuleID")]
    rule: Cow<'a, str>,
    #[serde(borrow, rename = "Severity")]
    severity: Cow<'a, str>,
    #[serde(borrow, rename = "Title")]
    title: Cow<'a, str>,
    #[serde(rename = "StartLine")]
    start_line: u64,
}

/// Moves a Trivy JSON report's findings, times and artifact into `report`.
fn trivy_into(format: Format, r: TrivyReport, report: &mut Report) -> Result<(), ReportError> {
    report.scanned_at = match &r.created_at {
        Some(t) => time(format, "CreatedAt", t, Zone::Offset)?,
        None => None,
    };
    let db = r.trivy.and_then(|t| t.server).and_then(|s| s.vulnerability_db).and_then(|d| d.updated_at);
    if let Some(t) = db {
        report.db_updated_at = time(format, "Trivy.Server.VulnerabilityDB.UpdatedAt", &t, Zone::Offset)?;
    }
    report.artifact_name = r.artifact_name.filter(|a| !a.is_empty()).map(Cow::into_owned);
    for result in r.results.into_iter().flatten() {
        for v in result.vulnerabilities.into_iter().flatten() {
            check_id(format, &v.id, || format!("the vulnerabilities of {:?}", result.target))?;
            report.findings.push(Finding {
                severity: severity(format, &v.id, &v.severity)?,
                kind: FindingKind::Vulnerability,
                subject: format!("{}@{}", v.pkg, v.version),
                id: v.id.into_owned(),
            });
        }
        for s in result.secrets.into_iter().flatten() {
            check_id(format, &s.rule, || format!("the secrets of {:?}", result.target))?;
            report.findings.push(Finding {
                severity: severity(format, &s.rule, &s.severity)?,
                kind: FindingKind::Secret,
                subject: format!("{}:{} ({})", result.target, s.start_line, s.title),
                id: s.rule.into_owned(),
            });
        }
    }
    Ok(())
}

pub(super) fn trivy(bytes: &[u8]) -> Result<Report, ReportError> {
    let format = Format::TrivyJson;
    let r: TrivyReport = typed(format, bytes)?;
    let mut report = Report {
        format,
        scanner: "trivy".into(),
        scanner_version: r.trivy.as_ref().and_then(|t| nonempty(t.version.as_deref())),
        scanned_at: None,
        db_updated_at: None,
        findings: Vec::new(),
        artifact_name: None,
    };
    trivy_into(format, r, &mut report)?;
    Ok(report)
}

pub(super) fn cosign_vuln(bytes: &[u8]) -> Result<Report, ReportError> {
    let format = Format::TrivyCosignVuln;
    let p: CosignVuln = typed(format, bytes)?;
    let (_, finished) = scan_times(format, &p.metadata, Zone::Offset)?;
    let scanner = p.scanner.uri.as_deref().and_then(scanner_name).unwrap_or_else(|| "trivy".into());
    let mut report = Report {
        format,
        scanner,
        scanner_version: nonempty(p.scanner.version.as_deref())
            .or_else(|| p.scanner.result.trivy.as_ref().and_then(|t| nonempty(t.version.as_deref()))),
        scanned_at: None,
        db_updated_at: None,
        findings: Vec::new(),
        artifact_name: None,
    };
    trivy_into(format, p.scanner.result, &mut report)?;
    report.scanned_at = match (report.scanned_at, finished) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(report)
}

#[derive(Deserialize)]
struct CosignVuln<'a> {
    #[serde(borrow)]
    scanner: CosignScanner<'a>,
    #[serde(borrow)]
    metadata: ScanMetadata<'a>,
}

#[derive(Deserialize)]
struct CosignScanner<'a> {
    /// Optional in the spec; Trivy writes `pkg:github/aquasecurity/trivy@VERSION`.
    #[serde(borrow)]
    uri: Option<Cow<'a, str>>,
    #[serde(borrow)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    result: TrivyReport<'a>,
}

// --- Grype JSON --------------------------------------------------------------------------------

#[derive(Deserialize)]
struct GrypeDoc<'a> {
    #[serde(borrow)]
    matches: Vec<GrypeMatch<'a>>,
    /// `null` when the input had no source description.
    source: Option<GrypeSource>,
    #[serde(borrow)]
    descriptor: GrypeDescriptor<'a>,
}

#[derive(Deserialize)]
struct GrypeMatch<'a> {
    #[serde(borrow)]
    vulnerability: GrypeVuln<'a>,
    #[serde(borrow)]
    artifact: GrypeArtifact<'a>,
}

#[derive(Deserialize)]
struct GrypeVuln<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    /// `omitempty` in grype's `VulnerabilityMetadata`: absent for a vulnerability without
    /// metadata (`NewVulnerabilityMetadata(id, ns, nil)`), which is Unknown.
    #[serde(borrow)]
    severity: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct GrypeArtifact<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    version: Cow<'a, str>,
}

#[derive(Deserialize)]
struct GrypeSource {
    target: GrypeTarget,
}

/// `source.target`: a path or purl string, or for an image an object with `userInput`.
struct GrypeTarget(Option<String>);
struct GrypeTargetVisitor;
any_value!(GrypeTarget, GrypeTargetVisitor);
impl<'de> Visitor<'de> for GrypeTargetVisitor {
    type Value = GrypeTarget;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an object")
    }
    fn visit_str<E>(self, v: &str) -> Result<GrypeTarget, E> {
        Ok(GrypeTarget(Some(v.to_string())))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GrypeTarget, A::Error> {
        let mut name = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "userInput" {
                name = Some(map.next_value::<String>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(GrypeTarget(name))
    }
    fn visit_unit<E>(self) -> Result<GrypeTarget, E> {
        Ok(GrypeTarget(None))
    }
}

#[derive(Deserialize)]
struct GrypeDescriptor<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    version: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    db: Option<GrypeDb<'a>>,
}

/// DB schema v6: `{status: {built, ...}, providers}`; v5: `{built, schemaVersion, ...}`.
#[derive(Deserialize)]
struct GrypeDb<'a> {
    #[serde(borrow)]
    built: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<GrypeDbStatus<'a>>,
}

#[derive(Deserialize)]
struct GrypeDbStatus<'a> {
    #[serde(borrow)]
    built: Option<Cow<'a, str>>,
}

pub(super) fn grype(bytes: &[u8]) -> Result<Report, ReportError> {
    let format = Format::GrypeJson;
    let doc: GrypeDoc = typed(format, bytes)?;
    let d = doc.descriptor;
    let scanned_at = match d.timestamp.as_deref() {
        None | Some("") => None,
        Some(t) => time(format, "descriptor.timestamp", t, Zone::Offset)?,
    };
    let built = d.db.and_then(|db| db.status.and_then(|s| s.built).or(db.built));
    let db_updated_at = match built.as_deref() {
        None | Some("") => None,
        Some(t) => time(format, "descriptor.db built", t, Zone::Offset)?,
    };
    let mut findings = Vec::with_capacity(doc.matches.len());
    for (i, m) in doc.matches.into_iter().enumerate() {
        let v = m.vulnerability;
        check_id(format, &v.id, || format!("matches[{i}]"))?;
        findings.push(Finding {
            severity: match v.severity.as_deref() {
                None | Some("") => Severity::Unknown,
                Some(s) => severity(format, &v.id, s)?,
            },
            kind: FindingKind::Vulnerability,
            subject: format!("{}@{}", m.artifact.name, m.artifact.version),
            id: v.id.into_owned(),
        });
    }
    Ok(Report {
        format,
        scanner: if d.name.is_empty() { "grype".into() } else { d.name.to_ascii_lowercase() },
        // A grype built without version information says "[not provided]".
        scanner_version: nonempty(Some(&d.version)).filter(|v| v != "[not provided]"),
        scanned_at,
        db_updated_at,
        findings,
        artifact_name: doc.source.and_then(|s| s.target.0).filter(|a| !a.is_empty()),
    })
}

// --- in-toto vulns v0.2 ------------------------------------------------------------------------

#[derive(Deserialize)]
struct InTotoVulns<'a> {
    #[serde(borrow)]
    scanner: InTotoScanner<'a>,
    #[serde(borrow)]
    metadata: ScanMetadata<'a>,
}

#[derive(Deserialize)]
struct InTotoScanner<'a> {
    #[serde(borrow)]
    uri: Cow<'a, str>,
    #[serde(borrow)]
    version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    db: InTotoDb<'a>,
    #[serde(borrow)]
    result: Vec<InTotoResult<'a>>,
}

#[derive(Deserialize)]
struct InTotoDb<'a> {
    #[serde(borrow, rename = "lastUpdate")]
    last_update: Cow<'a, str>,
}

#[derive(Deserialize)]
struct InTotoResult<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    severity: Vec<InTotoSeverity<'a>>,
}

#[derive(Deserialize)]
struct InTotoSeverity<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    score: Cow<'a, str>,
}

pub(super) fn in_toto(bytes: &[u8]) -> Result<Report, ReportError> {
    let format = Format::InTotoVulns;
    let p: InTotoVulns = typed(format, bytes)?;
    let (_, finished) = scan_times(format, &p.metadata, Zone::UtcOnly)?;
    let db_updated_at = time(format, "scanner.db.lastUpdate", &p.scanner.db.last_update, Zone::UtcOnly)?;
    let mut findings = Vec::with_capacity(p.scanner.result.len());
    for (i, r) in p.scanner.result.into_iter().enumerate() {
        check_id(format, &r.id, || format!("scanner.result[{i}]"))?;
        let mut worst = None;
        for s in &r.severity {
            let sev = score_severity(&s.score).ok_or_else(|| ReportError::Score {
                format,
                id: r.id.to_string(),
                method: s.method.chars().take(64).collect(),
                score: s.score.chars().take(64).collect(),
            })?;
            worst = worst.max(Some(sev));
        }
        findings.push(Finding {
            severity: worst.unwrap_or(Severity::Unknown),
            kind: FindingKind::Vulnerability,
            subject: String::new(),
            id: r.id.into_owned(),
        });
    }
    Ok(Report {
        format,
        scanner: scanner_name(&p.scanner.uri).unwrap_or_else(|| p.scanner.uri.to_string()),
        scanner_version: nonempty(p.scanner.version.as_deref()),
        scanned_at: finished,
        db_updated_at,
        findings,
        artifact_name: None,
    })
}

/// One in-toto vulns v0.2 `{method, score}` pair as a [`Severity`]. The predicate leaves both
/// free-form ("nvd": "medium", "cvss_score": "5.2" in its example), so the score decides,
/// whatever the method:
/// 1. a severity name ([`Severity::parse`], any case), or `none` (CVSS's rating for 0.0): as
///    named, `none` as Low;
/// 2. a plain decimal from 0 to 10: CVSS v3.1/v4.0's qualitative scale (FIRST CVSS v3.1
///    specification, section 5): 0.1-3.9 Low, 4.0-6.9 Medium, 7.0-8.9 High, 9.0-10.0
///    Critical, and 0.0 ("None") Low;
/// 3. anything else (a CVSS vector, a percentage, an EPSS probability named as a score) is
///    None, an error: a gate cannot guess.
///
/// A finding with several pairs takes the most severe; one with none is Unknown.
pub fn score_severity(score: &str) -> Option<Severity> {
    if let Some(s) = Severity::parse(score) {
        return Some(s);
    }
    if score.eq_ignore_ascii_case("none") {
        return Some(Severity::Low);
    }
    let (int, frac) = score.split_once('.').unwrap_or((score, "0"));
    let digits = |s: &str| !s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    let v: f64 = score.parse().ok()?;
    match v {
        v if v < 4.0 => Some(Severity::Low),
        v if v < 7.0 => Some(Severity::Medium),
        v if v < 9.0 => Some(Severity::High),
        v if v <= 10.0 => Some(Severity::Critical),
        _ => None,
    }
}
