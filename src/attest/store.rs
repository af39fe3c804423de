//! The attestation store, beside the seal store (`<seal_dir>/attestations/`):
//!
//! ```text
//! scans/<tree hex>/<envelope hex>.json     the envelope, as imported
//! scans/<tree hex>/<envelope hex>.record   what the gate judges: a JSON header line, then
//!                                          one line per finding, most severe first
//!                                          (`SEVERITY<TAB>{json}`), then the HMAC
//! vex/<envelope hex>.json, .record         the same for VEX documents
//! ```
//!
//! Records are written at import, after the envelope verified, and carry an HMAC-SHA256 under
//! the node's key (the verification cache's, `cache_dir/key`, root-only): the hook reads a
//! record of a few KiB instead of re-verifying a 10 MiB report at every start, and a record
//! someone wrote without the key is not believed: its envelope is opened again instead (and
//! the record written anew). The hook parses only the findings at or above its threshold: the
//! lines are sorted, so it stops at the first one below.
//! Every write goes through a temporary file, fsync and rename (src/atomic.rs).

use super::Opened;
use crate::scan::report::{Finding, Severity};
use crate::verify::gate::{ScanRecord, VexRecord};
use std::path::{Path, PathBuf};

/// The most records of one subject (or VEX documents) read; the newest files first.
pub const MAX_RECORDS: usize = 64;
const MAX_RECORD_BYTES: u64 = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AttestStoreError {
    #[error("attestation store {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("attestation store: {0}")]
    Write(#[from] crate::atomic::WriteError),
    #[error("attestation store: the node key: {0}")]
    Key(#[from] crate::cache::CacheError),
}

pub struct AttestStore {
    dir: PathBuf,
    cache_dir: PathBuf,
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

impl AttestStore {
    pub fn new(seal_dir: &Path, cache_dir: &Path) -> AttestStore {
        AttestStore { dir: seal_dir.join("attestations"), cache_dir: cache_dir.into() }
    }

    fn scan_dir(&self, tree: &str) -> PathBuf {
        self.dir.join("scans").join(hex_of(tree))
    }

    /// Whether this attestation's envelope is filed already.
    pub fn contains(&self, opened: &Opened) -> bool {
        let path = match opened {
            Opened::Scan(r) => self.scan_dir(&r.subject).join(format!("{}.json", hex_of(&r.attestation))),
            Opened::Vex(v) => self.dir.join("vex").join(format!("{}.json", hex_of(&v.attestation))),
        };
        path.exists()
    }

    /// Files a verified attestation: the envelope, then its record. Returns the envelope's path.
    pub fn put(&self, bytes: &[u8], opened: &Opened) -> Result<PathBuf, AttestStoreError> {
        // The key first: an envelope is never filed without the record that goes with it.
        let key = crate::cache::key(&self.cache_dir)?;
        let (dir, name) = self.place(opened);
        std::fs::create_dir_all(&dir).map_err(|source| AttestStoreError::Io { path: dir.clone(), source })?;
        let envelope = dir.join(format!("{name}.json"));
        crate::atomic::write(&envelope, bytes, 0o644)?;
        self.write_record(&key, &dir.join(format!("{name}.record")), opened)?;
        Ok(envelope)
    }

    fn place(&self, opened: &Opened) -> (PathBuf, String) {
        match opened {
            Opened::Scan(r) => (self.scan_dir(&r.subject), hex_of(&r.attestation).to_string()),
            Opened::Vex(v) => (self.dir.join("vex"), hex_of(&v.attestation).to_string()),
        }
    }

    fn write_record(&self, key: &[u8; 32], path: &Path, opened: &Opened) -> Result<(), AttestStoreError> {
        let mut body = match opened {
            Opened::Scan(r) => {
                let mut findings = r.findings.clone();
                findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
                let header = ScanRecord { findings: Vec::new(), ..r.clone() };
                let mut out = serde_json::to_vec(&header).expect("records serialise");
                for f in &findings {
                    out.push(b'\n');
                    out.extend_from_slice(f.severity.as_str().as_bytes());
                    out.push(b'\t');
                    out.extend_from_slice(&serde_json::to_vec(f).expect("findings serialise"));
                }
                out
            }
            Opened::Vex(v) => serde_json::to_vec(v).expect("records serialise"),
        };
        let mac = crate::cache::hmac(key, &body);
        body.push(b'\n');
        body.extend_from_slice(crate::manifest::hex(&mac).as_bytes());
        crate::atomic::write(path, &body, 0o644)?;
        Ok(())
    }

    /// The scan records of the tree `tree` (`sha256:…`), newest files first, at most
    /// [`MAX_RECORDS`], with their findings at or above `min` only. A record whose HMAC does not
    /// verify is replaced by `reopen` of its envelope (None: not counted), and rewritten.
    pub fn scans(&self, tree: &str, min: Severity, reopen: &dyn Fn(&[u8]) -> Option<Opened>) -> Vec<ScanRecord> {
        self.read(&self.scan_dir(tree), min, reopen)
            .into_iter()
            .filter_map(|o| match o {
                Opened::Scan(r) if r.subject == tree => Some(r),
                _ => None,
            })
            .collect()
    }

    /// The VEX records, as [`AttestStore::scans`].
    pub fn vex(&self, reopen: &dyn Fn(&[u8]) -> Option<Opened>) -> Vec<VexRecord> {
        self.read(&self.dir.join("vex"), Severity::Unknown, reopen)
            .into_iter()
            .filter_map(|o| match o {
                Opened::Vex(v) => Some(v),
                _ => None,
            })
            .collect()
    }

    fn read(&self, dir: &Path, min: Severity, reopen: &dyn Fn(&[u8]) -> Option<Opened>) -> Vec<Opened> {
        let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut envelopes: Vec<(std::time::SystemTime, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| Some((std::fs::symlink_metadata(&p).ok()?.modified().ok()?, p)))
            .collect();
        envelopes.sort_by_key(|e| std::cmp::Reverse(e.0));
        envelopes.truncate(MAX_RECORDS);
        let key = crate::cache::key(&self.cache_dir).ok();
        let vex = dir.ends_with("vex");
        envelopes
            .into_iter()
            .filter_map(|(_, envelope)| {
                let record = envelope.with_extension("record");
                let trusted = key.and_then(|k| {
                    let bytes = crate::atomic::read_bounded(&record, MAX_RECORD_BYTES).ok()?;
                    let nl = bytes.iter().rposition(|b| *b == b'\n')?;
                    let (body, mac) = (&bytes[..nl], &bytes[nl + 1..]);
                    let mac = crate::manifest::parse_hex32(std::str::from_utf8(mac).ok()?)?;
                    crate::cache::hmac_verify(&k, body, &mac).then(|| parse_record(body, vex, min)).flatten()
                });
                trusted.or_else(|| {
                    let bytes = crate::atomic::read_bounded(&envelope, crate::seal::MAX_SEAL_BYTES).ok()?;
                    let opened = reopen(&bytes)?;
                    // Written anew under the node key: the next start reads the record.
                    if let Some(k) = key {
                        let _ = self.write_record(&k, &record, &opened);
                    }
                    Some(match opened {
                        Opened::Scan(mut r) => {
                            r.findings.retain(|f| f.severity >= min);
                            Opened::Scan(r)
                        }
                        v => v,
                    })
                })
            })
            .collect()
    }
}

/// A record's body (HMAC checked): a VEX record whole; a scan record's header and its findings
/// down to `min` (the lines are most severe first: the rest is not parsed).
fn parse_record(body: &[u8], vex: bool, min: Severity) -> Option<Opened> {
    if vex {
        return serde_json::from_slice::<VexRecord>(body).ok().map(Opened::Vex);
    }
    let mut lines = body.split(|b| *b == b'\n');
    let mut r: ScanRecord = serde_json::from_slice(lines.next()?).ok()?;
    for line in lines {
        let tab = line.iter().position(|b| *b == b'\t')?;
        let severity = Severity::parse(std::str::from_utf8(&line[..tab]).ok()?)?;
        if severity < min {
            break;
        }
        r.findings.push(serde_json::from_slice::<Finding>(&line[tab + 1..]).ok()?);
    }
    Some(Opened::Scan(r))
}
