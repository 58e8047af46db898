//! `/v1/keys`: the key lifecycle — create, list, read, change, disable/enable, revoke,
//! regenerate, rotate, delete and import.
//!
//! The field schemas state the bounds the server enforces (`keygate_core::text`,
//! `keygate_core::expiry`): names, descriptions, permissions, durations, ids. A rule between
//! fields ("at most one of `expires_in` and `expires_at`") cannot be said on a property: the
//! schema a body is documented with ([`CreateKeyBody`], [`UpdateKeyBody`], [`ImportKeyBody`])
//! adds it to the fields' object ([`crate::routing::constrain`]).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use keygate_core::text::{Description, Name};
use keygate_core::EnvTag;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::routing::constrain;
use crate::{ApiKey, KeyLimits, Scope};

/// A key with its secret, as create, regenerate and rotate return it: the only time the
/// secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedKey {
    /// The key itself (`kg_live_…`). Store it now: Keygate keeps only its hash.
    pub secret: String,
    /// A reminder that the secret is shown once.
    pub warning: String,
    /// After a rotation: until when the previous secret keeps working (the grace period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_secret_expires_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub key: ApiKey,
}

/// A page of keys, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyPage {
    pub items: Vec<ApiKey>,
    /// Pass as `cursor` to read the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /v1/keys`: a new key. Its secret is returned once, in the answer.
// Documented as `CreateKeyBody`, which adds the rule between `expires_in` and `expires_at`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = CreateKeyFields)]
#[schema(example = json!({
    "name": "ci deploy",
    "environment": "live",
    "scope": "all",
    "permissions": ["results:read"],
    "expires_in": "90d",
    "metadata": {"team": "platform"},
    "limits": {"rate_limits": [{"limit": 100, "window": "1m"}]}
}))]
pub struct CreateKey {
    /// What people call the key: 1–100 characters after trimming, no control characters.
    #[schema(value_type = Name)]
    pub name: String,
    /// Free text, at most 1000 characters; line breaks and tabs allowed. Blank means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Description>)]
    pub description: Option<String>,
    /// The environment tag in the key (`kg_<env>_…`); default `live`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvTag>,
    /// The projects the key may act on; default `"all"`. Each listed project must exist in
    /// the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Permissions the key holds (`results:read`, `results:*`, `*`); stored sorted, without
    /// duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Permission>, max_items = 100)]
    pub permissions: Vec<String>,
    /// Expires this long after creation: a whole number and a unit (`s`, `m`/`min`, `h`, `d`,
    /// `w`, `y` = 365 days), more than zero and at most 100 years, or `never` (the default).
    /// Not together with `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::fields::expires_in)]
    pub expires_in: Option<String>,
    /// Expires at this RFC 3339 time, which must be in the future. Not together with
    /// `expires_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, example = "2027-01-31T00:00:00Z")]
    pub expires_at: Option<String>,
    /// Anything the caller wants back from verification: a JSON object of at most 16 KiB
    /// (compact).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object, example = json!({"team": "platform"}))]
    pub metadata: Map<String, Value>,
    /// The key's own limits; without rate windows the workspace's default windows apply. At
    /// most 10 rate windows, each with a limit of at least 1.
    #[serde(default, skip_serializing_if = "KeyLimits::is_empty")]
    pub limits: KeyLimits,
    /// The AI gateway's routing rule for this key (`rr_…`, one of the workspace's); none
    /// means the workspace default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^rr_[A-Za-z0-9]{1,64}$", example = "rr_4kT9wQ2mZx")]
    pub routing_rule_id: Option<String>,
    /// The identity (customer) the key belongs to (`idt_…`, one of the workspace's): its
    /// limits are checked together with the key's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^idt_[A-Za-z0-9]{1,64}$", example = "idt_7hR2pX9qLm")]
    pub identity_id: Option<String>,
}

/// `GET /v1/keys`: filters and the page to read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListKeys {
    /// Only keys with this status.
    #[param(value_type = Option<crate::KeyStatus>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only keys of this environment tag (exact match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Only keys that may act on this project id (keys scoped to `"all"` included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Only keys whose name contains this text, ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// `true`: only imported legacy keys; `false`: only keys issued here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<bool>,
    /// Only keys of this identity (`idt_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Keys per page, 1–500; default 50.
    #[param(minimum = 1, maximum = 500)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^-?[0-9]{1,18}\.[A-Za-z0-9_]{1,80}$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `PATCH /v1/keys/{id}`: only the fields given change. For `description`, `expires_at` and
/// `routing_rule_id`, `null` clears the value (no description, never expires, the
/// workspace's default rule) while leaving the field out keeps it; for the other fields `null`
/// is the same as leaving the field out.
// Documented as `UpdateKeyBody`, which adds the rule between `expires_in` and `expires_at`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = UpdateKeyFields)]
#[schema(example = json!({"name": "ci deploy (old)", "description": null, "expires_in": "7d"}))]
pub struct UpdateKey {
    /// A new name: 1–100 characters after trimming, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Name>)]
    pub name: Option<String>,
    /// A new description (at most 1000 characters); `null` removes it.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Description>)]
    pub description: Option<Option<String>>,
    /// A new scope; each listed project must exist in the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// The key's permissions, replacing the current ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Permission>>, max_items = 100)]
    pub permissions: Option<Vec<String>>,
    /// A new expiry, counted from now: as in `POST /v1/keys` (`never` removes the expiry).
    /// Not together with a non-null `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::fields::expires_in)]
    pub expires_in: Option<String>,
    /// A new expiry time in the future (RFC 3339); `null` removes the expiry.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime, example = "2027-01-31T00:00:00Z")]
    pub expires_at: Option<Option<String>>,
    /// New metadata, replacing the current object (at most 16 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// New limits, replacing the current ones. Imported legacy keys carry no limits: only
    /// empty limits are accepted for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<KeyLimits>,
    /// `"rr_…"` to route by that rule of the workspace, `null` to fall back to the workspace
    /// default.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, pattern = "^rr_[A-Za-z0-9]{1,64}$", example = "rr_4kT9wQ2mZx")]
    pub routing_rule_id: Option<Option<String>>,
    /// `"idt_…"` to move the key to that identity of the workspace, `null` to take it out of
    /// its identity.
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, pattern = "^idt_[A-Za-z0-9]{1,64}$", example = "idt_7hR2pX9qLm")]
    pub identity_id: Option<Option<String>>,
}

/// `POST /v1/keys/{id}/rotate`: a new secret, the old one working on for a grace period. The
/// body may be left out (or empty) for the default grace period.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"grace": "24h"}))]
pub struct RotateKey {
    /// How long the old secret keeps working: a whole number and a unit (`s`, `m`/`min`,
    /// `h`, `d`, `w`), more than zero and at most 30 days; default `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        example = "24h",
        pattern = "^(0*([1-9][0-9]{0,5}|1[0-9]{6}|2[0-4][0-9]{5}|25[0-8][0-9]{4}|259[01][0-9]{3}|2592000)s|0*([1-9][0-9]{0,3}|[1-3][0-9]{4}|4[0-2][0-9]{3}|43[01][0-9]{2}|43200)(m|min)|0*([1-9][0-9]?|[1-6][0-9]{2}|7[01][0-9]|720)h|0*([1-9]|[12][0-9]|30)d|0*[1-4]w)$"
    )]
    pub grace: Option<String>,
}

/// `POST /v1/keys/import`: a key issued by another system, given in plain text (`key`) or
/// as its SHA-256 (`sha256`) — exactly one of the two. It authenticates like any key and
/// carries no limits; it cannot be regenerated or rotated.
// Documented as `ImportKeyBody`, which adds the rules between `key` and `sha256` and between
// `expires_in` and `expires_at`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(as = ImportKeyFields)]
#[schema(example = json!({"name": "legacy billing key", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "environment": "live"}))]
pub struct ImportKey {
    /// What people call the key: 1–100 characters after trimming, no control characters.
    #[schema(value_type = Name)]
    pub name: String,
    /// The legacy key in plain text: 16–256 printable ASCII characters without spaces. A
    /// string shaped like one of this service's keys is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[!-~]{16,256}$")]
    pub key: Option<String>,
    /// …or only its SHA-256, in hexadecimal (64 digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9A-Fa-f]{64}$")]
    pub sha256: Option<String>,
    /// Free text, at most 1000 characters; line breaks and tabs allowed. Blank means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Description>)]
    pub description: Option<String>,
    /// The environment tag shown with the key; default `live`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvTag>,
    /// The projects the key may act on; default `"all"`. Each listed project must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Permissions the key holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Permission>, max_items = 100)]
    pub permissions: Vec<String>,
    /// Expires this long after the import (as in `POST /v1/keys`). Not together with
    /// `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::fields::expires_in)]
    pub expires_in: Option<String>,
    /// Expires at this RFC 3339 time, in the future. Not together with `expires_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, example = "2027-01-31T00:00:00Z")]
    pub expires_at: Option<String>,
    /// Anything the caller wants back from verification (at most 16 KiB).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = Object, example = json!({"team": "platform"}))]
    pub metadata: Map<String, Value>,
}

// ---------------------------------------------------------------------------------------
// Request bodies with rules between their fields.

/// The property is given, and is a string (not `null`).
fn present(field: &str) -> Value {
    json!({"required": [field], "properties": {field: {"type": "string"}}})
}

/// The property is absent or `null`.
fn absent(field: &str) -> Value {
    json!({"properties": {field: {"type": "null"}}})
}

/// At most one of `expires_in` and `expires_at` holds a value.
fn one_expiry() -> Value {
    json!({"anyOf": [absent("expires_in"), absent("expires_at")]})
}

/// Exactly one of `key` and `sha256` holds a value.
fn one_secret() -> Value {
    json!({"oneOf": [present("key"), present("sha256")]})
}

macro_rules! body {
    ($(#[$doc:meta])* $body:ident = $fields:ident, [$($rule:expr),+ $(,)?]) => {
        $(#[$doc])*
        pub struct $body;

        impl $body {
            /// The rules between the fields, as JSON Schema.
            pub fn rules() -> Vec<Value> {
                vec![$($rule),+]
            }
        }

        impl PartialSchema for $body {
            fn schema() -> RefOr<Schema> {
                let mut schema = <$fields as PartialSchema>::schema();
                for rule in Self::rules() {
                    constrain(&mut schema, rule);
                }
                schema
            }
        }

        impl ToSchema for $body {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($fields))
            }
            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                <$fields as ToSchema>::schemas(schemas);
            }
        }
    };
}

body!(
    /// The schema of `POST /v1/keys`' body: [`CreateKey`]'s fields, with at most one of
    /// `expires_in` and `expires_at`.
    CreateKeyBody = CreateKey,
    [one_expiry()]
);

body!(
    /// The schema of `PATCH /v1/keys/{id}`'s body: [`UpdateKey`]'s fields, with at most one
    /// of `expires_in` and `expires_at` holding a value.
    UpdateKeyBody = UpdateKey,
    [one_expiry()]
);

body!(
    /// The schema of `POST /v1/keys/import`'s body: [`ImportKey`]'s fields, with exactly one
    /// of `key` and `sha256`, and at most one of `expires_in` and `expires_at`.
    ImportKeyBody = ImportKey,
    [one_secret(), one_expiry()]
);

/// A permission a key holds (`keygate_core::text::Permission`): 1–100 ASCII letters, digits
/// and `: _ . - * /`. A schema only: the server reads permissions as strings and checks each.
pub enum Permission {}

impl PartialSchema for Permission {
    fn schema() -> RefOr<Schema> {
        serde_json::from_value(permission_json()).unwrap_or_else(|_| RefOr::T(Schema::default()))
    }
}

impl ToSchema for Permission {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Permission")
    }
}

fn permission_json() -> Value {
    json!({
        "description": "1 to 100 ASCII letters, digits and `: _ . - * /`; `results:*` grants every `results:…` permission, `*` grants every permission.",
        "type": "string",
        "pattern": "^[A-Za-z0-9:_.*/-]{1,100}$",
        "example": "results:read"
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_core::expiry::{parse_duration, resolve_expiry};

    fn schema_of<T: PartialSchema>() -> Value {
        serde_json::to_value(T::schema()).expect("serialise")
    }

    fn pattern(schema: &Value) -> regex::Regex {
        regex::Regex::new(schema["pattern"].as_str().expect("a pattern")).expect("compiles")
    }

    #[test]
    fn the_permission_schema_survives_utoipa_and_is_the_parser() {
        assert_eq!(schema_of::<Permission>(), permission_json());
        let pattern = pattern(&permission_json());
        for text in [
            "a",
            "results:read",
            "a/b-c_d.e*",
            "",
            "a b",
            "é",
            "x\n",
            &"p".repeat(100),
            &"p".repeat(101),
        ] {
            let accepted = keygate_core::text::Permission::parse(text).is_ok();
            assert_eq!(pattern.is_match(text), accepted, "{text:?}");
        }
    }

    /// Numbers and units around every bound, with and without leading zeros.
    fn durations() -> Vec<String> {
        let units = [
            "", "ms", "s", "m", "min", "h", "d", "w", "y", "M", "sec", "mins", "hh", " d",
        ];
        let mut numbers: Vec<String> = (0..=1100).map(|n| n.to_string()).collect();
        for bound in [
            3_153_600_000u64,
            52_560_000,
            876_000,
            36_500,
            5_214,
            100,
            2_592_000,
            43_200,
            720,
            30,
            4,
        ] {
            for n in bound.saturating_sub(3)..=bound + 3 {
                numbers.push(n.to_string());
                numbers.push(format!("00{n}"));
            }
            for n in [bound / 2, bound / 3 + 1, bound / 7, bound * 10] {
                numbers.push(n.to_string());
            }
        }
        numbers.extend(
            [
                "",
                "0",
                "00",
                "007",
                "+1",
                "-1",
                "1.5",
                "1e3",
                "18446744073709551616",
            ]
            .map(String::from),
        );
        let mut texts = vec!["never".to_string(), "Never".into(), "forever".into()];
        for n in &numbers {
            for unit in units {
                texts.push(format!("{n}{unit}"));
            }
        }
        texts
    }

    #[test]
    fn the_expiry_pattern_accepts_exactly_what_the_parser_accepts() {
        let now = chrono::Utc::now();
        for body in [
            schema_of::<CreateKey>(),
            schema_of::<UpdateKey>(),
            schema_of::<ImportKey>(),
        ] {
            let pattern = pattern(&body["properties"]["expires_in"]);
            for text in durations() {
                let accepted = resolve_expiry(Some(&text), None, now).is_ok();
                assert_eq!(pattern.is_match(&text), accepted, "expires_in {text:?}");
            }
        }
    }

    #[test]
    fn the_grace_pattern_accepts_exactly_what_rotation_accepts() {
        let pattern = pattern(&schema_of::<RotateKey>()["properties"]["grace"]);
        for text in durations() {
            let accepted = parse_duration(&text).is_ok_and(|d| d <= chrono::Duration::days(30));
            assert_eq!(pattern.is_match(&text), accepted, "grace {text:?}");
        }
    }

    #[test]
    fn bodies_state_their_rules_beside_the_fields() {
        let body = schema_of::<ImportKeyBody>();
        assert_eq!(body["type"], "object");
        assert_eq!(body["allOf"], json!([one_secret(), one_expiry()]));
        assert_eq!(ImportKeyBody::name(), "ImportKey");
        assert_eq!(schema_of::<CreateKeyBody>()["allOf"], json!([one_expiry()]));
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let absent: UpdateKey = serde_json::from_str("{}").expect("absent");
        assert_eq!(absent.description, None);
        let cleared: UpdateKey =
            serde_json::from_str(r#"{"description":null,"expires_at":null}"#).expect("null");
        assert_eq!(cleared.description, Some(None));
        assert_eq!(cleared.expires_at, Some(None));
        let back = serde_json::to_value(&cleared).expect("serialise");
        assert_eq!(back, json!({"description": null, "expires_at": null}));
        // Unknown fields are the server extractor's to refuse (`extract::strict_json`).
        assert!(serde_json::from_str::<UpdateKey>(r#"{"colour":"red"}"#).is_ok());
    }
}
