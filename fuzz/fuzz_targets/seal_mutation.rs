//! A mutation of a valid seal never verifies as different content (docs/seal.md: the signature
//! covers the PAE of the payload, and the payload binds the manifest through the digest).
//!
//! The seal is built once, with `rootseal::seal::create`, over a small manifest with every entry
//! kind, signed by the fixed key the trust store trusts. The input is a list of edits, each 4
//! bytes `[op, pos_hi, pos_lo, value]`, applied to one of three views chosen by the first byte:
//! 0. the envelope JSON as it is;
//! 1. the decoded payload (statement JSON), re-wrapped with the original signature;
//! 2. the canonical manifest: when the edited text still parses, a new statement is built for it
//!    (new digest, same name and times) and wrapped with the original signature.
//!
//! Then: parse, check signatures (`verify::check_seal`) with the fixed trust store. Never panics;
//! whenever it verifies, the payload is the original byte for byte, so the subject digest, name,
//! manifest, times and image are the original's.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rootseal::manifest::{Entry, Kind, Manifest};
use rootseal::seal::{self, ImageSource, Seal, SealRequest};
use rootseal::verify;
use rootseal_fuzz::{now, signing_key, trust};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

struct Original {
    manifest: Manifest,
    payload: Vec<u8>,
    keyid: String,
    sig: Vec<u8>,
    envelope: Vec<u8>,
    seal: Seal,
    trust: rootseal::trust::Trust,
}

const NAME: &str = "registry.example/app:1.4";

fn created() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

fn request(m: &Manifest) -> SealRequest<'_> {
    SealRequest {
        manifest: m,
        name: NAME,
        created: created(),
        expires: Some(created() + Duration::from_secs(3650 * 86400)),
        image: Some(ImageSource {
            reference: NAME.into(),
            manifest_digest: Some(format!("sha256:{}", "ab".repeat(32))),
            config_digest: format!("sha256:{}", "cd".repeat(32)),
            layers: 2,
        }),
    }
}

fn original() -> &'static Original {
    static O: OnceLock<Original> = OnceLock::new();
    O.get_or_init(|| {
        let e = |path: &[u8], mode, kind| Entry { path: path.to_vec(), mode, uid: 0, gid: 0, kind };
        let manifest = Manifest::from_entries(vec![
            e(b"/bin", 0o755, Kind::Dir),
            e(b"/bin/busybox", 0o755, Kind::File { size: 1131168, sha256: [0x6e; 32], cap: None }),
            e(
                b"/bin/ping",
                0o4755,
                Kind::File { size: 71, sha256: [0x2b; 32], cap: Some(vec![1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0]) },
            ),
            e(b"/bin/sh", 0o777, Kind::Symlink { target: b"busybox".to_vec() }),
            e(b"/dev/null", 0o666, Kind::CharDev { major: 1, minor: 3 }),
            e(b"/dev/sda", 0o660, Kind::BlockDev { major: 8, minor: 0 }),
            e(b"/etc/motd", 0o644, Kind::File { size: 26, sha256: [0x9c; 32], cap: None }),
            e(b"/my file\xff", 0o644, Kind::File { size: 0, sha256: [0xe3; 32], cap: None }),
            e(b"/run/fifo", 0o600, Kind::Fifo),
            e(b"/run/sock", 0o600, Kind::Socket),
        ]);
        let key = signing_key();
        let req = request(&manifest);
        let envelope = seal::create(&req, &key);
        let payload = seal::statement(&req);
        let seal = Seal::parse(&envelope).expect("the original seal parses");
        let (keyid, sig) = seal.signatures[0].clone();
        let sig = sig.to_bytes().to_vec();
        assert_eq!(
            seal::envelope(&payload, &[(keyid.clone(), sig.clone())]),
            envelope,
            "create is envelope(statement)"
        );
        let trust = trust();
        verify::check_seal(&seal, &trust, now(), 1).expect("the original seal verifies");
        Original { manifest, payload, keyid, sig, envelope, seal, trust }
    })
}

/// Applies `[op, pos_hi, pos_lo, value]` edits: xor, insert, delete, overwrite.
fn mutate(mut buf: Vec<u8>, edits: &[u8]) -> Vec<u8> {
    for e in edits.chunks_exact(4).take(64) {
        let pos = usize::from(u16::from_be_bytes([e[1], e[2]]));
        let (op, v) = (e[0] % 4, e[3]);
        match op {
            0 if !buf.is_empty() => {
                let i = pos % buf.len();
                buf[i] ^= if v == 0 { 1 } else { v };
            }
            1 => {
                let i = pos % (buf.len() + 1);
                buf.insert(i, v);
            }
            2 if !buf.is_empty() => {
                let i = pos % buf.len();
                buf.remove(i);
            }
            3 if !buf.is_empty() => {
                let i = pos % buf.len();
                buf[i] = v;
            }
            _ => {}
        }
    }
    buf
}

fuzz_target!(|data: &[u8]| {
    let o = original();
    let Some((&view, edits)) = data.split_first() else { return };
    let original_sig = [(o.keyid.clone(), o.sig.clone())];
    let candidate = match view % 3 {
        0 => mutate(o.envelope.clone(), edits),
        1 => seal::envelope(&mutate(o.payload.clone(), edits), &original_sig),
        _ => {
            let text = mutate(o.manifest.to_canonical(), edits);
            let Ok(m) = Manifest::parse(&text) else { return };
            seal::envelope(&seal::statement(&request(&m)), &original_sig)
        }
    };
    let Ok(s) = Seal::parse(&candidate) else { return };
    let Ok(signers) = verify::check_seal(&s, &o.trust, now(), 1) else { return };
    // It verified: it must be the original content.
    assert_eq!(signers.len(), 1);
    assert_eq!(signers[0].name, "fuzz", "verified by a key that never signed");
    assert_eq!(s.pae, o.seal.pae, "a different payload verified");
    assert_eq!(s.digest, o.seal.digest, "a different subject digest verified");
    assert_eq!(s.name, o.seal.name, "a different subject name verified");
    assert_eq!(s.manifest, o.seal.manifest, "a different manifest verified");
    assert_eq!(s.created, o.seal.created);
    assert_eq!(s.expires, o.seal.expires);
    assert_eq!(s.predicate.image, o.seal.predicate.image);
    assert_eq!(s.predicate.entries, o.seal.predicate.entries);
    assert_eq!(s.predicate.file_bytes, o.seal.predicate.file_bytes);
});
