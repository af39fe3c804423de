//! OpenVEX v0.2.0 documents (openvex/spec `OPENVEX-SPEC.md` and `openvex_json_schema.json`),
//! from bytes to a checked [`Vex`]: statements that a vulnerability does or does not affect a
//! product, which the scan gate uses to set aside findings the image's owner has answered.
//!
//! What is checked, beyond the JSON gate ([`super::check_json`]: size, duplicate keys, depth):
//! 1. `@context` is `https://openvex.dev/ns/v0.2.0` (checked first, so that a v0.0.1 document,
//!    whose `vulnerability` is a string, is named as such rather than as a type error);
//! 2. the required document fields: `@id`, `author` (non-empty), `timestamp`, `version` (1 or
//!    more), `statements` (at least one);
//! 3. per statement: `vulnerability.name` non-empty; `status` one of the four labels;
//!    `justification`, if given, one of the five labels; `not_affected` has a `justification`
//!    or an `impact_statement`, `affected` has an `action_statement` (both "MUST" in the spec
//!    and required by its schema); every product and subcomponent names itself by `@id` or an
//!    `identifiers` entry (`purl`, `cpe22`, `cpe23`), as the schema's `anyOf` requires;
//! 4. every timestamp is RFC 3339 with a zone (vexctl writes local time with an offset).
//!
//! Unknown fields are ignored (`role`, `tooling`, `status_notes`, hashes, ...).
//!
//! ## Which statement counts
//!
//! The spec: "VEX is designed to be a sequence of statements, each overriding ... the previous
//! ones", ordered by time; a statement's `timestamp` overrides the document's, which it
//! otherwise inherits ("Inheritance Flow"). So [`Vex::latest`] takes, among the statements
//! that name the vulnerability (by `name` or an alias) and apply to the product, the one known
//! last: its own `timestamp` (else the document's), or its `last_updated` if later. On a tie
//! the later statement in the document wins: documents grow by appending (the spec's
//! "Updating Statements" example).
//!
//! A statement without `products` takes its product from an encapsulating document (an
//! in-toto subject, a CSAF product tree). This parser cannot see that, so such a statement
//! applies to nothing here: a caller that verified the envelope's subject can pair the two
//! itself. A product that lists `subcomponents` is scoped to them: "not affected via openssl"
//! says nothing of the same CVE in another package of the image.
//!
//! ## When a VEX document is too old (proposal)
//!
//! OpenVEX has no expiry: a document has `timestamp` (issued) and optionally `last_updated`,
//! and is replaced by a newer `version`. But a `not_affected` verdict is a judgement made with
//! what was known then (an execute-path argument, an inline mitigation), and the spec itself
//! expects documents to be re-issued "as knowledge evolves". So rootseal's policy should carry
//! a `max_vex_age` (say 90 days): a document whose [`Vex::updated_at`] (the later of
//! `timestamp` and `last_updated`) is older than that is ignored as a whole, its findings
//! counted as if it were absent, with a warning naming the document's `@id` and author. The
//! whole document, not single statements: re-issuing it (a new `last_updated` and `version`)
//! is how its author re-affirms every statement in it, while a statement's own `timestamp`
//! records when its fact became true, which may rightly be years ago. A document dated in the
//! future has age zero ([`Vex::age`]); a policy may refuse one beyond a clock-skew allowance.

use super::{check_json, parse_time, JsonGateError, TimeError, Zone};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime};

/// The largest VEX document read. vexctl writes ~400 bytes per statement; 16 MiB is tens of
/// thousands of statements.
pub const MAX_VEX_BYTES: usize = 16 << 20;

/// The only `@context` accepted.
pub const CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VexStatus {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl VexStatus {
    pub fn parse(label: &str) -> Option<VexStatus> {
        [VexStatus::NotAffected, VexStatus::Affected, VexStatus::Fixed, VexStatus::UnderInvestigation]
            .into_iter()
            .find(|s| s.as_str() == label)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            VexStatus::NotAffected => "not_affected",
            VexStatus::Affected => "affected",
            VexStatus::Fixed => "fixed",
            VexStatus::UnderInvestigation => "under_investigation",
        }
    }
}

impl fmt::Display for VexStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The VEX working group's status justifications (CISA, "Vulnerability Exploitability eXchange
/// (VEX) - Status Justifications", June 2022), as OpenVEX spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Justification {
    ComponentNotPresent,
    VulnerableCodeNotPresent,
    VulnerableCodeNotInExecutePath,
    VulnerableCodeCannotBeControlledByAdversary,
    InlineMitigationsAlreadyExist,
}

impl Justification {
    const ALL: [(&'static str, Justification); 5] = [
        ("component_not_present", Justification::ComponentNotPresent),
        ("vulnerable_code_not_present", Justification::VulnerableCodeNotPresent),
        ("vulnerable_code_not_in_execute_path", Justification::VulnerableCodeNotInExecutePath),
        (
            "vulnerable_code_cannot_be_controlled_by_adversary",
            Justification::VulnerableCodeCannotBeControlledByAdversary,
        ),
        ("inline_mitigations_already_exist", Justification::InlineMitigationsAlreadyExist),
    ];

    pub fn parse(label: &str) -> Option<Justification> {
        Self::ALL.iter().find(|(l, _)| *l == label).map(|&(_, j)| j)
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, j)| *j == self).map(|&(l, _)| l).unwrap_or_default()
    }
}

/// A checked OpenVEX document.
#[derive(Debug, Clone, PartialEq)]
pub struct Vex {
    /// `@id`, the document's IRI.
    pub id: String,
    pub author: String,
    pub version: u64,
    /// When the document was issued.
    pub timestamp: SystemTime,
    pub last_updated: Option<SystemTime>,
    pub statements: Vec<VexStatement>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VexStatement {
    /// `vulnerability.name`.
    pub vulnerability: String,
    /// `vulnerability.aliases`: other ids of the same vulnerability (`GHSA-…` for a `CVE-…`).
    pub aliases: Vec<String>,
    /// Empty when the statement takes its products from an encapsulating document.
    pub products: Vec<VexProduct>,
    pub status: VexStatus,
    pub justification: Option<Justification>,
    /// None: inherited from the document's `timestamp`.
    pub timestamp: Option<SystemTime>,
    pub last_updated: Option<SystemTime>,
}

/// One product of a statement, by every name it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexProduct {
    /// `@id` and the `identifiers` values (`purl`, `cpe23`, `cpe22`), in that order; never
    /// empty.
    pub ids: Vec<String>,
    /// The same for every subcomponent, pooled: the statement is about these components of
    /// the product. Empty: about the product as a whole.
    pub subcomponents: Vec<String>,
}

impl VexStatement {
    /// Whether the statement is about `vuln_id`, by name or alias (ASCII case ignored:
    /// `cve-2023-4911` is `CVE-2023-4911`).
    pub fn names(&self, vuln_id: &str) -> bool {
        self.vulnerability.eq_ignore_ascii_case(vuln_id) || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(vuln_id))
    }

    /// Whether the statement applies to a product `product` accepts one of the names of,
    /// and, if that product lists subcomponents, to one `subcomponent` accepts.
    pub fn applies_to(&self, product: impl Fn(&str) -> bool, subcomponent: impl Fn(&str) -> bool) -> bool {
        self.products.iter().any(|p| {
            p.ids.iter().any(|id| product(id))
                && (p.subcomponents.is_empty() || p.subcomponents.iter().any(|s| subcomponent(s)))
        })
    }

    /// When the statement's information was known: its own timestamp, else `inherited` (the
    /// document's), or its `last_updated` if that is later.
    pub fn known_at(&self, inherited: SystemTime) -> SystemTime {
        let t = self.timestamp.unwrap_or(inherited);
        self.last_updated.map_or(t, |u| u.max(t))
    }
}

impl Vex {
    /// The statement that counts for `vuln_id` in a product (see the module documentation):
    /// the latest of those that name it and apply. `product` is asked about product names,
    /// `subcomponent` about subcomponent names.
    pub fn latest(
        &self,
        vuln_id: &str,
        product: impl Fn(&str) -> bool,
        subcomponent: impl Fn(&str) -> bool,
    ) -> Option<&VexStatement> {
        self.statements
            .iter()
            .filter(|s| s.names(vuln_id) && s.applies_to(&product, &subcomponent))
            // max_by_key keeps the last of equal maxima: the later statement wins a tie.
            .max_by_key(|s| s.known_at(self.timestamp))
    }

    /// Whether the statement that counts for `vuln_id` says `not_affected`. `product_matches`
    /// is asked about both product and subcomponent names, so it should accept the image (its
    /// reference or purl) and the finding's package (its purl): a statement about the package
    /// as the product, about the image as a whole, or about the package inside the image then
    /// all apply.
    pub fn not_affected(&self, vuln_id: &str, product_matches: impl Fn(&str) -> bool) -> bool {
        self.latest(vuln_id, &product_matches, &product_matches).is_some_and(|s| s.status == VexStatus::NotAffected)
    }

    /// When the document was last issued or updated: the later of `timestamp` and
    /// `last_updated`. A max-age policy measures from here.
    pub fn updated_at(&self) -> SystemTime {
        self.last_updated.map_or(self.timestamp, |u| u.max(self.timestamp))
    }

    /// How old the document is at `now`, from [`Vex::updated_at`]; zero if it is dated later.
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.updated_at()).unwrap_or(Duration::ZERO)
    }
}

/// Why bytes are not an OpenVEX document rootseal can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VexError {
    #[error("VEX document {0}")]
    Json(JsonGateError),
    #[error("VEX document is not a JSON object with \"@context\": {CONTEXT:?}; rootseal reads OpenVEX v0.2.0")]
    NotOpenVex,
    #[error("VEX document's @context is {0:?}, not {CONTEXT:?}; rootseal reads OpenVEX v0.2.0 (vexctl 0.2 and later)")]
    Context(String),
    /// A required field missing or a wrong type: serde's message, with the line and column.
    #[error("VEX document does not match the OpenVEX v0.2.0 schema: {0}")]
    Schema(String),
    #[error("VEX document {id:?} has an empty {field}")]
    Empty { id: String, field: &'static str },
    #[error("VEX document {id:?} has version 0; OpenVEX versions start at 1")]
    VersionZero { id: String },
    #[error("VEX document {id:?} has no statements; OpenVEX requires at least one")]
    NoStatements { id: String },
    #[error("VEX document {id:?}: {field} {value:?} {why}")]
    Time { id: String, field: String, value: String, why: TimeError },
    #[error("VEX document {id:?}: statement {index} has an empty vulnerability name")]
    NoVulnerability { id: String, index: usize },
    #[error(
        "VEX document {id:?}: statement {index} ({vuln}) has the status {value:?}; expected \
         not_affected, affected, fixed or under_investigation"
    )]
    Status { id: String, index: usize, vuln: String, value: String },
    #[error(
        "VEX document {id:?}: statement {index} ({vuln}) has the justification {value:?}; expected \
         component_not_present, vulnerable_code_not_present, vulnerable_code_not_in_execute_path, \
         vulnerable_code_cannot_be_controlled_by_adversary or inline_mitigations_already_exist"
    )]
    Justification { id: String, index: usize, vuln: String, value: String },
    #[error(
        "VEX document {id:?}: statement {index} ({vuln}) is not_affected without a justification or \
         impact_statement; OpenVEX requires one: add a justification label"
    )]
    NoJustification { id: String, index: usize, vuln: String },
    #[error(
        "VEX document {id:?}: statement {index} ({vuln}) is affected without an action_statement; \
         OpenVEX requires one"
    )]
    NoActionStatement { id: String, index: usize, vuln: String },
    #[error(
        "VEX document {id:?}: statement {index} ({vuln}) has a {what} with neither @id nor a purl, \
         cpe22 or cpe23 identifier"
    )]
    Unidentified { id: String, index: usize, vuln: String, what: &'static str },
}

/// Parses and validates an OpenVEX v0.2.0 document (the steps are in the module
/// documentation).
pub fn parse(bytes: &[u8]) -> Result<Vex, VexError> {
    check_json(bytes, MAX_VEX_BYTES).map_err(VexError::Json)?;
    // 1. The context, before the schema it selects.
    let probe: ContextProbe = serde_json::from_slice(bytes).map_err(|_| VexError::NotOpenVex)?;
    match probe.context.as_deref() {
        None => return Err(VexError::NotOpenVex),
        Some(CONTEXT) => {}
        Some(other) => return Err(VexError::Context(other.chars().take(80).collect())),
    }
    // 2. The document.
    let raw: RawDoc = serde_json::from_slice(bytes).map_err(|e| VexError::Schema(e.to_string()))?;
    let id = raw.id.into_owned();
    let empty = |field| VexError::Empty { id: id.clone(), field };
    if id.is_empty() {
        return Err(empty("@id"));
    }
    if raw.author.is_empty() {
        return Err(empty("author"));
    }
    if raw.version == 0 {
        return Err(VexError::VersionZero { id });
    }
    if raw.statements.is_empty() {
        return Err(VexError::NoStatements { id });
    }
    let time = |field: &dyn Fn() -> String, value: &str| {
        parse_time(value, Zone::Offset).map_err(|why| VexError::Time {
            id: id.clone(),
            field: field(),
            value: value.chars().take(64).collect(),
            why,
        })
    };
    let timestamp = time(&|| "timestamp".into(), &raw.timestamp)?.ok_or_else(|| VexError::Time {
        id: id.clone(),
        field: "timestamp".into(),
        value: raw.timestamp.to_string(),
        why: TimeError::Unset,
    })?;
    let last_updated = match &raw.last_updated {
        Some(t) => time(&|| "last_updated".into(), t)?,
        None => None,
    };
    // 3. Each statement.
    let mut statements = Vec::with_capacity(raw.statements.len());
    for (index, s) in raw.statements.into_iter().enumerate() {
        let vuln = s.vulnerability.name.into_owned();
        if vuln.is_empty() {
            return Err(VexError::NoVulnerability { id, index });
        }
        let status = VexStatus::parse(&s.status).ok_or_else(|| VexError::Status {
            id: id.clone(),
            index,
            vuln: vuln.clone(),
            value: s.status.chars().take(64).collect(),
        })?;
        let justification = match s.justification.as_deref() {
            None => None,
            Some(j) => Some(Justification::parse(j).ok_or_else(|| VexError::Justification {
                id: id.clone(),
                index,
                vuln: vuln.clone(),
                value: j.chars().take(64).collect(),
            })?),
        };
        let has_impact = s.impact_statement.as_deref().is_some_and(|t| !t.trim().is_empty());
        if status == VexStatus::NotAffected && justification.is_none() && !has_impact {
            return Err(VexError::NoJustification { id, index, vuln });
        }
        if status == VexStatus::Affected && s.action_statement.as_deref().is_none_or(|t| t.trim().is_empty()) {
            return Err(VexError::NoActionStatement { id, index, vuln });
        }
        let mut products = Vec::new();
        for p in s.products.into_iter().flatten() {
            let unidentified = |what| VexError::Unidentified { id: id.clone(), index, vuln: vuln.clone(), what };
            let ids = names(p.id, p.identifiers);
            if ids.is_empty() {
                return Err(unidentified("product"));
            }
            let mut subcomponents = Vec::new();
            for c in p.subcomponents.into_iter().flatten() {
                let n = names(c.id, c.identifiers);
                if n.is_empty() {
                    return Err(unidentified("subcomponent"));
                }
                subcomponents.extend(n);
            }
            products.push(VexProduct { ids, subcomponents });
        }
        let field = |name: &str| format!("statements[{index}].{name}");
        let timestamp = match &s.timestamp {
            Some(t) => time(&|| field("timestamp"), t)?,
            None => None,
        };
        let last_updated = match &s.last_updated {
            Some(t) => time(&|| field("last_updated"), t)?,
            None => None,
        };
        statements.push(VexStatement {
            vulnerability: vuln,
            aliases: s.vulnerability.aliases.into_iter().flatten().map(Cow::into_owned).collect(),
            products,
            status,
            justification,
            timestamp,
            last_updated,
        });
    }
    Ok(Vex { id, author: raw.author.into_owned(), version: raw.version, timestamp, last_updated, statements })
}

/// A component's names: `@id`, then the identifiers; empty strings are no name.
fn names(id: Option<Cow<str>>, identifiers: Option<RawIdentifiers>) -> Vec<String> {
    let i = identifiers.unwrap_or_default();
    [id, i.purl, i.cpe23, i.cpe22].into_iter().flatten().filter(|n| !n.is_empty()).map(Cow::into_owned).collect()
}

#[derive(Deserialize)]
struct ContextProbe<'a> {
    #[serde(borrow, rename = "@context")]
    context: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawDoc<'a> {
    #[serde(borrow, rename = "@id")]
    id: Cow<'a, str>,
    #[serde(borrow)]
    author: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow)]
    last_updated: Option<Cow<'a, str>>,
    version: u64,
    #[serde(borrow)]
    statements: Vec<RawStatement<'a>>,
}

#[derive(Deserialize)]
struct RawStatement<'a> {
    #[serde(borrow)]
    vulnerability: RawVulnerability<'a>,
    #[serde(borrow)]
    products: Option<Vec<RawProduct<'a>>>,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow)]
    justification: Option<Cow<'a, str>>,
    #[serde(borrow)]
    impact_statement: Option<Cow<'a, str>>,
    #[serde(borrow)]
    action_statement: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    last_updated: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawVulnerability<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    aliases: Option<Vec<Cow<'a, str>>>,
}

#[derive(Deserialize)]
struct RawProduct<'a> {
    #[serde(borrow, rename = "@id")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    identifiers: Option<RawIdentifiers<'a>>,
    #[serde(borrow)]
    subcomponents: Option<Vec<RawComponent<'a>>>,
}

#[derive(Deserialize)]
struct RawComponent<'a> {
    #[serde(borrow, rename = "@id")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    identifiers: Option<RawIdentifiers<'a>>,
}

#[derive(Deserialize, Default)]
struct RawIdentifiers<'a> {
    #[serde(borrow)]
    purl: Option<Cow<'a, str>>,
    #[serde(borrow)]
    cpe22: Option<Cow<'a, str>>,
    #[serde(borrow)]
    cpe23: Option<Cow<'a, str>>,
}

#[cfg(test)]
#[path = "vex_tests.rs"]
mod tests;
