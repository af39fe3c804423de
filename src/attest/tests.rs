use super::*;
use crate::trust::Trust;

const TRIVY_SECRETS: &[u8] = include_bytes!("../scan/testdata/trivy-0.59.1-fs-secrets.json");
const TRIVY_COSIGN: &[u8] = include_bytes!("../scan/testdata/trivy-0.59.1-cosign-vuln-secrets.json");
const GRYPE: &[u8] = include_bytes!("../scan/testdata/grype-0.87-image.json");
const OPENVEX: &[u8] = include_bytes!("../scan/testdata/openvex-0.2.0-image.json");

fn key(dir: &std::path::Path, name: &str) -> (SigningKey, Trust) {
    let (k, p, _) = crate::keys::keygen(&dir.join(name)).unwrap();
    let sk = crate::keys::load_signing_key(&k).unwrap();
    let trust = Trust::single(crate::keys::PublicKey::load(&p).unwrap(), &p);
    (sk, trust)
}

fn subjects() -> Vec<Subject> {
    vec![
        Subject { name: "registry.example/app:1".into(), sha256: "a".repeat(64) },
        Subject { name: "registry.example/app:1".into(), sha256: "b".repeat(64) },
    ]
}

fn attest(report: &[u8], sk: &SigningKey) -> Vec<u8> {
    let r = crate::scan::report::parse(report).unwrap();
    sign(&scan_statement(report, &r, &subjects()).unwrap(), sk)
}

fn year_2027() -> SystemTime {
    humantime::parse_rfc3339("2027-01-01T00:00:00Z").unwrap()
}

#[test]
fn a_signed_scan_opens_to_its_record_for_every_input_format() {
    let t = tempfile::tempdir().unwrap();
    let (sk, trust) = key(t.path(), "scanner");
    for (name, report) in [("trivy", TRIVY_SECRETS), ("cosign-vuln", TRIVY_COSIGN), ("grype", GRYPE)] {
        let env = attest(report, &sk);
        let Opened::Scan(r) = open(&env, &trust, year_2027(), Duration::from_secs(86400)).unwrap() else {
            panic!("{name}: not a scan")
        };
        assert_eq!(r.subject, format!("sha256:{}", "a".repeat(64)), "{name}");
        assert_eq!(r.image, Some(format!("sha256:{}", "b".repeat(64))), "{name}");
        assert_eq!(r.signers[0].name, "scanner");
        assert_eq!(r.attestation, digest_of(&env));
        assert!(!r.findings.is_empty(), "{name}: the report's findings");
    }
}

#[test]
fn untrusted_future_and_altered_attestations_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let (sk, trust) = key(t.path(), "scanner");
    let (other, _) = key(t.path(), "other");
    let env = attest(TRIVY_SECRETS, &other);
    let e = open(&env, &trust, year_2027(), Duration::from_secs(86400)).unwrap_err();
    assert!(e.to_string().contains("not signed by any trusted key"), "{e}");
    // Scanned 2026-12-04: in the future for a node whose clock says 2026-01-01.
    let env = attest(TRIVY_SECRETS, &sk);
    let jan = humantime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let e = open(&env, &trust, jan, Duration::from_secs(86400)).unwrap_err();
    assert!(e.to_string().contains("is in the future"), "{e}");
    // One byte of the payload changed: the signature no longer verifies.
    let mut v: serde_json::Value = serde_json::from_slice(&env).unwrap();
    let p = v["payload"].as_str().unwrap().to_string();
    let mut b = p.into_bytes();
    b[40] = if b[40] == b'A' { b'B' } else { b'A' };
    v["payload"] = String::from_utf8(b).unwrap().into();
    let e = open(&serde_json::to_vec(&v).unwrap(), &trust, year_2027(), Duration::from_secs(86400)).unwrap_err();
    assert!(matches!(e, AttestError::Untrusted(_) | AttestError::Envelope(_) | AttestError::Statement(_)), "{e}");
}

fn vex_envelope(sk: &SigningKey) -> Vec<u8> {
    let doc: Value = serde_json::from_slice(OPENVEX).unwrap();
    let st = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "registry.example/app:1", "digest": {"sha256": "b".repeat(64)}}],
        "predicateType": OPENVEX_PREDICATE,
        "predicate": doc,
    });
    sign(&serde_json::to_vec(&st).unwrap(), sk)
}

#[test]
fn a_signed_openvex_document_opens_and_an_old_one_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (sk, trust) = key(t.path(), "scanner");
    let env = vex_envelope(&sk);
    let dec = humantime::parse_rfc3339("2026-12-04T00:00:00Z").unwrap();
    let Opened::Vex(v) = open(&env, &trust, dec, Duration::from_secs(90 * 86400)).unwrap() else { panic!("not VEX") };
    assert!(v.statements.iter().any(|s| s.not_affected && s.ids.iter().any(|i| i == "CVE-2023-45853")), "{v:?}");
    let e = open(&env, &trust, year_2027(), Duration::from_secs(7 * 86400)).unwrap_err();
    assert!(e.to_string().contains("over [scan] vex_max_age"), "{e}");
}

#[test]
fn the_store_believes_records_under_the_node_key_and_reopens_the_others() {
    let t = tempfile::tempdir().unwrap();
    let (sk, trust) = key(t.path(), "scanner");
    let store = store::AttestStore::new(&t.path().join("seals"), &t.path().join("cache"));
    let env = attest(TRIVY_SECRETS, &sk);
    let opened = open(&env, &trust, year_2027(), Duration::from_secs(86400)).unwrap();
    let path = store.put(&env, &opened).unwrap();
    let tree = format!("sha256:{}", "a".repeat(64));
    let never = |_: &[u8]| -> Option<Opened> { panic!("a record under the node key is read as it is") };
    assert_eq!(store.scans(&tree, crate::scan::report::Severity::Unknown, &never).len(), 1);
    // A record rewritten without the key (fewer findings): not believed, the envelope decides.
    let record = path.with_extension("record");
    let text = std::fs::read_to_string(&record).unwrap();
    // Drop the finding lines, keep the header and the old MAC.
    let (body, mac) = text.rsplit_once('\n').unwrap();
    let findings = body.lines().count() - 1;
    assert!(findings > 0);
    let header = body.lines().next().unwrap();
    std::fs::write(&record, format!("{header}\n{mac}")).unwrap();
    let reopened = std::cell::Cell::new(0);
    let reopen = |b: &[u8]| {
        reopened.set(reopened.get() + 1);
        open(b, &trust, year_2027(), Duration::from_secs(86400)).ok()
    };
    let got = store.scans(&tree, crate::scan::report::Severity::Unknown, &reopen);
    assert_eq!((reopened.get(), got[0].findings.len()), (1, findings));
}

#[test]
fn a_record_is_read_down_to_the_threshold_only() {
    let t = tempfile::tempdir().unwrap();
    let (sk, trust) = key(t.path(), "scanner");
    let store = store::AttestStore::new(&t.path().join("seals"), &t.path().join("cache"));
    let env = attest(GRYPE, &sk);
    let opened = open(&env, &trust, year_2027(), Duration::from_secs(86400)).unwrap();
    let Opened::Scan(all) = &opened else { panic!() };
    store.put(&env, &opened).unwrap();
    let tree = format!("sha256:{}", "a".repeat(64));
    let never = |_: &[u8]| -> Option<Opened> { panic!("under the node key") };
    use crate::scan::report::Severity;
    for min in [Severity::Unknown, Severity::Medium, Severity::High, Severity::Critical] {
        let got = store.scans(&tree, min, &never);
        let want = all.findings.iter().filter(|f| f.severity >= min).count();
        assert_eq!(got[0].findings.len(), want, "{min}");
        assert!(got[0].findings.windows(2).all(|w| w[0].severity >= w[1].severity));
    }
}

#[test]
fn filed_records_count_only_while_their_signers_stay_trusted() {
    let t = tempfile::tempdir().unwrap();
    let (sk, trust) = key(t.path(), "scanner");
    let Opened::Scan(r) = open(&attest(TRIVY_SECRETS, &sk), &trust, year_2027(), Duration::from_secs(86400)).unwrap()
    else {
        panic!("not a scan")
    };
    assert_eq!(retrust_scans(vec![r.clone()], Some(&trust)), vec![r.clone()]);
    // Revoked, removed, or no trust store at all: the record vouches for nothing.
    let mut revoked = trust.clone();
    revoked.revoked.keys.push(r.signers[0].keyid.clone());
    let (_, other) = key(t.path(), "other");
    for trust in [Some(&revoked), Some(&other), None] {
        assert!(retrust_scans(vec![r.clone()], trust).is_empty());
    }
    // Renamed since the import: the store's current name is the one [scan] keys matches.
    let mut renamed = trust.clone();
    renamed.keys[0].name = "scan-2027".into();
    assert_eq!(retrust_scans(vec![r], Some(&renamed))[0].signers[0].name, "scan-2027");
}

#[test]
fn a_signed_statement_with_a_repeated_key_or_deep_nesting_is_refused_in_the_parsers_words() {
    let t = tempfile::tempdir().unwrap();
    let (sk, trust) = key(t.path(), "scanner");
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for (statement, want) in [
        (format!(r#"{{"_type":"{STATEMENT_TYPE}","_type":"x"}}"#), "attestation statement repeats the key \"_type\""),
        (
            format!(r#"{{"_type":"{STATEMENT_TYPE}","predicate":{deep}}}"#),
            "attestation statement nests deeper than 128",
        ),
    ] {
        let e = open(&sign(statement.as_bytes(), &sk), &trust, year_2027(), Duration::from_secs(86400)).unwrap_err();
        assert!(e.to_string().starts_with(want), "{e}");
    }
}
