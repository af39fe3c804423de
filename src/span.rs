//! Durations as the config writes them (a foundation: the config and the policy types in
//! src/verify/ both hold them) ("10s", "1500ms", "0"), parsed once, when the file is
//! loaded; the text is kept so that status files and `config show` print what the operator
//! wrote.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    text: String,
    value: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a duration ({why}); write it as e.g. \"10s\", \"1500ms\" or \"5m\"")]
pub struct SpanError {
    text: String,
    why: humantime::DurationError,
}

impl Span {
    /// Parses `text` ("0" is zero, as in `full_rehash = "0"`).
    pub fn parse(text: &str) -> Result<Span, SpanError> {
        let value = if text.trim() == "0" {
            Duration::ZERO
        } else {
            humantime::parse_duration(text).map_err(|why| SpanError { text: text.into(), why })?
        };
        Ok(Span { text: text.into(), value })
    }

    /// A built-in default; `text` is a literal known to parse.
    pub(crate) fn lit(text: &'static str) -> Span {
        Span::parse(text).expect("built-in durations parse")
    }

    pub fn get(&self) -> Duration {
        self.value
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Between `min` and `max`, inclusive?
    pub fn within(&self, min: Duration, max: Duration) -> bool {
        self.value >= min && self.value <= max
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_once_and_keeps_the_text() {
        let s = Span::parse("1500ms").unwrap();
        assert_eq!(s.get(), Duration::from_millis(1500));
        assert_eq!(s.as_str(), "1500ms");
        assert_eq!(Span::parse("0").unwrap().get(), Duration::ZERO);
        assert_eq!(Span::parse("0s").unwrap().get(), Duration::ZERO);
        let err = Span::parse("ten seconds").unwrap_err().to_string();
        assert!(err.contains("\"ten seconds\" is not a duration") && err.contains("\"10s\""), "{err}");
    }

    #[test]
    fn round_trips_through_toml() {
        #[derive(Serialize, Deserialize)]
        struct T {
            d: Span,
        }
        let t: T = toml::from_str("d = \"2m\"").unwrap();
        assert_eq!(t.d.get(), Duration::from_secs(120));
        assert_eq!(toml::to_string(&t).unwrap().trim(), "d = \"2m\"");
        let err = toml::from_str::<T>("d = \"2 fortnights\"").err().unwrap().to_string();
        assert!(err.contains("not a duration"), "{err}");
    }
}
