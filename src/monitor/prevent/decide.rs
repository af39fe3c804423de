//! The decision, pure: facts about one exec (the path the container sees, the file's size and,
//! when needed, its content digest; the seal's entry at that path; the allow globs; the mode)
//! in, a verdict out. Nothing here touches a file, a process or the clock.

use crate::manifest::{Entry, Kind};
use crate::policy::Prevent;

/// What the facts say of the file, before the mode is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// The seal lists a regular file at this path with this size and digest.
    Sealed,
    /// Its path matches an `allow_exec` pattern.
    AllowedByPattern(String),
    /// The size matches the seal's file at this path: the content decides (hash it).
    NeedsContent,
    /// Not the sealed file, and why.
    NotSealed(Why),
}

/// Why an exec is not of a sealed file (the `changes` of the event's path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Nothing is sealed at this path.
    NotInSeal,
    /// The seal has something else at this path (a directory, a symlink, ...).
    NotAFileInSeal,
    /// The sealed file at this path has another size.
    Size,
    /// Same size, other content.
    Content,
    /// The file was deleted (its path cannot name a sealed file any more).
    Deleted,
    /// The verdict could not be reached in time (`prevent_deadline`) or at all.
    Undecided,
}

impl Why {
    /// As events spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::NotInSeal => "not-in-seal",
            Why::NotAFileInSeal => "not-a-file-in-seal",
            Why::Size => "size",
            Why::Content => "content",
            Why::Deleted => "deleted",
            Why::Undecided => "undecided",
        }
    }

    /// For the operator: what was wrong with the file.
    pub fn explain(self) -> &'static str {
        match self {
            Why::NotInSeal => "is not in the seal",
            Why::NotAFileInSeal => "is not a regular file in the seal",
            Why::Size => "has another size than the sealed file",
            Why::Content => "has other content than the sealed file",
            Why::Deleted => "was deleted",
            Why::Undecided => "could not be checked in time",
        }
    }
}

/// The file's facts as the kernel's event gives them.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The path inside the container (its mount namespace's view).
    pub path: &'a [u8],
    /// `d_path` marked the file deleted.
    pub deleted: bool,
    pub size: u64,
    /// The SHA-256 of its content, once known.
    pub sha256: Option<&'a [u8; 32]>,
}

/// Judges one exec's file against the seal's entry at its path and the allow patterns.
pub fn judge(facts: &Facts<'_>, sealed: Option<&Entry>, allow: &[String]) -> Judgement {
    let text = String::from_utf8_lossy(facts.path);
    if let Some(p) = allow.iter().find(|p| crate::glob::matches(p, &text)) {
        return Judgement::AllowedByPattern(p.clone());
    }
    if facts.deleted {
        return Judgement::NotSealed(Why::Deleted);
    }
    let Some(entry) = sealed else { return Judgement::NotSealed(Why::NotInSeal) };
    let Kind::File { size, sha256, .. } = &entry.kind else { return Judgement::NotSealed(Why::NotAFileInSeal) };
    if *size != facts.size {
        return Judgement::NotSealed(Why::Size);
    }
    match facts.sha256 {
        None => Judgement::NeedsContent,
        Some(d) if d == sha256 => Judgement::Sealed,
        Some(_) => Judgement::NotSealed(Why::Content),
    }
}

/// What the monitor answers the kernel, and whether it raises an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// FAN_ALLOW, nothing to report.
    Allow,
    /// FAN_ALLOW and an `exec-audit` event.
    AllowAudited(Why),
    /// FAN_DENY (the exec fails with EPERM) and an `exec-blocked` event.
    Deny(Why),
}

impl Verdict {
    pub fn allows(self) -> bool {
        !matches!(self, Verdict::Deny(_))
    }
}

/// The verdict for a final judgement in a mode (`NeedsContent` is not final: the caller hashes;
/// when it cannot, it asks with [`Why::Undecided`] through [`undecided`]).
pub fn verdict(mode: Prevent, j: &Judgement) -> Verdict {
    match j {
        Judgement::Sealed | Judgement::AllowedByPattern(_) => Verdict::Allow,
        Judgement::NeedsContent => undecided(mode),
        Judgement::NotSealed(why) => by_mode(mode, *why),
    }
}

/// No verdict could be reached (in time): enforce denies, audit allows and reports, off allows.
pub fn undecided(mode: Prevent) -> Verdict {
    by_mode(mode, Why::Undecided)
}

fn by_mode(mode: Prevent, why: Why) -> Verdict {
    match mode {
        Prevent::Enforce => Verdict::Deny(why),
        Prevent::Audit => Verdict::AllowAudited(why),
        Prevent::Off => Verdict::Allow,
    }
}

/// The mode for one container: the rule for its seal's signed name, else `[monitor] prevent`;
/// the rule for its image name can only make it stricter (that name may be an annotation the
/// container's creator set). A container the hook admitted in audit mode is never blocked (at
/// most audited): enforcing execs of a root that was let run without matching its seal would
/// break it on its first exec.
pub fn mode_for(
    node: Prevent,
    seal_rule: Option<Prevent>,
    image_rule: Option<Prevent>,
    admitted_in_audit: bool,
) -> Prevent {
    let m = seal_rule.unwrap_or(node).max(image_rule.unwrap_or(Prevent::Off));
    if admitted_in_audit {
        m.min(Prevent::Audit)
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64, sha: u8) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            mode: 0o755,
            uid: 0,
            gid: 0,
            kind: Kind::File { size, sha256: [sha; 32], cap: None },
        }
    }

    fn facts<'a>(path: &'a str, size: u64, sha: Option<&'a [u8; 32]>) -> Facts<'a> {
        Facts { path: path.as_bytes(), deleted: false, size, sha256: sha }
    }

    #[test]
    fn the_sealed_file_at_its_path_is_allowed_only_with_its_content() {
        let e = file("/bin/busybox", 10, 7);
        assert_eq!(judge(&facts("/bin/busybox", 10, None), Some(&e), &[]), Judgement::NeedsContent);
        assert_eq!(judge(&facts("/bin/busybox", 10, Some(&[7; 32])), Some(&e), &[]), Judgement::Sealed);
        assert_eq!(
            judge(&facts("/bin/busybox", 10, Some(&[8; 32])), Some(&e), &[]),
            Judgement::NotSealed(Why::Content)
        );
        // A size that differs decides without reading.
        assert_eq!(judge(&facts("/bin/busybox", 11, None), Some(&e), &[]), Judgement::NotSealed(Why::Size));
    }

    #[test]
    fn a_copy_elsewhere_is_not_in_the_seal() {
        // Same bytes as the sealed /bin/busybox, but at /tmp/x: nothing sealed there.
        assert_eq!(judge(&facts("/tmp/x", 10, Some(&[7; 32])), None, &[]), Judgement::NotSealed(Why::NotInSeal));
        let dir = Entry { path: b"/tmp".to_vec(), mode: 0o755, uid: 0, gid: 0, kind: Kind::Dir };
        assert_eq!(judge(&facts("/tmp", 0, None), Some(&dir), &[]), Judgement::NotSealed(Why::NotAFileInSeal));
        let deleted = Facts { deleted: true, ..facts("/bin/busybox", 10, Some(&[7; 32])) };
        assert_eq!(judge(&deleted, Some(&file("/bin/busybox", 10, 7)), &[]), Judgement::NotSealed(Why::Deleted));
    }

    #[test]
    fn allow_patterns_come_first() {
        let allow = vec!["/opt/plugins/**".to_string(), "/tmp/*.sh".to_string()];
        assert_eq!(
            judge(&facts("/opt/plugins/a/b", 1, None), None, &allow),
            Judgement::AllowedByPattern("/opt/plugins/**".into())
        );
        assert_eq!(judge(&facts("/tmp/x.sh", 1, None), None, &allow), Judgement::AllowedByPattern("/tmp/*.sh".into()));
        assert_eq!(judge(&facts("/tmp/sub/x.sh", 1, None), None, &allow), Judgement::NotSealed(Why::NotInSeal));
    }

    #[test]
    fn the_mode_turns_a_judgement_into_an_answer() {
        let not = Judgement::NotSealed(Why::NotInSeal);
        assert_eq!(verdict(Prevent::Enforce, &not), Verdict::Deny(Why::NotInSeal));
        assert_eq!(verdict(Prevent::Audit, &not), Verdict::AllowAudited(Why::NotInSeal));
        assert_eq!(verdict(Prevent::Off, &not), Verdict::Allow);
        for m in [Prevent::Enforce, Prevent::Audit, Prevent::Off] {
            assert_eq!(verdict(m, &Judgement::Sealed), Verdict::Allow);
            assert_eq!(verdict(m, &Judgement::AllowedByPattern("x".into())), Verdict::Allow);
        }
        // Undecided (a deadline passed): fail closed in enforce only.
        assert_eq!(verdict(Prevent::Enforce, &Judgement::NeedsContent), Verdict::Deny(Why::Undecided));
        assert_eq!(undecided(Prevent::Audit), Verdict::AllowAudited(Why::Undecided));
        assert!(!Verdict::Deny(Why::Size).allows() && Verdict::AllowAudited(Why::Size).allows());
    }

    #[test]
    fn a_rule_replaces_the_node_mode_and_audit_admission_caps_it() {
        use Prevent::*;
        assert_eq!(mode_for(Off, None, None, false), Off);
        assert_eq!(mode_for(Off, Some(Enforce), None, false), Enforce);
        assert_eq!(mode_for(Enforce, Some(Off), None, false), Off);
        // The image name's rule can only tighten.
        assert_eq!(mode_for(Enforce, None, Some(Off), false), Enforce, "a creator-set name cannot relax");
        assert_eq!(mode_for(Off, Some(Audit), Some(Enforce), false), Enforce);
        assert_eq!(mode_for(Enforce, None, None, true), Audit);
        assert_eq!(mode_for(Off, None, None, true), Off);
    }
}
