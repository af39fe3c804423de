//! Step 7: the scan gate, once integrity accepted a seal. The records filed at import
//! (src/attest/store.rs) are judged by src/verify/gate.rs; a record that is not under the
//! node's HMAC key is re-verified from its envelope, and every record's signers are checked
//! against the trust store the hook loaded for this start (a key revoked since the import
//! vouches for nothing).

use super::*;
use crate::attest::store::AttestStore;
use crate::verify::gate::{self, Product};

pub(super) fn scan_gate(cfg: &Config, d: &mut Decision, trust: &Trust, runtime_image: Option<&str>) {
    if !d.violations.is_empty() {
        return;
    }
    let Some(seal) = d.seal.clone() else { return };
    let policies: Vec<&gate::ScanPolicy> = cfg
        .scan_policies(runtime_image, d.pod.as_ref().map(|p| p.namespace.as_str()), &seal.name)
        .into_iter()
        .filter(|p| p.require)
        .collect();
    let Some(min) = policies.iter().map(|p| p.max_severity).min() else { return };
    let now = SystemTime::now();
    let vex_max = policies.iter().map(|p| p.vex_max_age.get()).min().unwrap_or_default();
    let reopen = |bytes: &[u8]| crate::attest::open(bytes, trust, now, vex_max).ok();
    let store = AttestStore::new(&cfg.seal_dir, &cfg.cache_dir);
    // The signers as the trust store names them now: a key removed or revoked since the
    // import withdraws what it signed.
    let records = crate::attest::retrust_scans(store.scans(&seal.digest, min, &reopen), Some(trust));
    let vex = crate::attest::retrust_vex(if records.is_empty() { Vec::new() } else { store.vex(&reopen) }, Some(trust));
    let short = TreeDigest::parse(&seal.digest).map(|t| t.short()).unwrap_or_else(|| seal.digest.clone());
    let image = records.iter().find_map(|r| r.image.clone());
    let product = Product { tree: &seal.digest, name: &seal.name, image: image.as_deref() };
    for policy in policies {
        if let Err(r) = gate::judge(policy, &short, &product, &records, &vex, now) {
            d.violations.push(Violation::new(r.code, r.message));
            return;
        }
    }
}
