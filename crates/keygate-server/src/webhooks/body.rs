//! The body every delivery sends: Standard Webhooks' shape, `{"type", "timestamp", "data"}`
//! (the store builds the same for audited changes).

/// The body of an event (Standard Webhooks' shape: `type`, `timestamp`, `data`), as the store
/// builds it for audited changes.
pub fn event_body(
    event: keygate_core::events::EventType,
    at: chrono::DateTime<chrono::Utc>,
    data: serde_json::Value,
) -> String {
    serde_json::json!({
        "type": event.as_str(),
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}
