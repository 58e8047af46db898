//! `/v1/webhooks`: a workspace's webhook endpoints, their delivery log, and a test event.

use chrono::{DateTime, Utc};
use keygate_core::text::Description;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use keygate_core::events::{DeliveryState, EventType};

/// The form of an endpoint URL: `https`, a lowercase host name (not an IP address), an
/// optional port, a path of printable ASCII. [`is_endpoint_url`] is the same rule in code.
pub const URL_PATTERN: &str =
    r"^https://([a-z0-9-]+\.)*[a-z][a-z0-9-]*(:[1-9][0-9]{0,3})?(/[!-~]*)?$";

/// Whether `text` has the form [`URL_PATTERN`] states (the server also checks where the host
/// resolves to).
pub fn is_endpoint_url(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("https://") else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !path.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        return false;
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let port_ok = port.is_none_or(|p| {
        (1..=4).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) && !p.starts_with('0')
    });
    let labels: Vec<&str> = host.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    port_ok
        && labels.iter().all(label_ok)
        && labels
            .last()
            .and_then(|l| l.bytes().next())
            .is_some_and(|b| b.is_ascii_lowercase())
}

/// Most endpoints one workspace may have.
pub const MAX_WEBHOOKS: usize = 20;

/// `POST /v1/webhooks`: a new endpoint. Its signing secret is in the answer, once.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"url": "https://hooks.example.com/keygate", "description": "billing", "event_types": ["key.revoked", "key.leaked"]}))]
pub struct CreateWebhook {
    /// Where deliveries are POSTed: `https` to a host name (not an IP address) that resolves
    /// to public addresses only; at most 2,048 characters.
    #[schema(
        max_length = 2048,
        pattern = r"^https://([a-z0-9-]+\.)*[a-z][a-z0-9-]*(:[1-9][0-9]{0,3})?(/[!-~]*)?$"
    )]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Description>)]
    pub description: Option<String>,
    /// The events to send; none (the default) means every event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 20)]
    pub event_types: Vec<EventType>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `PATCH /v1/webhooks/{id}`: only the fields sent change (`description: null` removes it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"enabled": false}))]
pub struct UpdateWebhook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 2048,
        pattern = r"^https://([a-z0-9-]+\.)*[a-z][a-z0-9-]*(:[1-9][0-9]{0,3})?(/[!-~]*)?$"
    )]
    pub url: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Description>)]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 20)]
    pub event_types: Option<Vec<EventType>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// An endpoint (its secret is never shown again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    pub description: Option<String>,
    /// Empty: every event.
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    /// Why Keygate disabled the endpoint, when it did: every delivery attempt failed for
    /// three days. Cleared when it is enabled again.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new endpoint and its signing secret, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_…`: give it to your Standard Webhooks verifier.
    pub secret: String,
    pub warning: String,
}

/// One event for one endpoint, with what its latest attempt got.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebhookDelivery {
    pub id: String,
    /// The `webhook-id` every attempt carries.
    pub event_id: String,
    pub event_type: EventType,
    pub state: DeliveryState,
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: DateTime<Utc>,
    /// The HTTP status of the latest attempt, when the endpoint answered.
    pub last_status: Option<u16>,
    /// Why the latest attempt failed (and the start of the answer).
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of deliveries, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<WebhookDelivery>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/webhooks/{id}/test`: the test delivery queued.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TestQueued {
    pub delivery_id: String,
    pub event_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_check_is_the_documented_pattern() {
        let pattern = regex::Regex::new(URL_PATTERN).expect("the pattern compiles");
        // The schemas carry the pattern as a literal (utoipa takes no constant): the same one.
        for schema in [
            <CreateWebhook as utoipa::PartialSchema>::schema(),
            <UpdateWebhook as utoipa::PartialSchema>::schema(),
        ] {
            let schema = serde_json::to_value(schema).expect("json");
            assert_eq!(schema["properties"]["url"]["pattern"], URL_PATTERN);
        }
        for text in [
            "https://hooks.example.com/keygate",
            "https://a",
            "https://a.b:8443/x?y=1#z",
            "https://76.s.bz01.zw484dqe0b",
            "https://76.s.bz01.zw484dqe0b*",
            "https://Hooks.example.com/",
            "HTTPS://hooks.example.com/",
            "http://hooks.example.com/",
            "https://10.0.0.1/",
            "https://a..b/",
            "https://a.b:0/",
            "https://a.b:99999/",
            "https://a.b/ space",
            "https://a.1b/",
            "https://-a.b-/",
            "https://",
            "https://a.b/é",
        ] {
            assert_eq!(is_endpoint_url(text), pattern.is_match(text), "{text:?}");
        }
    }
}
