//! The recorder's counters and their Prometheus text (`/metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub(super) struct UsageStats {
    pub(super) accepted: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) flushed: AtomicU64,
    pub(super) flush_failures: AtomicU64,
    pub(super) purged_requests: AtomicU64,
}

impl UsageStats {
    /// The series in Prometheus text format, with `depth`, the events waiting in the buffer.
    pub(super) fn render(&self, depth: usize, out: &mut String) {
        let counters = [
            (
                "keygate_usage_events_total",
                "Usage events accepted into the buffer.",
                &self.accepted,
            ),
            (
                "keygate_usage_events_dropped_total",
                "Usage events dropped because the buffer was full (or the store was down too long).",
                &self.dropped,
            ),
            (
                "keygate_usage_events_flushed_total",
                "Usage events written to the store.",
                &self.flushed,
            ),
            (
                "keygate_usage_flush_failures_total",
                "Usage flushes that failed and were kept for retry.",
                &self.flush_failures,
            ),
            (
                "keygate_request_log_purged_total",
                "Request-log rows deleted after their retention.",
                &self.purged_requests,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", counter.load(Ordering::Relaxed));
        }
        out.push_str("# HELP keygate_usage_buffer_depth Usage events waiting to be written.\n");
        out.push_str("# TYPE keygate_usage_buffer_depth gauge\n");
        let _ = writeln!(out, "keygate_usage_buffer_depth {depth}");
    }
}
