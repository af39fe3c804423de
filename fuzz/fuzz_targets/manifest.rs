//! The canonical manifest parser (docs/digest.md §3) and its escaping. The parser accepts
//! canonical bytes only, so whatever it accepts is its own canonical form: parse, print, parse
//! is the identity. Escaping is unique: `unescape` accepts exactly what `escape` prints.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rootseal::manifest::{self, Manifest};
use rootseal_fuzz::check_manifest;
use sha2::Digest as _;

fuzz_target!(|data: &[u8]| {
    // Escaping: every byte string round-trips through escape, and every accepted escaped
    // string is the one escape prints (no second spelling of the same bytes).
    let mut escaped = String::new();
    manifest::escape(data, &mut escaped);
    assert_eq!(manifest::unescape(&escaped).as_deref(), Ok(data), "escape {escaped:?} does not unescape back");
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(raw) = manifest::unescape(text) {
            let mut again = String::new();
            manifest::escape(&raw, &mut again);
            assert_eq!(again, text, "{text:?} unescapes to {raw:?}, whose escape is another spelling");
        }
    }

    // The streaming parser (what `Seal::parse` reads a decompressed manifest with) agrees with
    // the slice parser through a small buffer, hashes exactly what it read, and honours `max`.
    let streamed = Manifest::parse_reader(std::io::BufReader::with_capacity(7, data), u64::MAX, data.len() as u64);
    let parsed = Manifest::parse(data);
    assert_eq!(
        streamed.is_ok(),
        parsed.is_ok(),
        "parse_reader and parse disagree: {:?} / {:?}",
        streamed.as_ref().err(),
        parsed.as_ref().err()
    );
    let Ok(m) = parsed else { return };
    let (sm, digest) = streamed.expect("agreed above");
    assert_eq!(sm, m, "parse_reader gives another manifest");
    assert_eq!(
        digest.0,
        <[u8; 32]>::from(sha2::Sha256::digest(data)),
        "parse_reader's digest is not the hash of its input"
    );
    let len = data.len() as u64;
    assert!(Manifest::parse_reader(data, len, 0).is_ok(), "a manifest of exactly max bytes is refused");
    assert!(Manifest::parse_reader(data, len - 1, 1).is_err(), "a manifest over max bytes is accepted");
    let canonical = m.to_canonical();
    assert!(
        canonical == data,
        "accepted a non-canonical manifest: {:?} prints as {:?}",
        String::from_utf8_lossy(data),
        String::from_utf8_lossy(&canonical)
    );
    check_manifest(&m);
});
