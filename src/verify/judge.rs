//! The judgement the hook and the monitor share: which rules apply to a seal, what they require
//! together, and whether the seal's signers meet it. Pure over its facts (the node's policy, the
//! rules, the trust store's answer, `now`): no file is read here.
//!
//! The rules are the runtime image name's (when the runtime reported one) and the seal's signed
//! subject name's, combined strictest-wins (docs/config.md, "How the mode is chosen").

use crate::manifest::TreeDigest;
use crate::policy::{self, Mode, Rule};
use crate::seal::Seal;
use crate::trust::Trust;
use crate::verify::{self, Code, Rejection, Signer};
use std::time::SystemTime;

/// The node's policy as the judgement needs it, taken from the config
/// ([`crate::config::Config::node_policy`]).
#[derive(Debug, Clone, Copy)]
pub struct NodePolicy<'a> {
    /// The global mode (when no rule applies).
    pub mode: Mode,
    pub rules: &'a [Rule],
    /// `[hook] min_signers`: the least any rule may ask.
    pub min_signers: usize,
}

/// The rules that apply and what they require together: every rule's key requirement, the
/// largest `min_signers`, and enforce if any of them (or the global mode, when none applies)
/// says enforce. Combining can only make a decision stricter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub mode: Mode,
    pub min_signers: usize,
    pub names: Vec<String>,
}

/// Why a seal is refused: the violation code and the operator's one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Rejection> for Refusal {
    fn from(r: Rejection) -> Refusal {
        Refusal { code: r.code(), message: r.to_string() }
    }
}

/// What `rules` require together under the node's policy.
pub fn effective(p: &NodePolicy<'_>, rules: &[&Rule]) -> Effective {
    let mode = if rules.is_empty() {
        p.mode
    } else if rules.iter().any(|r| r.mode.unwrap_or(p.mode) == Mode::Enforce) {
        Mode::Enforce
    } else {
        Mode::Audit
    };
    let min_signers = rules.iter().filter_map(|r| r.min_signers).chain([p.min_signers]).max().unwrap_or(1);
    Effective { mode, min_signers, names: rules.iter().map(|r| r.name.clone()).collect() }
}

/// The seal against trust and policy: trusted, unrevoked, unexpired signers, as many as the
/// rules that apply require, and from the keys they name.
pub fn seal_policy(
    p: &NodePolicy<'_>,
    seal: &Seal,
    trust: &Trust,
    image_rule: Option<&Rule>,
    now: SystemTime,
) -> Result<(Vec<Signer>, Effective), Refusal> {
    judge(p, &seal.name, &seal.digest, image_rule, |min| verify::check_seal(seal, trust, now, min))
}

/// [`seal_policy`] for a seal whose signatures verified earlier for the keys `verifying`
/// ([`verify::check_memo`]): trust, revocation, expiry and the rules judged now.
#[allow(clippy::too_many_arguments)]
pub fn memo_policy(
    p: &NodePolicy<'_>,
    name: &str,
    digest: &TreeDigest,
    verifying: &[String],
    expires: Option<SystemTime>,
    trust: &Trust,
    image_rule: Option<&Rule>,
    now: SystemTime,
) -> Result<(Vec<Signer>, Effective), Refusal> {
    judge(p, name, digest, image_rule, |min| verify::check_memo(*digest, verifying, expires, trust, now, min))
}

/// The judgement for a seal known by its signed `name` and `digest`; `signatures` answers which
/// trusted signers sign it when `min` of them are required.
pub fn judge(
    p: &NodePolicy<'_>,
    name: &str,
    digest: &TreeDigest,
    image_rule: Option<&Rule>,
    signatures: impl FnOnce(usize) -> Result<Vec<Signer>, Rejection>,
) -> Result<(Vec<Signer>, Effective), Refusal> {
    let mut rules: Vec<&Rule> = image_rule.into_iter().collect();
    if let Some(r) = policy::rule(p.rules, Some(name)) {
        if !rules.iter().any(|x| x.name == r.name) {
            rules.push(r);
        }
    }
    let eff = effective(p, &rules);
    let signers = signatures(eff.min_signers)?;
    for r in rules.iter().filter(|r| !r.keys.is_empty()) {
        if !signers.iter().any(|s| r.keys.contains(&s.name)) {
            let by: Vec<&str> = signers.iter().map(|s| s.name.as_str()).collect();
            return Err(Refusal {
                code: Code::WrongKey,
                message: format!(
                    "seal {} is signed by {} but rule {:?} requires one of {}",
                    digest.short(),
                    by.join(", "),
                    r.name,
                    r.keys.join(", ")
                ),
            });
        }
    }
    Ok((signers, eff))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, images: &str, mode: Option<Mode>, keys: &[&str], min: Option<usize>) -> Rule {
        Rule {
            name: name.into(),
            images: vec![images.into()],
            namespaces: vec![],
            keys: keys.iter().map(|k| k.to_string()).collect(),
            mode,
            min_signers: min,
            drift_action: None,
            allow_remount: None,
            scan: None,
            prevent: None,
            allow_exec: Vec::new(),
        }
    }

    fn signer(name: &str) -> Signer {
        Signer { name: name.into(), keyid: format!("{name}-id") }
    }

    fn digest() -> TreeDigest {
        TreeDigest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap()
    }

    #[test]
    fn modes_combine_strictest_wins_and_min_signers_takes_the_largest() {
        let rules = [
            rule("dev", "dev/**", Some(Mode::Audit), &[], Some(2)),
            rule("prod", "prod/**", Some(Mode::Enforce), &[], None),
        ];
        let p = NodePolicy { mode: Mode::Enforce, rules: &rules, min_signers: 1 };
        assert_eq!(effective(&p, &[]).mode, Mode::Enforce, "no rule: the global mode");
        let e = effective(&p, &[&rules[0]]);
        assert_eq!((e.mode, e.min_signers), (Mode::Audit, 2));
        let e = effective(&p, &[&rules[0], &rules[1]]);
        assert_eq!((e.mode, e.min_signers, e.names.len()), (Mode::Enforce, 2, 2));
        let audit = NodePolicy { mode: Mode::Audit, rules: &rules, min_signers: 3 };
        assert_eq!(effective(&audit, &[&rules[1]]).min_signers, 3, "the node's floor");
    }

    #[test]
    fn the_signed_name_adds_its_rule_and_every_rule_needs_one_of_its_keys() {
        let rules = [rule("prod", "prod/**", None, &["release"], Some(2))];
        let p = NodePolicy { mode: Mode::Enforce, rules: &rules, min_signers: 1 };
        let mut asked = 0;
        let r = judge(&p, "prod/app:1", &digest(), None, |min| {
            asked = min;
            Ok(vec![signer("ci"), signer("other")])
        });
        assert_eq!(asked, 2, "the signed name's rule asks for two signers");
        let refusal = r.unwrap_err();
        assert_eq!(refusal.code, "wrong-key");
        assert!(
            refusal.message.contains("signed by ci, other but rule \"prod\" requires one of release"),
            "{refusal:?}"
        );
        let (signers, eff) = judge(&p, "prod/app:1", &digest(), None, |_| Ok(vec![signer("release")])).unwrap();
        assert_eq!((signers.len(), eff.names.as_slice()), (1, &["prod".to_string()][..]));
        // A name no rule matches: the global mode, no key requirement.
        let (_, eff) = judge(&p, "other/app", &digest(), None, |_| Ok(vec![signer("ci")])).unwrap();
        assert_eq!((eff.mode, eff.names.len()), (Mode::Enforce, 0));
    }

    #[test]
    fn a_signature_rejection_keeps_its_code() {
        let p = NodePolicy { mode: Mode::Enforce, rules: &[], min_signers: 1 };
        let r = judge(&p, "x", &digest(), None, |_| Err(Rejection::DigestRevoked { digest: digest() }));
        assert_eq!(r.unwrap_err().code, "digest-revoked");
    }
}
