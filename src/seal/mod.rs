//! Seals: a DSSE envelope holding an in-toto Statement v1 whose subject is a tree digest and
//! whose predicate carries the manifest. Specified in docs/seal.md.
//!
//! Parsing is the edge: [`Seal::parse`] turns untrusted bytes into a checked [`Seal`] (strict
//! JSON, exact payloadType, strict base64, manifest bound to the subject digest); signature
//! checks then run on that type only.

pub mod store;

use crate::json;
use crate::manifest::{self, Manifest, TreeDigest};
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::SystemTime;

pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://rootseal.dev/attestation/rootfs/v1";
pub const MANIFEST_ENCODING: &str = "gzip+base64";
/// A seal file larger than this is refused before parsing.
pub const MAX_SEAL_BYTES: u64 = 64 << 20;
/// The decompressed manifest may not exceed this (a gzip bomb guard).
pub const MAX_MANIFEST_BYTES: u64 = 1 << 30;
/// More signatures than this is an attack on the verifier, not a real seal.
pub const MAX_SIGNATURES: usize = 32;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("seal is larger than {MAX_SEAL_BYTES} bytes")]
    TooLarge,
    #[error("seal is not valid JSON: {0}")]
    Json(String),
    #[error("seal JSON repeats key {0:?}; a seal must not contain duplicate keys")]
    DuplicateKey(String),
    #[error("seal payloadType is {0:?}, expected {PAYLOAD_TYPE:?}")]
    PayloadType(String),
    #[error("seal {field} is not valid standard base64 with padding")]
    Base64 { field: &'static str },
    #[error("seal statement: {0}")]
    Statement(String),
    #[error("seal manifest: {0}")]
    Manifest(String),
    #[error("seal manifest hashes to {found}, but the statement's subject is {subject}; the seal was altered")]
    ManifestMismatch { subject: TreeDigest, found: TreeDigest },
    #[error("seal has no signatures")]
    Unsigned,
    #[error("seal has {0} signatures, more than the {MAX_SIGNATURES} allowed")]
    TooManySignatures(usize),
    #[error("seal signature {index} is {len} bytes, an ed25519 signature is 64")]
    SignatureLength { index: usize, len: usize },
    #[error("seal {field} time {value:?} is not RFC 3339")]
    Time { field: &'static str, value: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(rename = "payloadType")]
    payload_type: String,
    /// Borrowed from the seal's bytes when it has no JSON escapes (base64 never needs any).
    #[serde(borrow)]
    payload: std::borrow::Cow<'a, str>,
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

#[derive(Serialize, Deserialize)]
struct Statement {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: Predicate,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Subject {
    name: String,
    digest: BTreeMap<String, String>,
}

/// The rootseal predicate (docs/seal.md).
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Predicate {
    #[serde(rename = "digestSpec")]
    pub digest_spec: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    pub entries: u64,
    #[serde(rename = "fileBytes")]
    pub file_bytes: u64,
    pub manifest: ManifestBlob,
    /// Where the tree came from, when it was sealed from an image (reference, manifest digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSource>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ManifestBlob {
    pub encoding: String,
    pub data: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ImageSource {
    /// The image reference the archive gives (or --ref picked), empty when it names none.
    pub reference: String,
    /// The image manifest's digest, as a registry knows it (OCI inputs; docker-archives have
    /// no manifest blob).
    #[serde(rename = "manifestDigest", default, skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    /// The image config's digest (the "image id").
    #[serde(rename = "configDigest")]
    pub config_digest: String,
    /// How many layers were applied.
    pub layers: usize,
}

/// What to seal.
pub struct SealRequest<'a> {
    pub manifest: &'a Manifest,
    /// The subject name: an image reference, or "rootfs".
    pub name: &'a str,
    pub created: SystemTime,
    pub expires: Option<SystemTime>,
    pub image: Option<ImageSource>,
}

/// DSSE pre-authentication encoding: `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).as_bytes());
    out.extend_from_slice(payload);
    out
}

/// The in-toto statement bytes for a request (the DSSE payload).
pub fn statement(req: &SealRequest<'_>) -> Vec<u8> {
    let canonical = req.manifest.to_canonical();
    let digest = req.manifest.digest();
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&canonical).expect("writing to a Vec cannot fail");
    let compressed = gz.finish().expect("writing to a Vec cannot fail");
    let st = Statement {
        type_: STATEMENT_TYPE.into(),
        subject: vec![Subject {
            name: req.name.into(),
            digest: BTreeMap::from([("sha256".to_string(), digest.hex())]),
        }],
        predicate_type: PREDICATE_TYPE.into(),
        predicate: Predicate {
            digest_spec: manifest::HEADER.into(),
            created: humantime::format_rfc3339_seconds(req.created).to_string(),
            expires: req.expires.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            entries: req.manifest.len() as u64,
            file_bytes: req.manifest.file_bytes(),
            manifest: ManifestBlob { encoding: MANIFEST_ENCODING.into(), data: B64.encode(compressed) },
            image: req.image.clone(),
        },
    };
    serde_json::to_vec(&st).expect("statement serialises")
}

/// Builds a signed seal (the envelope JSON, newline-terminated).
pub fn create(req: &SealRequest<'_>, key: &SigningKey) -> Vec<u8> {
    let payload = statement(req);
    let public = crate::keys::PublicKey::new(key.verifying_key());
    let sig = key.sign(&pae(PAYLOAD_TYPE, &payload));
    envelope(&payload, &[(public.keyid, sig.to_bytes().to_vec())])
}

/// Wraps a payload and raw signatures into envelope JSON (also used by tests that sign with
/// other tools).
pub fn envelope(payload: &[u8], sigs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let env = Envelope {
        payload_type: PAYLOAD_TYPE.into(),
        payload: B64.encode(payload).into(),
        signatures: sigs.iter().map(|(k, s)| EnvelopeSignature { keyid: k.clone(), sig: B64.encode(s) }).collect(),
    };
    let mut out = serde_json::to_vec_pretty(&env).expect("envelope serialises");
    out.push(b'\n');
    out
}

/// A parsed, structurally checked seal. Its signatures are not yet verified.
#[derive(Debug, Clone)]
pub struct Seal {
    pub digest: TreeDigest,
    pub name: String,
    pub manifest: Manifest,
    pub predicate: Predicate,
    pub created: SystemTime,
    pub expires: Option<SystemTime>,
    /// (keyid as claimed, signature) pairs.
    pub signatures: Vec<(String, Signature)>,
    /// The bytes every signature must cover.
    pub pae: Vec<u8>,
}

impl Seal {
    /// Parses and checks a seal. Nothing here trusts the content; see `verify` for signatures.
    pub fn parse(bytes: &[u8]) -> Result<Seal, SealError> {
        let (pae, header_len, signatures) = Seal::open(Seal::envelope(bytes)?)?;
        Seal::from_pae(pae, header_len, signatures)
    }

    /// Like [`Seal::parse`], but frees the file's bytes as soon as the payload is decoded: the
    /// hook parses seals of 100 000-entry manifests on the container start path.
    pub fn parse_owned(bytes: Vec<u8>) -> Result<Seal, SealError> {
        let (pae, header_len, signatures) = Seal::open(Seal::envelope(&bytes)?)?;
        drop(bytes);
        Seal::from_pae(pae, header_len, signatures)
    }

    /// Any in-toto DSSE envelope (a seal, a scan attestation, a VEX document): its PAE bytes,
    /// the payload's offset in them, and its signatures, checked as a seal's are.
    #[allow(clippy::type_complexity)]
    pub fn open_envelope(bytes: &[u8]) -> Result<(Vec<u8>, usize, Vec<(String, Signature)>), SealError> {
        Seal::open(Seal::envelope(bytes)?)
    }

    fn envelope(bytes: &[u8]) -> Result<Envelope<'_>, SealError> {
        if bytes.len() as u64 > MAX_SEAL_BYTES {
            return Err(SealError::TooLarge);
        }
        json::from_slice_strict_borrowed(bytes).map_err(|e| match e {
            json::JsonError::Duplicate(k) => SealError::DuplicateKey(k),
            json::JsonError::Syntax(s) => SealError::Json(s),
        })
    }

    /// Checks the envelope and decodes its payload behind the PAE header: (PAE bytes, header
    /// length, signatures).
    #[allow(clippy::type_complexity)]
    fn open(env: Envelope<'_>) -> Result<(Vec<u8>, usize, Vec<(String, Signature)>), SealError> {
        if env.payload_type != PAYLOAD_TYPE {
            return Err(SealError::PayloadType(env.payload_type));
        }
        if env.signatures.is_empty() {
            return Err(SealError::Unsigned);
        }
        if env.signatures.len() > MAX_SIGNATURES {
            return Err(SealError::TooManySignatures(env.signatures.len()));
        }
        // The signatures cover PAE(type, payload): decode the payload straight behind the PAE
        // header, so the statement is parsed from, and kept only in, the bytes to verify.
        let bad_payload = || SealError::Base64 { field: "payload" };
        // Canonical padded base64 (the only form B64 accepts) decodes to exactly this length.
        let p = env.payload.as_bytes();
        let payload_len = (p.len() / 4 * 3)
            .checked_sub(p.iter().rev().take(2).take_while(|&&c| c == b'=').count())
            .filter(|_| p.len() % 4 == 0)
            .ok_or_else(bad_payload)?;
        let mut pae = format!("DSSEv1 {} {} {} ", PAYLOAD_TYPE.len(), PAYLOAD_TYPE, payload_len).into_bytes();
        let header_len = pae.len();
        pae.reserve_exact(payload_len);
        B64.decode_vec(p, &mut pae).map_err(|_| bad_payload())?;
        if pae.len() - header_len != payload_len {
            return Err(bad_payload());
        }
        let mut signatures = Vec::with_capacity(env.signatures.len());
        for (index, s) in env.signatures.iter().enumerate() {
            let raw = B64.decode(&s.sig).map_err(|_| SealError::Base64 { field: "signature" })?;
            let arr: [u8; 64] =
                raw.as_slice().try_into().map_err(|_| SealError::SignatureLength { index, len: raw.len() })?;
            signatures.push((s.keyid.clone(), Signature::from_bytes(&arr)));
        }
        Ok((pae, header_len, signatures))
    }

    fn from_pae(pae: Vec<u8>, header_len: usize, signatures: Vec<(String, Signature)>) -> Result<Seal, SealError> {
        let payload = &pae[header_len..];
        let st: Statement = json::from_slice_strict(payload).map_err(|e| match e {
            json::JsonError::Duplicate(k) => SealError::DuplicateKey(k),
            json::JsonError::Syntax(s) => SealError::Statement(s),
        })?;
        if st.type_ != STATEMENT_TYPE {
            return Err(SealError::Statement(format!("_type is {:?}, expected {STATEMENT_TYPE:?}", st.type_)));
        }
        if st.predicate_type != PREDICATE_TYPE {
            return Err(SealError::Statement(format!(
                "predicateType is {:?}, expected {PREDICATE_TYPE:?}",
                st.predicate_type
            )));
        }
        let [subject] = <[Subject; 1]>::try_from(st.subject)
            .map_err(|v| SealError::Statement(format!("has {} subjects, expected exactly 1", v.len())))?;
        let hex =
            subject.digest.get("sha256").ok_or_else(|| SealError::Statement("subject has no sha256 digest".into()))?;
        let digest = manifest::parse_hex32(hex)
            .map(TreeDigest)
            .ok_or_else(|| SealError::Statement(format!("subject sha256 {hex:?} is not 64 lowercase hex digits")))?;
        let mut p = st.predicate;
        if p.digest_spec != manifest::HEADER {
            return Err(SealError::Statement(format!(
                "digestSpec is {:?}; this build verifies {:?} only, upgrade rootseal",
                p.digest_spec,
                manifest::HEADER
            )));
        }
        if p.manifest.encoding != MANIFEST_ENCODING {
            return Err(SealError::Manifest(format!(
                "encoding {:?} is not {MANIFEST_ENCODING:?}",
                p.manifest.encoding
            )));
        }
        let compressed = B64.decode(&p.manifest.data).map_err(|_| SealError::Base64 { field: "manifest" })?;
        // The manifest is kept parsed; its encoded copy is only in the signed payload.
        p.manifest.data = String::new();
        // Decompressed and parsed a line at a time (bounded), hashed as it is read.
        let (manifest, found) = Manifest::parse_reader(
            std::io::BufReader::with_capacity(64 * 1024, GzDecoder::new(compressed.as_slice())),
            MAX_MANIFEST_BYTES,
            p.entries,
        )
        .map_err(|e| match e {
            crate::manifest::ManifestError::Parse { what, .. } if what.starts_with("read: ") => {
                SealError::Manifest(format!("gzip: {}", &what[6..]))
            }
            crate::manifest::ManifestError::Parse { what, .. } if what.starts_with("larger than") => {
                SealError::Manifest(what)
            }
            e => SealError::Manifest(e.to_string()),
        })?;
        drop(compressed);
        if found != digest {
            return Err(SealError::ManifestMismatch { subject: digest, found });
        }
        let created = parse_time("created", &p.created)?;
        let expires = p.expires.as_deref().map(|e| parse_time("expires", e)).transpose()?;
        Ok(Seal { digest, name: subject.name, manifest, predicate: p, created, expires, signatures, pae })
    }
}

fn parse_time(field: &'static str, value: &str) -> Result<SystemTime, SealError> {
    humantime::parse_rfc3339(value).map_err(|_| SealError::Time { field, value: value.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Entry, Kind};

    fn sample() -> Manifest {
        Manifest::from_entries(vec![Entry {
            path: b"/bin/sh".to_vec(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            kind: Kind::File { size: 3, sha256: [7; 32], cap: None },
        }])
    }

    fn req(m: &Manifest) -> SealRequest<'_> {
        SealRequest { manifest: m, name: "rootfs", created: SystemTime::UNIX_EPOCH, expires: None, image: None }
    }

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn a_created_seal_parses_back_with_its_manifest() {
        let m = sample();
        let key = SigningKey::from_bytes(&[1; 32]);
        let bytes = create(&req(&m), &key);
        let seal = Seal::parse(&bytes).unwrap();
        assert_eq!(seal.digest, m.digest());
        assert_eq!(seal.manifest, m);
        assert_eq!(seal.name, "rootfs");
        assert_eq!(seal.signatures.len(), 1);
        key.verifying_key().verify_strict(&seal.pae, &seal.signatures[0].1).unwrap();
    }

    #[test]
    fn structural_tampering_is_refused() {
        let m = sample();
        let key = SigningKey::from_bytes(&[1; 32]);
        let text = String::from_utf8(create(&req(&m), &key)).unwrap();
        let cases = [
            (text.replace(PAYLOAD_TYPE, "application/vnd.in-toto+json "), "payloadType"),
            (text.replace(PAYLOAD_TYPE, "Application/vnd.in-toto+json"), "payloadType"),
            (text.replacen("\"payloadType\"", "\"payloadType\": \"x\", \"payloadType\"", 1), "duplicate"),
            (text.replacen("\"sig\": \"", "\"sig\": \"!", 1), "base64"),
            (text.replacen("\"signatures\": [", "\"signatures\": [], \"x\": [", 1), "JSON"),
            (text[..text.len() / 2].to_string(), "JSON"),
        ];
        for (bad, want) in cases {
            let err = Seal::parse(bad.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn a_manifest_that_does_not_match_the_subject_is_refused() {
        let m = sample();
        let payload = statement(&req(&m));
        let mut st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        st["subject"][0]["digest"]["sha256"] = serde_json::Value::String("0".repeat(64));
        let payload = serde_json::to_vec(&st).unwrap();
        let key = SigningKey::from_bytes(&[1; 32]);
        let sig = key.sign(&pae(PAYLOAD_TYPE, &payload));
        let bytes = envelope(&payload, &[(String::new(), sig.to_bytes().to_vec())]);
        assert!(matches!(Seal::parse(&bytes), Err(SealError::ManifestMismatch { .. })));
    }
}
