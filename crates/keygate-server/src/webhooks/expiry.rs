//! `key.expiring`: every node looks, once a minute, for keys whose 7-day or 1-day notice is due
//! and not yet queued (one indexed range read that skips keys already warned of, and
//! workspaces that nobody listens to). Each notice is queued with its mark
//! (`keygate_core::events::key_expiring_mark`), so however many nodes see the key at the same
//! moment, one queues it; a key whose expiry changes earns notices for the new one.

use std::sync::Arc;
use std::time::Duration;

use keygate_core::events::{key_expiring_mark, EventType, ExpiryNotice};
use keygate_core::{ids, Clock};
use keygate_store::{ExpiringKey, MarkedEvent, Store, StoreError};
use serde_json::json;

use super::body::event_body;

/// Most notices one scan queues; the next scan takes the rest.
const BATCH: u32 = 500;

pub struct ExpiryScanner {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
}

impl ExpiryScanner {
    /// Scans every `every` until the handle is aborted.
    pub fn spawn(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.run_once().await {
                    tracing::warn!(error = %e, "key.expiring: could not scan for expiring keys");
                }
            }
        })
    }

    /// Queues every due notice not queued yet; returns how many this node queued.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut queued = 0;
        for key in self.store.keys_to_warn_of_expiry(now, BATCH).await? {
            let Some(notice) = ExpiryNotice::due(key.expires_at - now) else {
                continue;
            };
            if self
                .store
                .queue_marked_event(&notice_of(&key, notice, now))
                .await?
            {
                queued += 1;
            }
        }
        Ok(queued)
    }
}

/// The event: which key (id, name, display form — never its secret or hash), when it
/// expires, and the whole days left, rounded up (a key expiring in 20 hours has 1).
fn notice_of(
    key: &ExpiringKey,
    notice: ExpiryNotice,
    now: chrono::DateTime<chrono::Utc>,
) -> MarkedEvent {
    let left_secs = (key.expires_at - now).num_seconds().max(0);
    let days_left = (left_secs + 86_399) / 86_400;
    let data = json!({
        "workspace_id": key.workspace_id,
        "key_id": key.key_id,
        "name": key.name,
        "display": key.display,
        "expires_at": key.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "days_left": days_left,
        "notice": notice.as_str(),
    });
    MarkedEvent {
        workspace_id: key.workspace_id.clone(),
        mark: key_expiring_mark(&key.key_id, key.expires_at, notice),
        event_id: ids::new_id("evt"),
        event_type: EventType::KeyExpiring,
        payload: event_body(EventType::KeyExpiring, now, data),
        at: now,
    }
}
