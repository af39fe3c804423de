//! Hostile seals, built by editing the fixture's real envelope in Rust (decode the payload,
//! edit the JSON text, re-encode, re-sign with the test key where the case needs a valid
//! signature) and written over the seal the store files for the rootfs's digest: the hook
//! finds it by content key (src/hook/mod.rs `candidates`), so it is the only seal tried. `trust
//! import` would refuse every one of them; the hook must refuse them too (docs/seal.md).

use super::*;
use crate::harness::*;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use rootseal::keys::PublicKey;
use rootseal::seal::{pae, PAYLOAD_TYPE};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The fixture's sealed statement and the key that signed it.
struct Sealed<'a> {
    f: &'a Fixture,
    key: SigningKey,
    keyid: String,
    /// The statement (the DSSE payload), compact JSON as `rootseal seal` wrote it.
    statement: String,
}

impl<'a> Sealed<'a> {
    fn new(f: &'a Fixture) -> Sealed<'a> {
        let env: serde_json::Value = serde_json::from_slice(&std::fs::read(&f.seal).unwrap()).unwrap();
        let statement = String::from_utf8(B64.decode(env["payload"].as_str().unwrap()).unwrap()).unwrap();
        let key = rootseal::keys::load_signing_key(&f.key).unwrap();
        let keyid = PublicKey::new(key.verifying_key()).keyid;
        Sealed { f, key, keyid, statement }
    }

    /// A signature by the fixture's key over the PAE of (`payload_type`, `payload`).
    fn sign(&self, payload_type: &str, payload: &[u8]) -> Vec<u8> {
        self.key.sign(&pae(payload_type, payload)).to_bytes().to_vec()
    }

    /// The envelope for `payload`, validly signed by the fixture's key.
    fn signed(&self, payload: &str) -> String {
        let sig = self.sign(PAYLOAD_TYPE, payload.as_bytes());
        envelope(PAYLOAD_TYPE, &B64.encode(payload), &[(&self.keyid, &B64.encode(sig))])
    }

    /// Writes `bytes` where the seal store files this rootfs's seal.
    fn place(&self, bytes: impl AsRef<[u8]>) {
        std::fs::write(stored_seal_path(self.f), bytes).unwrap();
    }

    /// The subject's digest hex, as it appears in the statement.
    fn hex(&self) -> String {
        sealed_digest(self.f).hex()
    }
}

fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Envelope JSON text, fields in the usual order, nothing escaped beyond JSON's rules.
fn envelope(payload_type: &str, payload_b64: &str, sigs: &[(&str, &str)]) -> String {
    let sigs: Vec<String> = sigs.iter().map(|(k, s)| format!("{{\"keyid\":{},\"sig\":{}}}", js(k), js(s))).collect();
    format!(
        "{{\"payloadType\":{},\"payload\":{},\"signatures\":[{}]}}\n",
        js(payload_type),
        js(payload_b64),
        sigs.join(",")
    )
}

/// A hostile seal: runc must be blocked with `runc_expect` (text without quotes, which runc
/// escapes) and the hook, run directly, with exactly `line_expect` on its one line.
fn assert_seal_blocked(f: &Fixture, runc_expect: &[&str], line_expect: &str) {
    assert_blocks(f, runc_expect);
    prestart(f).assert_blocked(line_expect);
}

#[test]
fn control_an_envelope_rebuilt_and_resigned_by_the_suite_runs() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    s.place(s.signed(&s.statement));
    assert_runs(&f);
}

#[test]
fn a_duplicate_key_in_the_envelope_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let good = s.signed(&s.statement);
    s.place(good.replacen("{\"payloadType\":", "{\"payloadType\":\"text/plain\",\"payloadType\":", 1));
    assert_seal_blocked(&f, &["repeats key", "payloadType"], "seal JSON repeats key \"payloadType\"");
}

#[test]
fn an_escaped_duplicate_key_in_the_envelope_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let good = s.signed(&s.statement);
    // "payl\u006fadType" is "payloadType": a parser keeping the last would see text/plain.
    s.place(good.replacen("\"signatures\":", "\"payl\\u006fadType\":\"text/plain\",\"signatures\":", 1));
    assert_seal_blocked(&f, &["repeats key", "payloadType"], "seal JSON repeats key \"payloadType\"");
}

#[test]
fn duplicate_keys_inside_a_signature_entry_are_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let good = s.signed(&s.statement);
    s.place(good.replacen("{\"keyid\":", "{\"keyid\":\"attacker\",\"keyid\":", 1));
    assert_seal_blocked(&f, &["repeats key", "keyid"], "seal JSON repeats key \"keyid\"");
    let junk = B64.encode([0u8; 64]);
    s.place(good.replacen("\"sig\":", &format!("\"si\\u0067\":\"{junk}\",\"sig\":"), 1));
    assert_seal_blocked(&f, &["repeats key", "sig"], "seal JSON repeats key \"sig\"");
}

#[test]
fn an_escaped_duplicate_subject_digest_in_a_validly_signed_statement_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let hex = s.hex();
    let other = "0".repeat(64);
    let st = s.statement.replacen(
        &format!("{{\"sha256\":\"{hex}\"}}"),
        &format!("{{\"sha\\u0032\\u0035\\u0036\":\"{other}\",\"sha256\":\"{hex}\"}}"),
        1,
    );
    assert_ne!(st, s.statement);
    s.place(s.signed(&st));
    assert_seal_blocked(&f, &["repeats key", "sha256"], "seal JSON repeats key \"sha256\"");
}

#[test]
fn duplicate_keys_deep_in_a_validly_signed_statement_are_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    for (from, to, key) in [
        ("{\"_type\":", "{\"_type\":\"x\",\"_type\":", "_type"),
        ("\"manifest\":{\"encoding\":", "\"manifest\":{\"dat\\u0061\":\"\",\"encoding\":", "data"),
        ("\"predicate\":{", "\"predicate\":{\"created\":\"2001-01-01T00:00:00Z\",", "created"),
    ] {
        let st = s.statement.replacen(from, to, 1);
        assert_ne!(st, s.statement, "{from}");
        s.place(s.signed(&st));
        assert_seal_blocked(&f, &["repeats key", key], &format!("seal JSON repeats key \"{key}\""));
    }
}

#[test]
fn payload_type_variants_are_refused_even_when_signed() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    for pt in [
        "Application/vnd.in-toto+json",
        "application/vnd.in-toto+json ",
        " application/vnd.in-toto+json",
        "application/vnd.in-toto+JSON",
        "application/vnd.in-toto+json\u{0}",
    ] {
        // Signed over the PAE with the variant type: only the exact type may verify.
        let sig = s.sign(pt, s.statement.as_bytes());
        s.place(envelope(pt, &B64.encode(&s.statement), &[(&s.keyid, &B64.encode(sig))]));
        assert_seal_blocked(
            &f,
            &["payloadType is"],
            &format!("seal payloadType is {pt:?}, expected \"{PAYLOAD_TYPE}\""),
        );
    }
}

#[test]
fn a_signature_over_the_raw_payload_instead_of_pae_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let sig = s.key.sign(s.statement.as_bytes()).to_bytes();
    s.place(envelope(PAYLOAD_TYPE, &B64.encode(&s.statement), &[(&s.keyid, &B64.encode(sig))]));
    assert_seal_blocked(
        &f,
        &["has a signature claiming trusted key ci-2026 that does not verify"],
        "has a signature claiming trusted key ci-2026 that does not verify",
    );
}

#[test]
fn a_keyid_naming_the_trusted_key_but_signed_by_another_key_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let other = SigningKey::from_bytes(&[7; 32]);
    let sig = other.sign(&pae(PAYLOAD_TYPE, s.statement.as_bytes())).to_bytes();
    s.place(envelope(PAYLOAD_TYPE, &B64.encode(&s.statement), &[(&s.keyid, &B64.encode(sig))]));
    assert_seal_blocked(
        &f,
        &["claiming trusted key ci-2026 that does not verify"],
        "claiming trusted key ci-2026 that does not verify",
    );
}

#[test]
fn the_same_key_twice_never_meets_a_threshold_of_two() {
    let f = Fixture::new();
    config(&f, "[hook]\nmin_signers = 2");
    let s = Sealed::new(&f);
    let sig = B64.encode(s.sign(PAYLOAD_TYPE, s.statement.as_bytes()));
    let payload = B64.encode(&s.statement);
    let second = PublicKey::new(SigningKey::from_bytes(&[9; 32]).verifying_key()).keyid;
    for sigs in [
        vec![(s.keyid.as_str(), sig.as_str()), (s.keyid.as_str(), sig.as_str())],
        // The same signature again under no keyid and under an unknown one.
        vec![(s.keyid.as_str(), sig.as_str()), ("", sig.as_str()), (second.as_str(), sig.as_str())],
    ] {
        s.place(envelope(PAYLOAD_TYPE, &payload, &sigs));
        assert_seal_blocked(
            &f,
            &["has 1 trusted signature(s), policy requires 2"],
            "has 1 trusted signature(s), policy requires 2",
        );
    }
}

#[test]
fn control_two_distinct_trusted_keys_meet_a_threshold_of_two() {
    let f = Fixture::new();
    let (k2, p2) = f.env.keygen("ci-2027");
    f.env.expect(0, [std::ffi::OsStr::new("trust"), std::ffi::OsStr::new("add"), p2.as_os_str()]);
    config(&f, "[hook]\nmin_signers = 2");
    let s = Sealed::new(&f);
    assert_blocks(&f, &["has 1 trusted signature(s), policy requires 2"]);
    let k2 = rootseal::keys::load_signing_key(&k2).unwrap();
    let id2 = PublicKey::new(k2.verifying_key()).keyid;
    let sig1 = B64.encode(s.sign(PAYLOAD_TYPE, s.statement.as_bytes()));
    let sig2 = B64.encode(k2.sign(&pae(PAYLOAD_TYPE, s.statement.as_bytes())).to_bytes());
    s.place(envelope(PAYLOAD_TYPE, &B64.encode(&s.statement), &[(&s.keyid, &sig1), (&id2, &sig2)]));
    assert_runs(&f);
}

/// The group order of ed25519, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

#[test]
fn a_non_canonical_s_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let mut sig = s.sign(PAYLOAD_TYPE, s.statement.as_bytes());
    // s + L: the same scalar mod L, so a verifier that reduces s would accept it.
    let mut carry = 0u16;
    for i in 0..32 {
        let v = sig[32 + i] as u16 + L[i] as u16 + carry;
        sig[32 + i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
    s.place(envelope(PAYLOAD_TYPE, &B64.encode(&s.statement), &[(&s.keyid, &B64.encode(&sig))]));
    assert_seal_blocked(
        &f,
        &["claiming trusted key ci-2026 that does not verify"],
        "claiming trusted key ci-2026 that does not verify",
    );
}

/// Small-order points (compressed Edwards y): the identity and a point of order 8.
const IDENTITY: [u8; 32] = {
    let mut p = [0u8; 32];
    p[0] = 1;
    p
};
const ORDER_8: &str = "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05";

#[test]
fn a_small_order_trusted_key_with_a_small_order_r_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    // A trusted key that is the identity: with R = identity and s = 0, the cofactorless
    // equation [s]B = R + [k]A holds for every message.
    let weak = VerifyingKey::from_bytes(&IDENTITY).unwrap();
    assert!(weak.is_weak());
    let weak_pub = PublicKey::new(weak);
    std::fs::write(f.env.path("trust/weak.pub"), weak_pub.to_pem()).unwrap();
    let mut forged = [0u8; 64];
    forged[..32].copy_from_slice(&IDENTITY);
    let sig = ed25519_dalek::Signature::from_bytes(&forged);
    let msg = pae(PAYLOAD_TYPE, s.statement.as_bytes());
    assert!(weak.verify(&msg, &sig).is_ok(), "the forgery passes a non-strict verifier");
    s.place(envelope(PAYLOAD_TYPE, &B64.encode(&s.statement), &[(&weak_pub.keyid, &B64.encode(forged))]));
    assert_seal_blocked(
        &f,
        &["claiming trusted key weak that does not verify"],
        "claiming trusted key weak that does not verify",
    );
}

#[test]
fn a_small_order_r_with_the_trusted_key_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let r = rootseal::manifest::parse_hex(ORDER_8).unwrap();
    assert!(VerifyingKey::from_bytes(&r.clone().try_into().unwrap()).unwrap().is_weak(), "a small-order point");
    for r in [r.as_slice(), &IDENTITY[..]] {
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(r);
        s.place(envelope(PAYLOAD_TYPE, &B64.encode(&s.statement), &[(&s.keyid, &B64.encode(forged))]));
        assert_seal_blocked(
            &f,
            &["claiming trusted key ci-2026 that does not verify"],
            "claiming trusted key ci-2026 that does not verify",
        );
    }
}

#[test]
fn a_url_safe_payload_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    // A statement that is plain ASCII encodes to '+' or '/' (the letters URL-safe changes) only
    // where a byte like '?' lands last in a 3-byte group: add a field holding "???" (the
    // statement admits unknown fields).
    let st = format!("{},\"comment\":\"???\"}}", s.statement.strip_suffix('}').unwrap());
    assert!(B64.encode(&st).contains('/'));
    let sig = B64.encode(s.sign(PAYLOAD_TYPE, st.as_bytes()));
    let url = base64::engine::general_purpose::URL_SAFE.encode(&st);
    assert_ne!(url, B64.encode(&st));
    s.place(envelope(PAYLOAD_TYPE, &url, &[(&s.keyid, &sig)]));
    assert_seal_blocked(
        &f,
        &["payload is not valid standard base64"],
        "seal payload is not valid standard base64 with padding",
    );
}

#[test]
fn unpadded_base64_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let mut st = s.statement.clone();
    while st.len() % 3 == 0 {
        st.push(' ');
    }
    let sig = B64.encode(s.sign(PAYLOAD_TYPE, st.as_bytes()));
    let nopad = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&st);
    s.place(envelope(PAYLOAD_TYPE, &nopad, &[(&s.keyid, &sig)]));
    assert_seal_blocked(
        &f,
        &["payload is not valid standard base64"],
        "seal payload is not valid standard base64 with padding",
    );
    // A 64-byte signature ends in "==": without it.
    assert!(sig.ends_with("=="));
    s.place(envelope(PAYLOAD_TYPE, &B64.encode(&st), &[(&s.keyid, sig.trim_end_matches('='))]));
    assert_seal_blocked(
        &f,
        &["signature is not valid standard base64"],
        "seal signature is not valid standard base64 with padding",
    );
}

#[test]
fn whitespace_and_newlines_inside_base64_are_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let sig = B64.encode(s.sign(PAYLOAD_TYPE, s.statement.as_bytes()));
    let payload = B64.encode(&s.statement);
    for sep in ["\n", "\r\n", " ", "\t"] {
        // MIME-style line breaks every 76 characters.
        let wrapped: Vec<String> =
            payload.as_bytes().chunks(76).map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
        s.place(envelope(PAYLOAD_TYPE, &wrapped.join(sep), &[(&s.keyid, &sig)]));
        assert_seal_blocked(
            &f,
            &["payload is not valid standard base64"],
            "seal payload is not valid standard base64 with padding",
        );
    }
    let broken_sig = format!("{}\n{}", &sig[..40], &sig[40..]);
    s.place(envelope(PAYLOAD_TYPE, &payload, &[(&s.keyid, &broken_sig)]));
    assert_seal_blocked(
        &f,
        &["signature is not valid standard base64"],
        "seal signature is not valid standard base64 with padding",
    );
}

#[test]
fn base64_with_stray_trailing_bits_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let sig = B64.encode(s.sign(PAYLOAD_TYPE, s.statement.as_bytes()));
    // 64 bytes: 85 characters carry data, the 86th carries 4 data bits and 2 bits that must be
    // zero. Setting them decodes to the same bytes in a lax decoder.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b = sig.clone().into_bytes();
    let pos = alphabet.iter().position(|&c| c == b[85]).unwrap();
    b[85] = alphabet[pos | 0b11];
    let lax = String::from_utf8(b).unwrap();
    assert_ne!(lax, sig);
    s.place(envelope(PAYLOAD_TYPE, &B64.encode(&s.statement), &[(&s.keyid, &lax)]));
    assert_seal_blocked(
        &f,
        &["signature is not valid standard base64"],
        "seal signature is not valid standard base64 with padding",
    );
}

#[test]
fn an_oversized_envelope_is_refused_unparsed() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    // A valid, validly signed envelope followed by 64 MiB of JSON whitespace.
    let mut bytes = s.signed(&s.statement).into_bytes();
    bytes.resize(bytes.len() + (64 << 20), b' ');
    s.place(&bytes);
    assert_seal_blocked(&f, &["larger than 67108864 bytes"], "larger than 67108864 bytes");
}

#[test]
fn thousands_of_signatures_are_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let sig = B64.encode(s.sign(PAYLOAD_TYPE, s.statement.as_bytes()));
    let payload = B64.encode(&s.statement);
    for n in [33, 5000] {
        let sigs: Vec<(&str, &str)> = (0..n).map(|_| (s.keyid.as_str(), sig.as_str())).collect();
        s.place(envelope(PAYLOAD_TYPE, &payload, &sigs));
        assert_seal_blocked(
            &f,
            &[&format!("has {n} signatures, more than the 32 allowed")],
            &format!("seal has {n} signatures, more than the 32 allowed"),
        );
    }
}

#[test]
fn control_one_valid_signature_among_thirty_one_forged_ones_runs() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let other = SigningKey::from_bytes(&[5; 32]);
    let forged = B64.encode(other.sign(&pae(PAYLOAD_TYPE, s.statement.as_bytes())).to_bytes());
    let good = B64.encode(s.sign(PAYLOAD_TYPE, s.statement.as_bytes()));
    let mut sigs: Vec<(&str, &str)> = (0..31).map(|_| ("", forged.as_str())).collect();
    sigs.push((&s.keyid, &good));
    s.place(envelope(PAYLOAD_TYPE, &B64.encode(&s.statement), &sigs));
    assert_runs(&f);
}

#[test]
fn an_unknown_envelope_field_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let good = s.signed(&s.statement);
    s.place(good.replacen("\"signatures\":", "\"unsigned\":{\"trust\":\"me\"},\"signatures\":", 1));
    assert_seal_blocked(&f, &["unknown field", "unsigned"], "seal is not valid JSON: unknown field `unsigned`");
}

#[test]
fn a_statement_whose_manifest_differs_from_its_subject_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    // A validly signed statement naming this rootfs's digest over a manifest of another tree.
    let other_root = f.env.path("other-rootfs");
    std::fs::create_dir_all(other_root.join("bin")).unwrap();
    std::fs::write(other_root.join("bin/sh"), b"#!/bin/evil\n").unwrap();
    let other_seal = f.env.path("other.seal.json");
    f.env.seal(&other_root, &f.key, &other_seal, &["--name", IMAGE]);
    let other: serde_json::Value = serde_json::from_slice(&std::fs::read(&other_seal).unwrap()).unwrap();
    let other_st = String::from_utf8(B64.decode(other["payload"].as_str().unwrap()).unwrap()).unwrap();
    let other_hex = rootseal::seal::Seal::parse(&std::fs::read(&other_seal).unwrap()).unwrap().digest.hex();
    let st = other_st.replace(&other_hex, &s.hex());
    s.place(s.signed(&st));
    assert_seal_blocked(
        &f,
        &["the seal was altered"],
        &format!("but the statement's subject is sha256:{}; the seal was altered", s.hex()),
    );
}

#[test]
fn a_valid_seal_of_another_tree_filed_under_this_digest_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let other_root = f.env.path("other-rootfs");
    std::fs::create_dir_all(other_root.join("bin")).unwrap();
    std::fs::write(other_root.join("bin/sh"), b"#!/bin/evil\n").unwrap();
    let other_seal = f.env.path("other.seal.json");
    f.env.seal(&other_root, &f.key, &other_seal, &["--name", IMAGE]);
    s.place(std::fs::read(&other_seal).unwrap());
    assert_seal_blocked(&f, &["is filed under"], &format!("is filed under sha256:{}.. but seals", &s.hex()[..12]));
}

#[test]
fn a_statement_with_two_subjects_is_refused() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let hex = s.hex();
    let subj = format!("{{\"name\":\"{IMAGE}\",\"digest\":{{\"sha256\":\"{hex}\"}}}}");
    let st = s.statement.replacen(
        &subj,
        &format!("{subj},{{\"name\":\"evil\",\"digest\":{{\"sha256\":\"{}\"}}}}", "1".repeat(64)),
        1,
    );
    assert_ne!(st, s.statement);
    s.place(s.signed(&st));
    assert_seal_blocked(
        &f,
        &["has 2 subjects, expected exactly 1"],
        "seal statement: has 2 subjects, expected exactly 1",
    );
}

#[test]
fn a_deeply_nested_seal_is_refused_without_overflowing_the_stack() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    s.place("[".repeat(1_000_000));
    assert_seal_blocked(&f, &["seal is not valid JSON"], "seal is not valid JSON");
    let st = format!("{}{}", "{\"a\":".repeat(100_000), "1");
    s.place(s.signed(&st));
    assert_seal_blocked(&f, &["seal statement"], "seal statement");
}

/// A keyid is untrusted input: a reason that quotes it must stay one line.
#[test]
fn an_untrusted_keyid_with_control_characters_stays_one_line() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let other = SigningKey::from_bytes(&[5; 32]);
    let forged = B64.encode(other.sign(&pae(PAYLOAD_TYPE, s.statement.as_bytes())).to_bytes());
    s.place(envelope(PAYLOAD_TYPE, &B64.encode(&s.statement), &[("0123456789\n\u{1b}[2Jrootseal: verified", &forged)]));
    let r = prestart(&f);
    let line = r.assert_blocked("is not signed by any trusted key");
    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
}

/// A keyid is cut to 12 bytes for the message: never in the middle of a character.
#[test]
fn an_untrusted_keyid_with_multibyte_characters_does_not_panic() {
    let f = Fixture::new();
    let s = Sealed::new(&f);
    let other = SigningKey::from_bytes(&[5; 32]);
    let forged = B64.encode(other.sign(&pae(PAYLOAD_TYPE, s.statement.as_bytes())).to_bytes());
    // 'a' then four 3-byte characters: byte 12 falls inside the fourth.
    s.place(envelope(PAYLOAD_TYPE, &B64.encode(&s.statement), &[("a€€€€", &forged)]));
    assert_blocks(&f, &["is not signed by any trusted key"]);
    prestart(&f).assert_blocked("is not signed by any trusted key");
}
