//! Whole numbers as JSON may spell them: `2`, and also `2.0` or `2e0`. JSON Schema counts a
//! number with a zero fraction as an integer, and so do the clients that generate request
//! bodies from the document; a fraction, a sign or a value above the type's maximum is still
//! refused. For `#[serde(deserialize_with = "…")]` on every integer a request carries.

use serde::de::{Deserializer, Error, Unexpected, Visitor};

/// 2^64, the first float above `u64::MAX`.
const ABOVE_U64: f64 = 18_446_744_073_709_551_616.0;

/// `value` as a `u64` if it is a whole number in range.
fn whole_float(value: f64) -> Option<u64> {
    (value.fract() == 0.0 && (0.0..ABOVE_U64).contains(&value)).then_some(value as u64)
}

struct Whole;

impl Visitor<'_> for Whole {
    type Value = u64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a whole number from 0 to 18446744073709551615")
    }

    fn visit_u64<E: Error>(self, value: u64) -> Result<u64, E> {
        Ok(value)
    }

    fn visit_i64<E: Error>(self, value: i64) -> Result<u64, E> {
        u64::try_from(value).map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
    }

    fn visit_f64<E: Error>(self, value: f64) -> Result<u64, E> {
        whole_float(value).ok_or_else(|| E::invalid_value(Unexpected::Float(value), &self))
    }
}

/// A `u64`: `2`, `2.0`, `2e3`; not `2.5`, `-1`, `"2"` or anything above `u64::MAX`.
pub fn whole_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_u64(Whole)
}

/// A `u32`, read as [`whole_u64`] reads a `u64`; above `u32::MAX` is refused.
pub fn whole_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let value = whole_u64(deserializer)?;
    u32::try_from(value).map_err(|_| {
        D::Error::invalid_value(
            Unexpected::Unsigned(value),
            &"a whole number from 0 to 4294967295",
        )
    })
}

/// An optional `u64` (`null` or absent is `None`, with `#[serde(default)]`), read as
/// [`whole_u64`] reads one.
pub fn optional_whole_u64<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "whole_u64")] u64);
    Ok(<Option<Wrapped> as serde::Deserialize>::deserialize(deserializer)?.map(|Wrapped(n)| n))
}

/// A JSON number already read (by a field that also takes other shapes) as a whole `u64`.
pub fn whole_number(number: &serde_json::Number) -> Option<u64> {
    number
        .as_u64()
        .or_else(|| number.as_f64().and_then(whole_float))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "whole_u32")]
        small: u32,
        #[serde(default, deserialize_with = "optional_whole_u64")]
        maybe: Option<u64>,
    }

    fn read(json: &str) -> Option<(u32, Option<u64>)> {
        serde_json::from_str::<Body>(json)
            .ok()
            .map(|b| (b.small, b.maybe))
    }

    #[test]
    fn whole_floats_are_integers_and_nothing_else_is() {
        assert_eq!(read(r#"{"small": 70.0}"#), Some((70, None)));
        assert_eq!(read(r#"{"small": 4294967295}"#), Some((u32::MAX, None)));
        assert_eq!(read(r#"{"maybe": 1e3}"#), Some((0, Some(1000))));
        assert_eq!(read(r#"{"maybe": null}"#), Some((0, None)));
        assert_eq!(read("{}"), Some((0, None)));
        for refused in [
            r#"{"small": 4294967296}"#,
            r#"{"small": 4294967296.0}"#,
            r#"{"small": 2.5}"#,
            r#"{"small": -1}"#,
            r#"{"small": "2"}"#,
            r#"{"maybe": 2.5}"#,
            r#"{"maybe": -1.0}"#,
            r#"{"maybe": 2e19}"#,
        ] {
            assert_eq!(read(refused), None, "{refused}");
        }
    }

    #[test]
    fn numbers_already_read_follow_the_same_rule() {
        let number = |text: &str| serde_json::from_str::<serde_json::Number>(text).ok();
        for (text, expected) in [
            ("60", Some(60)),
            ("60.0", Some(60)),
            ("6e1", Some(60)),
            ("60.5", None),
            ("-60", None),
            ("-1.0", None),
            ("1e20", None),
        ] {
            assert_eq!(
                number(text).as_ref().and_then(whole_number),
                expected,
                "{text}"
            );
        }
    }
}
