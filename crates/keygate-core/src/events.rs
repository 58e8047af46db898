//! The events a workspace's webhook endpoints receive, and which audited change each comes
//! from.
//!
//! Every management change is written with its audit row in one transaction; the store
//! queues a webhook delivery for each subscribed endpoint in that same transaction, so an
//! acknowledged change always has its deliveries, and a change that rolled back has none.
//!
//! Events that no member's change causes (a key about to expire, a budget crossing a
//! threshold, the workspace's credit running low) have no audit row. Each is queued once
//! whatever the number of nodes: its deliveries are inserted in the transaction that writes
//! its *mark*, a text unique per workspace (`webhook_event_marks`), so a second node that
//! sees the same crossing finds the mark taken and queues nothing. A mark names everything
//! that makes the event new: the key and the expiry it warns of, the budget's period and
//! limit, the credit balance.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a delivery of an event to one endpoint stands: stored by the store, shown by the
/// API, decided by the dispatcher.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed; nothing more is tried.
    Failed,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Failed,
    ];

    /// The stored and wire form (`pending`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<DeliveryState> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

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
    /// A key expires within 7 days, or within 1 day: once per key, notice and expiry time.
    #[serde(rename = "key.expiring")]
    KeyExpiring,
    /// A key's (or its identity's) token limit, cost limit or daily spend cap reached 80% or
    /// 100%: once per limit, threshold and period.
    #[serde(rename = "limit.threshold")]
    LimitThreshold,
    /// The workspace's remaining credit fell to its `credits_low_threshold`: once per credit
    /// balance.
    #[serde(rename = "credits.low")]
    CreditsLow,
    /// Sent on request (`POST /v1/webhooks/{id}/test`), whatever the endpoint subscribes to.
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl EventType {
    /// Every event type an endpoint can subscribe to.
    pub const SUBSCRIBABLE: [EventType; 14] = [
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
        EventType::KeyExpiring,
        EventType::LimitThreshold,
        EventType::CreditsLow,
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
            EventType::KeyExpiring => "key.expiring",
            EventType::LimitThreshold => "limit.threshold",
            EventType::CreditsLow => "credits.low",
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

/// Which warning of a key's expiry: 7 days before it, or 1 day before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiryNotice {
    Week,
    Day,
}

impl ExpiryNotice {
    /// As in a mark and in a `key.expiring` body (`notice`).
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryNotice::Week => "7d",
            ExpiryNotice::Day => "1d",
        }
    }

    /// How long before the expiry the notice is due.
    pub fn lead(self) -> chrono::Duration {
        match self {
            ExpiryNotice::Week => chrono::Duration::days(7),
            ExpiryNotice::Day => chrono::Duration::days(1),
        }
    }

    /// The notice due for a key with `left` to go: the nearer one only (a key created 20
    /// hours before its expiry gets the 1-day notice, not both); `None` past the expiry or
    /// more than 7 days before it.
    pub fn due(left: chrono::Duration) -> Option<ExpiryNotice> {
        if left <= chrono::Duration::zero() {
            None
        } else if left <= ExpiryNotice::Day.lead() {
            Some(ExpiryNotice::Day)
        } else if left <= ExpiryNotice::Week.lead() {
            Some(ExpiryNotice::Week)
        } else {
            None
        }
    }
}

/// The mark of a `key.expiring` notice: `key.expiring:<key id>:<expiry, Unix ms>:<7d|1d>`.
/// A changed expiry is a new mark, so it earns notices of its own. (The store's scan for
/// keys still to warn builds the same text in SQL; its conformance test holds them equal.)
pub fn key_expiring_mark(key_id: &str, expires_at: DateTime<Utc>, notice: ExpiryNotice) -> String {
    format!(
        "key.expiring:{key_id}:{}:{}",
        expires_at.timestamp_millis(),
        notice.as_str()
    )
}

/// A share of a budget that earns a `limit.threshold` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Threshold {
    Percent80,
    Percent100,
}

impl Threshold {
    pub const ALL: [Threshold; 2] = [Threshold::Percent80, Threshold::Percent100];

    pub fn percent(self) -> u8 {
        match self {
            Threshold::Percent80 => 80,
            Threshold::Percent100 => 100,
        }
    }

    /// Whether `used` of `limit` has reached this share. A limit of zero or less (which
    /// admits nothing) reaches none: there is nothing to warn of.
    pub fn reached(self, used: i64, limit: i64) -> bool {
        limit > 0 && i128::from(used) * 100 >= i128::from(limit) * i128::from(self.percent())
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

    #[test]
    fn only_the_nearer_expiry_notice_is_due() {
        let hours = chrono::Duration::hours;
        assert_eq!(ExpiryNotice::due(hours(24 * 8)), None);
        assert_eq!(ExpiryNotice::due(hours(24 * 7)), Some(ExpiryNotice::Week));
        assert_eq!(ExpiryNotice::due(hours(25)), Some(ExpiryNotice::Week));
        assert_eq!(ExpiryNotice::due(hours(20)), Some(ExpiryNotice::Day));
        assert_eq!(ExpiryNotice::due(hours(0)), None);
        assert_eq!(ExpiryNotice::due(hours(-1)), None);
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).expect("time");
        assert_eq!(
            key_expiring_mark("key_a", at, ExpiryNotice::Day),
            "key.expiring:key_a:1700000000123:1d"
        );
    }

    #[test]
    fn thresholds_are_reached_at_their_share_exactly() {
        assert!(!Threshold::Percent80.reached(799, 1000));
        assert!(Threshold::Percent80.reached(800, 1000));
        assert!(!Threshold::Percent100.reached(999, 1000));
        assert!(Threshold::Percent100.reached(1000, 1000));
        assert!(Threshold::Percent100.reached(i64::MAX, i64::MAX));
        assert!(!Threshold::Percent80.reached(5, 0));
    }
}
