//! Bad input gets one line naming the file and the rule broken, the documented exit code, and
//! leaves no partial files behind.

use crate::util::*;
use base64::Engine as _;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Fixture {
    env: Env,
    root: PathBuf,
    key: PathBuf,
    public: PathBuf,
    seal: PathBuf,
}

fn fixture() -> Fixture {
    let env = Env::new();
    let root = env.path("rootfs");
    small_tree(&root);
    let (key, public) = env.keygen("ci");
    let seal = env.path("good.json");
    env.seal(&root, &key, &seal, &[]);
    Fixture { env, root, key, public, seal }
}

impl Fixture {
    /// Verifies with a seal whose text is `text`; returns stderr after asserting `code`.
    fn verify_text(&self, text: &[u8], code: i32) -> String {
        let p = self.env.path("bad.json");
        std::fs::write(&p, text).unwrap();
        self.verify_file(&p, &self.public, code)
    }

    fn verify_file(&self, seal: &Path, key: &Path, code: i32) -> String {
        let before = listing(self.env.tmp.path());
        let (_, err) = self.env.expect(
            code,
            [
                OsStr::new("verify"),
                self.root.as_os_str(),
                OsStr::new("--seal"),
                seal.as_os_str(),
                OsStr::new("--key"),
                key.as_os_str(),
            ],
        );
        assert_eq!(err.lines().count(), 1, "exactly one line: {err}");
        assert!(err.starts_with("rootseal: "), "{err}");
        assert_eq!(before, listing(self.env.tmp.path()), "verify must not write");
        err
    }

    fn envelope(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.seal).unwrap()).unwrap()
    }
}

#[test]
fn a_missing_path_or_a_file_is_a_usage_error() {
    let f = fixture();
    let missing = f.env.path("nope");
    let (_, err) = f.env.expect(2, [OsStr::new("digest"), missing.as_os_str()]);
    assert!(err.contains("nope") && err.lines().count() == 1, "{err}");
    let file = f.root.join("etc/passwd");
    let (_, err) = f.env.expect(2, [OsStr::new("digest"), file.as_os_str()]);
    assert!(err.contains("not a directory"), "{err}");
    let (_, err) = f.env.verify(2, &f.root, &missing, &f.public, &[]);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn corrupt_or_truncated_seal_json() {
    let f = fixture();
    let good = std::fs::read(&f.seal).unwrap();
    let err = f.verify_text(&good[..good.len() / 2], 1);
    assert!(err.contains("bad.json") && err.contains("not valid JSON"), "{err}");
    let err = f.verify_text(b"", 1);
    assert!(err.contains("not valid JSON"), "{err}");
    let err = f.verify_text(b"\x00\xff garbage", 1);
    assert!(err.contains("not valid JSON"), "{err}");
}

#[test]
fn duplicate_keys_in_envelope_and_payload() {
    let f = fixture();
    let text = String::from_utf8(std::fs::read(&f.seal).unwrap()).unwrap();
    let dup = text.replacen("{", "{\"payloadType\": \"x\",", 1);
    let err = f.verify_text(dup.as_bytes(), 1);
    assert!(err.contains("duplicate") && err.contains("payloadType"), "{err}");

    // Inside the signed payload, spelled with an escape: `"_typ\u0065"` duplicates `"_type"`.
    let mut env = f.envelope();
    let payload = B64.decode(env["payload"].as_str().unwrap()).unwrap();
    let p = String::from_utf8(payload).unwrap().replacen("{", "{\"_typ\\u0065\":\"x\",", 1);
    env["payload"] = B64.encode(p).into();
    let err = f.verify_text(env.to_string().as_bytes(), 1);
    assert!(err.contains("duplicate") && err.contains("_type"), "{err}");
}

#[test]
fn wrong_payload_type_and_bad_base64() {
    let f = fixture();
    for pt in ["application/vnd.in-toto+json ", "application/json", "APPLICATION/VND.IN-TOTO+JSON"] {
        let mut env = f.envelope();
        env["payloadType"] = pt.into();
        let err = f.verify_text(env.to_string().as_bytes(), 1);
        assert!(err.contains("payloadType"), "{err}");
    }
    let mut env = f.envelope();
    let p = env["payload"].as_str().unwrap().to_string();
    env["payload"] = p.trim_end_matches('=').into();
    if env["payload"].as_str().unwrap() != p {
        let err = f.verify_text(env.to_string().as_bytes(), 1);
        assert!(err.contains("base64"), "{err}");
    }
    let mut env = f.envelope();
    env["signatures"][0]["sig"] = "not*base64".into();
    let err = f.verify_text(env.to_string().as_bytes(), 1);
    assert!(err.contains("base64"), "{err}");
    let mut env = f.envelope();
    let url = base64::engine::general_purpose::URL_SAFE.encode([0xfbu8; 64]);
    env["signatures"][0]["sig"] = url.into();
    let err = f.verify_text(env.to_string().as_bytes(), 1);
    assert!(err.contains("base64"), "{err}");
}

#[test]
fn unknown_revoked_and_removed_keys() {
    let f = fixture();
    let (_, other) = f.env.keygen("other");
    let err = f.verify_file(&f.seal, &other, 1);
    assert!(err.contains("not signed by any trusted key"), "{err}");
}

#[test]
fn non_canonical_signature_is_refused() {
    let f = fixture();
    let mut env = f.envelope();
    let sig = B64.decode(env["signatures"][0]["sig"].as_str().unwrap()).unwrap();
    // s' = s + L (the group order) is accepted by lax verifiers; verify_strict refuses it.
    let l: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut s = [0u8; 32];
    s.copy_from_slice(&sig[32..]);
    let mut carry = 0u16;
    for i in 0..32 {
        let v = s[i] as u16 + l[i] as u16 + carry;
        s[i] = v as u8;
        carry = v >> 8;
    }
    let mut bad = sig[..32].to_vec();
    bad.extend_from_slice(&s);
    env["signatures"][0]["sig"] = B64.encode(&bad).into();
    let err = f.verify_text(env.to_string().as_bytes(), 1);
    assert!(err.contains("does not verify") || err.contains("not signed by any trusted key"), "{err}");
}

#[test]
fn expired_seal() {
    let f = fixture();
    // The CLI refuses to seal with a past expiry: build one that expired a minute ago.
    let m = rootseal::walk::walk(&f.root, &Default::default()).unwrap();
    let key = rootseal::keys::load_signing_key(&f.key).unwrap();
    let now = std::time::SystemTime::now();
    let req = rootseal::seal::SealRequest {
        manifest: &m,
        name: "rootfs",
        created: now - std::time::Duration::from_secs(3600),
        expires: Some(now - std::time::Duration::from_secs(60)),
        image: None,
    };
    let seal = f.env.path("short.json");
    std::fs::write(&seal, rootseal::seal::create(&req, &key)).unwrap();
    let err = f.verify_file(&seal, &f.public, 1);
    assert!(err.contains("expired") && err.contains("re-seal"), "{err}");
}

#[test]
fn a_seal_over_64_mib_is_refused_unread() {
    let f = fixture();
    let p = f.env.path("huge.json");
    let file = std::fs::File::create(&p).unwrap();
    file.set_len((64 << 20) + 1).unwrap();
    let err = f.verify_file(&p, &f.public, 1);
    assert!(err.contains("huge.json") && err.contains("larger than"), "{err}");
}

#[test]
fn key_files_with_wrong_permissions_or_kind() {
    let f = fixture();
    // A private key where a public key is expected.
    let err = f.verify_file(&f.seal, &f.key, 2);
    assert!(err.contains("is a private key"), "{err}");
    let (_, err) = f.env.expect(2, [OsStr::new("trust"), OsStr::new("add"), f.key.as_os_str()]);
    assert!(err.contains("is a private key"), "{err}");
    // A public key where a private key is expected.
    let (_, err) = f.env.expect(2, [OsStr::new("seal"), f.root.as_os_str(), OsStr::new("--key"), f.public.as_os_str()]);
    assert!(err.contains("is a public key"), "{err}");
    // A group-writable key in the trust store.
    f.env.expect(0, [OsStr::new("trust"), OsStr::new("add"), f.public.as_os_str()]);
    let stored = f.env.path("trust/ci.pub");
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o664)).unwrap();
    let trust_dir = f.env.path("trust");
    let (_, err) = f.env.verify_trusted(2, &f.root, &f.seal, &trust_dir);
    assert!(err.contains("ci.pub") && err.contains("writable by group") && err.contains("chmod go-w"), "{err}");
    // Not owned by root (or by us).
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&stored, Some(4242), None).unwrap();
    let (_, err) = f.env.verify_trusted(2, &f.root, &f.seal, &trust_dir);
    assert!(err.contains("owned by uid 4242") && err.contains("chown root"), "{err}");
    // Garbage where a key should be.
    let junk = f.env.path("junk.pub");
    std::fs::write(&junk, b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").unwrap();
    let err = f.verify_file(&f.seal, &junk, 2);
    assert!(err.contains("junk.pub") && err.contains("not an ed25519 public key"), "{err}");
}

#[test]
fn a_failed_seal_leaves_no_partial_output() {
    let f = fixture();
    let out = f.env.path("out.json");
    let before = listing(f.env.tmp.path());
    let missing = f.env.path("missing");
    f.env.expect(
        2,
        [
            OsStr::new("seal"),
            missing.as_os_str(),
            OsStr::new("--key"),
            f.key.as_os_str(),
            OsStr::new("--out"),
            out.as_os_str(),
        ],
    );
    assert_eq!(before, listing(f.env.tmp.path()));
    // An existing output is untouched when sealing fails.
    std::fs::write(&out, b"previous").unwrap();
    f.env.expect(
        2,
        [
            OsStr::new("seal"),
            missing.as_os_str(),
            OsStr::new("--key"),
            f.key.as_os_str(),
            OsStr::new("--out"),
            out.as_os_str(),
        ],
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
}

#[test]
fn a_bad_config_names_the_file_and_key() {
    let f = fixture();
    f.env.write_config("mood = \"audit\"");
    let (_, err) = f.env.expect(2, [OsStr::new("digest"), f.root.as_os_str()]);
    assert!(err.contains("config.toml") && err.contains("mood"), "{err}");
    let missing = f.env.path("missing.toml");
    let (_, err) =
        f.env.expect(2, [OsStr::new("--config"), missing.as_os_str(), OsStr::new("digest"), f.root.as_os_str()]);
    assert!(err.contains("missing.toml"), "{err}");
}

/// Run as root, a config others can write (or that is not root's) is refused: it chooses the
/// mode and the trust store.
#[test]
fn a_config_others_can_write_is_refused_as_root() {
    assert_eq!(rootseal::sys::euid(), 0, "this test chowns the config and needs root; run the suite as root");
    let f = fixture();
    let cfg = f.env.config_path();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (_, err) = f.env.expect(2, [OsStr::new("digest"), f.root.as_os_str()]);
    assert!(
        err.contains("config.toml") && err.contains("writable by group or others") && err.contains("chmod go-w"),
        "{err}"
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&cfg, Some(1000), None).unwrap();
    let (_, err) = f.env.expect(2, [OsStr::new("digest"), f.root.as_os_str()]);
    assert!(err.contains("owned by uid 1000"), "{err}");
    std::os::unix::fs::chown(&cfg, Some(0), None).unwrap();
    f.env.expect(0, [OsStr::new("digest"), f.root.as_os_str()]);
}

/// Issue 14, item 9: a bundle that is not there is a usage error (exit 2) that says so, not a
/// "blocked container" verdict.
#[test]
fn check_of_a_missing_bundle_says_the_bundle_is_missing() {
    let env = Env::new();
    let missing = env.path("no-such-bundle");
    let (_, err) = env.expect(2, [OsStr::new("check"), missing.as_os_str()]);
    assert!(err.contains(&format!("no bundle at {}", missing.display())) && !err.contains("blocked"), "{err}");
    let empty = env.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let (_, err) = env.expect(2, [OsStr::new("check"), empty.as_os_str()]);
    assert!(err.contains("is not an OCI bundle") && err.contains("config.json"), "{err}");
}
