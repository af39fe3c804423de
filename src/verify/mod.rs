//! Verification: is this seal signed by trusted, unrevoked keys and unexpired, and does this
//! tree match it? The steps, in order (each one failing rejects):
//! 1. the seal parsed and checked structurally ([`Seal::parse`]);
//! 2. its tree digest is not revoked;
//! 3. at least `min_signers` distinct trusted, unrevoked keys made valid signatures over the
//!    PAE bytes (ed25519 `verify_strict`: no malleable or small-order signatures);
//! 4. it has not expired;
//! 5. the tree on disk matches the sealed manifest (after mount exclusions, if any).

pub mod admit;
pub mod code;
pub mod gate;
pub mod judge;
pub mod policy;
pub mod readonly;
pub mod scan;

use crate::exclude::Exclusions;
use crate::manifest::{self, Difference, Manifest, TreeDigest};
use crate::seal::{Seal, SealError};
use crate::trust::Trust;
pub use code::Code;
use std::time::SystemTime;

/// A key that signed the seal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signer {
    pub name: String,
    pub keyid: String,
}

/// Why a seal or tree was rejected. Every variant is a verdict (exit 1), not an error.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error("seal is invalid: {0}")]
    Malformed(#[from] SealError),
    #[error("tree digest {digest} is revoked on this node")]
    DigestRevoked { digest: TreeDigest },
    #[error("seal {} is signed only by revoked key {name} (keyid {}..); re-seal with a trusted key", digest.short(), &keyid[..12])]
    KeyRevoked { digest: TreeDigest, name: String, keyid: String },
    #[error("seal {} has a signature claiming trusted key {name} that does not verify; the seal was altered or signed by another key", digest.short())]
    BadSignature { digest: TreeDigest, name: String },
    #[error("seal {} is not signed by any trusted key (signed by keyid {}); trust the signer with `rootseal trust add` or re-seal", digest.short(), keyids.join(", "))]
    Untrusted { digest: TreeDigest, keyids: Vec<String> },
    #[error("seal {} has {found} trusted signature(s), policy requires {required}", digest.short())]
    Threshold { digest: TreeDigest, found: usize, required: usize },
    #[error("seal {} expired {}; re-seal the image", digest.short(), humantime::format_rfc3339_seconds(*at))]
    Expired { digest: TreeDigest, at: SystemTime },
    #[error("{}", describe_mismatch(diffs, MESSAGE_PATHS, seal, signers))]
    Mismatch { seal: Box<Seal>, signers: Vec<Signer>, diffs: Vec<Difference> },
}

impl Rejection {
    /// A short machine-readable reason code for events and JSON output.
    pub fn code(&self) -> Code {
        match self {
            Rejection::Malformed(_) => Code::SealInvalid,
            Rejection::DigestRevoked { .. } => Code::DigestRevoked,
            Rejection::KeyRevoked { .. } => Code::KeyRevoked,
            Rejection::BadSignature { .. } => Code::BadSignature,
            Rejection::Untrusted { .. } => Code::Untrusted,
            Rejection::Threshold { .. } => Code::Threshold,
            Rejection::Expired { .. } => Code::Expired,
            Rejection::Mismatch { .. } => Code::Tampered,
        }
    }
}

/// How many differing paths a message names.
pub const MESSAGE_PATHS: usize = 10;

/// One line naming up to `limit` differing paths and what changed, the seal and its signers:
/// `/usr/bin/ls content differs from seal; /etc/passwd added ... (seal sha256:9c1e.. for app:1, signed by ci-2026)`.
pub fn describe_mismatch(diffs: &[Difference], limit: usize, seal: &Seal, signers: &[Signer]) -> String {
    let mut s = diffs.iter().take(limit).map(|d| d.to_string()).collect::<Vec<_>>().join("; ");
    if diffs.len() > limit {
        s.push_str(&format!("; and {} more path(s)", diffs.len() - limit));
    }
    let by = signers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    format!(
        "{s} (seal {} for {}, signed by {by})",
        seal.digest.short(),
        crate::manifest::display_path(seal.name.as_bytes())
    )
}

/// Who signed `pae`, among the trusted keys.
#[derive(Debug, Default)]
pub struct Signatures {
    /// Trusted, unrevoked keys whose signatures verify, each once.
    pub signers: Vec<Signer>,
    /// A revoked key whose signature verifies (name, keyid).
    pub revoked: Option<(String, String)>,
    /// A trusted key named by a signature's keyid that does not verify.
    pub bad: Option<String>,
}

/// Verifies DSSE `signatures` over `pae` against the trust store (ed25519 `verify_strict`).
/// The keyid is a hint only: a signature counts for the key that verifies it, and a key is
/// counted once however many signatures it made.
pub fn signatures(pae: &[u8], signatures: &[(String, ed25519_dalek::Signature)], trust: &Trust) -> Signatures {
    let mut out = Signatures::default();
    for (claimed, sig) in signatures {
        let candidates: Vec<&crate::trust::TrustedKey> = match trust.by_keyid(claimed) {
            Some(k) => vec![k],
            None => trust.keys.iter().collect(),
        };
        let mut ok = false;
        for k in candidates {
            if k.key.key.verify_strict(pae, sig).is_err() {
                continue;
            }
            ok = true;
            if trust.revoked.key_revoked(&k.key.keyid) {
                out.revoked.get_or_insert((k.name.clone(), k.key.keyid.clone()));
            } else if !out.signers.iter().any(|s| s.keyid == k.key.keyid) {
                out.signers.push(Signer { name: k.name.clone(), keyid: k.key.keyid.clone() });
            }
            break;
        }
        if !ok {
            if let Some(k) = trust.by_keyid(claimed) {
                out.bad.get_or_insert(k.name.clone());
            }
        }
    }
    out
}

/// Steps 2 to 4: the seal itself.
pub fn check_seal(seal: &Seal, trust: &Trust, now: SystemTime, min_signers: usize) -> Result<Vec<Signer>, Rejection> {
    let digest = seal.digest;
    if trust.revoked.digest_revoked(&digest) {
        return Err(Rejection::DigestRevoked { digest });
    }
    let Signatures { signers, revoked, bad } = signatures(&seal.pae, &seal.signatures, trust);
    if signers.is_empty() {
        if let Some(name) = bad.filter(|_| revoked.is_none()) {
            return Err(Rejection::BadSignature { digest, name });
        }
    }
    let claimed: Vec<&str> = seal.signatures.iter().map(|(k, _)| k.as_str()).collect();
    conclude(digest, signers, revoked, &claimed, min_signers, seal.expires, now)
}

/// The trusted keys (revoked or not) whose signatures over this seal verify, by keyid: what
/// [`check_memo`] needs to judge the same, unchanged seal again without the signatures.
pub fn verifying_keys(seal: &Seal, trust: &Trust) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (claimed, sig) in &seal.signatures {
        let candidates: Vec<&crate::trust::TrustedKey> = match trust.by_keyid(claimed) {
            Some(k) => vec![k],
            None => trust.keys.iter().collect(),
        };
        if let Some(k) = candidates.into_iter().find(|k| k.key.key.verify_strict(&seal.pae, sig).is_ok()) {
            if !out.contains(&k.key.keyid) {
                out.push(k.key.keyid.clone());
            }
        }
    }
    out
}

/// Steps 2 to 4 for a seal whose signatures verified earlier (src/node/layers.rs): `keyids` are the
/// keys whose signatures verified over the same, unchanged seal file. Trust, revocation,
/// threshold and expiry are judged now, exactly as [`check_seal`] would.
pub fn check_memo(
    digest: TreeDigest,
    keyids: &[String],
    expires: Option<SystemTime>,
    trust: &Trust,
    now: SystemTime,
    min_signers: usize,
) -> Result<Vec<Signer>, Rejection> {
    if trust.revoked.digest_revoked(&digest) {
        return Err(Rejection::DigestRevoked { digest });
    }
    let mut signers: Vec<Signer> = Vec::new();
    let mut revoked = None;
    // A keyid names its key (the SHA-256 of the public key): a trusted key with this keyid is
    // the key that made the signature.
    for k in keyids.iter().filter_map(|id| trust.by_keyid(id)) {
        if trust.revoked.key_revoked(&k.key.keyid) {
            revoked.get_or_insert((k.name.clone(), k.key.keyid.clone()));
        } else if !signers.iter().any(|s| s.keyid == k.key.keyid) {
            signers.push(Signer { name: k.name.clone(), keyid: k.key.keyid.clone() });
        }
    }
    let claimed: Vec<&str> = keyids.iter().map(String::as_str).collect();
    conclude(digest, signers, revoked, &claimed, min_signers, expires, now)
}

/// The verdict once the signing keys are known: revoked-only, untrusted, threshold, expiry.
fn conclude(
    digest: TreeDigest,
    signers: Vec<Signer>,
    revoked: Option<(String, String)>,
    claimed: &[&str],
    min_signers: usize,
    expires: Option<SystemTime>,
    now: SystemTime,
) -> Result<Vec<Signer>, Rejection> {
    if signers.is_empty() {
        if let Some((name, keyid)) = revoked {
            return Err(Rejection::KeyRevoked { digest, name, keyid });
        }
        let keyids = claimed
            .iter()
            .map(|k| {
                // Untrusted input: escaped (one line, no terminal escapes), cut by character.
                let shown: String = crate::manifest::display_path(k.as_bytes()).chars().take(12).collect();
                if k.is_empty() {
                    "(none)".to_string()
                } else {
                    format!("{shown}..")
                }
            })
            .collect();
        return Err(Rejection::Untrusted { digest, keyids });
    }
    if signers.len() < min_signers.max(1) {
        return Err(Rejection::Threshold { digest, found: signers.len(), required: min_signers });
    }
    if let Some(at) = expires {
        if at <= now {
            return Err(Rejection::Expired { digest, at });
        }
    }
    Ok(signers)
}

/// Step 5: compares a walked tree with the sealed manifest. With exclusions, both sides drop
/// the mount destinations (docs/digest.md §5); without, the digests must be equal.
pub fn compare(seal: &Seal, found: &Manifest, exclusions: Option<&Exclusions>) -> Vec<Difference> {
    match exclusions {
        Some(ex) if !ex.is_empty() => {
            manifest::diff_by(&seal.manifest, found, |e| ex.keep_sealed(e), |e| ex.keep_found(e, &seal.manifest))
        }
        _ => {
            if found.digest() == seal.digest {
                Vec::new()
            } else {
                manifest::diff(&seal.manifest, found)
            }
        }
    }
}

/// Steps 1 to 5 for a tree already walked.
pub fn verify(
    seal_bytes: &[u8],
    found: &Manifest,
    exclusions: Option<&Exclusions>,
    trust: &Trust,
    now: SystemTime,
) -> Result<(Seal, Vec<Signer>), Rejection> {
    let seal = Seal::parse(seal_bytes)?;
    let signers = check_seal(&seal, trust, now, 1)?;
    let diffs = compare(&seal, found, exclusions);
    if !diffs.is_empty() {
        return Err(Rejection::Mismatch { seal: Box::new(seal), signers, diffs });
    }
    Ok((seal, signers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;
    use crate::manifest::{Entry, Kind};
    use crate::seal::{self, SealRequest};
    use crate::trust::{Revocations, TrustedKey};
    use ed25519_dalek::SigningKey;
    use std::time::Duration;

    fn manifest() -> Manifest {
        Manifest::from_entries(vec![Entry {
            path: b"/a".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            kind: Kind::File { size: 0, sha256: [0; 32], cap: None },
        }])
    }

    fn trust_of(keys: &[(&str, &SigningKey)]) -> Trust {
        Trust {
            keys: keys
                .iter()
                .map(|(n, k)| TrustedKey {
                    name: n.to_string(),
                    key: PublicKey::new(k.verifying_key()),
                    path: "x".into(),
                })
                .collect(),
            revoked: Revocations::default(),
        }
    }

    fn sealed(key: &SigningKey, expires: Option<SystemTime>) -> Vec<u8> {
        let m = manifest();
        seal::create(
            &SealRequest { manifest: &m, name: "rootfs", created: SystemTime::now(), expires, image: None },
            key,
        )
    }

    #[test]
    fn each_rule_rejects_with_its_own_code() {
        let ci = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let now = SystemTime::now();
        let m = manifest();
        let ok = verify(&sealed(&ci, None), &m, None, &trust_of(&[("ci", &ci)]), now).unwrap();
        assert_eq!(ok.1[0].name, "ci");
        let code = |bytes: &[u8], trust: &Trust| verify(bytes, &m, None, trust, now).unwrap_err().code();
        assert_eq!(code(&sealed(&other, None), &trust_of(&[("ci", &ci)])), "untrusted");
        assert_eq!(code(&sealed(&ci, Some(now - Duration::from_secs(1))), &trust_of(&[("ci", &ci)])), "expired");
        let mut t = trust_of(&[("ci", &ci)]);
        t.revoked.keys.push(PublicKey::new(ci.verifying_key()).keyid);
        assert_eq!(code(&sealed(&ci, None), &t), "key-revoked");
        let mut t = trust_of(&[("ci", &ci)]);
        t.revoked.digests.push(m.digest().to_string());
        assert_eq!(code(&sealed(&ci, None), &t), "digest-revoked");
        let changed = Manifest::from_entries(vec![]);
        let err = verify(&sealed(&ci, None), &changed, None, &trust_of(&[("ci", &ci)]), now).unwrap_err();
        assert_eq!(err.code(), "tampered");
        assert!(err.to_string().starts_with("/a removed"), "{err}");
    }

    #[test]
    fn a_keyid_naming_a_trusted_key_but_signed_by_another_is_refused() {
        let ci = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let m = manifest();
        let payload = seal::statement(&SealRequest {
            manifest: &m,
            name: "rootfs",
            created: SystemTime::now(),
            expires: None,
            image: None,
        });
        use ed25519_dalek::Signer as _;
        let sig = other.sign(&seal::pae(seal::PAYLOAD_TYPE, &payload)).to_bytes().to_vec();
        let keyid = PublicKey::new(ci.verifying_key()).keyid;
        let bytes = seal::envelope(&payload, &[(keyid, sig)]);
        let err = verify(&bytes, &m, None, &trust_of(&[("ci", &ci)]), SystemTime::now()).unwrap_err();
        assert_eq!(err.code(), "bad-signature");
    }

    #[test]
    fn the_same_key_twice_counts_once_toward_a_threshold() {
        let ci = SigningKey::from_bytes(&[1; 32]);
        let m = manifest();
        let payload = seal::statement(&SealRequest {
            manifest: &m,
            name: "rootfs",
            created: SystemTime::now(),
            expires: None,
            image: None,
        });
        use ed25519_dalek::Signer as _;
        let sig = ci.sign(&seal::pae(seal::PAYLOAD_TYPE, &payload)).to_bytes().to_vec();
        let keyid = PublicKey::new(ci.verifying_key()).keyid;
        let bytes = seal::envelope(&payload, &[(keyid.clone(), sig.clone()), (keyid, sig)]);
        let s = Seal::parse(&bytes).unwrap();
        let trust = trust_of(&[("ci", &ci)]);
        assert_eq!(check_seal(&s, &trust, SystemTime::now(), 1).unwrap().len(), 1);
        assert_eq!(check_seal(&s, &trust, SystemTime::now(), 2).unwrap_err().code(), "threshold");
        // The memo of the verifying keys judges the same.
        let keys = verifying_keys(&s, &trust);
        assert_eq!(keys.len(), 1);
        let memo = |trust: &Trust, min| check_memo(s.digest, &keys, s.expires, trust, SystemTime::now(), min);
        assert_eq!(memo(&trust, 1).unwrap(), check_seal(&s, &trust, SystemTime::now(), 1).unwrap());
        assert_eq!(memo(&trust, 2).unwrap_err().code(), "threshold");
        assert_eq!(memo(&Trust::default(), 1).unwrap_err().code(), "untrusted");
        let mut revoked = trust_of(&[("ci", &ci)]);
        revoked.revoked.keys.push(keys[0].clone());
        assert_eq!(memo(&revoked, 1).unwrap_err().code(), "key-revoked");
        assert_eq!(check_seal(&s, &revoked, SystemTime::now(), 1).unwrap_err().code(), "key-revoked");
        let mut gone = trust_of(&[("ci", &ci)]);
        gone.revoked.digests.push(s.digest.to_string());
        assert_eq!(memo(&gone, 1).unwrap_err().code(), "digest-revoked");
    }

    #[test]
    fn a_signature_over_the_raw_payload_instead_of_pae_is_refused() {
        let ci = SigningKey::from_bytes(&[1; 32]);
        let m = manifest();
        let payload = seal::statement(&SealRequest {
            manifest: &m,
            name: "rootfs",
            created: SystemTime::now(),
            expires: None,
            image: None,
        });
        use ed25519_dalek::Signer as _;
        let sig = ci.sign(&payload).to_bytes().to_vec();
        let bytes = seal::envelope(&payload, &[(PublicKey::new(ci.verifying_key()).keyid, sig)]);
        let err = verify(&bytes, &m, None, &trust_of(&[("ci", &ci)]), SystemTime::now()).unwrap_err();
        assert_eq!(err.code(), "bad-signature");
    }
}
