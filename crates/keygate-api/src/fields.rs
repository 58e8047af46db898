//! Schemas of request fields whose rule no derive attribute states: each is written as the JSON
//! it is in the document, from the parser it describes, and checked against that parser by the
//! tests below.

use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

/// What a verify-mode caller is doing: 1–128 characters, none of them a control character
/// (`keygate_core::text::Operation`).
pub const OPERATION_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// A project a request names: a project id (`keygate_core::text::ProjectRef`).
pub const PROJECT_PATTERN: &str = "^proj_[A-Za-z0-9]{1,64}$";

/// The whitespace Rust's `str::trim` removes (Unicode `White_Space`), spelled out because
/// `\s` differs between regex dialects.
const TRIMMED: &str =
    "[\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*";

/// A reservation's time to live as `keygate_core::expiry::parse_duration` reads it (a whole
/// number, leading zeros allowed, and a unit; surrounding whitespace ignored), capped at one
/// hour: 1–3600 `s`, 1–60 `m` or `min`, or `1h`.
pub fn ttl_pattern() -> String {
    format!(
        "^{TRIMMED}0*(?:(?:[1-9][0-9]{{0,2}}|[12][0-9]{{3}}|3[0-5][0-9]{{2}}|3600)s|(?:[1-9]|[1-5][0-9]|60)(?:m|min)|1h){TRIMMED}$"
    )
}

fn parsed(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value).unwrap_or_else(|_| RefOr::T(Schema::default()))
}

/// `ttl` of `POST /v1/reservations` (optional, `null` is the default).
pub fn ttl() -> RefOr<Schema> {
    parsed(ttl_json())
}

fn ttl_json() -> Value {
    json!({
        "type": ["string", "null"],
        "description": "How long the hold lasts before it is released by itself: a whole number and a unit, `s` (1–3600), `m` or `min` (1–60), or `1h`; at most one hour. Default `5m`.",
        "pattern": ttl_pattern(),
        "example": "5m"
    })
}

/// A key's lifetime as `keygate_core::expiry::resolve_expiry` reads it: `never`, or a whole
/// number (leading zeros allowed) and a unit, more than zero and at most 100 years.
const EXPIRES_IN_PATTERN: &str = "^(never|0*([1-9][0-9]{0,8}|[12][0-9]{9}|30[0-9]{8}|31[0-4][0-9]{7}|315[0-2][0-9]{6}|3153[0-5][0-9]{5}|3153600000)s|0*([1-9][0-9]{0,6}|[1-4][0-9]{7}|5[01][0-9]{6}|52[0-4][0-9]{5}|525[0-5][0-9]{4}|52560000)(m|min)|0*([1-9][0-9]{0,4}|[1-7][0-9]{5}|8[0-6][0-9]{4}|87[0-5][0-9]{3}|876000)h|0*([1-9][0-9]{0,3}|[12][0-9]{4}|3[0-5][0-9]{3}|36[0-4][0-9]{2}|36500)d|0*([1-9][0-9]{0,2}|[1-4][0-9]{3}|5[01][0-9]{2}|520[0-9]|521[0-4])w|0*([1-9][0-9]?|100)y)$";

/// `expires_in` of creating, updating and importing a key (optional, `null` is the default).
pub fn expires_in() -> RefOr<Schema> {
    parsed(json!({
        "type": ["string", "null"],
        "description": "Expires this long from now: a whole number and a unit (`s`, `m`/`min`, `h`, `d`, `w`, `y` = 365 days), more than zero and at most 100 years, or `never`. Not together with `expires_at`.",
        "pattern": EXPIRES_IN_PATTERN,
        "example": "90d"
    }))
}

/// `source_ip` of verify and reservations (optional, `null` is the default).
pub fn source_ip() -> RefOr<Schema> {
    parsed(source_ip_json())
}

fn source_ip_json() -> Value {
    json!({
        "description": "The end customer's IPv4 or IPv6 address, recorded with usage and failed attempts; default: the address the call came from.",
        "anyOf": [
            {"type": "string", "format": "ipv4"},
            {"type": "string", "format": "ipv6"},
            {"type": "null"}
        ],
        "example": "203.0.113.7"
    })
}

/// Reads a `u64` spelled as JSON allows an integer to be: `2`, and also `2.0` or `2e0` (JSON
/// Schema counts a number with a zero fraction as an integer, and so do the clients that
/// generate bodies from the document). A fraction, a sign or anything above `u64::MAX` is
/// refused. For `#[serde(deserialize_with = "…")]`; keygate-core's request types use the same
/// reader (and its `u32` and `Option` variants).
pub use keygate_core::whole::{optional_whole_u64, whole_u32, whole_u64};

/// An amount summed over many requests (usage totals and averages): dollars as Money writes
/// them, but without Money's $1,000,000,000 bound, which is a bound on one request's amount.
pub fn money_total() -> RefOr<Schema> {
    parsed(money_total_json())
}

fn money_total_json() -> Value {
    json!({
        "description": "US dollars, summed: a decimal string with 2 to 6 decimals.",
        "type": "string",
        "pattern": "^(0|[1-9][0-9]{0,12})\\.[0-9]{2,6}$",
        "example": "1250.42"
    })
}

/// Reads a [`money_total`] (`"1250.42"`, or a JSON number) into micro-dollars. For
/// `#[serde(deserialize_with = "…")]` on answers: Money's own reader refuses amounts above
/// one request's bound.
pub fn total_micros<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<keygate_core::Micros, D::Error> {
    use serde::de::Error;
    let text = match Value::deserialize(deserializer)? {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s,
        other => return Err(D::Error::custom(format!("expected dollars, got {other}"))),
    };
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let micros = (!whole.is_empty() && digits(whole) && frac.len() <= 6 && digits(frac))
        .then(|| {
            let whole: i64 = whole.parse().ok()?;
            let frac: i64 = format!("{frac:0<6}").parse().ok()?;
            whole.checked_mul(1_000_000)?.checked_add(frac)
        })
        .flatten();
    micros
        .map(keygate_core::Micros)
        .ok_or_else(|| D::Error::custom(format!("{text:?} is not an amount of dollars")))
}

/// A count of tokens a request consumes, holds or reports: any `u64` (default 0).
pub fn tokens() -> RefOr<Schema> {
    parsed(tokens_json())
}

fn tokens_json() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": u64::MAX, "default": 0, "example": 1200})
}

/// The HTTP status a verdict tells the caller to answer its own client with: 200, or the
/// refusal's (`keygate_core::Denial::status`).
pub fn verdict_status() -> RefOr<Schema> {
    parsed(verdict_status_json())
}

fn verdict_status_json() -> Value {
    json!({"type": "integer", "enum": [200, 401, 402, 403, 429, 503], "example": 200})
}

/// The JSON of each schema here, by field name, for tests.
pub fn documents() -> Vec<(&'static str, Value)> {
    vec![
        ("ttl", ttl_json()),
        ("source_ip", source_ip_json()),
        ("tokens", tokens_json()),
        ("status", verdict_status_json()),
        ("money_total", money_total_json()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::expiry::parse_duration;

    /// What the server accepts as a ttl: `parse_duration`, then at most an hour.
    fn accepted(text: &str) -> bool {
        parse_duration(text).is_ok_and(|d| d.num_seconds() <= 3600)
    }

    #[test]
    fn every_schema_parses_back_unchanged() {
        for (name, value) in documents() {
            let schema: RefOr<Schema> =
                serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let back = serde_json::to_value(&schema).expect("serialise");
            for field in ["anyOf", "pattern", "type", "enum", "maximum"] {
                assert_eq!(back.get(field), value.get(field), "{name}.{field}");
            }
        }
    }

    #[test]
    fn a_whole_number_may_be_spelled_as_a_float() {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(deserialize_with = "whole_u64")]
            n: u64,
        }
        let read = |text: &str| {
            serde_json::from_str::<Body>(&format!("{{\"n\": {text}}}"))
                .map(|b| b.n)
                .ok()
        };
        assert_eq!(read("2"), Some(2));
        assert_eq!(read("2.0"), Some(2));
        assert_eq!(read("2e3"), Some(2000));
        assert_eq!(read("-0.0"), Some(0));
        assert_eq!(read("18446744073709551615"), Some(u64::MAX));
        assert_eq!(read("1e19"), Some(10_000_000_000_000_000_000));
        for refused in [
            "2.5",
            "-1",
            "-1.0",
            "18446744073709551616",
            "2e19",
            "\"2\"",
            "null",
            "true",
        ] {
            assert_eq!(read(refused), None, "{refused}");
        }
    }

    #[test]
    fn totals_read_back_what_money_writes_beyond_one_requests_bound() {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(deserialize_with = "total_micros")]
            cost: keygate_core::Micros,
        }
        let pattern = regex::Regex::new(money_total_json()["pattern"].as_str().expect("a pattern"))
            .expect("the pattern compiles");
        for micros in [0, 1, 30_000, 1_500_000, 1_000_000_572_127_176, i64::MAX] {
            let written = keygate_core::Micros(micros).to_string();
            assert!(pattern.is_match(&written), "{written}");
            let body: Body = serde_json::from_value(json!({"cost": written})).expect("read");
            assert_eq!(body.cost.0, micros);
        }
        let read = |v: Value| serde_json::from_value::<Body>(json!({"cost": v})).ok();
        assert_eq!(read(json!(2)).map(|b| b.cost.0), Some(2_000_000));
        for refused in [
            json!("1.1234567"),
            json!("-1.00"),
            json!(".5"),
            json!("x"),
            json!(null),
        ] {
            assert!(read(refused.clone()).is_none(), "{refused}");
        }
    }

    #[test]
    fn the_status_enum_holds_every_denials_status() {
        let statuses = verdict_status_json()["enum"].clone();
        for denial in keygate_core::Denial::ALL {
            assert!(
                statuses
                    .as_array()
                    .is_some_and(|s| s.contains(&json!(denial.status()))),
                "{denial:?}"
            );
        }
    }

    #[test]
    fn the_ttl_pattern_accepts_exactly_what_the_parser_accepts() {
        let pattern = regex::Regex::new(&ttl_pattern()).expect("the pattern compiles");
        let units = [
            "", "ms", "s", "m", "min", "h", "d", "w", "y", "M", "sec", "hh", " s",
        ];
        let pads = [
            "", " ", "\t", "\n", "\u{a0}", "\u{3000}", "\u{feff}", "\u{1c}", "x",
        ];
        let mut numbers: Vec<String> = (0..=3700).map(|n| n.to_string()).collect();
        numbers.extend(
            [
                "",
                "00",
                "007",
                "0060",
                "00001",
                "+1",
                "-1",
                "1.5",
                "1e3",
                "18446744073709551616",
            ]
            .map(String::from),
        );
        let mut checked = 0;
        for n in &numbers {
            for unit in units {
                for (before, after) in pads.iter().zip(pads.iter().rev()) {
                    for text in [
                        format!("{n}{unit}"),
                        format!("{before}{n}{unit}"),
                        format!("{n}{unit}{after}"),
                        format!("{before}{n}{unit}{after}"),
                    ] {
                        assert_eq!(pattern.is_match(&text), accepted(&text), "ttl {text:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 100_000);
    }

    /// The pattern never allows what the server refuses (a schema-valid request rejected),
    /// and allows every plain form the server takes.
    #[test]
    fn the_expires_in_pattern_accepts_exactly_what_the_server_accepts() {
        let pattern = regex::Regex::new(EXPIRES_IN_PATTERN).expect("the pattern compiles");
        let now = chrono::Utc::now();
        let takes =
            |text: &str| keygate_core::expiry::resolve_expiry(Some(text), None, now).is_ok();
        let mut numbers: Vec<String> = (0..=1000).map(|n| n.to_string()).collect();
        for limit in [3_153_600_000u64, 52_560_000, 876_000, 36_500, 5_214, 100] {
            for n in limit.saturating_sub(3)..=limit + 3 {
                numbers.push(n.to_string());
                numbers.push(format!("00{n}"));
            }
        }
        numbers.extend(["", "+1", "-1", "1.5", "18446744073709551616"].map(String::from));
        let mut checked = 0;
        for n in &numbers {
            for unit in ["", "ms", "s", "m", "min", "h", "d", "w", "y", "M", "sec"] {
                let text = format!("{n}{unit}");
                assert_eq!(pattern.is_match(&text), takes(&text), "expires_in {text:?}");
                checked += 1;
            }
        }
        assert!(pattern.is_match("never") && takes("never"));
        assert!(checked > 10_000);
    }

    #[test]
    fn the_operation_pattern_refuses_exactly_control_characters() {
        let pattern = regex::Regex::new(OPERATION_PATTERN).expect("the pattern compiles");
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            let text = format!("GET /{c}");
            assert_eq!(pattern.is_match(&text), !c.is_control(), "{c:?}");
        }
    }
}
