//! Ed25519 keys: PKCS#8 PEM private keys and SPKI PEM public keys, interchangeable with
//! `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`; key ids.

use crate::atomic;
use crate::manifest::hex;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// PEM key files are tiny; anything larger is not a key.
pub const MAX_KEY_FILE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("key {} is larger than {MAX_KEY_FILE} bytes; it is not a PEM key", path.display())]
    TooLarge { path: PathBuf },
    #[error("{} is a private key; give the public key (PREFIX.pub, or `openssl pkey -in KEY -pubout`)", path.display())]
    PrivateGivenAsPublic { path: PathBuf },
    #[error("{} is a public key; signing needs the private key (PREFIX.key)", path.display())]
    PublicGivenAsPrivate { path: PathBuf },
    #[error("{} is not an ed25519 {what} in PEM form: {detail}", path.display())]
    Parse { path: PathBuf, what: &'static str, detail: String },
    #[error("cannot write key {}: {source}", path.display())]
    Write { path: PathBuf, source: atomic::WriteError },
    #[error("{} already exists; remove it or choose another --out prefix", path.display())]
    Exists { path: PathBuf },
}

/// A public key with the id seals refer to it by.
#[derive(Debug, Clone)]
pub struct PublicKey {
    pub key: VerifyingKey,
    /// Lowercase hex SHA-256 of the SPKI DER encoding.
    pub keyid: String,
}

impl PublicKey {
    pub fn new(key: VerifyingKey) -> PublicKey {
        let der = key.to_public_key_der().expect("ed25519 SPKI encoding cannot fail");
        PublicKey { key, keyid: hex(&Sha256::digest(der.as_bytes())) }
    }

    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .expect("ed25519 SPKI PEM encoding cannot fail")
    }

    /// Parses SPKI PEM text; `path` is only for messages.
    pub fn from_pem(text: &str, path: &Path) -> Result<PublicKey, KeyError> {
        if text.contains("PRIVATE KEY-----") {
            return Err(KeyError::PrivateGivenAsPublic { path: path.into() });
        }
        VerifyingKey::from_public_key_pem(text.trim()).map(PublicKey::new).map_err(|e| KeyError::Parse {
            path: path.into(),
            what: "public key (SPKI)",
            detail: e.to_string(),
        })
    }

    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        PublicKey::from_pem(&read_key_file(path)?, path)
    }
}

/// Loads a PKCS#8 PEM private key.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let text = read_key_file(path)?;
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        return Err(KeyError::PublicGivenAsPrivate { path: path.into() });
    }
    SigningKey::from_pkcs8_pem(text.trim()).map_err(|e| KeyError::Parse {
        path: path.into(),
        what: "private key (PKCS#8)",
        detail: e.to_string(),
    })
}

fn read_key_file(path: &Path) -> Result<String, KeyError> {
    let bytes = atomic::read_bounded(path, MAX_KEY_FILE).map_err(|e| match e {
        atomic::ReadError::TooLarge { .. } => KeyError::TooLarge { path: path.into() },
        atomic::ReadError::Io { source, .. } => KeyError::Read { path: path.into(), source },
    })?;
    String::from_utf8(bytes).map_err(|_| KeyError::Parse { path: path.into(), what: "key", detail: "not text".into() })
}

/// Writes a new key pair: `PREFIX.key` (PKCS#8 PEM, mode 0600) and `PREFIX.pub` (SPKI PEM).
/// Refuses to overwrite either file.
pub fn keygen(prefix: &Path) -> Result<(PathBuf, PathBuf, PublicKey), KeyError> {
    let key_path = with_suffix(prefix, ".key");
    let pub_path = with_suffix(prefix, ".pub");
    for p in [&key_path, &pub_path] {
        if p.symlink_metadata().is_ok() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    let sk = SigningKey::generate(&mut rand_core::OsRng);
    let pem = private_key_pem(&sk);
    let public = PublicKey::new(sk.verifying_key());
    atomic::write_new(&key_path, pem.as_bytes(), 0o600)
        .map_err(|e| KeyError::Write { path: key_path.clone(), source: e })?;
    atomic::write_new(&pub_path, public.to_pem().as_bytes(), 0o644)
        .map_err(|e| KeyError::Write { path: pub_path.clone(), source: e })?;
    Ok((key_path, pub_path, public))
}

/// PKCS#8 v1 (RFC 5208: the seed only, no embedded public key), as `openssl genpkey -algorithm
/// ed25519` writes it. ed25519-dalek's own encoder writes v2 (RFC 5958, the public key embedded),
/// which OpenSSL 3.0 and Python `cryptography` refuse; both versions are read.
fn private_key_pem(sk: &SigningKey) -> ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing<String> {
    let v1 = ed25519_dalek::pkcs8::KeypairBytes { secret_key: sk.to_bytes(), public_key: None };
    v1.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).expect("ed25519 PKCS#8 encoding cannot fail")
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_round_trips_and_refuses_to_overwrite() {
        let t = tempfile::tempdir().unwrap();
        let prefix = t.path().join("ci");
        let (k, p, public) = keygen(&prefix).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
        let sk = load_signing_key(&k).unwrap();
        let loaded = PublicKey::load(&p).unwrap();
        assert_eq!(loaded.key, sk.verifying_key());
        assert_eq!(loaded.keyid, public.keyid);
        assert_eq!(loaded.keyid.len(), 64);
        assert!(matches!(keygen(&prefix), Err(KeyError::Exists { .. })));
        assert!(matches!(PublicKey::load(&k), Err(KeyError::PrivateGivenAsPublic { .. })));
        assert!(matches!(load_signing_key(&p), Err(KeyError::PublicGivenAsPrivate { .. })));
    }

    /// OpenSSL 3.0 and Python `cryptography` read only v1 (a 48-byte DER: version 0, the
    /// algorithm, the 32-byte seed); v2 keys written by earlier releases are still read.
    #[test]
    fn keygen_writes_pkcs8_v1_and_v2_keys_still_load() {
        let t = tempfile::tempdir().unwrap();
        let (k, _, _) = keygen(&t.path().join("ci")).unwrap();
        let text = std::fs::read_to_string(&k).unwrap();
        let (label, der) = ed25519_dalek::pkcs8::spki::der::pem::decode_vec(text.as_bytes()).unwrap();
        assert_eq!(label, "PRIVATE KEY");
        assert_eq!(der.len(), 48, "v1 has no public key");
        assert_eq!(&der[..7], &[0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05], "version 0 (v1)");

        let sk = load_signing_key(&k).unwrap();
        let v2 = sk.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).unwrap();
        let v2_path = t.path().join("v2.key");
        std::fs::write(&v2_path, v2.as_bytes()).unwrap();
        assert_eq!(load_signing_key(&v2_path).unwrap().to_bytes(), sk.to_bytes());
    }
}
