//! Strict JSON for untrusted documents (seals, OCI state, config.json): a duplicated key at
//! any depth is an error, whatever escapes spell it (`"ru\u006E"` and `"run"` are the same
//! key), because two parsers that keep different duplicates can be made to disagree about
//! what was signed.

use serde::de::{DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("duplicate key {0:?}")]
    Duplicate(String),
    #[error("{0}")]
    Syntax(String),
}

/// Parses `bytes` as `T` after checking that no object anywhere repeats a key.
pub fn from_slice_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    check_no_duplicates(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Like [`from_slice_strict`] for types that borrow from `bytes` (large strings without escapes
/// are then not copied).
pub fn from_slice_strict_borrowed<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, JsonError> {
    check_no_duplicates(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Checks syntax and key uniqueness without building a value.
pub fn check_no_duplicates(bytes: &[u8]) -> Result<(), JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let r = de.deserialize_any(NoDup).and_then(|()| de.end());
    r.map_err(|e| {
        let msg = e.to_string();
        match msg.strip_prefix("duplicate key ") {
            Some(rest) => {
                JsonError::Duplicate(rest.split(" at line").next().unwrap_or(rest).trim_matches('"').to_string())
            }
            None => JsonError::Syntax(msg),
        }
    })
}

struct NoDup;

impl<'de> serde::Deserialize<'de> for NoDup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDup).map(|()| NoDup)
    }
}

impl<'de> Visitor<'de> for NoDup {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            map.next_value::<NoDup>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<NoDup>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_at_any_depth_and_through_escapes() {
        assert!(check_no_duplicates(br#"{"a":1,"b":[{"c":1,"d":{"e":1}}]}"#).is_ok());
        for bad in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"x":[{"k":1,"k":1}]}"#,
            br#"{"run":1,"ru\u006E":2}"#,
            br#"{"o":{"p":{"q":{"r":1,"r":1}}}}"#,
        ] {
            match check_no_duplicates(bad) {
                Err(JsonError::Duplicate(_)) => {}
                other => panic!("{}: {other:?}", String::from_utf8_lossy(bad)),
            }
        }
    }

    #[test]
    fn syntax_errors_and_trailing_garbage_are_rejected() {
        assert!(matches!(check_no_duplicates(b"{"), Err(JsonError::Syntax(_))));
        assert!(matches!(check_no_duplicates(b"{} x"), Err(JsonError::Syntax(_))));
        assert!(matches!(check_no_duplicates(b""), Err(JsonError::Syntax(_))));
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(matches!(check_no_duplicates(deep.as_bytes()), Err(JsonError::Syntax(_))));
    }
}
