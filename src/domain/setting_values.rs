//! How setting values that several sections share are read from `config/default.toml` and the
//! environment: each is parsed once here, so the code that uses it never parses it again.
use std::time::Duration;

use serde::{Deserializer, de::Error};

/// The longest duration a setting may hold (100 years, as humantime counts them): anything
/// longer is a typo ("300000y"), and a duration beyond the clock's range would panic where it
/// is added to a timestamp, at the first login rather than at start.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// Text, also when the environment made it look like a number or a boolean
/// (`TESSERA__JWT__AUDIENCE=12345`): values of flattened structs reach serde already typed.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(Text)
}

/// A human duration ("500ms", "5m", "1d") of at most [`MAX_DURATION`].
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = text(d)?;
    let value = humantime::parse_duration(&text)
        .map_err(|e| D::Error::custom(format!("`{text}` is not a duration ({e})")))?;
    if value > MAX_DURATION {
        return Err(D::Error::custom(format!(
            "`{text}` is longer than 100 years"
        )));
    }
    Ok(value)
}

/// A duration where "0s" means "none" (never expires, never runs).
pub fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(|value| (!value.is_zero()).then_some(value))
}

/// Text where "" means "none".
pub fn optional_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = text(d)?;
    Ok((!text.is_empty()).then_some(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::{IntoDeserializer, value::Error as ValueError};

    fn read(text: &str) -> Result<Duration, ValueError> {
        duration(text.into_deserializer())
    }

    #[test]
    fn durations_are_bounded_by_a_hundred_years() {
        assert_eq!(read("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(read("100y").unwrap(), MAX_DURATION);
        for too_long in ["300000y", "101y", "36525d 1s", "18446744073709551615s"] {
            let err = read(too_long).unwrap_err().to_string();
            assert!(err.contains("longer than 100 years"), "{too_long}: {err}");
        }
        // The bound keeps every addition the server makes in the clock's range.
        let now = chrono::Utc::now();
        assert!(
            now.checked_add_signed(chrono::Duration::from_std(MAX_DURATION).unwrap())
                .is_some()
        );
        assert!(
            std::time::SystemTime::now()
                .checked_add(MAX_DURATION)
                .is_some()
        );
        assert!(read("soon").is_err());
    }
}
