//! Shared fixtures of the fuzz targets: the fixed signing key the seal targets trust, the layer
//! splitter of the `layer` target, and the invariants every accepted manifest must keep.

use ed25519_dalek::SigningKey;
use rootseal::keys::PublicKey;
use rootseal::manifest::Manifest;
use rootseal::trust::{Revocations, Trust, TrustedKey};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// The seed of the key every seal seed in `seeds/seal*` is signed with (see `make_seeds.sh`,
/// which writes it as a PKCS#8 PEM so that `rootseal seal` can sign with it). A fuzz key, not a
/// secret: nothing outside this directory may trust it.
pub const SEAL_KEY_SEED: [u8; 32] = *b"rootseal fuzz: fixed seal key 01";
/// A second trusted key, so that a mutated `keyid` can point a signature at the wrong key.
pub const OTHER_KEY_SEED: [u8; 32] = *b"rootseal fuzz: other trusted key";

pub fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&SEAL_KEY_SEED)
}

/// The trust store the seal targets verify against: the fixed key as `fuzz`, another as `other`.
pub fn trust() -> Trust {
    let key = |name: &str, seed: &[u8; 32]| TrustedKey {
        name: name.into(),
        key: PublicKey::new(SigningKey::from_bytes(seed).verifying_key()),
        path: PathBuf::from(format!("/fuzz/trust/{name}.pub")),
    };
    Trust { keys: vec![key("fuzz", &SEAL_KEY_SEED), key("other", &OTHER_KEY_SEED)], revoked: Revocations::default() }
}

/// The verifier's clock: 2026-11-29T12:00:00Z, after the seeds were created and before they
/// expire (they are sealed with `--expires 3650d`).
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_953_600)
}

/// Separates the layers of a `layer` input: tar data is 512-byte blocks, so a separator keeps a
/// mutation inside one layer from shifting the others.
pub const LAYER_SEPARATOR: &[u8] = b"\n--rootseal-fuzz-next-layer--\n";

/// Splits a `layer` input into 1 to 3 layers at [`LAYER_SEPARATOR`]; the third layer takes the
/// rest, separators included.
pub fn split_layers(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(3);
    let mut rest = data;
    while out.len() < 2 {
        match find(rest, LAYER_SEPARATOR) {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + LAYER_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What every manifest rootseal accepts or builds must satisfy (docs/digest.md §3): paths
/// sorted by raw bytes and unique, absolute and clean, below the root; the canonical form parses
/// back to the same manifest, byte for byte, and hashes to `digest()`.
pub fn check_manifest(m: &Manifest) {
    use sha2::Digest as _;
    for w in m.entries().windows(2) {
        assert!(w[0].path < w[1].path, "entries out of order or repeated: {:?} then {:?}", w[0].path, w[1].path);
    }
    for e in m.entries() {
        assert!(e.path.len() >= 2 && e.path[0] == b'/', "path {:?} is not below the root", e.path);
        assert!(e.mode <= 0o7777, "mode {:o} of {:?}", e.mode, e.path);
    }
    let canonical = m.to_canonical();
    let again = Manifest::parse(&canonical).unwrap_or_else(|e| panic!("canonical form does not parse: {e}"));
    assert_eq!(&again, m, "canonical form parses to another manifest");
    assert_eq!(again.to_canonical(), canonical, "canonical form is not stable");
    assert_eq!(
        m.digest().0,
        <[u8; 32]>::from(sha2::Sha256::digest(&canonical)),
        "digest() is not the hash of to_canonical()"
    );
}

/// A path is clean when it has no empty, `.` or `..` component (docs/digest.md §1: the path from
/// the root, as a walk gives it).
pub fn is_clean(path: &[u8]) -> bool {
    path.first() == Some(&b'/') && path[1..].split(|&b| b == b'/').all(|c| !c.is_empty() && c != b"." && c != b"..")
}
