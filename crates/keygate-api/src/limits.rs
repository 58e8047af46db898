//! Limits outside a plain verify: a key's consumption (`GET /v1/keys/{id}/limits`), usage
//! reported after the fact (`POST /v1/usage`) and the reserve → settle/release flow
//! (`/v1/reservations`).

use chrono::{DateTime, Utc};
use keygate_core::Micros;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::verdict::Verdict;

/// Which limit a [`LimitState`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// A rolling window of requests (`window_secs` long).
    Rate,
    /// The key's token budget.
    Tokens,
    /// The key's cost budget.
    Cost,
    /// The key's daily spend cap.
    DailySpendCap,
    /// The workspace's credit balance.
    Credits,
}

/// Whose limit a [`LimitState`] is: the key's own, its identity's (counted over all the
/// identity's keys), or the workspace's credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    Key,
    Identity,
    Workspace,
}

/// What `limit`, `used` and `remaining` count: requests, tokens, or micro-dollars (never
/// dollars, so a client cannot mistake one for the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitUnit {
    Requests,
    Tokens,
    UsdMicros,
}

/// The consumption of one limit. Money kinds (`cost`, `daily_spend_cap`, `credits`) count
/// micro-dollars; reserved amounts count as used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"kind": "rate", "scope": "key", "window_secs": 60, "unit": "requests", "limit": 100, "used": 3, "remaining": 97, "reset_at": "2026-01-31T12:01:00Z"}))]
pub struct LimitState {
    pub kind: LimitKind,
    pub scope: LimitScope,
    /// The window's length, for `rate` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub window_secs: Option<u64>,
    pub unit: LimitUnit,
    #[schema(minimum = 0)]
    pub limit: i64,
    #[schema(minimum = 0)]
    pub used: i64,
    /// `limit - used`, never below zero.
    #[schema(minimum = 0)]
    pub remaining: i64,
    /// When `remaining` next grows: the oldest counted request leaving a rate window, or the
    /// budget's reset. `null` when nothing is counted yet or the budget never resets.
    pub reset_at: Option<DateTime<Utc>>,
}

/// `GET /v1/keys/{id}/limits`: the key's consumption against every limit that applies to it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"key_id": "key_2bX9kQ4mN7pL1vT8cYw3", "legacy": false, "limits": [{"kind": "tokens", "scope": "key", "unit": "tokens", "limit": 100000, "used": 1200, "remaining": 98800, "reset_at": "2026-02-01T00:00:00Z"}]}))]
pub struct KeyLimitStatus {
    pub key_id: String,
    /// An imported key: no limits of its own until it is replaced (`limits` is empty).
    pub legacy: bool,
    pub limits: Vec<LimitState>,
}

/// `POST /v1/usage`: usage that already happened, added to the key's budgets unconditionally.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"key_id": "key_2bX9kQ4mN7pL1vT8cYw3", "tokens": 1200, "cost": "0.0042", "operation": "POST /v1/chat"}))]
pub struct ReportUsage {
    /// The key the usage belongs to (`key_…`).
    pub key_id: String,
    /// Tokens used; default 0.
    #[serde(default, deserialize_with = "crate::fields::whole_u64")]
    #[schema(schema_with = crate::fields::tokens)]
    pub tokens: u64,
    /// What the usage cost; default 0.
    #[serde(default)]
    pub cost: Micros,
    /// The operation the usage belongs to, as given to verify; default `verify`. 1–128
    /// characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub operation: Option<String>,
}

/// The answer to `POST /v1/usage`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"recorded": true, "key_id": "key_2bX9kQ4mN7pL1vT8cYw3", "tokens": 1200, "cost": "0.0042"}))]
pub struct UsageReported {
    /// Always `true`.
    pub recorded: bool,
    pub key_id: String,
    /// The tokens recorded, as sent (any `u64`).
    #[schema(schema_with = crate::fields::tokens)]
    pub tokens: u64,
    pub cost: Micros,
}

/// `POST /v1/reservations`: verify a key and hold the worst case it may spend, in one step.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"key": "kg_live_2bX9kQ4mN7pL1vT8cYw3aB5dE6fG", "project": "proj_8hJ2kL4mN6pQ", "permissions": ["chat:write"], "tokens": 4000, "cost": "0.05", "ttl": "5m", "operation": "POST /v1/chat", "source_ip": "203.0.113.7"}))]
pub struct CreateReservation {
    /// The customer's key as presented; missing or `null` is the `missing_api_key` verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The project the request is for (`proj_…`); the key must be scoped to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^proj_[A-Za-z0-9]{1,64}$", example = "proj_8hJ2kL4mN6pQ")]
    pub project: Option<String>,
    /// Permissions the request needs; the key must hold every one (`*` and `results:*`
    /// wildcards count).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<String>,
    /// The worst case in tokens to hold; default 0.
    #[serde(default, deserialize_with = "crate::fields::whole_u64")]
    #[schema(schema_with = crate::fields::tokens)]
    pub tokens: u64,
    /// The worst case in money to hold; default 0.
    #[serde(default)]
    pub cost: Micros,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::fields::ttl)]
    pub ttl: Option<String>,
    /// Recorded with usage, as for verify; default `verify`. 1–128 characters, no control
    /// characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::fields::source_ip)]
    pub source_ip: Option<String>,
}

/// The answer to `POST /v1/reservations`: always 200 (the call itself worked); `status` is
/// what the caller should answer its own client with.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"valid": true, "code": "valid", "status": 200, "message": null, "key_id": "key_2bX9kQ4mN7pL1vT8cYw3", "reservation_id": "rsv_4f1c9a0b7d2e4c6a8b0d1e3f5a7c9e1b.key_2bX9kQ4mN7pL1vT8cYw3", "limits": [], "retry_after": null}))]
pub struct Reservation {
    pub valid: bool,
    pub code: Verdict,
    /// The HTTP status to answer the end customer with: 200, or the refusal's (401 for a
    /// missing, malformed, unknown, revoked, disabled or expired key; 403 `forbidden`; 402
    /// spend cap or credits; 429 rate or budget limits; 503 `limiter_unavailable`).
    #[schema(schema_with = crate::fields::verdict_status)]
    pub status: u16,
    /// A sentence a person can act on, when refused.
    pub message: Option<String>,
    /// The key's id, once the key is identified.
    pub key_id: Option<String>,
    /// The hold to settle or release (`rsv_…`), when valid.
    pub reservation_id: Option<String>,
    /// Every limit, with what remains after the hold.
    pub limits: Vec<LimitState>,
    /// Seconds until a refused request may be retried, when a limit says.
    pub retry_after: Option<u64>,
    /// The limit that refused, when one did (`scope`: key, identity or workspace).
    #[serde(default)]
    pub limit: Option<LimitState>,
}

/// `POST /v1/reservations/{id}/settle`: the amount actually spent (it may be more or less than
/// the hold).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"tokens": 1830, "cost": "0.021"}))]
pub struct SettleReservation {
    /// Tokens actually used; default 0.
    #[serde(default, deserialize_with = "crate::fields::whole_u64")]
    #[schema(schema_with = crate::fields::tokens)]
    pub tokens: u64,
    /// What the work actually cost; default 0.
    #[serde(default)]
    pub cost: Micros,
}

/// The answer to a settle.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"settled": true, "tokens": 1830, "cost": "0.021"}))]
pub struct Settled {
    /// Always `true`.
    pub settled: bool,
    /// The tokens charged, as sent (any `u64`).
    #[schema(schema_with = crate::fields::tokens)]
    pub tokens: u64,
    pub cost: Micros,
}

/// The answer to a release.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"released": true}))]
pub struct Released {
    /// Always `true`.
    pub released: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{OPERATION_PATTERN, PROJECT_PATTERN};
    use serde_json::json;
    use utoipa::PartialSchema;

    #[test]
    fn the_patterns_are_the_shared_ones() {
        for schema in [CreateReservation::schema(), ReportUsage::schema()] {
            let schema = serde_json::to_value(schema).expect("json");
            assert_eq!(
                schema["properties"]["operation"]["pattern"],
                OPERATION_PATTERN
            );
        }
        let reserve = serde_json::to_value(CreateReservation::schema()).expect("json");
        assert_eq!(reserve["properties"]["project"]["pattern"], PROJECT_PATTERN);
    }

    #[test]
    fn a_reservation_reads_as_before() {
        let body: CreateReservation =
            serde_json::from_value(json!({"key": "kg_live_x", "cost": "0.01", "ttl": "5m"}))
                .expect("a request");
        assert_eq!(body.ttl.as_deref(), Some("5m"));
        // Unknown fields are the server extractor's to refuse (`extract::strict_json`).
        assert!(serde_json::from_value::<CreateReservation>(json!({"colour": 1})).is_ok());
        assert!(serde_json::from_value::<SettleReservation>(json!({"tokens": null})).is_err());
        assert!(serde_json::from_value::<ReportUsage>(json!({"tokens": 1})).is_err());
        let settle: SettleReservation =
            serde_json::from_value(json!({"tokens": 2.0})).expect("a whole number");
        assert_eq!(settle.tokens, 2);
        assert!(serde_json::from_value::<SettleReservation>(json!({"tokens": 2.5})).is_err());
    }

    #[test]
    fn a_rate_window_shows_its_length_and_other_limits_do_not() {
        let rate = LimitState {
            kind: LimitKind::Rate,
            scope: LimitScope::Key,
            window_secs: Some(60),
            unit: LimitUnit::Requests,
            limit: 10,
            used: 1,
            remaining: 9,
            reset_at: None,
        };
        assert_eq!(
            serde_json::to_value(&rate).expect("json"),
            json!({"kind": "rate", "scope": "key", "window_secs": 60, "unit": "requests", "limit": 10, "used": 1, "remaining": 9, "reset_at": null})
        );
        let tokens = LimitState {
            kind: LimitKind::Tokens,
            window_secs: None,
            unit: LimitUnit::Tokens,
            ..rate
        };
        assert!(serde_json::to_value(&tokens)
            .expect("json")
            .get("window_secs")
            .is_none());
    }
}
