//! Counters the server keeps for `/metrics` (Prometheus text format). Plain atomics: they sit on
//! the verification path and must cost nothing measurable.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use keygate_core::Denial;

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Verifications by outcome: index 0 is "valid", then `Denial::ALL` in order.
    verifications: [AtomicU64; Denial::ALL.len() + 1],
    /// Times verification asked the store for a key (cache misses). A malformed key must
    /// never move this; the tests rely on it to prove that.
    pub store_key_lookups: AtomicU64,
}

impl Metrics {
    pub fn count_verification(&self, outcome: Option<Denial>) {
        let index = match outcome {
            None => 0,
            Some(d) => 1 + Denial::ALL.iter().position(|x| *x == d).unwrap_or(0),
        };
        self.verifications[index].fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP keygate_verifications_total Key verifications by outcome code.\n");
        out.push_str("# TYPE keygate_verifications_total counter\n");
        let codes = std::iter::once("valid").chain(Denial::ALL.iter().map(|d| d.code()));
        for (code, counter) in codes.zip(self.verifications.iter()) {
            let _ = writeln!(
                out,
                "keygate_verifications_total{{outcome=\"{code}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP keygate_store_key_lookups_total Key lookups that reached the store (cache misses).\n");
        out.push_str("# TYPE keygate_store_key_lookups_total counter\n");
        let _ = writeln!(
            out,
            "keygate_store_key_lookups_total {}",
            self.store_key_lookups.load(Ordering::Relaxed)
        );
        out
    }
}
