//! OpenAPI schemas for the core types whose JSON form is hand-written (custom serde), so the
//! document describes exactly what the parsers accept. Built with the `schema` feature only.
//!
//! Each schema is written as the JSON it is in the document and parsed into utoipa's model
//! once; a unit test checks that every one of them parses, so a typo cannot silently turn into
//! an empty schema.

use serde_json::{json, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

use crate::key::{EnvTag, KeyPrefix};
use crate::limits::WindowLength;
use crate::model::Scope;
use crate::money::Micros;
use crate::text::{Description, Name, PolicyName};

fn parsed(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value).unwrap_or_else(|_| RefOr::T(Schema::default()))
}

/// The JSON of each hand-written schema, by name.
pub fn documents() -> Vec<(&'static str, Value)> {
    vec![
        ("Money", money()),
        ("WindowLength", window()),
        ("KeyPrefix", key_prefix()),
        ("EnvTag", env_tag()),
        ("Scope", scope()),
        ("Name", name()),
        ("Description", description()),
        ("PolicyName", policy_name()),
        ("provider", provider()),
        ("weight", weight()),
        ("models", model_map()),
        ("rate_limit", rate_limit()),
        ("token_limit", token_limit()),
    ]
}

/// `char::is_whitespace` (Unicode White_Space): what `str::trim` removes.
const WHITESPACE: &str =
    r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// `char::is_control` (Unicode Cc).
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

/// [`Name::parse`]: trimmed, 1 to 100 characters, none of them a control character (those
/// trimmed away may be). The pattern says exactly that: whitespace, then a visible character
/// alone or two visible characters around at most 98 others, then whitespace.
fn name() -> Value {
    let space = format!("[{WHITESPACE}]");
    let visible = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
    let any = format!("[^{CONTROL}]");
    json!({
        "description": "Leading and trailing whitespace is trimmed; what remains is 1 to 100 characters without control characters.",
        "type": "string",
        "pattern": format!("^{space}*(?:{visible}|{visible}{any}{{0,98}}{visible}){space}*$"),
        "example": "ci deploy"
    })
}

/// [`Description::parse`]: at most 1000 characters, control characters other than line
/// breaks and tabs refused; a blank one is stored as no description.
fn description() -> Value {
    json!({
        "description": "At most 1000 characters; line breaks and tabs are the only control characters allowed. A blank description is stored as none.",
        "type": "string",
        "maxLength": Description::MAX_CHARS,
        "pattern": r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$",
        "example": "Routes chat to OpenAI, falling back to Azure."
    })
}

/// [`PolicyName::parse`].
fn policy_name() -> Value {
    json!({
        "description": "1 to 40 ASCII letters, digits, `-` or `_`.",
        "type": "string",
        "minLength": 1,
        "maxLength": PolicyName::MAX_LEN,
        "pattern": "^[A-Za-z0-9_-]{1,40}$",
        "example": "free-tier"
    })
}

/// A routing target's provider ([`crate::routing::validate_targets`]): 1 to 64 characters,
/// not only whitespace (the pattern is unanchored: one non-whitespace character somewhere).
fn provider() -> Value {
    json!({
        "description": "A provider name from the gateway's config: 1 to 64 characters, not only whitespace. Each provider at most once per rule.",
        "type": "string",
        "minLength": 1,
        "maxLength": crate::routing::MAX_PROVIDER_CHARS,
        "pattern": format!("[^{WHITESPACE}]")
    })
}

/// A routing target's weight: any `u32`; at least 1 in `split` mode (said by the rule's
/// schema, which knows the mode).
fn weight() -> Value {
    json!({
        "description": "Share of traffic in `split` mode (any positive integers: 70/30, 7/3). At least 1 in every mode; ignored by `fallback`.",
        "type": "integer",
        "minimum": 1,
        "maximum": u32::MAX,
        "default": 1,
        "example": 70
    })
}

/// A routing target's model map: at most 100 entries, names 1 to 200 characters.
fn model_map() -> Value {
    let model = json!({"type": "string", "minLength": 1, "maxLength": 200});
    json!({
        "description": "Requested model → this provider's name for it (at most 100; names 1 to 200 characters). Unlisted models are sent as requested.",
        "type": "object",
        "maxProperties": crate::routing::MAX_MODELS_PER_TARGET,
        "propertyNames": model,
        "additionalProperties": model
    })
}

/// Inline schemas of [`crate::routing::RoutingTarget`]'s fields (`schema_with`).
pub(crate) fn provider_schema() -> RefOr<Schema> {
    parsed(provider())
}
pub(crate) fn weight_schema() -> RefOr<Schema> {
    parsed(weight())
}
pub(crate) fn model_map_schema() -> RefOr<Schema> {
    parsed(model_map())
}

/// [`crate::limits::RateWindow`]'s `limit`: any `u64` of at least 1, as `crate::whole` reads
/// it. Written out because utoipa would call a `u64` `int64`, a bound below what the server
/// takes.
fn rate_limit() -> Value {
    json!({
        "description": "Requests allowed in the window: at least 1.",
        "type": "integer",
        "minimum": 1,
        "maximum": u64::MAX,
        "example": 100
    })
}

/// [`crate::limits::TokenLimit`]'s `limit`: any `u64`, as `crate::whole` reads it.
fn token_limit() -> Value {
    json!({
        "description": "Tokens allowed per reset period.",
        "type": "integer",
        "minimum": 0,
        "maximum": u64::MAX,
        "example": 1_000_000
    })
}

/// Inline schemas of the limits' counts (`schema_with`).
pub(crate) fn rate_limit_schema() -> RefOr<Schema> {
    parsed(rate_limit())
}
pub(crate) fn token_limit_schema() -> RefOr<Schema> {
    parsed(token_limit())
}

fn money() -> Value {
    json!({
        "description": "US dollars: a decimal string with at most 6 decimals (a whole JSON number is accepted on input), at most 1000000000.",
        "oneOf": [
            {"type": "string", "pattern": "^(?:(?:0|[1-9][0-9]{0,8})(?:\\.[0-9]{1,6})?|1000000000(?:\\.0{1,6})?)$"},
            {"type": "integer", "minimum": 0, "maximum": 1_000_000_000_i64}
        ],
        "example": "0.03"
    })
}

/// A rate window as `WindowLength` reads it: `parse_duration` (a whole number, leading zeros
/// allowed, then `s`, `m`/`min`, `h`, `d` or `w`; surrounding whitespace ignored), between 1
/// second and 31 days — each unit's range spelled out — or a number of seconds.
fn window() -> Value {
    let seconds = "[1-9][0-9]{0,5}|1[0-9]{6}|2[0-5][0-9]{5}|26[0-6][0-9]{4}|267[0-7][0-9]{3}|2678[0-3][0-9]{2}|2678400";
    let minutes =
        "[1-9][0-9]{0,3}|[1-3][0-9]{4}|4[0-3][0-9]{3}|44[0-5][0-9]{2}|446[0-3][0-9]|44640";
    let hours = "[1-9][0-9]?|[1-6][0-9]{2}|7[0-3][0-9]|74[0-4]";
    let days = "[1-9]|[12][0-9]|3[01]";
    let space = format!("[{WHITESPACE}]*");
    json!({
        "description": "A rolling window: a whole number of seconds, or a duration such as \"30s\", \"1m\", \"1h\", \"1d\" (units s, m or min, h, d, w); 1 second to 31 days.",
        "oneOf": [
            {"type": "string", "pattern": format!(
                "^{space}0*(?:(?:{seconds})s|(?:{minutes})(?:m|min)|(?:{hours})h|(?:{days})d|[1-4]w){space}$"
            )},
            {"type": "integer", "minimum": 1, "maximum": 2_678_400}
        ],
        "example": "1m"
    })
}

fn key_prefix() -> Value {
    json!({"type": "string", "pattern": "^[a-z][a-z0-9]{1,7}$", "example": "kg"})
}

fn env_tag() -> Value {
    json!({"type": "string", "pattern": "^[a-z0-9]{1,12}$", "example": "live"})
}

fn scope() -> Value {
    json!({
        "description": "\"all\" projects of the workspace, or a list of project ids.",
        "oneOf": [
            {"type": "string", "enum": ["all"]},
            {"type": "array", "items": {"type": "string", "pattern": "^proj_[A-Za-z0-9]{1,64}$"}, "minItems": 1, "maxItems": 100}
        ],
        "example": "all"
    })
}

macro_rules! hand_written {
    ($type:ty, $name:literal, $json:expr) => {
        impl utoipa::PartialSchema for $type {
            fn schema() -> RefOr<Schema> {
                parsed($json)
            }
        }
        impl utoipa::ToSchema for $type {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}

hand_written!(Micros, "Money", money());
hand_written!(WindowLength, "WindowLength", window());
hand_written!(KeyPrefix, "KeyPrefix", key_prefix());
hand_written!(EnvTag, "EnvTag", env_tag());
hand_written!(Scope, "Scope", scope());
hand_written!(Name, "Name", name());
hand_written!(Description, "Description", description());
hand_written!(PolicyName, "PolicyName", policy_name());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hand_written_schema_parses() {
        for (name, value) in documents() {
            let schema: Result<RefOr<Schema>, _> = serde_json::from_value(value.clone());
            let schema = schema.unwrap_or_else(|e| panic!("{name}: {e}"));
            let back = serde_json::to_value(&schema).expect("serialise");
            for field in [
                "oneOf",
                "pattern",
                "type",
                "maxLength",
                "maximum",
                "maxProperties",
                "propertyNames",
                "additionalProperties",
            ] {
                assert_eq!(back.get(field), value.get(field), "{name}.{field}");
            }
        }
    }
}
