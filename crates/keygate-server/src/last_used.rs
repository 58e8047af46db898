//! `last_used_at`, written off the request path: verification notes the time in memory and a
//! background task writes the latest time per key in one batch every second, so a hot key
//! costs one row update per second at most, and the value never goes backwards (the store
//! keeps the maximum).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keygate_store::Store;

pub struct LastUsed {
    pending: Mutex<HashMap<String, DateTime<Utc>>>,
    store: Arc<dyn Store>,
}

impl LastUsed {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            store,
        }
    }

    /// Notes a use; cheap enough for every request.
    pub fn note(&self, key_id: &str, at: DateTime<Utc>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.get_mut(key_id) {
            Some(existing) if *existing >= at => {}
            Some(existing) => *existing = at,
            None => {
                pending.insert(key_id.to_owned(), at);
            }
        }
    }

    /// Writes what is pending. On failure the times are put back to be tried again.
    pub async fn flush(&self) {
        let batch: Vec<(String, DateTime<Utc>)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.store.touch_keys(&batch).await {
            tracing::warn!(error = %e, keys = batch.len(), "could not record last_used_at; will retry");
            for (id, at) in batch {
                self.note(&id, at);
            }
        }
    }

    /// Flushes every `every` until the returned handle is aborted.
    pub fn spawn_flusher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                this.flush().await;
            }
        })
    }
}
