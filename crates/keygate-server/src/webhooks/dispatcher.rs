//! Sends due deliveries, on every node: each attempt is claimed first (exactly one node wins
//! it), made, and recorded. A failed attempt is retried with exponential backoff and jitter
//! for about a day ([`BACKOFF`]), then the delivery is marked failed. The body and the
//! `webhook-id` are the same on every attempt, so a receiver can de-duplicate; delivery is at
//! least once (a node killed between sending and recording makes the next attempt resend).
//!
//! An endpoint whose every attempt has failed for [`Dispatcher::disable_after`] (three days
//! by default; a success resets the clock) is disabled by the node whose failed attempt
//! finds it so, with an audit row by `system` (`webhook.disabled`) and the reason on the
//! endpoint; its pending deliveries wait until someone enables it again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate_api::audit::AuditAction;
use keygate_core::{ids, Clock, ServerSecret};
use keygate_store::{Attempt, AuditEntry, DeliveryState, DueDelivery, Store, StoreError};
use rand::Rng;

use super::signing::signature;
use super::target::{check_url, resolve, TargetPolicy};

/// Waits after the 1st, 2nd, … failed attempt (±20% jitter): about 24 hours in all, then
/// the delivery is failed.
pub const BACKOFF: [Duration; 10] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(1800),
    Duration::from_secs(3600),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(4 * 3600),
    Duration::from_secs(8 * 3600),
    Duration::from_secs(8 * 3600),
];
/// How long an attempt may take before it counts as failed.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed attempt is reserved to its node: past it, a node that died mid-attempt
/// leaves the delivery to be tried again.
const CLAIM: chrono::Duration = chrono::Duration::seconds(60);
/// Most of a response body kept in the delivery log.
const RESPONSE_EXCERPT: usize = 200;

/// The purpose an endpoint's signing secret is sealed for (with the endpoint id as context).
pub const SECRET_PURPOSE: &str = "webhook-signing-secret";

/// Delivery outcomes since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct DeliveryCounts {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
}

impl DeliveryCounts {
    /// `keygate_webhook_deliveries_total{outcome}` and the queue's depth (`pending`, read
    /// from the store by the caller).
    pub fn render(&self, pending: Option<i64>, out: &mut String) {
        use std::fmt::Write;
        let name = "keygate_webhook_deliveries_total";
        let _ = writeln!(
            out,
            "# HELP {name} Webhook delivery attempts by outcome (retried: failed and due again)."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (outcome, count) in [
            ("delivered", &self.delivered),
            ("retried", &self.retried),
            ("failed", &self.failed),
        ] {
            let _ = writeln!(
                out,
                "{name}{{outcome=\"{outcome}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        if let Some(pending) = pending {
            let name = "keygate_webhook_queue_depth";
            let _ = writeln!(
                out,
                "# HELP {name} Webhook deliveries waiting for an attempt."
            );
            let _ = writeln!(out, "# TYPE {name} gauge\n{name} {pending}");
        }
    }
}

pub struct Dispatcher {
    pub store: Arc<dyn Store>,
    pub secret: ServerSecret,
    pub clock: Arc<dyn Clock>,
    pub policy: TargetPolicy,
    pub counts: Arc<DeliveryCounts>,
    /// An endpoint whose every attempt has failed for this long is disabled.
    pub disable_after: Duration,
}

impl Dispatcher {
    /// Looks for due deliveries every `every` until the handle is aborted.
    pub fn spawn(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = self.run_once().await {
                    tracing::warn!(error = %e, "webhook deliveries: could not read the queue");
                }
            }
        })
    }

    /// Makes every due attempt this node can claim; returns how many it made.
    pub async fn run_once(&self) -> Result<usize, keygate_store::StoreError> {
        let now = self.clock.now();
        let due = self.store.due_deliveries(now, 50).await?;
        let mut made = 0;
        for due in due {
            let seen = due.delivery.next_attempt_at;
            if !self
                .store
                .claim_delivery(&due.delivery.id, seen, now + CLAIM)
                .await?
            {
                continue; // another node has it
            }
            let attempt = self.attempt(&due).await;
            match attempt.state {
                DeliveryState::Delivered => &self.counts.delivered,
                DeliveryState::Pending => &self.counts.retried,
                DeliveryState::Failed => &self.counts.failed,
            }
            .fetch_add(1, Ordering::Relaxed);
            self.store
                .record_attempt(&due.delivery.id, &attempt)
                .await?;
            if attempt.state != DeliveryState::Delivered {
                self.disable_if_failing_too_long(&due, &attempt).await?;
            }
            made += 1;
        }
        Ok(made)
    }

    /// Disables the endpoint of a failed attempt if its every attempt has failed for
    /// `disable_after`. The store decides atomically, so one node does it, with one audit row.
    async fn disable_if_failing_too_long(
        &self,
        due: &DueDelivery,
        attempt: &Attempt,
    ) -> Result<(), StoreError> {
        let window = chrono::Duration::from_std(self.disable_after)
            .unwrap_or_else(|_| chrono::Duration::days(3));
        let since = due.failing_since.unwrap_or(attempt.at);
        if attempt.at - since < window {
            return Ok(());
        }
        let hours = window.num_minutes() as f64 / 60.0;
        let last = attempt.error.as_deref().unwrap_or("no answer");
        let reason = format!(
            "Disabled by Keygate: every delivery attempt failed for {hours} hours (since {}); \
             the last one: {last}. Deliveries wait; enable the endpoint again once it answers.",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let d = &due.delivery;
        let audit = AuditEntry {
            id: ids::new_id("aud"),
            workspace_id: d.workspace_id.clone(),
            actor: "system".into(),
            action: AuditAction::WebhookDisabled.as_str().into(),
            target_type: "webhook".into(),
            target_id: d.endpoint_id.clone(),
            changes: serde_json::json!({
                "enabled": {"before": true, "after": false},
                "disabled_reason": {"before": null, "after": reason},
            }),
            source_ip: None,
            user_agent: None,
            request_id: String::new(),
            at: attempt.at,
        };
        if self
            .store
            .disable_failing_webhook(&d.endpoint_id, attempt.at - window, &reason, &audit)
            .await?
        {
            tracing::warn!(webhook_id = %d.endpoint_id, workspace_id = %d.workspace_id, "disabled a webhook endpoint whose every attempt failed for {hours} hours");
        }
        Ok(())
    }

    async fn attempt(&self, due: &DueDelivery) -> Attempt {
        let started = Instant::now();
        let result = self.send(due).await;
        let at = self.clock.now();
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status, error) = match result {
            Ok((status, _)) if (200..300).contains(&status) => {
                return Attempt {
                    state: DeliveryState::Delivered,
                    next_attempt_at: at,
                    status: Some(status),
                    error: None,
                    duration_ms,
                    at,
                }
            }
            Ok((status, excerpt)) => (Some(status), Some(format!("answered {status}: {excerpt}"))),
            Err(why) => (None, Some(why)),
        };
        let failures = due.delivery.attempts as usize; // before this one
        match BACKOFF.get(failures) {
            Some(wait) => Attempt {
                state: DeliveryState::Pending,
                next_attempt_at: at + jittered(*wait),
                status,
                error,
                duration_ms,
                at,
            },
            None => Attempt {
                state: DeliveryState::Failed,
                next_attempt_at: at,
                status,
                error,
                duration_ms,
                at,
            },
        }
    }

    /// One POST: the status and the start of the body, or why nothing came back.
    async fn send(&self, due: &DueDelivery) -> Result<(u16, String), String> {
        let d = &due.delivery;
        let secret = crate::secret::open(
            &self.secret,
            SECRET_PURPOSE,
            d.endpoint_id.as_bytes(),
            &due.sealed_secret,
        )
        .and_then(|s| String::from_utf8(s).ok())
        .ok_or_else(|| {
            "the signing secret cannot be opened (was KEYGATE_SECRET changed?)".to_owned()
        })?;
        let url = check_url(&due.url, self.policy)?;
        let address = resolve(&url, self.policy).await?;
        let timestamp = self.clock.now().timestamp();
        let signed = signature(&secret, &d.event_id, timestamp, &d.payload)
            .ok_or_else(|| "the signing secret is not valid".to_owned())?;
        let host = url.host_str().unwrap_or_default().to_owned();
        // Connects to the address just checked, whatever DNS says next.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(ATTEMPT_TIMEOUT)
            .resolve(&host, address)
            .user_agent(concat!("keygate-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("client: {e}"))?;
        let response = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signed)
            .body(d.payload.clone())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    format!("no answer within {}s", ATTEMPT_TIMEOUT.as_secs())
                } else {
                    format!("could not deliver: {}", root_cause(&e))
                }
            })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        let excerpt: String = body.chars().take(RESPONSE_EXCERPT).collect();
        Ok((status, excerpt))
    }
}

fn jittered(wait: Duration) -> chrono::Duration {
    let factor = rand::thread_rng().gen_range(0.8..1.2);
    chrono::Duration::milliseconds((wait.as_millis() as f64 * factor) as i64)
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
