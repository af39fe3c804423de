//! Violation codes: why a container is refused (or, in audit mode, would be), as one enum. The
//! serde names are the strings events, JSON output and docs use (docs/hook.md, docs/events.md).

use serde::{Deserialize, Serialize};

/// Every reason the hook, `check` or the monitor gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    // The read-only and mount policy.
    WritableRoot,
    WritableMount,
    RemountCapable,
    MountUnclean,
    // Integrity.
    Unsigned,
    Tampered,
    Untrusted,
    BadSignature,
    KeyRevoked,
    DigestRevoked,
    Threshold,
    Expired,
    WrongKey,
    SealInvalid,
    MountOverRoot,
    MountRedirect,
    Shadowed,
    Rollback,
    // The scan gate (src/verify/gate.rs).
    ScanMissing,
    ScanStale,
    ScanFindings,
    // Errors, which fail closed.
    State,
    Usage,
    Bundle,
    Rootfs,
    TrustStore,
    SealStore,
    RollbackStore,
    RecordConflict,
    Deadline,
    // The drift monitor.
    Drift,
    RootfsReplaced,
    ScanFailed,
    /// A running container's scan passed `max_age`.
    ScanExpired,
    /// Drift prevention: an exec of a file that is not in the seal at its path.
    ExecNotSealed,
}

impl Code {
    pub const ALL: [Code; 35] = [
        Code::WritableRoot,
        Code::WritableMount,
        Code::RemountCapable,
        Code::MountUnclean,
        Code::Unsigned,
        Code::Tampered,
        Code::Untrusted,
        Code::BadSignature,
        Code::KeyRevoked,
        Code::DigestRevoked,
        Code::Threshold,
        Code::Expired,
        Code::WrongKey,
        Code::SealInvalid,
        Code::MountOverRoot,
        Code::MountRedirect,
        Code::Shadowed,
        Code::Rollback,
        Code::ScanMissing,
        Code::ScanStale,
        Code::ScanFindings,
        Code::State,
        Code::Usage,
        Code::Bundle,
        Code::Rootfs,
        Code::TrustStore,
        Code::SealStore,
        Code::RollbackStore,
        Code::RecordConflict,
        Code::Deadline,
        Code::Drift,
        Code::RootfsReplaced,
        Code::ScanFailed,
        Code::ScanExpired,
        Code::ExecNotSealed,
    ];

    /// The code as events and messages spell it (`tampered`, `mount-redirect`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::WritableRoot => "writable-root",
            Code::WritableMount => "writable-mount",
            Code::RemountCapable => "remount-capable",
            Code::MountUnclean => "mount-unclean",
            Code::Unsigned => "unsigned",
            Code::Tampered => "tampered",
            Code::Untrusted => "untrusted",
            Code::BadSignature => "bad-signature",
            Code::KeyRevoked => "key-revoked",
            Code::DigestRevoked => "digest-revoked",
            Code::Threshold => "threshold",
            Code::Expired => "expired",
            Code::WrongKey => "wrong-key",
            Code::SealInvalid => "seal-invalid",
            Code::MountOverRoot => "mount-over-root",
            Code::MountRedirect => "mount-redirect",
            Code::Shadowed => "shadowed",
            Code::Rollback => "rollback",
            Code::ScanMissing => "scan-missing",
            Code::ScanStale => "scan-stale",
            Code::ScanFindings => "scan-findings",
            Code::State => "state",
            Code::Usage => "usage",
            Code::Bundle => "bundle",
            Code::Rootfs => "rootfs",
            Code::TrustStore => "trust-store",
            Code::SealStore => "seal-store",
            Code::RollbackStore => "rollback-store",
            Code::RecordConflict => "record-conflict",
            Code::Deadline => "deadline",
            Code::Drift => "drift",
            Code::RootfsReplaced => "rootfs-replaced",
            Code::ScanFailed => "scan-failed",
            Code::ScanExpired => "scan-expired",
            Code::ExecNotSealed => "exec-not-sealed",
        }
    }

    /// How telling a refusal is when several candidate seals fail: a validly signed seal that
    /// matches but is refused (rolled back, hidden by a mount) says exactly what is wrong; then
    /// a validly signed seal that differs names the paths; anything else comes after.
    pub fn rank(self) -> u8 {
        match self {
            Code::Rollback | Code::RollbackStore | Code::Shadowed => 2,
            Code::Tampered => 1,
            _ => 0,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_the_documented_strings() {
        let docs = include_str!("../../docs/hook.md");
        for c in Code::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str(), "{c:?}");
            assert_eq!(serde_json::from_value::<Code>(c.as_str().into()).unwrap(), c);
            if !matches!(
                c,
                Code::Drift | Code::RootfsReplaced | Code::ScanFailed | Code::ScanExpired | Code::ExecNotSealed
            ) {
                assert!(docs.contains(&format!("`{c}`")), "docs/hook.md names the code {c}");
            }
        }
    }
}
