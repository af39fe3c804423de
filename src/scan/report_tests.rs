//! The parser fed what Trivy 0.59.1 printed (`trivy fs --scanners secret --format json` over a
//! directory with a planted AWS key pair and GitHub token, the same over an empty directory,
//! and `trivy convert --format cosign-vuln` of the first: testdata/trivy-0.59.1-*), and
//! documents written after each format's published schema and golden files where no real
//! scanner with a database could run here (Trivy 0.69's `Trivy` block and client/server DB
//! metadata, Grype 0.87 with DB schema v6 and 0.74 with v5, the in-toto vulns v0.2 predicate).
//! Then every kind of bad input, each named by what it breaks.

use super::*;
use std::time::{Duration, Instant};

const TRIVY_SECRETS: &str = include_str!("testdata/trivy-0.59.1-fs-secrets.json");
const TRIVY_CLEAN: &str = include_str!("testdata/trivy-0.59.1-fs-clean.json");
const TRIVY_COSIGN_SECRETS: &str = include_str!("testdata/trivy-0.59.1-cosign-vuln-secrets.json");
const TRIVY_IMAGE: &str = include_str!("testdata/trivy-0.69-image-vulns.json");
const TRIVY_COSIGN_IMAGE: &str = include_str!("testdata/trivy-0.69-cosign-vuln-image.json");
const GRYPE_V6: &str = include_str!("testdata/grype-0.87-image.json");
const GRYPE_V5: &str = include_str!("testdata/grype-0.74-dir.json");
const IN_TOTO: &str = include_str!("testdata/intoto-vulns-v0.2.json");

fn utc(text: &str) -> Option<SystemTime> {
    crate::scan::parse_time(text, crate::scan::Zone::UtcOnly).unwrap()
}

fn finding(id: &str, severity: Severity, kind: FindingKind, subject: &str) -> Finding {
    Finding { id: id.into(), severity, kind, subject: subject.into() }
}

fn vuln(id: &str, severity: Severity, subject: &str) -> Finding {
    finding(id, severity, FindingKind::Vulnerability, subject)
}

fn secret(id: &str, severity: Severity, subject: &str) -> Finding {
    finding(id, severity, FindingKind::Secret, subject)
}

fn real_secrets() -> Vec<Finding> {
    vec![
        secret("aws-access-key-id", Severity::Critical, "app/config/deploy.env:3 (AWS Access Key ID)"),
        secret("aws-secret-access-key", Severity::Critical, "app/config/deploy.env:4 (AWS Secret Access Key)"),
        secret("github-pat", Severity::Critical, "app/main.py:2 (GitHub Personal Access Token)"),
    ]
}

#[test]
fn trivy_0_59_secret_scan_as_printed() {
    let r = parse(TRIVY_SECRETS.as_bytes()).unwrap();
    assert_eq!(
        r,
        Report {
            format: Format::TrivyJson,
            scanner: "trivy".into(),
            // Trivy writes its version into the report from 0.69 on.
            scanner_version: None,
            scanned_at: utc("2026-12-04T23:43:21.353630891Z"),
            db_updated_at: None,
            findings: real_secrets(),
            artifact_name: Some("/tmp/scandir".into()),
        }
    );
}

#[test]
fn trivy_0_59_clean_scan_has_no_results_key_and_no_findings() {
    assert!(!TRIVY_CLEAN.contains("Results"));
    let r = parse(TRIVY_CLEAN.as_bytes()).unwrap();
    assert_eq!(r.format, Format::TrivyJson);
    assert!(r.findings.is_empty());
    assert_eq!(r.scanned_at, utc("2026-12-04T23:47:49.610432675Z"));
}

#[test]
fn trivy_0_59_cosign_vuln_takes_the_scan_time_not_the_conversion_time() {
    let r = parse(TRIVY_COSIGN_SECRETS.as_bytes()).unwrap();
    assert_eq!(r.format, Format::TrivyCosignVuln);
    assert_eq!((r.scanner.as_str(), r.scanner_version.as_deref()), ("trivy", Some("0.59.1")));
    assert_eq!(r.findings, real_secrets());
    assert_eq!(r.artifact_name.as_deref(), Some("/tmp/scandir"));
    // scanFinishedOn is 23:43:25, when `trivy convert` ran; the scan was at 23:43:21.
    assert!(TRIVY_COSIGN_SECRETS.contains(r#""scanFinishedOn": "2026-12-04T23:43:25.229714926Z""#));
    assert_eq!(r.scanned_at, utc("2026-12-04T23:43:21.353630891Z"));
    // Without the result's CreatedAt, scanFinishedOn is all there is.
    let text = TRIVY_COSIGN_SECRETS.replace(r#""CreatedAt": "2026-12-04T23:43:21.353630891Z","#, "");
    assert_eq!(parse(text.as_bytes()).unwrap().scanned_at, utc("2026-12-04T23:43:25.229714926Z"));
}

fn image_findings() -> Vec<Finding> {
    vec![
        vuln("CVE-2023-4911", Severity::High, "libc6@2.36-9+deb12u1"),
        vuln("CVE-2023-45853", Severity::Critical, "zlib1g@1:1.2.13.dfsg-1"),
        vuln("CVE-2011-3374", Severity::Low, "apt@2.6.1"),
        vuln("TEMP-0841856-B18BAF", Severity::Unknown, "bash@5.2.15-2+b7"),
        vuln("CVE-2024-35195", Severity::Medium, "requests@2.31.0"),
        vuln("GHSA-9wx4-h78v-vm56", Severity::Medium, "requests@2.31.0"),
        secret("slack-web-hook", Severity::Medium, "/app/settings/local.py:12 (Slack Webhook)"),
    ]
}

#[test]
fn trivy_0_69_image_report_with_server_db_metadata() {
    let r = parse(TRIVY_IMAGE.as_bytes()).unwrap();
    assert_eq!(
        r,
        Report {
            format: Format::TrivyJson,
            scanner: "trivy".into(),
            scanner_version: Some("0.69.1".into()),
            scanned_at: utc("2026-11-29T09:58:12.480120533Z"),
            db_updated_at: utc("2026-11-29T06:14:03.918213712Z"),
            // The Dockerfile misconfiguration is neither a vulnerability nor a secret.
            findings: image_findings(),
            artifact_name: Some("registry.example/shop/api:1.4.2".into()),
        }
    );
}

#[test]
fn trivy_0_69_cosign_vuln_image() {
    let r = parse(TRIVY_COSIGN_IMAGE.as_bytes()).unwrap();
    assert_eq!(r.format, Format::TrivyCosignVuln);
    assert_eq!(r.scanner_version.as_deref(), Some("0.69.1"));
    assert_eq!(r.scanned_at, utc("2026-11-29T09:58:12.480120533Z"));
    assert_eq!(r.db_updated_at, utc("2026-11-29T06:14:03.918213712Z"));
    assert_eq!(r.findings, image_findings());
}

#[test]
fn grype_with_db_schema_v6_and_a_local_timestamp() {
    let r = parse(GRYPE_V6.as_bytes()).unwrap();
    assert_eq!(
        r,
        Report {
            format: Format::GrypeJson,
            scanner: "grype".into(),
            scanner_version: Some("0.87.0".into()),
            // "2026-11-29T10:58:31.402113907+01:00": grype writes the runner's local time.
            scanned_at: utc("2026-11-29T09:58:31.402113907Z"),
            db_updated_at: utc("2026-11-28T01:31:44Z"),
            findings: vec![
                vuln("CVE-2023-45853", Severity::Critical, "zlib1g@1:1.2.13.dfsg-1"),
                vuln("CVE-2005-2541", Severity::Low, "tar@1.34+dfsg-1.2+deb12u1"),
                vuln("GHSA-9wx4-h78v-vm56", Severity::Medium, "requests@2.31.0"),
                // No severity (no metadata): Unknown. ignoredMatches are not findings.
                vuln("CVE-2026-0001", Severity::Unknown, "gunicorn@22.0.0"),
            ],
            artifact_name: Some("registry.example/shop/api:1.4.2".into()),
        }
    );
}

#[test]
fn grype_with_db_schema_v5_a_directory_and_no_timestamp() {
    let r = parse(GRYPE_V5.as_bytes()).unwrap();
    assert_eq!(r.scanner_version.as_deref(), Some("0.74.7"));
    assert_eq!(r.scanned_at, None);
    assert_eq!(r.db_updated_at, utc("2024-03-01T01:27:08Z"));
    assert_eq!(r.artifact_name.as_deref(), Some("/work/rootfs"));
    assert_eq!(r.findings, [vuln("GHSA-jfh8-c2jp-5v3q", Severity::Critical, "log4j-core@2.14.1")]);
    // A grype built without version information, with no source and no DB.
    let text = GRYPE_V5.replace(r#""version": "0.74.7""#, r#""version": "[not provided]""#);
    let text = text.replace(r#""target": "/work/rootfs""#, r#""target": null"#);
    let r = parse(text.as_bytes()).unwrap();
    assert_eq!((r.scanner_version, r.artifact_name), (None, None));
}

#[test]
fn in_toto_vulns_severity_is_the_worst_of_its_scores() {
    let r = parse(IN_TOTO.as_bytes()).unwrap();
    assert_eq!(
        r,
        Report {
            format: Format::InTotoVulns,
            scanner: "trivy".into(),
            scanner_version: Some("0.69.1".into()),
            scanned_at: utc("2026-11-29T09:58:12.48Z"),
            db_updated_at: utc("2026-11-29T06:14:03Z"),
            findings: vec![
                vuln("CVE-2023-4911", Severity::High, ""),
                vuln("CVE-2023-45853", Severity::Critical, ""),
                vuln("GHSA-9wx4-h78v-vm56", Severity::Medium, ""),
                vuln("CVE-2011-3374", Severity::Low, ""),
                vuln("TEMP-0841856-B18BAF", Severity::Unknown, ""),
            ],
            artifact_name: None,
        }
    );
}

#[test]
fn score_severity_follows_the_cvss_qualitative_scale() {
    for (score, want) in [
        ("critical", Some(Severity::Critical)),
        ("MEDIUM", Some(Severity::Medium)),
        ("Moderate", Some(Severity::Medium)),
        ("negligible", Some(Severity::Low)),
        ("none", Some(Severity::Low)),
        ("unknown", Some(Severity::Unknown)),
        ("0", Some(Severity::Low)),
        ("0.0", Some(Severity::Low)),
        ("3.9", Some(Severity::Low)),
        ("4.0", Some(Severity::Medium)),
        ("6.9", Some(Severity::Medium)),
        ("7", Some(Severity::High)),
        ("8.9", Some(Severity::High)),
        ("9.0", Some(Severity::Critical)),
        ("10.0", Some(Severity::Critical)),
        ("10.1", None),
        ("-1", None),
        ("1e1", None),
        ("NaN", None),
        ("inf", None),
        (".5", None),
        ("5.", None),
        (" 5.0", None),
        ("", None),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", None),
    ] {
        assert_eq!(score_severity(score), want, "{score:?}");
    }
}

#[test]
fn severity_names_and_order() {
    assert!(Severity::Unknown < Severity::Low && Severity::Low < Severity::Medium);
    assert!(Severity::Medium < Severity::High && Severity::High < Severity::Critical);
    assert_eq!(Severity::parse("CRITICAL"), Some(Severity::Critical));
    assert_eq!(Severity::parse("Negligible"), Some(Severity::Low));
    assert_eq!(Severity::parse("hIgH"), Some(Severity::High));
    assert_eq!(Severity::parse(""), None);
    assert_eq!(Severity::parse("SEVERE"), None);
    assert_eq!(serde_json::to_string(&Severity::Critical).unwrap(), r#""critical""#);
    assert_eq!(serde_json::to_string(&Format::InTotoVulns).unwrap(), r#""in-toto-vulns-v0.2""#);
    for f in [Format::TrivyJson, Format::TrivyCosignVuln, Format::GrypeJson, Format::InTotoVulns] {
        assert_eq!(serde_json::to_string(&f).unwrap(), format!("{:?}", f.as_str()));
    }
}

// --- bad input ---------------------------------------------------------------------------------

fn err(text: &str) -> ReportError {
    parse(text.as_bytes()).expect_err(text)
}

#[test]
fn over_the_size_limit_is_refused_unread() {
    let mut big = TRIVY_CLEAN.as_bytes().to_vec();
    big.resize(MAX_REPORT_BYTES + 1, b' ');
    let e = parse(&big).unwrap_err();
    assert_eq!(e, ReportError::Json(JsonGateError::TooLarge { size: MAX_REPORT_BYTES + 1, limit: MAX_REPORT_BYTES }));
    assert!(e.to_string().starts_with("scan report is 67108865 bytes, over the 67108864-byte limit"), "{e}");
    // At the limit, whitespace and all, it parses.
    big.pop();
    assert!(parse(&big).is_ok());
}

#[test]
fn a_repeated_key_anywhere_is_refused() {
    // Two severities for one secret: which one would a policy see?
    let text = TRIVY_SECRETS.replacen(r#""Severity": "CRITICAL","#, r#""Severity": "CRITICAL", "Severity": "LOW","#, 1);
    assert_eq!(err(&text), ReportError::Json(JsonGateError::DuplicateKey("Severity".into())));
    let text = GRYPE_V5.replacen(r#""matches": ["#, r#""matches": [], "matches": ["#, 1);
    assert_eq!(err(&text), ReportError::Json(JsonGateError::DuplicateKey("matches".into())));
}

#[test]
fn deep_nesting_is_refused_with_a_clear_message() {
    let deep = format!(r#"{{"SchemaVersion": 2, "Metadata": {}{}}}"#, "[".repeat(200), "]".repeat(200));
    let e = err(&deep);
    assert_eq!(e, ReportError::Json(JsonGateError::TooDeep));
    assert_eq!(e.to_string(), "scan report nests deeper than 128 levels; no scanner or VEX tool writes that: refused");
}

#[test]
fn not_json_or_no_known_format() {
    assert!(matches!(err(""), ReportError::Json(JsonGateError::Syntax(_))));
    assert!(matches!(err("{\"SchemaVersion\": 2"), ReportError::Json(JsonGateError::Syntax(_))));
    for text in
        ["{}", "[]", "\"trivy\"", "2", "null", r#"{"Results": []}"#, r#"{"descriptor": {}}"#, r#"{"scanners": []}"#]
    {
        assert_eq!(err(text), ReportError::UnknownFormat, "{text}");
    }
    assert!(ReportError::UnknownFormat.to_string().starts_with(
        "scan report is not a Trivy JSON (SchemaVersion 2), Trivy cosign-vuln, Grype JSON or in-toto vulns v0.2 report"
    ));
}

#[test]
fn a_document_of_two_formats_is_ambiguous() {
    let text = TRIVY_SECRETS.replacen('{', r#"{"matches": [],"#, 1);
    assert_eq!(err(&text), ReportError::Ambiguous(Format::TrivyJson, Format::GrypeJson));
}

#[test]
fn other_trivy_schema_versions() {
    let text = TRIVY_SECRETS.replace(r#""SchemaVersion": 2"#, r#""SchemaVersion": 1"#);
    assert_eq!(err(&text), ReportError::TrivySchema("1".into()));
    let text = TRIVY_SECRETS.replace(r#""SchemaVersion": 2"#, r#""SchemaVersion": "2""#);
    assert_eq!(err(&text), ReportError::TrivySchema("\"2\"".into()));
    let text = TRIVY_COSIGN_SECRETS.replace(r#""SchemaVersion": 2"#, r#""SchemaVersion": 3"#);
    assert_eq!(err(&text), ReportError::TrivySchema("3".into()));
    // A cosign vuln predicate around something other than Trivy JSON.
    let text = TRIVY_COSIGN_SECRETS.replace(r#""SchemaVersion": 2,"#, "");
    assert_eq!(err(&text), ReportError::CosignNotTrivy);
    let text = r#"{"scanner": {"uri": "x", "result": "none"}, "metadata": {}}"#;
    assert!(matches!(err(text), ReportError::Schema { .. }));
}

fn schema_error(text: &str, format: &str, needle: &str) {
    match err(text) {
        ReportError::Schema { format: f, why } => {
            assert_eq!(f, format);
            assert!(why.contains(needle), "{why:?} lacks {needle:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_fields_and_wrong_types_are_named() {
    let t = TRIVY_IMAGE.replacen(r#""PkgName": "libc6","#, "", 1);
    schema_error(&t, "Trivy JSON", "missing field `PkgName`");
    let t = TRIVY_SECRETS.replacen(r#""StartLine": 3"#, r#""StartLine": "3""#, 1);
    schema_error(&t, "Trivy JSON", "invalid type: string \"3\"");
    let t = TRIVY_SECRETS.replacen(r#""Target": "app/main.py","#, "", 1);
    schema_error(&t, "Trivy JSON", "missing field `Target`");
    let t = TRIVY_SECRETS.replacen(r#""Results": ["#, r#""Results": {"x": ["#, 1).replace("\n  ]\n}", "]}}");
    schema_error(&t, "Trivy JSON", "invalid type: map");
    let t = TRIVY_COSIGN_SECRETS.replace(r#""scanFinishedOn": "2026-12-04T23:43:25.229714926Z""#, r#""x": 1"#);
    schema_error(&t, "Trivy cosign-vuln", "missing field `scanFinishedOn`");
    let t = GRYPE_V6.replacen(r#""name": "zlib1g","#, "", 1);
    schema_error(&t, "Grype JSON", "missing field `name`");
    let t = GRYPE_V5.replace(r#""matches": ["#, r#""matches": null, "x": ["#);
    schema_error(&t, "Grype JSON", "invalid type: null, expected a sequence");
    let t = GRYPE_V5.replace(r#""name": "grype","#, "");
    schema_error(&t, "Grype JSON", "missing field `name`");
    let t = IN_TOTO.replace(r#""lastUpdate": "2026-11-29T06:14:03Z""#, r#""updated": "2026-11-29T06:14:03Z""#);
    schema_error(&t, "in-toto vulns v0.2", "missing field `lastUpdate`");
    let t = IN_TOTO.replacen(r#"{ "method": "nvd", "score": "high" }"#, r#"{ "method": "nvd", "score": 7.5 }"#, 1);
    schema_error(&t, "in-toto vulns v0.2", "invalid type: floating point `7.5`");
}

#[test]
fn unknown_severities_name_the_finding_and_the_string() {
    let t = TRIVY_IMAGE.replacen(r#""Severity": "HIGH""#, r#""Severity": "SEVERE""#, 1);
    let e = err(&t);
    assert_eq!(
        e,
        ReportError::Severity { format: Format::TrivyJson, id: "CVE-2023-4911".into(), value: "SEVERE".into() }
    );
    assert_eq!(
        e.to_string(),
        "Trivy JSON report: finding CVE-2023-4911 has the unknown severity \"SEVERE\"; expected critical, high, \
         medium, moderate, low, negligible or unknown, in any case"
    );
    let t = TRIVY_SECRETS.replacen(r#""Severity": "CRITICAL""#, r#""Severity": """#, 1);
    assert!(matches!(err(&t), ReportError::Severity { id, .. } if id == "aws-access-key-id"));
    let t = GRYPE_V6.replacen(r#""severity": "Negligible""#, r#""severity": "Minor""#, 1);
    assert!(matches!(err(&t), ReportError::Severity { id, value, .. } if id == "CVE-2005-2541" && value == "Minor"));
    let t = IN_TOTO.replacen(r#""score": "9.8""#, r#""score": "CVSS:3.1/AV:N/AC:L""#, 1);
    let e = err(&t);
    assert_eq!(
        e,
        ReportError::Score {
            format: Format::InTotoVulns,
            id: "CVE-2023-45853".into(),
            method: "cvss_score".into(),
            score: "CVSS:3.1/AV:N/AC:L".into()
        }
    );
    assert!(e.to_string().contains("nor a CVSS score from 0.0 to 10.0"), "{e}");
}

#[test]
fn bad_times_name_the_field() {
    let cases: [(&str, &str, &str, &str, TimeError); 6] = [
        (
            TRIVY_SECRETS,
            r#""CreatedAt": "2026-12-04T23:43:21.353630891Z""#,
            r#""CreatedAt": "2026-12-04T23:43:21""#,
            "CreatedAt",
            TimeError::NoZone,
        ),
        (
            TRIVY_SECRETS,
            r#""CreatedAt": "2026-12-04T23:43:21.353630891Z""#,
            r#""CreatedAt": "yesterday""#,
            "CreatedAt",
            TimeError::Syntax,
        ),
        (
            TRIVY_IMAGE,
            r#""UpdatedAt": "2026-11-29T06:14:03.918213712Z""#,
            r#""UpdatedAt": "2026-11-31T06:14:03Z""#,
            "Trivy.Server.VulnerabilityDB.UpdatedAt",
            TimeError::Range,
        ),
        (
            GRYPE_V6,
            r#""timestamp": "2026-11-29T10:58:31.402113907+01:00""#,
            r#""timestamp": "2026-11-29 10:58:31""#,
            "descriptor.timestamp",
            TimeError::Syntax,
        ),
        // in-toto's Timestamp type is UTC only.
        (
            IN_TOTO,
            r#""scanFinishedOn": "2026-11-29T09:58:12.48Z""#,
            r#""scanFinishedOn": "2026-11-29T10:58:12.48+01:00""#,
            "metadata.scanFinishedOn",
            TimeError::NotUtc,
        ),
        (
            IN_TOTO,
            r#""lastUpdate": "2026-11-29T06:14:03Z""#,
            r#""lastUpdate": "1969-07-20T20:17:40Z""#,
            "scanner.db.lastUpdate",
            TimeError::BeforeEpoch,
        ),
    ];
    for (doc, from, to, field, why) in cases {
        assert!(doc.contains(from), "{from}");
        match err(&doc.replace(from, to)) {
            ReportError::Time { field: f, why: w, .. } => assert_eq!((f, w), (field, why), "{to}"),
            other => panic!("{to}: {other:?}"),
        }
    }
    let e = err(&IN_TOTO.replace("2026-11-29T09:58:12.48Z", "2026-11-29T09:58:01Z"));
    assert!(matches!(e, ReportError::ScanTimes { format: Format::InTotoVulns, .. }), "{e:?}");
    assert!(e.to_string().contains("is before metadata.scanStartedOn"), "{e}");
    let e = err(&TRIVY_SECRETS.replace("2026-12-04T23:43:21.353630891Z", "2026-12-04T23:43:21.353630891+25:00"));
    assert!(matches!(e, ReportError::Time { why: TimeError::Range, .. }), "{e:?}");
}

#[test]
fn a_finding_without_an_id_is_refused() {
    let t = TRIVY_IMAGE.replacen(r#""VulnerabilityID": "CVE-2024-35195""#, r#""VulnerabilityID": """#, 1);
    assert_eq!(
        err(&t),
        ReportError::EmptyId { format: Format::TrivyJson, place: "the vulnerabilities of \"Python\"".into() }
    );
    let t = IN_TOTO.replacen(r#""id": "CVE-2023-4911""#, r#""id": """#, 1);
    assert_eq!(err(&t), ReportError::EmptyId { format: Format::InTotoVulns, place: "scanner.result[0]".into() });
}

#[test]
fn strings_with_escapes_are_read_through_them() {
    // Borrowed where possible, copied where an escape must be decoded.
    let t = TRIVY_SECRETS.replacen(r#""RuleID": "github-pat""#, r#""RuleID": "github\u002dpat""#, 1);
    assert_eq!(parse(t.as_bytes()).unwrap().findings, real_secrets());
}

/// A 10.7 MiB Trivy report with 20 000 findings (10 000 vulnerabilities with Trivy's usual
/// description-sized fields, 10 000 secrets). Measured on a 2-core machine: 0.47 s in a debug
/// build, 0.05 s in release (three passes: the JSON gate, the format probe, the typed read).
/// Printed with `--nocapture`, not asserted: timing asserts flake.
#[test]
fn a_10_mib_report_with_20_000_findings_parses() {
    let mut text = String::from(r#"{"SchemaVersion": 2, "CreatedAt": "2026-11-29T09:58:12Z", "Results": ["#);
    text.push_str(r#"{"Target": "big (debian 12.7)", "Class": "os-pkgs", "Vulnerabilities": ["#);
    let filler = "x".repeat(300);
    for i in 0..10_000 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            r#"{{"VulnerabilityID": "CVE-2026-{i:05}", "PkgName": "pkg{i}", "InstalledVersion": "1.{i}",
              "Severity": "{}", "Title": "title {i}", "Description": "{filler}",
              "References": ["https://security-tracker.debian.org/tracker/CVE-2026-{i:05}"],
              "CVSS": {{"nvd": {{"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "V3Score": 9.8}}}}}}"#,
            ["LOW", "MEDIUM", "HIGH", "CRITICAL", "UNKNOWN"][i % 5]
        ));
    }
    text.push_str(r#"]}, {"Target": "secrets.env", "Class": "secret", "Secrets": ["#);
    for i in 0..10_000 {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            r#"{{"RuleID": "rule-{i}", "Category": "Test", "Severity": "HIGH", "Title": "Rule {i}",
              "StartLine": {i}, "EndLine": {i}, "Match": "{filler}"}}"#
        ));
    }
    text.push_str("]}]}");
    assert!(text.len() > 9 << 20 && text.len() < 11 << 20, "{}", text.len());
    let start = Instant::now();
    let r = parse(text.as_bytes()).unwrap();
    let took = start.elapsed();
    eprintln!("parsed {} bytes, {} findings in {took:?}", text.len(), r.findings.len());
    assert_eq!(r.findings.len(), 20_000);
    assert_eq!(r.findings[9_999], vuln("CVE-2026-09999", Severity::Unknown, "pkg9999@1.9999"));
    assert_eq!(r.findings[19_999], secret("rule-9999", Severity::High, "secrets.env:9999 (Rule 9999)"));
    assert!(took < Duration::from_secs(600));
}
