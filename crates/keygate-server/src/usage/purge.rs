//! The purger: request-log rows past their retention and old failed-authentication aggregates
//! are deleted in the background (rollups are kept for good).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use keygate_core::Clock;

use super::recorder::UsageRecorder;

/// How long failed-authentication aggregates are kept.
pub const AUTH_FAILURE_RETENTION_DAYS: i64 = 90;

impl UsageRecorder {
    /// Deletes request-log rows past their retention and old failed-authentication
    /// aggregates, every `every`, until the handle is aborted (a purge is idempotent).
    pub fn spawn_purger(
        self: &Arc<Self>,
        clock: Arc<dyn Clock>,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let Some(store) = this.store.clone() else {
                return;
            };
            let retention = chrono::Duration::from_std(this.settings.request_log_retention)
                .unwrap_or(chrono::Duration::MAX);
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let now = clock.now();
                let before = now
                    .checked_sub_signed(retention)
                    .unwrap_or(DateTime::UNIX_EPOCH);
                match store.purge_request_log(before).await {
                    Ok(n) => {
                        this.stats.purged_requests.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!(error = %e, "could not purge the request log"),
                }
                let before = now - chrono::Duration::days(AUTH_FAILURE_RETENTION_DAYS);
                if let Err(e) = store.purge_auth_failures(before).await {
                    tracing::warn!(error = %e, "could not purge failed-authentication records");
                }
            }
        })
    }
}
