//! How setting values that several sections share are read from `config/default.toml` and the
//! environment: each is parsed once here, so the code that uses it never parses it again.
use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error};

/// A human duration ("500ms", "5m", "1d").
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| D::Error::custom(format!("`{text}` is not a duration ({e})")))
}

/// A duration where "0s" means "none" (never expires, never runs).
pub fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(|value| (!value.is_zero()).then_some(value))
}

/// Text where "" means "none".
pub fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(d)?;
    Ok((!text.is_empty()).then_some(text))
}
