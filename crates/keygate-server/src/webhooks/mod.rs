//! Webhooks: a workspace's endpoints hear about its keys and members as they change.
//!
//! - **Nothing lost.** Each delivery is queued by the store in the transaction of the audited
//!   change it tells about (`keygate_store::WebhookStore`), so an acknowledged change always
//!   has its deliveries, even if the node dies right after the commit.
//! - **Standard Webhooks** ([`signing`]): any verifier of that specification checks the
//!   signature; the `webhook-id` is the event's id, the same on every retry.
//! - **At least once, each attempt on one node** ([`dispatcher`]): nodes claim an attempt with
//!   one conditional update; failures are retried with backoff and jitter for about a day.
//! - **Only public https targets** ([`target`]): checked when an endpoint is saved and again
//!   before each delivery, which connects to the address it checked.
//! - **Signing secrets are sealed** with a key derived from the server secret
//!   (`crate::secret::seal`) and shown once.

pub mod dispatcher;
pub mod signing;
pub mod target;

pub use dispatcher::{DeliveryCounts, Dispatcher, SECRET_PURPOSE};
pub use target::TargetPolicy;
