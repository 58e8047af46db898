//! Counters the server keeps for `/metrics` (Prometheus text format). Plain atomics: they sit on
//! the verification path and must cost nothing measurable. Latency histograms are hand-rolled
//! over fixed buckets for the same reason: one relaxed increment per bucket hit, no locks, no
//! registry (the usage recorder renders its own series, see `usage/metrics.rs`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keygate_core::Denial;

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Verifications by outcome: index 0 is "valid", then `Denial::ALL` in order.
    verifications: [AtomicU64; Denial::ALL.len() + 1],
    /// Times verification asked the store for a key (cache misses). A malformed key must
    /// never move this; the tests rely on it to prove that.
    pub store_key_lookups: AtomicU64,
    /// The whole verification decision (`pipeline::verify`), cache hits included.
    pub verify_latency: Histogram,
    /// Key lookups that reached the store.
    pub store_lookup_latency: Histogram,
    /// Limiter calls (admit or reserve) made by verification.
    pub limiter_latency: Histogram,
    /// Reverse-proxy requests whose upstream could not be reached or broke the connection. A
    /// client's own broken or stalled request body is never counted here.
    pub upstream_unavailable: AtomicU64,
    /// Reverse-proxy requests whose upstream did not answer within the route's timeout.
    pub upstream_timeouts: AtomicU64,
    /// Attempts to settle or release an AI request's reservation that failed and were retried.
    pub settle_retried: AtomicU64,
    /// Settles or releases given up after every retry: for a settle, usage never charged.
    pub settle_given_up: AtomicU64,
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
        let codes = std::iter::once("valid").chain(Denial::ALL.iter().map(|d| d.code()));
        render_counters(
            &mut out,
            "keygate_verifications_total",
            "Key verifications by outcome code.",
            "outcome",
            codes.zip(self.verifications.iter()),
        );
        out.push_str("# HELP keygate_store_key_lookups_total Key lookups that reached the store (cache misses).\n");
        out.push_str("# TYPE keygate_store_key_lookups_total counter\n");
        let _ = writeln!(
            out,
            "keygate_store_key_lookups_total {}",
            self.store_key_lookups.load(Ordering::Relaxed)
        );
        self.verify_latency.render(
            &mut out,
            "keygate_verify_duration_seconds",
            "Time to decide a verification (authenticate, authorize, limit).",
        );
        self.store_lookup_latency.render(
            &mut out,
            "keygate_store_key_lookup_duration_seconds",
            "Time of key lookups that reached the store.",
        );
        self.limiter_latency.render(
            &mut out,
            "keygate_limiter_duration_seconds",
            "Time of limiter calls made by verification.",
        );
        render_counters(
            &mut out,
            "keygate_proxy_upstream_failures_total",
            "Reverse-proxy requests the upstream failed, by kind.",
            "kind",
            [
                ("unavailable", &self.upstream_unavailable),
                ("timeout", &self.upstream_timeouts),
            ],
        );
        render_counters(
            &mut out,
            "keygate_settle_failures_total",
            "Failed attempts to settle or release an AI request's reservation: retried, or given up (that usage was not charged).",
            "outcome",
            [
                ("retried", &self.settle_retried),
                ("given_up", &self.settle_given_up),
            ],
        );
        out
    }
}

/// Writes a counter family with one label: its HELP and TYPE lines, then a sample for each
/// value of the label. Every labelled family is written this one way.
fn render_counters<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (&'a str, &'a AtomicU64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (value, counter) in samples {
        let count = counter.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {count}");
    }
}

/// Upper bounds of the histogram buckets, in microseconds: from a cache hit (tens of µs) to a
/// slow remote store (seconds).
const BUCKETS_MICROS: [u64; 15] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000,
];

/// A Prometheus histogram over [`BUCKETS_MICROS`]; counts per bucket are kept non-cumulative
/// (one increment per observation) and summed when rendered.
#[derive(Debug, Default)]
pub struct Histogram {
    /// One per bound, then the overflow (+Inf) bucket.
    buckets: [AtomicU64; BUCKETS_MICROS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let index = BUCKETS_MICROS.partition_point(|bound| *bound < micros);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS_MICROS.iter().zip(self.buckets.iter()) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.buckets[BUCKETS_MICROS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        // The total of the buckets, so `_count` always equals the `+Inf` bucket even while
        // other threads observe.
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(40));
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(700));
        h.observe(Duration::from_secs(10));
        let mut out = String::new();
        h.render(&mut out, "t", "test");
        assert!(out.contains("t_bucket{le=\"0.00005\"} 2\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"0.001\"} 3\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"2.5\"} 3\n"), "{out}");
        assert!(out.contains("t_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("t_count 4\n"), "{out}");
        assert_eq!(h.count(), 4);
    }
}
