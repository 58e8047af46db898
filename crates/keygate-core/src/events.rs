//! The events a workspace's webhook endpoints receive, and which audited change each comes
//! from.
//!
//! Every management change is written with its audit row in one transaction; the store
//! queues a webhook delivery for each subscribed endpoint in that same transaction, so an
//! acknowledged change always has its deliveries, and a change that rolled back has none.
//! Events that no member's change causes (a key about to expire, a budget crossing a
//! threshold) are not here yet.

use serde::{Deserialize, Serialize};

/// An event type, as endpoints subscribe to it and as `type` in a delivery's body.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "key.created")]
    KeyCreated,
    #[serde(rename = "key.updated")]
    KeyUpdated,
    #[serde(rename = "key.disabled")]
    KeyDisabled,
    #[serde(rename = "key.enabled")]
    KeyEnabled,
    #[serde(rename = "key.revoked")]
    KeyRevoked,
    #[serde(rename = "key.rotated")]
    KeyRotated,
    #[serde(rename = "key.regenerated")]
    KeyRegenerated,
    #[serde(rename = "key.deleted")]
    KeyDeleted,
    #[serde(rename = "key.leaked")]
    KeyLeaked,
    #[serde(rename = "member.created")]
    MemberCreated,
    #[serde(rename = "member.deleted")]
    MemberDeleted,
    /// Sent on request (`POST /v1/webhooks/{id}/test`), whatever the endpoint subscribes to.
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    /// Every event type an endpoint can subscribe to.
    pub const SUBSCRIBABLE: [EventType; 11] = [
        EventType::KeyCreated,
        EventType::KeyUpdated,
        EventType::KeyDisabled,
        EventType::KeyEnabled,
        EventType::KeyRevoked,
        EventType::KeyRotated,
        EventType::KeyRegenerated,
        EventType::KeyDeleted,
        EventType::KeyLeaked,
        EventType::MemberCreated,
        EventType::MemberDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::KeyCreated => "key.created",
            EventType::KeyUpdated => "key.updated",
            EventType::KeyDisabled => "key.disabled",
            EventType::KeyEnabled => "key.enabled",
            EventType::KeyRevoked => "key.revoked",
            EventType::KeyRotated => "key.rotated",
            EventType::KeyRegenerated => "key.regenerated",
            EventType::KeyDeleted => "key.deleted",
            EventType::KeyLeaked => "key.leaked",
            EventType::MemberCreated => "member.created",
            EventType::MemberDeleted => "member.deleted",
            EventType::WebhookTest => "webhook.test",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        Self::SUBSCRIBABLE
            .into_iter()
            .chain([EventType::WebhookTest])
            .find(|e| e.as_str() == text)
    }

    /// The event an audited action is, if any (a workspace or routing-rule change is none).
    pub fn of_audit_action(action: &str) -> Option<EventType> {
        Some(match action {
            "key.create" | "key.import" => EventType::KeyCreated,
            "key.update" => EventType::KeyUpdated,
            "key.disable" => EventType::KeyDisabled,
            "key.enable" => EventType::KeyEnabled,
            "key.revoke" => EventType::KeyRevoked,
            "key.rotate" => EventType::KeyRotated,
            "key.regenerate" => EventType::KeyRegenerated,
            "key.delete" => EventType::KeyDeleted,
            "key.leaked" => EventType::KeyLeaked,
            "member.create" => EventType::MemberCreated,
            "member.delete" => EventType::MemberDeleted,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for event in EventType::SUBSCRIBABLE
            .into_iter()
            .chain([EventType::WebhookTest])
        {
            assert_eq!(EventType::parse(event.as_str()), Some(event));
            assert_eq!(
                serde_json::to_value(event).expect("json"),
                serde_json::json!(event.as_str())
            );
        }
        assert_eq!(
            EventType::of_audit_action("key.revoke"),
            Some(EventType::KeyRevoked)
        );
        assert_eq!(EventType::of_audit_action("workspace.update"), None);
    }
}
