//! Scanner reports, from bytes to a [`Report`]: which format it is, whether it is well formed,
//! and its findings normalized to [`Finding`]s with one [`Severity`] scale.
//!
//! Four formats, told apart by their top-level keys:
//!
//! | format | recognized by | findings | scanned at | DB updated at |
//! |---|---|---|---|---|
//! | Trivy JSON (aquasecurity/trivy `pkg/types/report.go`) | `SchemaVersion` (must be 2) | `Results[].Vulnerabilities[]`, `Results[].Secrets[]` | `CreatedAt` | `Trivy.Server.VulnerabilityDB.UpdatedAt` (client/server mode only; standalone Trivy writes no DB time) |
//! | Trivy cosign-vuln (sigstore/cosign `specs/COSIGN_VULN_ATTESTATION_SPEC.md`, Trivy `pkg/report/predicate/vuln.go`) | `scanner.result` is an object, a Trivy JSON report | as Trivy JSON, from `scanner.result` | the earlier of `metadata.scanFinishedOn` and the result's `CreatedAt` | as Trivy JSON, from the result |
//! | Grype JSON (anchore/grype `grype/presenter/models/document.go`) | `matches` | `matches[]` (not `ignoredMatches`: the scan's own config suppressed those) | `descriptor.timestamp` (`""` with `GRYPE_TIMESTAMP=false`: none) | `descriptor.db.status.built` (DB schema v6), else `descriptor.db.built` (v5) |
//! | in-toto vulns v0.2 (in-toto/attestation `spec/predicates/vulns_02.md`) | `scanner.result` is an array | `scanner.result[]` | `metadata.scanFinishedOn` | `scanner.db.lastUpdate` |
//!
//! Why cosign-vuln's scan time is the earlier of two: Trivy stamps `scanFinishedOn` with the
//! moment it *writes* the predicate (`clock.Now()` in `VulnWriter.Write`), so `trivy convert
//! --format cosign-vuln` of a week-old report says "finished now". Trivy 0.59.1 did exactly
//! that in testdata/trivy-0.59.1-cosign-vuln-secrets.json (`CreatedAt` 23:43:21,
//! `scanFinishedOn` 23:43:25). The result's own `CreatedAt` is when the scan ran; a freshness
//! gate must not be fooled by a re-wrap.
//!
//! Hostile input is refused before any of that: over [`MAX_REPORT_BYTES`], a repeated key at
//! any depth, nesting past [`super::MAX_DEPTH`] ([`super::check_json`]). Then each format is
//! read into borrowed structs that name only the fields used (serde skips the rest without
//! building values), so memory stays the input plus the findings. Unknown fields are ignored:
//! scanners add fields every release. What is read is checked: required fields present, types
//! right, severities known, times RFC 3339 with a zone.

use super::{check_json, JsonGateError, TimeError};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

/// The largest report read. A Trivy JSON report of a large image with every finding is a few
/// MiB (~500 bytes per vulnerability with descriptions); 64 MiB is far past any real one.
pub const MAX_REPORT_BYTES: usize = 64 << 20;

/// One severity scale for every scanner. Ordered: `Unknown < Low < Medium < High < Critical`,
/// so a policy can say "at least High". `Unknown` sorts lowest because it is the absence of a
/// rating, not a rating; a policy that distrusts it must say so itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Unknown,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Reads a scanner's severity name in any case: Trivy's `CRITICAL`..`UNKNOWN`, Grype's
    /// `Critical`..`Negligible`, `Unknown` (Debian's "negligible" rating, carried by Grype, is
    /// Low), and GitHub advisories' `moderate` (Medium). Anything else is None: the caller
    /// turns it into an error naming the finding.
    pub fn parse(name: &str) -> Option<Severity> {
        const NAMES: [(&str, Severity); 7] = [
            ("unknown", Severity::Unknown),
            ("negligible", Severity::Low),
            ("low", Severity::Low),
            ("medium", Severity::Medium),
            ("moderate", Severity::Medium),
            ("high", Severity::High),
            ("critical", Severity::Critical),
        ];
        NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, s)| s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The severity names [`Severity::parse`] knows, for error messages.
const SEVERITY_NAMES: &str = "critical, high, medium, moderate, low, negligible or unknown, in any case";

/// A report format rootseal reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `trivy image --format json` (SchemaVersion 2).
    TrivyJson,
    /// `trivy image --format cosign-vuln`: the cosign vuln predicate around a Trivy JSON report.
    TrivyCosignVuln,
    /// `grype -o json`.
    GrypeJson,
    /// The in-toto vulns predicate, v0.2.
    #[serde(rename = "in-toto-vulns-v0.2")]
    InTotoVulns,
}

impl Format {
    /// A stable machine name (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::TrivyJson => "trivy-json",
            Format::TrivyCosignVuln => "trivy-cosign-vuln",
            Format::GrypeJson => "grype-json",
            Format::InTotoVulns => "in-toto-vulns-v0.2",
        }
    }

    /// The in-toto `predicateType`s an attestation carrying this format as its predicate may
    /// declare (the caller that unwraps a signed statement checks it agrees with [`parse`]'s
    /// verdict). Bare Trivy and Grype JSON have none of their own.
    pub fn predicate_types(self) -> &'static [&'static str] {
        match self {
            // The second is cosign's pre-RFC-3986 spelling, still written by older cosign.
            Format::TrivyCosignVuln => {
                &["https://cosign.sigstore.dev/attestation/vuln/v1", "cosign.sigstore.dev/attestation/vuln/v1"]
            }
            Format::InTotoVulns => &["https://in-toto.io/attestation/vulns/v0.2"],
            Format::TrivyJson | Format::GrypeJson => &[],
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(format_name(*self))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    Vulnerability,
    Secret,
}

/// One thing a scanner found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    /// `CVE-…`, `GHSA-…`, a distribution's own id (Debian's `TEMP-…`), or for a secret the
    /// scanner's rule id (`aws-access-key-id`). Never empty.
    pub id: String,
    pub severity: Severity,
    pub kind: FindingKind,
    /// What has it: `pkg@installed-version` for a vulnerability (empty for in-toto vulns v0.2,
    /// whose results name no package), `path:line (rule title)` for a secret.
    pub subject: String,
}

/// A report, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub format: Format,
    /// The scanner's name: `trivy`, `grype`, or the last path segment of an in-toto scanner's
    /// `uri` (`pkg:github/aquasecurity/trivy@0.69.1` is `trivy`).
    pub scanner: String,
    pub scanner_version: Option<String>,
    /// When the scan ran (see the table above); None if the report does not say.
    pub scanned_at: Option<SystemTime>,
    /// When the scanner's vulnerability database was last built or updated; None if the
    /// report does not say.
    pub db_updated_at: Option<SystemTime>,
    pub findings: Vec<Finding>,
    /// What was scanned, as the scanner names it (`registry.example/app:1.4`, a directory).
    pub artifact_name: Option<String>,
}

/// Why bytes are not a report rootseal can judge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("scan report {0}")]
    Json(JsonGateError),
    #[error(
        "scan report is not a Trivy JSON (SchemaVersion 2), Trivy cosign-vuln, Grype JSON or \
         in-toto vulns v0.2 report; write it with `trivy --format json|cosign-vuln` or `grype -o json`"
    )]
    UnknownFormat,
    #[error("scan report has the keys of both a {0} and a {1} report; refused as ambiguous")]
    Ambiguous(Format, Format),
    #[error(
        "Trivy JSON report has SchemaVersion {0}; rootseal reads SchemaVersion 2: rescan with Trivy 0.20 or later"
    )]
    TrivySchema(String),
    #[error(
        "cosign-vuln predicate's scanner.result is not a Trivy JSON report (no SchemaVersion); \
         rootseal reads the predicate `trivy --format cosign-vuln` writes"
    )]
    CosignNotTrivy,
    /// A required field missing, a wrong type, a malformed value: serde's message, with the
    /// line and column.
    #[error("{format} report does not match its schema: {why}")]
    Schema { format: &'static str, why: String },
    #[error("{format} report: a finding in {place} has an empty id")]
    EmptyId { format: Format, place: String },
    #[error("{format} report: finding {id} has the unknown severity {value:?}; expected {SEVERITY_NAMES}")]
    Severity { format: Format, id: String, value: String },
    /// in-toto vulns v0.2 rates by `{method, score}` pairs: see [`score_severity`].
    #[error(
        "{format} report: finding {id} has the severity score {score:?} (method {method:?}), \
         neither a severity name ({SEVERITY_NAMES}) nor a CVSS score from 0.0 to 10.0"
    )]
    Score { format: Format, id: String, method: String, score: String },
    #[error("{format} report: {field} {value:?} {why}")]
    Time { format: Format, field: &'static str, value: String, why: TimeError },
    #[error("{format} report: metadata.scanFinishedOn {finished:?} is before metadata.scanStartedOn {started:?}")]
    ScanTimes { format: Format, started: String, finished: String },
}

/// Parses and validates a scanner report (see the module documentation for the steps).
pub fn parse(bytes: &[u8]) -> Result<Report, ReportError> {
    // 1. Size, syntax, duplicate keys and depth, before any schema.
    check_json(bytes, MAX_REPORT_BYTES).map_err(ReportError::Json)?;
    // 2. The format, from the top-level keys alone.
    let format = detect(bytes)?;
    // 3. The format's own schema, then the findings normalized.
    match format {
        Format::TrivyJson => formats::trivy(bytes),
        Format::TrivyCosignVuln => formats::cosign_vuln(bytes),
        Format::GrypeJson => formats::grype(bytes),
        Format::InTotoVulns => formats::in_toto(bytes),
    }
}

// --- detection ---------------------------------------------------------------------------------

/// Step 2: reads only the top-level keys that tell the formats apart (every other value is
/// skipped unbuilt) and names the one format they fit.
fn detect(bytes: &[u8]) -> Result<Format, ReportError> {
    let probe: Probe = serde_json::from_slice(bytes).map_err(|_| ReportError::UnknownFormat)?;
    let mut fits = Vec::new();
    if let Some(v) = &probe.schema_version {
        if *v != SchemaVersion::Two {
            return Err(ReportError::TrivySchema(v.to_string()));
        }
        fits.push(Format::TrivyJson);
    }
    if probe.matches {
        fits.push(Format::GrypeJson);
    }
    match &probe.scanner {
        None => {}
        Some(Shape::Object { schema_version: Some(SchemaVersion::Two) }) => fits.push(Format::TrivyCosignVuln),
        Some(Shape::Object { schema_version: Some(v) }) => return Err(ReportError::TrivySchema(v.to_string())),
        Some(Shape::Object { schema_version: None }) => return Err(ReportError::CosignNotTrivy),
        Some(Shape::Array) => fits.push(Format::InTotoVulns),
        Some(Shape::Other) if fits.is_empty() => {
            return Err(ReportError::Schema {
                format: "cosign-vuln or in-toto vulns v0.2",
                why: "scanner.result must be an object (cosign-vuln) or an array (in-toto vulns v0.2)".into(),
            })
        }
        Some(Shape::Other) => {}
    }
    match fits[..] {
        [] => Err(ReportError::UnknownFormat),
        [one] => Ok(one),
        [a, b, ..] => Err(ReportError::Ambiguous(a, b)),
    }
}

/// The top-level keys that tell the formats apart.
#[derive(Default)]
struct Probe {
    schema_version: Option<SchemaVersion>,
    matches: bool,
    /// The shape of `scanner.result`, if there is a `scanner` (`Other` when it is not an object
    /// or has no `result`).
    scanner: Option<Shape>,
}

#[derive(Debug, PartialEq, Eq)]
enum SchemaVersion {
    Two,
    Other(String),
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaVersion::Two => f.write_str("2"),
            SchemaVersion::Other(s) => f.write_str(s),
        }
    }
}

enum Shape {
    Object { schema_version: Option<SchemaVersion> },
    Array,
    Other,
}

/// Implements `Deserialize` through a visitor that sees any JSON value.
macro_rules! any_value {
    ($t:ty, $v:ident) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any($v)
            }
        }
    };
}

/// The scalar `visit_*` methods of a visitor, each giving `$value`.
macro_rules! scalars_give {
    ($t:ty, $value:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$t, E> {
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<$t, E> {
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<$t, E> {
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$t, E> {
            Ok($value)
        }
        fn visit_str<E>(self, _: &str) -> Result<$t, E> {
            Ok($value)
        }
        fn visit_unit<E>(self) -> Result<$t, E> {
            Ok($value)
        }
    };
}

struct ProbeVisitor;
any_value!(Probe, ProbeVisitor);
impl<'de> Visitor<'de> for ProbeVisitor {
    type Value = Probe;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Probe, A::Error> {
        let mut p = Probe::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match &*key {
                "SchemaVersion" => p.schema_version = Some(map.next_value()?),
                "matches" => {
                    map.next_value::<IgnoredAny>()?;
                    p.matches = true;
                }
                "scanner" => p.scanner = Some(map.next_value::<ScannerShape>()?.0),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(p)
    }
}

/// `scanner`, reduced to the shape of its `result`.
struct ScannerShape(Shape);
struct ScannerShapeVisitor;
any_value!(ScannerShape, ScannerShapeVisitor);
impl<'de> Visitor<'de> for ScannerShapeVisitor {
    type Value = ScannerShape;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ScannerShape, A::Error> {
        let mut shape = Shape::Other;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "result" {
                shape = map.next_value()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(ScannerShape(shape))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ScannerShape, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| ScannerShape(Shape::Other))
    }
    scalars_give!(ScannerShape, ScannerShape(Shape::Other));
}

struct ShapeVisitor;
any_value!(Shape, ShapeVisitor);
impl<'de> Visitor<'de> for ShapeVisitor {
    type Value = Shape;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut schema_version = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "SchemaVersion" {
                schema_version = Some(map.next_value()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Shape::Object { schema_version })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shape, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Shape::Array)
    }
    scalars_give!(Shape, Shape::Other);
}

struct SchemaVersionVisitor;
any_value!(SchemaVersion, SchemaVersionVisitor);
impl<'de> Visitor<'de> for SchemaVersionVisitor {
    type Value = SchemaVersion;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_u64<E>(self, v: u64) -> Result<SchemaVersion, E> {
        Ok(if v == 2 { SchemaVersion::Two } else { SchemaVersion::Other(v.to_string()) })
    }
    fn visit_i64<E>(self, v: i64) -> Result<SchemaVersion, E> {
        Ok(SchemaVersion::Other(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<SchemaVersion, E> {
        Ok(SchemaVersion::Other(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<SchemaVersion, E> {
        Ok(SchemaVersion::Other(format!("{:?}", v.chars().take(40).collect::<String>())))
    }
    fn visit_bool<E>(self, v: bool) -> Result<SchemaVersion, E> {
        Ok(SchemaVersion::Other(v.to_string()))
    }
    fn visit_unit<E>(self) -> Result<SchemaVersion, E> {
        Ok(SchemaVersion::Other("null".into()))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SchemaVersion, A::Error> {
        IgnoredAny.visit_map(map).map(|_| SchemaVersion::Other("(an object)".into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<SchemaVersion, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| SchemaVersion::Other("(an array)".into()))
    }
}

// --- helpers -----------------------------------------------------------------------------------

/// Step 3's schema check: serde's message names the missing field or wrong type and where.
fn typed<'a, T: Deserialize<'a>>(format: Format, bytes: &'a [u8]) -> Result<T, ReportError> {
    serde_json::from_slice(bytes).map_err(|e| ReportError::Schema { format: format_name(format), why: e.to_string() })
}

fn format_name(format: Format) -> &'static str {
    match format {
        Format::TrivyJson => "Trivy JSON",
        Format::TrivyCosignVuln => "Trivy cosign-vuln",
        Format::GrypeJson => "Grype JSON",
        Format::InTotoVulns => "in-toto vulns v0.2",
    }
}

/// The four formats' schemas and how each becomes a [`Report`].
#[path = "report_formats.rs"]
mod formats;

pub use formats::score_severity;

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
