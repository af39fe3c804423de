//! Drift prevention for each watched container, kept in step with its scans: attached once the
//! container runs in its root (a container started before the monitor on the first scan), the
//! mounts it gained since marked, the mode, seal and allow patterns re-read after a reload, and
//! detached when prevention is turned off for it (src/monitor/prevent/ does the judging).

use super::prevent::{self, decide, PreventionStatus};
use super::*;
use crate::policy::Prevent;

impl Monitor {
    pub(super) fn protect(&mut self, id: &str) {
        let Some(w) = self.watched.get(id) else { return };
        // The rule for the seal's signed name decides; the rule for the record's image name can
        // only make it stricter: that name may be a `rootseal.dev/image` annotation, which the
        // container's creator sets (the scan gate ignores it for the same reason). A rule scoped
        // to the pod's namespace (set by containerd's CRI plugin) counts with the image name's.
        let seal_rule = w.seal.as_ref().and_then(|(s, _)| policy::rule(&self.cfg.rules, Some(&s.name)));
        let namespace = w.rec.pod.as_ref().map(|p| p.namespace.as_str());
        let image_rule = policy::rule_for(&self.cfg.rules, w.rec.image.as_deref(), namespace);
        let mode = decide::mode_for(
            self.cfg.monitor.prevent,
            seal_rule.and_then(|r| r.prevent),
            image_rule.and_then(|r| r.prevent),
            w.rec.mode == "audit",
        );
        let allow: Vec<String> = self
            .cfg
            .monitor
            .allow_exec
            .iter()
            .chain(seal_rule.map(|r| r.allow_exec.iter()).into_iter().flatten())
            .cloned()
            .collect();
        let w = self.watched.get_mut(id).expect("watched");
        w.protect_mode = mode;
        if mode == Prevent::Off {
            if let (Some(Ok(p)), Some(a)) = (&self.prevention, w.protection.take()) {
                p.detach(&a);
            }
            w.protect_error = None;
            return;
        }
        // Between the hook and runc's pivot_root there is no root to mark yet.
        if w.outcome == Outcome::Pending {
            return;
        }
        let (Some((seal, _)), Some(pid)) = (w.seal.as_ref(), w.rec.pid.filter(|_| w.pidfd.is_some())) else {
            w.protect_error = Some(format!(
                "not protected: {}",
                w.last_error.as_deref().unwrap_or("its seal or its process is unknown")
            ));
            return;
        };
        let p = self.prevention.get_or_insert_with(|| {
            prevent::Prevention::start(self.cfg.monitor.prevent_deadline.get(), (self.cfg.alerts.clone(), self.console))
                .map_err(|e| e.to_string())
        });
        let p = match p {
            Ok(p) => p,
            Err(e) => {
                w.protect_error = Some(e.clone());
                return;
            }
        };
        let template =
            scan::event(w, alerts::EventKind::ExecBlocked, alerts::Severity::Err, Vec::new(), String::new(), None);
        let req = prevent::Request { id: w.rec.id.clone(), pid, mode, seal: Arc::clone(seal), allow, template };
        match p.attach(req, w.protection.as_ref()) {
            Ok(a) => {
                w.protect_error = None;
                w.protection = Some(a);
            }
            Err(e) => {
                // A container that exited meanwhile is dropped at the next refresh.
                w.protect_error = Some(e.to_string());
            }
        }
    }

    /// Step 5's view of a container's protection (None when off).
    pub(super) fn prevention_status(&self, w: &Watched) -> Option<PreventionStatus> {
        if w.protect_mode == Prevent::Off {
            return None;
        }
        let mut st = w.protection.as_ref().map(|a| a.status()).unwrap_or_default();
        st.mode = w.protect_mode;
        if let Some(e) = &w.protect_error {
            st.error = Some(e.clone());
        } else if w.protection.is_none() {
            st.error = Some("not attached yet (the container's first scan attaches it)".into());
        }
        Some(st)
    }
}
