//! A scanner report, `scan::report::parse`: untrusted until its signature is checked, and
//! shaped by the scanned image even then (package names, secret rule titles and file paths come
//! from it). Never panics; what parses keeps the invariants the scan gate relies on, and parses
//! the same way twice.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rootseal::scan::report::{self, FindingKind, Format};

fuzz_target!(|data: &[u8]| {
    let Ok(r) = report::parse(data) else { return };
    assert!(data.len() <= report::MAX_REPORT_BYTES);
    // The JSON gate ran: no repeated key anywhere.
    assert!(rootseal::json::check_no_duplicates(data).is_ok(), "a report with a repeated key parsed");
    assert!(!r.scanner.is_empty(), "a report without a scanner name parsed");
    for f in &r.findings {
        assert!(!f.id.is_empty(), "a finding without an id parsed");
        match (r.format, f.kind) {
            (Format::InTotoVulns, kind) => assert!(kind == FindingKind::Vulnerability && f.subject.is_empty()),
            (Format::GrypeJson, kind) => assert!(kind == FindingKind::Vulnerability && f.subject.contains('@')),
            (_, FindingKind::Vulnerability) => assert!(f.subject.contains('@'), "vulnerability subject {:?}", f.subject),
            (_, FindingKind::Secret) => assert!(f.subject.contains(':'), "secret subject {:?}", f.subject),
        }
    }
    if let (Some(a), Some(b)) = (r.scanned_at, r.db_updated_at) {
        // Both are real instants (RFC 3339 with a zone, after 1970): comparable, never a panic.
        let _ = a.duration_since(b);
    }
    assert_eq!(report::parse(data).as_ref(), Ok(&r), "a second parse differs");
});
