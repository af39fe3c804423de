//! Admitting a seal into the node's seal store: parsed, verified, then filed. `trust import`
//! (a file an operator hands over) and `pull`/`sync` (a seal fetched from a registry) both come
//! here, so a seal from a registry is filed exactly as an imported one, and only after it
//! verifies: nothing unverified ever enters the store.

use crate::seal::{Seal, SealError};
use crate::store::{SealStore, StoreError};
use crate::verify::judge::Refusal;
use crate::verify::Signer;
use std::path::{Path, PathBuf};

/// `R`: why `check` refused the seal (a [`Refusal`] under the node's policy, a
/// [`crate::verify::Rejection`] for `trust import`).
#[derive(Debug, thiserror::Error)]
pub enum AdmitError<R: std::fmt::Display + std::fmt::Debug = Refusal> {
    #[error("not a valid seal: {0}")]
    Malformed(#[from] SealError),
    #[error("{0}")]
    Refused(R),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A seal in the store.
#[derive(Debug)]
pub struct Admitted {
    pub seal: Seal,
    pub signers: Vec<Signer>,
    pub path: PathBuf,
    /// Nothing new was filed: the same bytes were filed already (they are filed again, which
    /// completes an index a killed writer left unfinished), or (`kept_newer`) a newer seal of
    /// the same tree is filed and nothing was written.
    pub unchanged: bool,
    /// A fetched seal older than the valid seal filed for the same tree: that one was kept
    /// ([`admit_fetched`]).
    pub kept_newer: bool,
    /// A seal for the same digest was replaced (other bytes: another signature set).
    pub replaced: bool,
}

impl Admitted {
    /// `imported seal sha256:… (name) signed by k into PATH`, the line `trust import` prints.
    pub fn line(&self, verb: &str) -> String {
        let names: Vec<&str> = self.signers.iter().map(|s| s.name.as_str()).collect();
        format!(
            "{verb} seal {} ({}) signed by {} into {}{}",
            self.seal.digest,
            self.seal.name,
            names.join(", "),
            self.path.display(),
            if self.kept_newer {
                " (not filed: the seal there is newer)"
            } else if self.unchanged {
                " (already there)"
            } else if self.replaced {
                " (replaced the previous seal)"
            } else {
                ""
            }
        )
    }
}

/// Parses `bytes`, asks `check` whether the seal is acceptable (signers, trust, policy), and
/// files it in `seal_dir`.
pub fn admit<R: std::fmt::Display + std::fmt::Debug>(
    seal_dir: &Path,
    bytes: &[u8],
    check: impl FnOnce(&Seal) -> Result<Vec<Signer>, R>,
) -> Result<Admitted, AdmitError<R>> {
    let seal = Seal::parse(bytes)?;
    let signers = check(&seal).map_err(AdmitError::Refused)?;
    let store = SealStore::new(seal_dir);
    let path = store.path_for(&seal.digest);
    let unchanged = store.get(&seal.digest)?.is_some_and(|old| old == bytes);
    // Filed again even when the same bytes are there (reported as unchanged): a writer killed
    // between the seal file and its indexes left a seal the hook cannot find by content, and
    // `put`, idempotent, completes the indexes and removes the dead writer's temp file
    // (integration/crash.rs kills imports at random points and runs them again).
    let replaced = store.put(&seal.digest, &seal.name, &seal.manifest, bytes)? && !unchanged;
    Ok(Admitted { seal, signers, path, unchanged, kept_newer: false, replaced })
}

/// [`admit`] for a seal fetched from a registry (`pull`, `sync`): it does not replace a seal of
/// the same tree that was created later and still passes `check`. A registry keeps every seal
/// an image was ever given and lists them in any order; filing each in turn would leave
/// whichever came last, and an older seal over a newer one is a rollback the hook then refuses
/// (src/trust/rollback.rs). A deliberate rollback stays an operator's act: `trust import`, then
/// `rollback allow`.
pub fn admit_fetched<R: std::fmt::Display + std::fmt::Debug>(
    seal_dir: &Path,
    bytes: &[u8],
    check: impl Fn(&Seal) -> Result<Vec<Signer>, R>,
) -> Result<Admitted, AdmitError<R>> {
    let seal = Seal::parse(bytes)?;
    let signers = check(&seal).map_err(AdmitError::Refused)?;
    let store = SealStore::new(seal_dir);
    if let Some(old) = store.get(&seal.digest)?.and_then(|b| Seal::parse(&b).ok()) {
        if old.created > seal.created && check(&old).is_ok() {
            let path = store.path_for(&seal.digest);
            return Ok(Admitted { seal, signers, path, unchanged: true, kept_newer: true, replaced: false });
        }
    }
    admit(seal_dir, bytes, |_| Ok(signers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Entry, Kind, Manifest};
    use crate::seal::SealRequest;
    use crate::verify::Signer;
    use ed25519_dalek::SigningKey;
    use std::time::{Duration, SystemTime};

    fn sealed(key: &SigningKey, created: SystemTime) -> Vec<u8> {
        let m = Manifest::from_entries(vec![Entry {
            path: b"/a".to_vec(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            kind: Kind::File { size: 1, sha256: [7; 32], cap: None },
        }]);
        crate::seal::create(&SealRequest { manifest: &m, name: "app", created, expires: None, image: None }, key)
    }

    fn signer(_: &Seal) -> Result<Vec<Signer>, String> {
        Ok(Vec::new())
    }

    /// A registry lists an image's seals newest first (or in any order): filing each in turn
    /// used to leave the oldest in the store, a rollback the hook then refused.
    #[test]
    fn a_fetched_seal_does_not_replace_a_newer_one_of_the_same_tree() {
        let d = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[3; 32]);
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (older, newer) = (sealed(&key, t), sealed(&key, t + Duration::from_secs(60)));
        let path = |a: &Admitted| std::fs::read(&a.path).unwrap();

        let a = admit_fetched(d.path(), &newer, signer).unwrap();
        assert!(!a.unchanged && !a.kept_newer && path(&a) == newer);
        let a = admit_fetched(d.path(), &older, signer).unwrap();
        assert!(a.unchanged && a.kept_newer && !a.replaced, "{a:?}");
        assert_eq!(path(&a), newer);
        assert!(a.line("stored").ends_with("(not filed: the seal there is newer)"), "{}", a.line("stored"));
        // A stored newer seal that no longer passes (its key revoked, say) is replaced.
        let refuse_newer = |s: &Seal| if s.created > t { Err("revoked".to_string()) } else { Ok(Vec::new()) };
        let a = admit_fetched(d.path(), &older, refuse_newer).unwrap();
        assert!(a.replaced && !a.kept_newer && path(&a) == older, "{a:?}");
        // Newer over older, and the same bytes again.
        let a = admit_fetched(d.path(), &newer, signer).unwrap();
        assert!(a.replaced && path(&a) == newer);
        assert!(admit_fetched(d.path(), &newer, signer).unwrap().unchanged);
        // The same bytes again complete the indexes a killed writer left unfinished.
        std::fs::remove_dir_all(d.path().join("by-content")).unwrap();
        let a = admit_fetched(d.path(), &newer, signer).unwrap();
        assert!(a.unchanged && !a.replaced && d.path().join("by-content").read_dir().unwrap().count() == 1);
        // `trust import` (admit) still files an older seal: a deliberate rollback.
        let a = admit(d.path(), &older, signer).unwrap();
        assert!(a.replaced && path(&a) == older);
    }
}
