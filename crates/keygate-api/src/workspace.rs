//! `/v1/me` and `/v1/workspace`: who is calling, and the workspace's settings.

use std::collections::BTreeMap;

use keygate_core::limits::RateWindow;
use keygate_core::model::{LeakPolicy, Member, Workspace};
use keygate_core::text::{Name, PolicyName, MAX_POLICIES};
use keygate_core::KeyPrefix;
use keygate_core::Micros;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// Most rate windows in one list (plan default, a policy, a key's own).
pub const MAX_RATE_WINDOWS: usize = 10;

/// The member a management token belongs to, and their workspace.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub member: Member,
    pub workspace: Workspace,
}

/// A change to the workspace's settings: only the fields sent change (`null` leaves a field as
/// it is, except `credit_balance`, where it removes the balance).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "single_active_key": true,
    "default_rate_limits": [{"limit": 100, "window": "1m"}],
    "rate_limit_policies": {"free-tier": [{"limit": 10, "window": "1m"}]},
    "credit_balance": "25.00"
}))]
pub struct UpdateWorkspace {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Name>)]
    pub name: Option<String>,
    /// When set, an environment holds at most one active key: creating or enabling a second
    /// is refused (409 `one_active_key`, naming the active key; rotate it instead). Turning it
    /// on while an environment has several active keys is refused the same way, naming them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub single_active_key: Option<bool>,
    /// Rate windows for keys without their own (at most 10; `[]` for none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 10)]
    pub default_rate_limits: Option<Vec<RateWindow>>,
    /// Replaces every named policy a request may pick with `keygate-ratelimit-policy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = rate_limit_policies)]
    pub rate_limit_policies: Option<BTreeMap<String, Vec<RateWindow>>>,
    /// The workspace's credit in USD; `null` removes the credit limit.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Micros>)]
    pub credit_balance: Option<Option<Micros>>,
    /// Send a `credits.low` webhook event when what remains of the credit balance falls to
    /// this many USD (once per balance: raising the balance re-arms it); `null` sends none.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Micros>)]
    pub credits_low_threshold: Option<Option<Micros>>,
    /// What a report of a leaked key (`POST /v1/leaks`) does to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak_policy: Option<LeakPolicy>,
    /// The prefix of keys issued from now on (new keys, and new secrets of regenerated or
    /// rotated keys): 2 to 8 lowercase letters or digits, starting with a letter. Keys issued
    /// before keep theirs and keep working.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<KeyPrefix>)]
    pub key_prefix: Option<String>,
}

/// `rate_limit_policies`: at most 50 policies, each named as `PolicyName` says and holding 1
/// to 10 windows (`null` leaves them as they are).
fn rate_limit_policies() -> RefOr<Schema> {
    let mut name = serde_json::to_value(PolicyName::schema()).unwrap_or_default();
    if let Some(name) = name.as_object_mut() {
        name.remove("example");
        name.remove("description");
    }
    let schema = json!({
        "type": ["object", "null"],
        "description": "Named stricter policies a request may pick with the `keygate-ratelimit-policy` header; replaces them all. At most 50; each holds 1 to 10 windows, all of which must pass.",
        "maxProperties": MAX_POLICIES,
        "propertyNames": name,
        "additionalProperties": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_RATE_WINDOWS,
            "items": {"$ref": "#/components/schemas/RateWindow"}
        },
        "example": {"free-tier": [{"limit": 10, "window": "1m"}]}
    });
    serde_json::from_value(schema).unwrap_or_else(|_| RefOr::T(Schema::default()))
}

#[cfg(test)]
mod tests {
    //! The hand-written text schemas (keygate-core's `schema` module) against the parsers they
    //! describe, character by character and at their length limits.

    use super::*;
    use keygate_core::routing::{validate_targets, RoutingTarget};
    use keygate_core::text::Description;
    use regex::Regex;
    use serde_json::Value;

    fn keyword(schema: RefOr<Schema>, name: &str) -> Value {
        serde_json::to_value(schema).expect("serialise")[name].clone()
    }

    fn pattern(schema: RefOr<Schema>) -> Regex {
        let text = keyword(schema, "pattern");
        Regex::new(text.as_str().expect("a pattern")).expect("the pattern compiles")
    }

    /// Every character alone, padded, inside a word and doubled, and the length limits with
    /// and without whitespace around.
    fn samples(limit: usize) -> Vec<String> {
        let mut samples = Vec::new();
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            samples.extend([
                format!("{c}"),
                format!(" {c} "),
                format!("a{c}b"),
                format!("{c}{c}"),
            ]);
        }
        for n in [limit - 1, limit, limit + 1] {
            let text = "n".repeat(n);
            samples.extend([
                text.clone(),
                format!("  {text}\t"),
                format!("n{}n", " ".repeat(n.saturating_sub(2))),
            ]);
        }
        samples.push(String::new());
        samples
    }

    #[test]
    fn the_name_pattern_accepts_exactly_what_name_parse_accepts() {
        let re = pattern(Name::schema());
        for text in samples(Name::MAX_CHARS) {
            assert_eq!(re.is_match(&text), Name::parse(&text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn the_policy_name_schema_accepts_exactly_what_policy_name_parse_accepts() {
        let re = pattern(PolicyName::schema());
        for text in samples(PolicyName::MAX_LEN) {
            assert_eq!(
                re.is_match(&text),
                PolicyName::parse(&text).is_ok(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn the_description_schema_accepts_exactly_what_description_parse_accepts() {
        let schema = Description::schema();
        let max = keyword(schema.clone(), "maxLength")
            .as_u64()
            .expect("maxLength");
        let re = pattern(schema);
        for text in samples(Description::MAX_CHARS) {
            let documented = re.is_match(&text) && text.chars().count() as u64 <= max;
            assert_eq!(documented, Description::parse(&text).is_ok(), "{text:?}");
        }
    }

    /// The money pattern (credit balances) admits only amounts the parser takes: at most
    /// $1,000,000,000, at most 6 decimals.
    #[test]
    fn every_money_string_the_schema_admits_is_accepted() {
        let schema = serde_json::to_value(Micros::schema()).expect("serialise");
        let text = schema["oneOf"][0]["pattern"].as_str().expect("a pattern");
        let re = Regex::new(text).expect("the pattern compiles");
        let mut samples: Vec<String> = ["0", "00", "01", "1.", ".5", "1.1234567", "1e3", "-1"]
            .map(String::from)
            .to_vec();
        for whole in [
            "0",
            "1",
            "999999999",
            "1000000000",
            "1000000001",
            "9999999999",
        ] {
            for decimals in ["", ".0", ".000000", ".000001", ".5", ".999999", ".0000000"] {
                samples.push(format!("{whole}{decimals}"));
            }
        }
        for text in samples {
            let parsed: Result<Micros, _> = serde_json::from_value(Value::String(text.clone()));
            if re.is_match(&text) {
                assert!(parsed.is_ok(), "{text:?} is admitted but refused");
            }
        }
        assert!(!re.is_match("1000000000.5"));
        assert!(re.is_match("1000000000.00"));
    }

    /// The window pattern accepts exactly what `WindowLength` reads (1 second to 31 days).
    #[test]
    fn the_window_pattern_accepts_exactly_what_window_length_reads() {
        use keygate_core::limits::WindowLength;
        let schema = serde_json::to_value(WindowLength::schema()).expect("serialise");
        let text = schema["oneOf"][0]["pattern"].as_str().expect("a pattern");
        let re = Regex::new(text).expect("the pattern compiles");
        let mut numbers: Vec<String> = (0..50_000).map(|n| n.to_string()).collect();
        for edge in [
            86_400_u64, 999_999, 1_000_000, 2_599_999, 2_678_399, 2_678_400,
        ] {
            numbers.extend((edge - 2..=edge + 2).map(|n| n.to_string()));
        }
        numbers.extend(
            ["", "00", "0001", "+1", "-1", "1.5", "18446744073709551616"].map(String::from),
        );
        let units = [
            "s", "m", "min", "h", "d", "w", "y", "ms", "", "M", " s", "mins",
        ];
        let mut checked = 0;
        for n in &numbers {
            for unit in units {
                for (before, after) in [
                    ("", ""),
                    (" ", "\t"),
                    ("\u{3000}", "\n"),
                    ("\u{feff}", ""),
                    ("x", ""),
                ] {
                    let text = format!("{before}{n}{unit}{after}");
                    let parsed: Result<WindowLength, _> =
                        serde_json::from_value(Value::String(text.clone()));
                    assert_eq!(re.is_match(&text), parsed.is_ok(), "{text:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 1_000_000);
    }

    #[test]
    fn the_provider_schema_accepts_exactly_what_validate_targets_accepts() {
        let schema = RoutingTarget::schema();
        let provider = &serde_json::to_value(schema).expect("serialise")["properties"]["provider"];
        let re = Regex::new(provider["pattern"].as_str().expect("pattern")).expect("compiles");
        let (min, max) = (
            provider["minLength"].as_u64(),
            provider["maxLength"].as_u64(),
        );
        for text in samples(keygate_core::routing::MAX_PROVIDER_CHARS) {
            let length = Some(text.chars().count() as u64);
            let documented = re.is_match(&text) && length >= min && length <= max;
            let target = RoutingTarget {
                provider: text.clone(),
                weight: 1,
                models: Default::default(),
            };
            let accepted = validate_targets(&[target]).is_ok();
            assert_eq!(documented, accepted, "{text:?}");
        }
    }
}
