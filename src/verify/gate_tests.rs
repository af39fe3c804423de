use super::*;
use crate::scan::report::FindingKind;

const NOW: &str = "2026-12-04T12:00:00Z";

fn now() -> SystemTime {
    humantime::parse_rfc3339(NOW).unwrap()
}

fn signer(name: &str) -> Signer {
    Signer { name: name.into(), keyid: format!("{name}-id") }
}

fn finding(id: &str, severity: Severity) -> Finding {
    Finding { id: id.into(), severity, kind: FindingKind::Vulnerability, subject: format!("pkg-{id}@1.0") }
}

fn record(scanned_at: &str, by: &str, findings: Vec<Finding>) -> ScanRecord {
    ScanRecord {
        attestation: format!("sha256:{scanned_at}"),
        subject: "sha256:tree".into(),
        image: None,
        scanned_at: scanned_at.into(),
        db_updated_at: None,
        signers: vec![signer(by)],
        scanner: "trivy".into(),
        format: "trivy-json".into(),
        findings,
    }
}

fn policy() -> ScanPolicy {
    ScanPolicy { require: true, max_severity: Severity::High, keys: vec!["scanner".into()], ..ScanPolicy::default() }
}

fn product() -> Product<'static> {
    Product { tree: "sha256:tree", name: "registry.example/app:1.4", image: Some("sha256:img") }
}

fn run(p: &ScanPolicy, records: &[ScanRecord], vex: &[VexRecord]) -> Result<Passed, Refusal> {
    judge(p, "sha256:tree..", &product(), records, vex, now())
}

#[test]
fn no_scan_is_scan_missing_and_says_how_to_attest() {
    let e = run(&policy(), &[], &[]).unwrap_err();
    assert_eq!(e.code, Code::ScanMissing);
    assert!(
        e.message.contains("no signed scan of seal sha256:tree..") && e.message.contains("rootseal attest scan"),
        "{}",
        e.message
    );
}

#[test]
fn a_scan_by_a_key_that_is_not_a_scan_key_does_not_count() {
    let e = run(&policy(), &[record("2026-12-04T00:00:00Z", "ci-2026", vec![])], &[]).unwrap_err();
    assert_eq!(e.code, Code::ScanMissing);
    assert!(e.message.contains("signed by ci-2026 but [scan] keys allows only scanner"), "{}", e.message);
    let any_key = ScanPolicy { keys: vec![], ..policy() };
    assert!(run(&any_key, &[record("2026-12-04T00:00:00Z", "ci-2026", vec![])], &[]).is_ok());
}

#[test]
fn a_scan_older_than_max_age_is_stale_and_so_is_an_old_database() {
    let e = run(&policy(), &[record("2026-11-20T00:00:00Z", "scanner", vec![])], &[]).unwrap_err();
    assert_eq!(e.code, Code::ScanStale);
    assert!(e.message.contains("14d old") && e.message.contains("max_age 7d"), "{}", e.message);
    let mut r = record("2026-12-04T00:00:00Z", "scanner", vec![]);
    r.db_updated_at = Some("2026-11-01T00:00:00Z".into());
    let e = run(&policy(), &[r], &[]).unwrap_err();
    assert_eq!(e.code, Code::ScanStale);
    assert!(e.message.contains("vulnerability database 33d old"), "{}", e.message);
}

#[test]
fn findings_at_or_above_the_threshold_block_and_the_message_lists_five() {
    let mut f: Vec<Finding> = (0..7).map(|i| finding(&format!("CVE-2026-000{i}"), Severity::High)).collect();
    f.push(finding("CVE-2026-9999", Severity::Critical));
    f.push(finding("CVE-2026-1111", Severity::Medium));
    let e = run(&policy(), &[record("2026-12-04T00:00:00Z", "scanner", f)], &[]).unwrap_err();
    assert_eq!(e.code, Code::ScanFindings);
    assert!(e.message.contains("has 8 finding(s) at or above high"), "{}", e.message);
    assert!(e.message.starts_with("scan of seal sha256:tree.. (2026-12-04T00:00:00Z)"), "{}", e.message);
    assert!(
        e.message.contains(": CVE-2026-9999 (critical, pkg-CVE-2026-9999@1.0), CVE-2026-0000 (high"),
        "critical first: {}",
        e.message
    );
    assert!(e.message.contains("and 3 more"), "{}", e.message);
    assert!(!e.message.contains("CVE-2026-1111"), "medium is under the threshold: {}", e.message);
}

#[test]
fn the_newest_scan_is_the_one_judged() {
    let clean_old = record("2026-12-01T00:00:00Z", "scanner", vec![]);
    let dirty_new = record("2026-12-03T00:00:00Z", "scanner", vec![finding("CVE-1", Severity::Critical)]);
    assert_eq!(run(&policy(), &[clean_old.clone(), dirty_new.clone()], &[]).unwrap_err().code, Code::ScanFindings);
    let dirty_old = record("2026-12-01T00:00:00Z", "scanner", vec![finding("CVE-1", Severity::Critical)]);
    let clean_new = record("2026-12-03T00:00:00Z", "scanner", vec![]);
    let ok = run(&policy(), &[clean_new, dirty_old], &[]).unwrap();
    assert_eq!(ok.scanned_at, "2026-12-03T00:00:00Z");
}

#[test]
fn ignore_excuses_a_finding_until_its_until() {
    let r = record("2026-12-04T00:00:00Z", "scanner", vec![finding("CVE-1", Severity::Critical)]);
    let until = |u: Option<&str>| ScanPolicy {
        ignore: vec![Ignore { id: "CVE-1".into(), until: u.map(String::from) }],
        ..policy()
    };
    assert_eq!(run(&until(None), std::slice::from_ref(&r), &[]).unwrap().excused, 1);
    assert!(run(&until(Some("2027-01-01T00:00:00Z")), std::slice::from_ref(&r), &[]).is_ok());
    let e = run(&until(Some("2026-12-01T00:00:00Z")), std::slice::from_ref(&r), &[]).unwrap_err();
    assert_eq!(e.code, Code::ScanFindings, "past its until, the finding blocks again");
    assert!(until(Some("next week")).problem().unwrap().contains("not an RFC 3339 time"));
}

#[test]
fn a_signed_not_affected_statement_for_this_image_excuses_a_finding() {
    let r = record("2026-12-04T00:00:00Z", "scanner", vec![finding("CVE-1", Severity::Critical)]);
    let vex = |by: &str, product: &str| VexRecord {
        attestation: "sha256:v".into(),
        id: "vex-1".into(),
        signers: vec![signer(by)],
        updated_at: "2026-12-01T00:00:00Z".into(),
        statements: vec![VexLine {
            ids: vec!["CVE-1".into()],
            products: vec![product.into()],
            subcomponents: vec![],
            not_affected: true,
            at: "2026-12-01T00:00:00Z".into(),
        }],
    };
    for p in
        ["registry.example/app:1.4", "registry.example/app", "sha256:img", "sha256:tree", "pkg:oci/app@sha256%3Aimg"]
    {
        assert!(run(&policy(), std::slice::from_ref(&r), &[vex("scanner", p)]).is_ok(), "{p}");
    }
    assert_eq!(
        run(&policy(), std::slice::from_ref(&r), &[vex("scanner", "registry.example/other")]).unwrap_err().code,
        Code::ScanFindings,
        "another product"
    );
    assert_eq!(
        run(&policy(), std::slice::from_ref(&r), &[vex("ci-2026", "registry.example/app")]).unwrap_err().code,
        Code::ScanFindings,
        "a VEX document by a key that is not a scan key"
    );
}

#[test]
fn the_latest_vex_statement_wins_and_an_old_document_does_not_count() {
    let r = record("2026-12-04T00:00:00Z", "scanner", vec![finding("CVE-1", Severity::Critical)]);
    let line = |not_affected: bool, at: &str| VexLine {
        ids: vec!["CVE-1".into()],
        products: vec!["registry.example/app".into()],
        subcomponents: vec![],
        not_affected,
        at: at.into(),
    };
    let doc = |updated_at: &str, statements: Vec<VexLine>| VexRecord {
        attestation: "sha256:v".into(),
        id: "vex".into(),
        signers: vec![signer("scanner")],
        updated_at: updated_at.into(),
        statements,
    };
    let later_affected =
        doc("2026-12-02T00:00:00Z", vec![line(true, "2026-12-01T00:00:00Z"), line(false, "2026-12-02T00:00:00Z")]);
    assert_eq!(run(&policy(), std::slice::from_ref(&r), &[later_affected]).unwrap_err().code, Code::ScanFindings);
    let old = doc("2026-08-01T00:00:00Z", vec![line(true, "2026-08-01T00:00:00Z")]);
    assert_eq!(
        run(&policy(), std::slice::from_ref(&r), &[old]).unwrap_err().code,
        Code::ScanFindings,
        "a VEX document over vex_max_age (90d) does not count"
    );
}

#[test]
fn a_statement_about_a_subcomponent_excuses_that_package_only() {
    let vuln = |subject: &str| Finding {
        id: "CVE-1".into(),
        severity: Severity::Critical,
        kind: FindingKind::Vulnerability,
        subject: subject.into(),
    };
    let r = record("2026-12-04T00:00:00Z", "scanner", vec![vuln("openssl@3.0.11"), vuln("libc6@2.36")]);
    let vex = |components: &[&str]| VexRecord {
        attestation: "sha256:v".into(),
        id: "vex".into(),
        signers: vec![signer("scanner")],
        updated_at: "2026-12-01T00:00:00Z".into(),
        statements: vec![VexLine {
            ids: vec!["CVE-1".into()],
            products: vec!["registry.example/app".into()],
            subcomponents: components.iter().map(|c| c.to_string()).collect(),
            not_affected: true,
            at: "2026-12-01T00:00:00Z".into(),
        }],
    };
    let e =
        run(&policy(), std::slice::from_ref(&r), &[vex(&["pkg:deb/debian/openssl@3.0.11?arch=amd64"])]).unwrap_err();
    assert!(e.message.contains("has 1 finding(s)") && e.message.contains("libc6@2.36"), "{}", e.message);
    let both = vex(&["pkg:deb/debian/openssl", "pkg:deb/debian/libc6@2.36"]);
    assert!(run(&policy(), std::slice::from_ref(&r), &[both]).is_ok());
    assert!(names_package("openssl", "openssl@3.0.11"));
    assert!(!names_package("pkg:deb/debian/openssl@3.0.12", "openssl@3.0.11"));
}

#[test]
fn vex_naming_the_manifest_digest_the_scan_names_excuses_when_the_caller_knows_no_image() {
    let mut r = record("2026-12-04T00:00:00Z", "scanner", vec![finding("CVE-1", Severity::Critical)]);
    let vex = [VexRecord {
        attestation: "sha256:v".into(),
        id: "vex".into(),
        signers: vec![signer("scanner")],
        updated_at: "2026-12-01T00:00:00Z".into(),
        statements: vec![VexLine {
            ids: vec!["CVE-1".into()],
            products: vec!["pkg:oci/app@sha256%3Aimg?repository_url=registry.example/app".into()],
            subcomponents: vec![],
            not_affected: true,
            at: "2026-12-01T00:00:00Z".into(),
        }],
    }];
    // The hook knows the tree and the name only.
    let tree_only = Product { tree: "sha256:tree", name: "registry.example/app:1.4", image: None };
    let judge_it = |r: &ScanRecord| judge(&policy(), "sha256:tree..", &tree_only, std::slice::from_ref(r), &vex, now());
    assert_eq!(judge_it(&r).unwrap_err().code, Code::ScanFindings);
    r.image = Some("sha256:img".into());
    assert_eq!(judge_it(&r).unwrap().excused, 1);
}
