//! An OpenVEX document, `scan::vex::parse`: untrusted until its signature is checked. Never
//! panics; what parses has the fields OpenVEX v0.2.0 requires, and `Vex::latest` picks a
//! statement that names the vulnerability, applies, and is known no earlier than any other
//! that does.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rootseal::scan::vex::{self, VexStatus};

fuzz_target!(|data: &[u8]| {
    let Ok(v) = vex::parse(data) else { return };
    assert!(data.len() <= vex::MAX_VEX_BYTES);
    assert!(!v.id.is_empty() && !v.author.is_empty() && v.version >= 1 && !v.statements.is_empty());
    assert!(v.updated_at() >= v.timestamp);
    let _ = v.age(rootseal_fuzz::now());
    for s in &v.statements {
        assert!(!s.vulnerability.is_empty());
        for p in &s.products {
            assert!(!p.ids.is_empty() && p.ids.iter().chain(&p.subcomponents).all(|n| !n.is_empty()));
        }
        // A matcher for this statement's own products and subcomponents.
        let named = |id: &str| s.products.iter().any(|p| p.ids.iter().chain(&p.subcomponents).any(|n| n == id));
        let applies = s.applies_to(named, named);
        assert_eq!(applies, !s.products.is_empty(), "a statement does not apply to its own products");
        match v.latest(&s.vulnerability, named, named) {
            Some(l) => {
                assert!(l.names(&s.vulnerability) && l.applies_to(named, named));
                assert!(l.known_at(v.timestamp) >= s.known_at(v.timestamp), "an older statement won");
                assert_eq!(v.not_affected(&s.vulnerability, named), l.status == VexStatus::NotAffected);
            }
            None => assert!(!applies),
        }
    }
    assert_eq!(vex::parse(data).as_ref(), Ok(&v), "a second parse differs");
});
