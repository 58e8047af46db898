//! Usage recording, off the request path: every verification and gateway request becomes a
//! [`UsageEvent`], handed to [`UsageRecorder::record`] (non-blocking), buffered and written
//! in batches by a background task.
//!
//! The one design decision: the request path only ever does a `try_send` on a bounded channel.
//! When the channel is full the event is dropped and counted
//! (`keygate_usage_events_dropped_total`) — verification never waits for the database. A
//! flusher drains the channel every `flush_interval` (1 s by default, sooner when the channel
//! is half full), sums the events into rollups (key × UTC day × operation × project ×
//! outcome), request-log rows and failed-authentication aggregates, and writes them in one
//! all-or-nothing store transaction; a failed write is kept and retried with the next flush,
//! so nothing is counted twice. A graceful shutdown stops the flusher between flushes and
//! flushes once more, so it loses nothing; a crash (kill -9, power cut) loses what was
//! buffered: at most one flush interval of events.
//!
//! Failed authentication attempts are not logged one row per attempt: they are counted per
//! workspace × hour × display form × source × code, and each node keeps at most
//! [`MAX_FAILURE_GROUPS_PER_HOUR`] distinct groups per workspace and hour (the rest are folded
//! into one "other" group), so a flood of invented keys from many addresses adds to counters
//! instead of filling the disk.
//!
//! One file per concern, each importing only the ones listed before it: [`event`] (what a
//! request's usage is), [`validate`] (the request fields that become rollup keys),
//! `aggregate` (summing drained events into a store batch), `metrics` (the counters and their
//! Prometheus text), [`recorder`] (the bounded buffer and its flusher) and `purge`
//! (retention). Everything other modules use is re-exported here.

pub mod event;
pub mod recorder;
pub mod validate;

mod aggregate;
mod metrics;
mod purge;

pub use aggregate::MAX_FAILURE_GROUPS_PER_HOUR;
pub use event::{UsageContext, UsageEvent, UsageOutcome};
pub use purge::AUTH_FAILURE_RETENTION_DAYS;
pub use recorder::{Flusher, UsageRecorder, UsageSettings};
pub use validate::{
    valid_operation, valid_project, valid_source_ip, DEFAULT_OPERATION, MAX_OPERATION_CHARS,
};
