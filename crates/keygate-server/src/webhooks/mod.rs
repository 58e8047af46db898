//! Webhooks: a workspace's endpoints hear about its keys and members as they change, about
//! keys about to expire ([`expiry`]), and about budgets and credit running out
//! ([`thresholds`]).
//!
//! - **Nothing lost.** Each delivery is queued by the store in the transaction of the audited
//!   change it tells about (`keygate_store::WebhookStore`), so an acknowledged change always
//!   has its deliveries, even if the node dies right after the commit.
//! - **Standard Webhooks** ([`signing`]): any verifier of that specification checks the
//!   signature; the `webhook-id` is the event's id, the same on every retry.
//! - **At least once, each attempt on one node** ([`dispatcher`]): nodes claim an attempt with
//!   one conditional update; failures are retried with backoff and jitter for about a day.
//!   An endpoint whose every attempt fails for three days is disabled, with an audit row and
//!   the reason on the endpoint.
//! - **Events no member causes are queued once** across nodes, with a mark whose unique key
//!   only one node's transaction can insert (`keygate_store::MarkedEvent`).
//! - **Only public https targets** ([`target`]): checked when an endpoint is saved and again
//!   before each delivery, which connects to the address it checked.
//! - **Signing secrets are sealed** with a key derived from the server secret
//!   (`crate::secret::seal`) and shown once.

pub mod body;
pub mod dispatcher;
pub mod expiry;
pub mod signing;
pub mod target;
pub mod thresholds;

use std::time::Duration;

pub use dispatcher::{DeliveryCounts, Dispatcher, SECRET_PURPOSE};
pub use expiry::ExpiryScanner;
pub use target::TargetPolicy;
pub use thresholds::{Observed, ThresholdWatch};

/// The webhook timings a deployment may change (tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct WebhookTiming {
    /// How often each node looks for keys whose expiry notice is due.
    pub expiry_scan_every: Duration,
    /// An endpoint whose every attempt has failed for this long is disabled.
    pub disable_after: Duration,
}
