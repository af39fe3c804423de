//! The scan gate while a container runs: the same judgement as at start
//! (src/verify/gate.rs), again at every scan. A scan that passes `max_age` while the
//! container runs raises `scan-expired`; a newer attestation whose findings are over the
//! threshold raises `scan-findings`. Either applies the container's action (the rule's
//! `drift_action`, else `[monitor] action`), once per new refusal.

use super::scan::{event, take_action, violation};
use super::*;
use crate::attest::store::AttestStore;
use crate::verify::gate::{self, Product};
use crate::verify::Code;

impl Monitor {
    pub(super) fn gate_check(&mut self, id: &str) -> Option<Event> {
        let action = self.action_for(id);
        let max_paths = self.cfg.monitor.max_event_paths;
        let w = self.watched.get_mut(id)?;
        let (seal, _) = w.seal.as_ref()?;
        // By the seal's signed name and the CRI's namespace: the record does not say whether
        // its image name was the runtime's or an annotation the container's creator set, which
        // must not pick a policy (its pod comes from the CRI's own annotations only).
        let namespace = w.rec.pod.as_ref().map(|p| p.namespace.as_str());
        let policies: Vec<&gate::ScanPolicy> =
            self.cfg.scan_policies(None, namespace, &seal.name).into_iter().filter(|p| p.require).collect();
        let min = policies.iter().map(|p| p.max_severity).min()?;
        let now = SystemTime::now();
        let store = AttestStore::new(&self.cfg.seal_dir, &self.cfg.cache_dir);
        let vex_max = policies.iter().map(|p| p.vex_max_age.get()).min().unwrap_or_default();
        // Without a trust store no signer can be checked; the container's own scan already
        // reports that (scan-failed), and no scan is judged expired for it.
        let trust = Some(self.trust.as_ref().ok()?);
        let reopen = |b: &[u8]| crate::attest::open(b, trust?, now, vex_max).ok();
        let tree = seal.digest.to_string();
        let records = crate::attest::retrust_scans(store.scans(&tree, min, &reopen), trust);
        let vex = crate::attest::retrust_vex(store.vex(&reopen), trust);
        let image = records.iter().find_map(|r| r.image.clone());
        let product = Product { tree: &tree, name: &seal.name, image: image.as_deref() };
        let short = seal.digest.short();
        let verdict = policies
            .iter()
            .map(|p| gate::judge(p, &short, &product, &records, &vex, now))
            .find(|v| v.is_err())
            .unwrap_or(Ok(gate::Passed { attestation: String::new(), scanned_at: String::new(), excused: 0 }));
        let refusal = match verdict {
            Ok(_) => {
                w.gate_reported = None;
                return None;
            }
            Err(r) => r,
        };
        // Once per refusal: an expiry by its code (its message counts the hours), findings by
        // their list (a newer scan with other findings is news).
        let key = match refusal.code {
            Code::ScanFindings => refusal.message.clone(),
            c => c.as_str().to_string(),
        };
        if w.gate_reported.as_deref() == Some(key.as_str()) {
            return None;
        }
        w.gate_reported = Some(key);
        let (kind, code) = match refusal.code {
            Code::ScanFindings => (alerts::EventKind::ScanFindings, Code::ScanFindings),
            // Stale, or no longer any scan that counts: it expired under the running container.
            _ => (alerts::EventKind::ScanExpired, Code::ScanExpired),
        };
        let outcome = if w.action_taken.is_none() { take_action(w, action) } else { None };
        if let Some((a, true)) = &outcome {
            w.action_taken = Some(a.clone());
        }
        let act = outcome.map(|(a, _)| a);
        let msg = format!(
            "rootseal: running container {}: {}{}",
            crate::alerts::short_id(id),
            refusal.message,
            act.as_ref().map(|a| format!("; action: {a}")).unwrap_or_default()
        );
        let v = violation(code, &msg, &[], max_paths);
        Some(event(w, kind, alerts::Severity::Err, vec![v], msg, act))
    }
}
