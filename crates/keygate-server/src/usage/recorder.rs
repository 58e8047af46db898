//! The bounded buffer the request path hands events to, and the flusher that drains it: the
//! request path only ever does a `try_send`; a full buffer drops the event and counts it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use keygate_store::Store;
use tokio::sync::{mpsc, Mutex, Notify};

use super::aggregate::{FailureGroups, Pending};
use super::event::UsageEvent;
use super::metrics::UsageStats;

/// Events summed between two yields when the flusher drains the buffer.
const DRAIN_SLICE: usize = 2048;

/// How usage is recorded; part of the server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSettings {
    /// Off: `record` does nothing (for benchmarks, or nodes that must not write usage).
    pub enabled: bool,
    /// How long request-log rows are kept (rollups are kept for good).
    pub request_log_retention: Duration,
    /// How often buffered events are written; also what a crash can lose.
    pub flush_interval: Duration,
    /// Events buffered before new ones are dropped.
    pub buffer_capacity: usize,
}

impl Default for UsageSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            request_log_retention: Duration::from_secs(7 * 86_400),
            flush_interval: Duration::from_secs(1),
            buffer_capacity: 100_000,
        }
    }
}

/// Takes usage events without blocking the request.
pub struct UsageRecorder {
    pub(super) settings: UsageSettings,
    /// `None`: recording is off.
    sender: Option<mpsc::Sender<UsageEvent>>,
    /// Wakes the flusher early when the channel fills up.
    wake: Notify,
    /// Everything the flusher owns; a `tokio` mutex so a flush can hold it across the write.
    flush_side: Mutex<FlushSide>,
    pub(super) store: Option<Arc<dyn Store>>,
    pub(super) stats: UsageStats,
}

impl std::fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageRecorder")
            .field("settings", &self.settings)
            .field("depth", &self.depth())
            .finish_non_exhaustive()
    }
}

/// A recorder that records nothing; for states built without a store.
impl Default for UsageRecorder {
    fn default() -> Self {
        let settings = UsageSettings {
            enabled: false,
            ..UsageSettings::default()
        };
        Self::build(None, settings)
    }
}

impl UsageRecorder {
    /// A recorder writing to `store`; call [`UsageRecorder::spawn_flusher`] to start writing.
    pub fn new(store: Arc<dyn Store>, settings: UsageSettings) -> Self {
        Self::build(Some(store), settings)
    }

    fn build(store: Option<Arc<dyn Store>>, settings: UsageSettings) -> Self {
        let (sender, receiver) = if settings.enabled && store.is_some() {
            let (tx, rx) = mpsc::channel(settings.buffer_capacity.max(1));
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        Self {
            sender,
            wake: Notify::new(),
            flush_side: Mutex::new(FlushSide {
                receiver,
                pending: Pending::default(),
                failure_groups: HashMap::new(),
            }),
            store,
            stats: UsageStats::default(),
            settings,
        }
    }

    /// Queues an event; never blocks, never fails the request. A full buffer drops the event
    /// and counts it.
    pub fn record(&self, event: UsageEvent) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(event) {
            Ok(()) => {
                self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                if sender.capacity() < sender.max_capacity() / 2 {
                    self.wake.notify_one();
                }
            }
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Events waiting in the buffer.
    pub fn depth(&self) -> usize {
        self.sender
            .as_ref()
            .map_or(0, |s| s.max_capacity() - s.capacity())
    }

    /// Writes everything buffered so far. On failure the batch is kept and retried with the
    /// next flush (the store writes a batch all or nothing).
    pub async fn flush(&self) {
        let Some(store) = &self.store else { return };
        let mut side = self.flush_side.lock().await;
        let FlushSide {
            receiver,
            pending,
            failure_groups,
        } = &mut *side;
        if let Some(receiver) = receiver {
            // What is buffered now, not what keeps arriving meanwhile; in slices with a yield
            // between them, so a big drain never holds up the requests on this worker thread.
            let mut left = self.depth();
            while left > 0 {
                let mut slice = DRAIN_SLICE.min(left);
                left -= slice;
                while slice > 0 {
                    let Ok(event) = receiver.try_recv() else {
                        left = 0;
                        break;
                    };
                    pending.add(event, failure_groups);
                    slice -= 1;
                }
                if left > 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
        if pending.events == 0 {
            return;
        }
        // The request-log entries move into the batch (they are the bulk) and come back if
        // the write fails.
        let mut batch = pending.to_batch();
        batch.requests = std::mem::take(&mut pending.requests);
        match store.record_usage(&batch).await {
            Ok(()) => {
                self.stats
                    .flushed
                    .fetch_add(pending.events, Ordering::Relaxed);
                *pending = Pending::default();
            }
            Err(e) => {
                self.stats.flush_failures.fetch_add(1, Ordering::Relaxed);
                pending.requests = batch.requests;
                tracing::warn!(error = %e, events = pending.events, "could not write usage; will retry");
                // Bounded while the store is down: past the buffer's size, request-log rows
                // are given up (counted as dropped); the rollups are small and kept.
                if pending.requests.len() > self.settings.buffer_capacity {
                    let lost = pending.requests.len() as u64;
                    pending.requests.clear();
                    self.stats.dropped.fetch_add(lost, Ordering::Relaxed);
                }
            }
        }
    }

    /// Flushes every `flush_interval` (or sooner when the buffer is half full) until stopped.
    pub fn spawn_flusher(self: &Arc<Self>) -> Flusher {
        let this = Arc::clone(self);
        let stop = Arc::new(Notify::new());
        let stopped = Arc::clone(&stop);
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.settings.flush_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = this.wake.notified() => {}
                    () = stopped.notified() => return,
                }
                // Not inside the select: a flush that started always finishes, so stopping
                // never abandons a batch half written.
                this.flush().await;
            }
        });
        Flusher { handle, stop }
    }

    /// The recorder's series in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        self.stats.render(self.depth(), out);
    }
}

/// The running flusher; [`Flusher::stop`] ends it between two flushes.
pub struct Flusher {
    handle: tokio::task::JoinHandle<()>,
    stop: Arc<Notify>,
}

impl Flusher {
    /// Stops the loop after the flush in progress, if any, and waits for it.
    pub async fn stop(self) {
        self.stop.notify_one();
        let _ = self.handle.await;
    }
}

struct FlushSide {
    receiver: Option<mpsc::Receiver<UsageEvent>>,
    pending: Pending,
    /// Failure groups seen per workspace and hour, to cap their number.
    failure_groups: FailureGroups,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::event::tests::event;
    use crate::usage::event::UsageOutcome;

    #[tokio::test]
    async fn a_full_buffer_drops_and_counts_instead_of_waiting() {
        let store = keygate_store::connect("sqlite::memory:")
            .await
            .expect("store");
        let recorder = UsageRecorder::new(
            store,
            UsageSettings {
                buffer_capacity: 4,
                ..UsageSettings::default()
            },
        );
        for n in 0..10 {
            recorder.record(event(n, UsageOutcome::Valid, Some("key_a")));
        }
        assert_eq!(recorder.depth(), 4);
        assert_eq!(recorder.stats.dropped.load(Ordering::Relaxed), 6);
        recorder.flush().await;
        assert_eq!(recorder.depth(), 0);
        assert_eq!(recorder.stats.flushed.load(Ordering::Relaxed), 4);
        let mut text = String::new();
        recorder.render_metrics(&mut text);
        assert!(
            text.contains("keygate_usage_events_dropped_total 6\n"),
            "{text}"
        );
    }

    #[test]
    fn a_disabled_recorder_takes_nothing() {
        let recorder = UsageRecorder::default();
        recorder.record(event(1, UsageOutcome::Valid, Some("key_a")));
        assert_eq!(recorder.depth(), 0);
    }
}
