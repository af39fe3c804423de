//! The seal parser (docs/seal.md): a DSSE envelope, strict base64, the in-toto statement, the
//! gzip'd manifest bound to the subject digest. Never panics; what parses is consistent; the
//! signature check runs on it against a fixed trust store (seeds are signed by its key).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rootseal::seal::{self, Seal};
use rootseal::verify;
use rootseal_fuzz::{check_manifest, now, trust};
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = Seal::parse(data) else { return };
    // Step 1 of verification binds the manifest to the subject digest.
    assert_eq!(s.manifest.digest(), s.digest, "the parsed manifest does not hash to the subject");
    check_manifest(&s.manifest);
    assert!(!s.signatures.is_empty() && s.signatures.len() <= seal::MAX_SIGNATURES);
    let prefix = format!("DSSEv1 {} {} ", seal::PAYLOAD_TYPE.len(), seal::PAYLOAD_TYPE);
    assert!(s.pae.starts_with(prefix.as_bytes()), "PAE without the DSSE prefix");
    if let Some(expires) = s.expires {
        let _ = expires.duration_since(s.created);
    }
    // Steps 2 to 4, against the fixed trust store.
    static TRUST: OnceLock<rootseal::trust::Trust> = OnceLock::new();
    let trust = TRUST.get_or_init(trust);
    match verify::check_seal(&s, trust, now(), 1) {
        Ok(signers) => {
            assert!(!signers.is_empty());
            for (_, sig) in &s.signatures {
                let _ = sig.to_bytes();
            }
        }
        Err(rejection) => {
            let _ = (rejection.code(), rejection.to_string());
        }
    }
    // Step 5 against the sealed tree itself: no difference.
    assert!(verify::compare(&s, &s.manifest, None).is_empty(), "a sealed tree differs from its own seal");
});
