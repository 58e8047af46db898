//! Usage recording, off the request path: every verification and gateway request becomes a
//! [`UsageEvent`], handed to [`UsageRecorder::record`] (non-blocking), buffered and written
//! in batches by a background task.

use chrono::{DateTime, Utc};
use keygate_core::Micros;

/// One request made with a key (or an attempt that was refused).
#[derive(Debug, Clone)]
pub struct UsageEvent {
    pub request_id: String,
    pub workspace_id: String,
    /// `None` when no key was identified (missing, malformed, unknown).
    pub key_id: Option<String>,
    /// Display form of the presented key, for failed-authentication records; never the secret.
    pub key_display: Option<String>,
    pub at: DateTime<Utc>,
    /// The route (gateway) or the caller's `operation` (verify mode).
    pub operation: String,
    pub project: Option<String>,
    /// `valid` or a denial code.
    pub outcome: &'static str,
    pub tokens: u64,
    pub cost: Micros,
    /// Where the request came from, when known.
    pub source_ip: Option<String>,
}

/// Takes usage events without blocking the request.
#[derive(Debug, Default)]
pub struct UsageRecorder {}

impl UsageRecorder {
    /// Queues an event; never blocks, never fails the request.
    pub fn record(&self, _event: UsageEvent) {}
}
