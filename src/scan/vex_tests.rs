//! A document as vexctl writes one for an image (testdata/openvex-0.2.0-image.json: a
//! statement scoped to a subcomponent of the image, an investigation then a verdict on one
//! package, an advisory found by its alias, a statement without products), the "which
//! statement counts" rules, and every kind of bad document.

use super::*;
use crate::scan::MAX_DEPTH;

const IMAGE: &str = include_str!("testdata/openvex-0.2.0-image.json");
/// The spec's "Updating Statements with Inherited Data" case: a statement appended to a
/// document inherits the document's new timestamp, the earlier one keeps its own.
const APPENDED: &str = include_str!("testdata/openvex-0.2.0-appended.json");
const IMAGE_ID: &str = "pkg:oci/api@sha256%3A0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d?repository_url=registry.example/shop/api";
const ZLIB: &str = "pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?arch=amd64&distro=debian-12";
const LIBC: &str = "pkg:deb/debian/libc6@2.36-9%2Bdeb12u1?arch=amd64&distro=debian-12";
const REQUESTS: &str = "pkg:pypi/requests@2.31.0";

fn utc(text: &str) -> SystemTime {
    crate::scan::parse_time(text, crate::scan::Zone::UtcOnly).unwrap().unwrap()
}

/// A product matcher for `names`, as the gate would build one for the image and a finding's
/// package.
fn any_of<'a>(names: &'a [&'a str]) -> impl Fn(&str) -> bool + 'a {
    move |id| names.contains(&id)
}

#[test]
fn a_vexctl_style_document() {
    let v = parse(IMAGE.as_bytes()).unwrap();
    assert_eq!(
        v.id,
        "https://openvex.dev/docs/public/vex-6f0f3c1b7a9e4d2c8b5a1e3f7d9c2b4a6e8f0a1c3e5b7d9f2a4c6e8b0d2f4a6c"
    );
    assert_eq!(v.author, "Shop Platform Team <platform@shop.example>");
    assert_eq!(v.version, 3);
    assert_eq!(v.timestamp, utc("2026-11-20T13:02:11.512345678Z"));
    assert_eq!(v.last_updated, Some(utc("2026-11-25T09:00:00Z")));
    assert_eq!(v.statements.len(), 5);
    assert_eq!(
        v.statements[0],
        VexStatement {
            vulnerability: "CVE-2023-45853".into(),
            aliases: vec![],
            products: vec![VexProduct { ids: vec![IMAGE_ID.into()], subcomponents: vec![ZLIB.into()] }],
            status: VexStatus::NotAffected,
            justification: Some(Justification::VulnerableCodeNotInExecutePath),
            timestamp: Some(utc("2026-11-20T13:02:11.512345678Z")),
            last_updated: None,
        }
    );
    let libc = &v.statements[1].products[0];
    assert_eq!(libc.ids, [LIBC, "cpe:2.3:a:gnu:glibc:2.36:*:*:*:*:*:*:*"]);
    assert_eq!(v.statements[2].justification, None);
    assert_eq!(v.statements[2].timestamp, Some(utc("2026-11-15T21:45:00Z")));
    assert_eq!(v.statements[3].aliases, ["CVE-2024-35195"]);
    assert_eq!((v.statements[3].status, v.statements[3].timestamp), (VexStatus::Affected, None));
    assert!(v.statements[4].products.is_empty());
}

#[test]
fn a_subcomponent_scopes_the_statement() {
    let v = parse(IMAGE.as_bytes()).unwrap();
    // zlib1g in the image: not affected.
    assert!(v.not_affected("CVE-2023-45853", any_of(&[IMAGE_ID, ZLIB])));
    // The same CVE found in another package of the image: the statement is not about it.
    assert!(!v.not_affected("CVE-2023-45853", any_of(&[IMAGE_ID, LIBC])));
    // zlib1g, but in another image.
    assert!(!v.not_affected("CVE-2023-45853", any_of(&["pkg:oci/other@sha256%3A00", ZLIB])));
    // The two predicates of `latest` are separate: the image as a subcomponent does not count.
    assert!(v.latest("CVE-2023-45853", any_of(&[IMAGE_ID]), any_of(&[IMAGE_ID])).is_none());
    assert!(v.latest("CVE-2023-45853", any_of(&[IMAGE_ID]), any_of(&[ZLIB])).is_some());
}

#[test]
fn the_latest_statement_wins() {
    let v = parse(IMAGE.as_bytes()).unwrap();
    // under_investigation on 11-10, not_affected on 11-15 (written 11-15T16:45-05:00).
    let s = v.latest("CVE-2023-4911", any_of(&[LIBC]), any_of(&[])).unwrap();
    assert_eq!(s.status, VexStatus::NotAffected);
    assert!(v.not_affected("CVE-2023-4911", any_of(&[IMAGE_ID, LIBC])));
    // Swap the dates: the investigation is then the newer word.
    let swapped = IMAGE
        .replace("2026-11-10T08:30:00Z", "2026-11-16T08:30:00Z")
        .replace("2026-11-15T16:45:00-05:00", "2026-11-10T08:30:00Z");
    let v = parse(swapped.as_bytes()).unwrap();
    assert_eq!(v.latest("CVE-2023-4911", any_of(&[LIBC]), any_of(&[])).unwrap().status, VexStatus::UnderInvestigation);
    assert!(!v.not_affected("CVE-2023-4911", any_of(&[LIBC])));
}

#[test]
fn an_appended_statement_inherits_the_newer_document_timestamp() {
    let v = parse(APPENDED.as_bytes()).unwrap();
    assert_eq!(v.statements[1].timestamp, None);
    let git = any_of(&["pkg:apk/wolfi/git@2.44.0-r1?arch=x86_64"]);
    let s = v.latest("CVE-2026-12345", &git, &git).unwrap();
    assert_eq!(s.status, VexStatus::Fixed);
    assert_eq!(s.known_at(v.timestamp), utc("2026-03-09T15:08:42Z"));
    assert!(!v.not_affected("CVE-2026-12345", git));
}

#[test]
fn aliases_name_the_vulnerability_in_any_case() {
    let v = parse(IMAGE.as_bytes()).unwrap();
    for id in ["GHSA-9wx4-h78v-vm56", "CVE-2024-35195", "cve-2024-35195"] {
        let s = v.latest(id, any_of(&[IMAGE_ID, REQUESTS]), any_of(&[IMAGE_ID, REQUESTS])).unwrap();
        assert_eq!(s.status, VexStatus::Affected, "{id}");
        assert!(!v.not_affected(id, any_of(&[IMAGE_ID, REQUESTS])));
    }
    assert!(v.latest("CVE-2024-3519", any_of(&[IMAGE_ID]), any_of(&[])).is_none());
}

#[test]
fn a_statement_without_products_applies_to_nothing_here() {
    let v = parse(IMAGE.as_bytes()).unwrap();
    assert!(!v.not_affected("CVE-2005-2541", |_| true));
}

/// A document with `statements` and everything else minimal.
fn doc(statements: &str) -> String {
    format!(
        r#"{{"@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://openvex.dev/docs/example/vex-1",
            "author": "a", "timestamp": "2026-01-10T00:00:00Z", "version": 1, "statements": [{statements}]}}"#
    )
}

fn stmt(status: &str, extra: &str) -> String {
    format!(
        r#"{{"vulnerability": {{"name": "CVE-2026-1"}}, "products": [{{"@id": "pkg:x/p@1"}}], "status": "{status}"{extra}}}"#
    )
}

#[test]
fn ties_go_to_the_later_statement_and_last_updated_counts() {
    // Both inherit the document's timestamp: the one written later in the document wins.
    let v =
        parse(doc(&[stmt("affected", r#", "action_statement": "upgrade""#), stmt("fixed", "")].join(",")).as_bytes())
            .unwrap();
    assert_eq!(v.latest("CVE-2026-1", any_of(&["pkg:x/p@1"]), any_of(&[])).unwrap().status, VexStatus::Fixed);
    let v =
        parse(doc(&[stmt("fixed", ""), stmt("affected", r#", "action_statement": "upgrade""#)].join(",")).as_bytes())
            .unwrap();
    assert_eq!(v.latest("CVE-2026-1", any_of(&["pkg:x/p@1"]), any_of(&[])).unwrap().status, VexStatus::Affected);
    // An explicit timestamp older than the document's loses to one that inherits it...
    let old =
        stmt("not_affected", r#", "justification": "component_not_present", "timestamp": "2026-01-01T00:00:00Z""#);
    let v = parse(doc(&[stmt("fixed", ""), old.clone()].join(",")).as_bytes()).unwrap();
    assert_eq!(v.latest("CVE-2026-1", any_of(&["pkg:x/p@1"]), any_of(&[])).unwrap().status, VexStatus::Fixed);
    // ...unless it was updated since.
    let updated = old.replace(r#""timestamp""#, r#""last_updated": "2026-02-01T00:00:00Z", "timestamp""#);
    let v = parse(doc(&[stmt("fixed", ""), updated].join(",")).as_bytes()).unwrap();
    assert!(v.not_affected("CVE-2026-1", any_of(&["pkg:x/p@1"])));
}

#[test]
fn age_runs_from_the_last_update() {
    let v = parse(IMAGE.as_bytes()).unwrap();
    assert_eq!(v.updated_at(), utc("2026-11-25T09:00:00Z"));
    assert_eq!(v.age(utc("2026-12-05T09:00:00Z")), Duration::from_secs(10 * 86_400));
    // Dated after `now`: zero, not an error.
    assert_eq!(v.age(utc("2026-11-01T00:00:00Z")), Duration::ZERO);
    // Without last_updated, from the timestamp; a last_updated before it does not make it older.
    let v = parse(doc(&stmt("fixed", "")).as_bytes()).unwrap();
    assert_eq!(v.age(utc("2026-01-11T00:00:00Z")), Duration::from_secs(86_400));
    let d = doc(&stmt("fixed", "")).replace(r#""version""#, r#""last_updated": "2025-01-01T00:00:00Z", "version""#);
    assert_eq!(parse(d.as_bytes()).unwrap().updated_at(), utc("2026-01-10T00:00:00Z"));
}

#[test]
fn labels_round_trip() {
    for s in [VexStatus::NotAffected, VexStatus::Affected, VexStatus::Fixed, VexStatus::UnderInvestigation] {
        assert_eq!(VexStatus::parse(s.as_str()), Some(s));
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("{:?}", s.as_str()));
    }
    for (label, j) in Justification::ALL {
        assert_eq!((Justification::parse(label), j.as_str()), (Some(j), label));
        assert_eq!(serde_json::to_string(&j).unwrap(), format!("{label:?}"));
    }
    assert_eq!(VexStatus::parse("Not_Affected"), None);
}

// --- bad documents -----------------------------------------------------------------------------

fn err(text: &str) -> VexError {
    parse(text.as_bytes()).expect_err(text)
}

#[test]
fn the_json_gate_applies() {
    let mut big = doc(&stmt("fixed", "")).into_bytes();
    big.resize(MAX_VEX_BYTES + 1, b' ');
    assert_eq!(
        parse(&big).unwrap_err(),
        VexError::Json(JsonGateError::TooLarge { size: MAX_VEX_BYTES + 1, limit: MAX_VEX_BYTES })
    );
    let dup = IMAGE.replacen(r#""status": "not_affected","#, r#""status": "affected", "status": "not_affected","#, 1);
    assert_eq!(err(&dup), VexError::Json(JsonGateError::DuplicateKey("status".into())));
    let deep = doc(&stmt("fixed", &format!(r#", "x": {}{}"#, "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH))));
    let e = err(&deep);
    assert_eq!(e, VexError::Json(JsonGateError::TooDeep));
    assert!(e.to_string().starts_with("VEX document nests deeper than 128 levels"), "{e}");
    assert!(matches!(err("{"), VexError::Json(JsonGateError::Syntax(_))));
}

#[test]
fn only_openvex_0_2_0() {
    for text in ["[]", "{}", r#"{"@context": 1}"#, r#"{"bomFormat": "CycloneDX"}"#] {
        assert_eq!(err(text), VexError::NotOpenVex, "{text}");
    }
    let v001 = IMAGE.replace("https://openvex.dev/ns/v0.2.0", "https://openvex.dev/ns");
    assert_eq!(err(&v001), VexError::Context("https://openvex.dev/ns".into()));
    // A v0.0.1-style statement (vulnerability as a string) under the v0.2.0 context.
    let old = IMAGE.replacen(
        r#""vulnerability": {
        "name": "CVE-2023-4911"
      }"#,
        r#""vulnerability": "CVE-2023-4911""#,
        1,
    );
    assert!(matches!(err(&old), VexError::Schema(why) if why.contains("invalid type: string \"CVE-2023-4911\"")));
}

#[test]
fn required_document_fields() {
    let d = doc(&stmt("fixed", ""));
    assert!(
        matches!(err(&d.replace(r#""author": "a","#, "")), VexError::Schema(w) if w.contains("missing field `author`"))
    );
    assert!(
        matches!(err(&d.replace(r#""version": 1,"#, "")), VexError::Schema(w) if w.contains("missing field `version`"))
    );
    assert!(
        matches!(err(&d.replace(r#""version": 1"#, r#""version": "1""#)), VexError::Schema(w) if w.contains("invalid type"))
    );
    assert!(matches!(err(&d.replace(r#""version": 1"#, r#""version": -1"#)), VexError::Schema(_)));
    assert!(matches!(
        err(&d.replace(r#""timestamp": "2026-01-10T00:00:00Z","#, "")),
        VexError::Schema(w) if w.contains("missing field `timestamp`")
    ));
    let id = "https://openvex.dev/docs/example/vex-1".to_string();
    assert_eq!(
        err(&d.replace(r#""author": "a""#, r#""author": """#)),
        VexError::Empty { id: id.clone(), field: "author" }
    );
    assert_eq!(err(&d.replace(&id, "")), VexError::Empty { id: String::new(), field: "@id" });
    assert_eq!(err(&d.replace(r#""version": 1"#, r#""version": 0"#)), VexError::VersionZero { id: id.clone() });
    assert_eq!(err(&doc("")), VexError::NoStatements { id: id.clone() });
}

#[test]
fn bad_timestamps_name_the_field() {
    let d = doc(&stmt("fixed", ""));
    let time_err = |text: &str| match err(text) {
        VexError::Time { field, why, .. } => (field, why),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        time_err(&d.replace("2026-01-10T00:00:00Z", "2026-01-10T00:00:00")),
        ("timestamp".into(), TimeError::NoZone)
    );
    assert_eq!(
        time_err(&d.replace("2026-01-10T00:00:00Z", "0001-01-01T00:00:00Z")),
        ("timestamp".into(), TimeError::Unset)
    );
    let d2 = doc(&[stmt("fixed", ""), stmt("fixed", r#", "timestamp": "Jan 10 2026""#)].join(","));
    assert_eq!(time_err(&d2), ("statements[1].timestamp".into(), TimeError::Syntax));
    let d3 = doc(&stmt("fixed", r#", "last_updated": "2026-02-30T00:00:00Z""#));
    assert_eq!(time_err(&d3), ("statements[0].last_updated".into(), TimeError::Range));
    let d4 = d.replace(r#""version""#, r#""last_updated": "2026-01-10T00:00:00+0100", "version""#);
    assert_eq!(time_err(&d4), ("last_updated".into(), TimeError::Syntax));
    // Go's zero time on a statement: not set, so inherited.
    let d5 = doc(&stmt("fixed", r#", "timestamp": "0001-01-01T00:00:00Z""#));
    assert_eq!(parse(d5.as_bytes()).unwrap().statements[0].timestamp, None);
}

#[test]
fn statements_are_checked_against_the_spec() {
    let id = || "https://openvex.dev/docs/example/vex-1".to_string();
    let vuln = || "CVE-2026-1".to_string();
    let e = err(&doc(&stmt("unaffected", "")));
    assert_eq!(e, VexError::Status { id: id(), index: 0, vuln: vuln(), value: "unaffected".into() });
    assert!(e.to_string().contains("expected not_affected, affected, fixed or under_investigation"), "{e}");
    let e = err(&doc(&stmt("not_affected", r#", "justification": "not_reachable""#)));
    assert_eq!(e, VexError::Justification { id: id(), index: 0, vuln: vuln(), value: "not_reachable".into() });
    assert_eq!(err(&doc(&stmt("not_affected", ""))), VexError::NoJustification { id: id(), index: 0, vuln: vuln() });
    let blank = stmt("not_affected", r#", "impact_statement": "  ""#);
    assert_eq!(err(&doc(&blank)), VexError::NoJustification { id: id(), index: 0, vuln: vuln() });
    // An impact statement alone is enough (the spec discourages it, but allows it).
    assert!(parse(doc(&stmt("not_affected", r#", "impact_statement": "not reachable""#)).as_bytes()).is_ok());
    assert_eq!(err(&doc(&stmt("affected", ""))), VexError::NoActionStatement { id: id(), index: 0, vuln: vuln() });
    let unnamed = doc(r#"{"vulnerability": {"name": ""}, "status": "fixed"}"#);
    assert_eq!(err(&unnamed), VexError::NoVulnerability { id: id(), index: 0 });
    let no_vuln = doc(r#"{"products": [{"@id": "pkg:x/p@1"}], "status": "fixed"}"#);
    assert!(matches!(err(&no_vuln), VexError::Schema(w) if w.contains("missing field `vulnerability`")));
    let no_status = doc(r#"{"vulnerability": {"name": "CVE-2026-1"}}"#);
    assert!(matches!(err(&no_status), VexError::Schema(w) if w.contains("missing field `status`")));
}

#[test]
fn every_product_and_subcomponent_must_be_named() {
    let id = || "https://openvex.dev/docs/example/vex-1".to_string();
    let with = |products: &str| {
        doc(&format!(r#"{{"vulnerability": {{"name": "CVE-2026-1"}}, "products": [{products}], "status": "fixed"}}"#))
    };
    let unnamed = |what| VexError::Unidentified { id: id(), index: 0, vuln: "CVE-2026-1".into(), what };
    assert_eq!(err(&with(r#"{"hashes": {"sha-256": "00"}}"#)), unnamed("product"));
    assert_eq!(err(&with(r#"{"@id": "", "identifiers": {}}"#)), unnamed("product"));
    assert_eq!(
        err(&with(r#"{"@id": "pkg:x/p@1", "subcomponents": [{"identifiers": {"purl": ""}}]}"#)),
        unnamed("subcomponent")
    );
    let v = parse(with(r#"{"identifiers": {"cpe22": "cpe:/a:x:p:1"}, "subcomponents": [{"identifiers": {"purl": "pkg:x/s@1", "cpe23": "cpe:2.3:a:x:s:1:*:*:*:*:*:*:*"}}, {"@id": "pkg:x/t@1"}]}"#).as_bytes()).unwrap();
    assert_eq!(
        v.statements[0].products,
        [VexProduct {
            ids: vec!["cpe:/a:x:p:1".into()],
            subcomponents: vec!["pkg:x/s@1".into(), "cpe:2.3:a:x:s:1:*:*:*:*:*:*:*".into(), "pkg:x/t@1".into()],
        }]
    );
}
