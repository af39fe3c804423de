//! The scan gate's inputs, parsed from bytes and nothing else: scanner reports
//! ([`report`]: Trivy JSON, Trivy's cosign-vuln predicate, Grype JSON, in-toto vulns v0.2) and
//! OpenVEX documents ([`vex`]). Reading the files, checking signatures and judging the findings
//! against the node's policy happen elsewhere; these modules only turn untrusted JSON into
//! checked types, or say exactly why they cannot.
//!
//! Shared here: the JSON gate both parsers pass their input through first ([`check_json`]:
//! size, duplicate keys, depth), and the timestamp parser ([`parse_time`]).

pub mod report;
pub mod vex;

use std::time::{Duration, SystemTime};

/// How deep serde_json nests before it gives up (its fixed recursion limit): no scanner or VEX
/// tool writes a document half that deep (a Trivy report inside a cosign predicate is ~10).
pub const MAX_DEPTH: usize = 128;

/// Why bytes are not acceptable JSON for a scan report or VEX document, before any schema is
/// looked at. The message reads after the document's name ("scan report ...").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonGateError {
    #[error("is {size} bytes, over the {limit}-byte limit ({} MiB); no real report is that large: refused unread", limit >> 20)]
    TooLarge { size: usize, limit: usize },
    /// Two parsers that keep different copies of a repeated key can be made to disagree about
    /// what was signed (see src/json.rs).
    #[error("repeats the key {0:?} in one object; every key must appear once")]
    DuplicateKey(String),
    #[error("nests deeper than {MAX_DEPTH} levels; no scanner or VEX tool writes that: refused")]
    TooDeep,
    #[error("is not JSON: {0}")]
    Syntax(String),
}

/// Step 1 of both parsers: refuse `bytes` over `limit` unread, then check syntax, key
/// uniqueness at every depth, and the nesting depth, without building a value.
pub fn check_json(bytes: &[u8], limit: usize) -> Result<(), JsonGateError> {
    if bytes.len() > limit {
        return Err(JsonGateError::TooLarge { size: bytes.len(), limit });
    }
    crate::json::check_no_duplicates(bytes).map_err(|e| match e {
        crate::json::JsonError::Duplicate(key) => JsonGateError::DuplicateKey(key),
        // serde_json's own wording: "recursion limit exceeded at line 1 column 129".
        crate::json::JsonError::Syntax(m) if m.contains("recursion limit exceeded") => JsonGateError::TooDeep,
        crate::json::JsonError::Syntax(m) => JsonGateError::Syntax(m),
    })
}

/// A timestamp that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("is not an RFC 3339 time (YYYY-MM-DDThh:mm:ss[.frac] then Z or +hh:mm)")]
    Syntax,
    #[error("has no time zone; write it in UTC with a trailing Z")]
    NoZone,
    #[error("is not in UTC; this format requires a trailing Z")]
    NotUtc,
    #[error("is out of range (month, day, hour, minute, second or offset)")]
    Range,
    #[error("is before 1970")]
    BeforeEpoch,
    /// [`parse_time`] reads Go's zero time as "not set"; a caller whose field is required
    /// reports it with this.
    #[error("is Go's zero time, never set; a time is required here")]
    Unset,
}

/// Which zones a format's timestamps may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// `Z` only: the in-toto attestation framework's Timestamp type is "RFC 3339 in the UTC
    /// time zone" (in-toto/attestation spec/v1/field_types.md).
    UtcOnly,
    /// `Z` or a numeric offset, converted to UTC. Trivy (`clock.Now()`), Grype
    /// (`time.Now().Local()`) and vexctl write the producer's local time with its offset, so
    /// a CI runner outside UTC prints `+02:00`: unambiguous, and refusing it would refuse real
    /// reports. A time with no zone at all is always refused: it names no instant.
    Offset,
}

/// Parses an RFC 3339 timestamp (`2026-12-04T23:43:21.353630891Z`,
/// `2023-01-08T18:02:03.647787998-06:00`). `Ok(None)` is Go's zero `time.Time`,
/// `0001-01-01T00:00:00Z`, which Go marshals for a time that was never set (Trivy's `CreatedAt`
/// before a scan fills it, an empty image config's `created`): not a time. Fractions past
/// nanoseconds are truncated; leap seconds (`:60`) are refused as Go's parser refuses them.
pub fn parse_time(text: &str, zone: Zone) -> Result<Option<SystemTime>, TimeError> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, TimeError> {
        let s = b.get(r).ok_or(TimeError::Syntax)?;
        if s.iter().all(u8::is_ascii_digit) {
            Ok(s.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
        } else {
            Err(TimeError::Syntax)
        }
    };
    let sep =
        |i: usize, c: &[u8]| if b.get(i).is_some_and(|x| c.contains(x)) { Ok(()) } else { Err(TimeError::Syntax) };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    sep(4, b"-")?;
    sep(7, b"-")?;
    sep(10, b"Tt")?;
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    sep(13, b":")?;
    sep(16, b":")?;
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(TimeError::Syntax);
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset_secs = match b.get(i..) {
        Some(b"Z" | b"z") => 0,
        Some([]) | None => return Err(TimeError::NoZone),
        Some([sign @ (b'+' | b'-'), ..]) if b.len() == i + 6 => {
            sep(i + 3, b":")?;
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return Err(TimeError::Range);
            }
            if zone == Zone::UtcOnly {
                return Err(TimeError::NotUtc);
            }
            let s = h * 3600 + m * 60;
            if *sign == b'-' {
                -s
            } else {
                s
            }
        }
        Some(_) => return Err(TimeError::Syntax),
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return Err(TimeError::Range),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return Err(TimeError::Range);
    }
    if (year, month, day, hour, minute, second, nanos, offset_secs) == (1, 1, 1, 0, 0, 0, 0, 0) {
        return Ok(None);
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    let secs = u64::try_from(secs).map_err(|_| TimeError::BeforeEpoch)?;
    Ok(Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant, "chrono-Compatible Low-Level
/// Date Algorithms", days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
    }

    #[test]
    fn times_as_trivy_grype_and_vexctl_write_them() {
        // Trivy 0.59.1's CreatedAt, as it printed it (testdata/trivy-0.59.1-fs-secrets.json).
        assert_eq!(parse_time("2026-12-04T23:43:21.353630891Z", Zone::UtcOnly), Ok(at(1_796_427_801, 353_630_891)));
        // Grype's descriptor.timestamp in a UTC-6 runner; the OpenVEX spec's example timestamp.
        let t = parse_time("2023-01-08T18:02:03.647787998-06:00", Zone::Offset).unwrap();
        assert_eq!(t, parse_time("2023-01-09T00:02:03.647787998Z", Zone::Offset).unwrap());
        assert_eq!(parse_time("1970-01-01T00:00:00Z", Zone::Offset), Ok(at(0, 0)));
        assert_eq!(parse_time("2024-02-29T12:00:00.5+01:00", Zone::Offset), Ok(at(1_709_204_400, 500_000_000)));
        assert_eq!(parse_time("2021-08-06T17:45:50.52z", Zone::UtcOnly), Ok(at(1_628_271_950, 520_000_000)));
        // Past nanoseconds: truncated.
        assert_eq!(parse_time("1970-01-01T00:00:01.1234567891Z", Zone::Offset), Ok(at(1, 123_456_789)));
        // Go's zero time: not set.
        assert_eq!(parse_time("0001-01-01T00:00:00Z", Zone::UtcOnly), Ok(None));
    }

    #[test]
    fn bad_times_are_refused_with_the_reason() {
        for (text, zone, why) in [
            ("", Zone::Offset, TimeError::Syntax),
            ("2024-01-01", Zone::Offset, TimeError::Syntax),
            ("2024-01-01 00:00:00Z", Zone::Offset, TimeError::Syntax),
            ("2024-01-01T00:00:00", Zone::Offset, TimeError::NoZone),
            ("2024-01-01T00:00:00+02:00", Zone::UtcOnly, TimeError::NotUtc),
            ("2024-01-01T00:00:00+0200", Zone::Offset, TimeError::Syntax),
            ("2024-01-01T00:00:00.Z", Zone::Offset, TimeError::Syntax),
            ("2024-01-01T00:00:00ZZ", Zone::Offset, TimeError::Syntax),
            ("2023-02-29T00:00:00Z", Zone::Offset, TimeError::Range),
            ("2024-13-01T00:00:00Z", Zone::Offset, TimeError::Range),
            ("2024-01-01T24:00:00Z", Zone::Offset, TimeError::Range),
            ("2024-01-01T23:59:60Z", Zone::Offset, TimeError::Range),
            ("2024-01-01T00:00:00+24:00", Zone::Offset, TimeError::Range),
            ("1969-12-31T23:59:59Z", Zone::Offset, TimeError::BeforeEpoch),
            ("+2024-01-01T00:00:00Z", Zone::Offset, TimeError::Syntax),
            ("2024-01-01T00:00:00.1\u{e9}Z", Zone::Offset, TimeError::Syntax),
            ("1710000000", Zone::Offset, TimeError::Syntax),
        ] {
            assert_eq!(parse_time(text, zone), Err(why.clone()), "{text:?}");
        }
    }

    #[test]
    fn the_json_gate_names_each_problem() {
        assert_eq!(check_json(b"{}", 2), Ok(()));
        assert_eq!(check_json(b"{} ", 2), Err(JsonGateError::TooLarge { size: 3, limit: 2 }));
        assert_eq!(check_json(br#"{"a":{"b":1,"b":2}}"#, 100), Err(JsonGateError::DuplicateKey("b".into())));
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(check_json(deep.as_bytes(), 1 << 20), Err(JsonGateError::TooDeep));
        let ok = "[".repeat(MAX_DEPTH - 1) + &"]".repeat(MAX_DEPTH - 1);
        assert_eq!(check_json(ok.as_bytes(), 1 << 20), Ok(()));
        assert!(matches!(check_json(b"{\"a\":", 100), Err(JsonGateError::Syntax(_))));
        let msg = JsonGateError::TooLarge { size: 70 << 20, limit: 64 << 20 }.to_string();
        assert!(msg.contains("67108864-byte limit (64 MiB)"), "{msg}");
    }
}
