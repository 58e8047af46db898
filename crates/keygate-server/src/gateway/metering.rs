//! Metering AI answers as they stream through: read the `usage` the provider reports, price
//! it, and settle the request's reservation to the actual amount — without holding the body.
//!
//! A streamed (SSE) answer is passed on one complete event at a time: bytes are held only
//! until the event they belong to is complete, and every complete event goes out at once. The
//! usage is in the last chunk (the gateway asks for it with `stream_options.include_usage`);
//! when the client did not ask for that chunk itself, it is taken out, so the client sees the
//! stream it asked for. A plain JSON answer is passed on chunk by chunk while the first and
//! last 64 KiB are kept, which is where `usage` is (providers write it after `choices`/`data`).
//!
//! Every admitted request is settled exactly once, by a guard ([`Settlement`]) that the handler
//! and then the body carry: when the body ends, fails, or is dropped because the client went
//! away, and when the handler itself is dropped before any answer (the client hung up while
//! the provider was thinking). An answer that never showed its usage is charged the worst case
//! that was reserved for it, so a client cannot spend for free by hanging up. A settle the
//! limiter refuses is retried, and every failure is counted in `/metrics`.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::Stream;
use keygate_core::model::KeyMatch;
use keygate_core::Micros;
use keygate_limits::{LimiterError, Subject};
use serde::Deserialize;

use super::config::Price;
use crate::state::AppState;
use crate::usage::{UsageContext, UsageOutcome};

/// The `usage` object of the OpenAI wire format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

impl Usage {
    /// Tokens to charge: the provider's total, or the sum of the parts when it gives none.
    pub fn tokens(&self) -> u64 {
        if self.total_tokens > 0 {
            self.total_tokens
        } else {
            self.prompt_tokens.saturating_add(self.completion_tokens)
        }
    }

    pub fn cost(&self, price: &Price) -> Micros {
        price.cost(self.prompt_tokens, self.completion_tokens)
    }
}

/// The last `"usage": {…}` object in raw JSON text. Inside JSON strings quotes are escaped, so
/// an unescaped `"usage"` followed by `:` and `{` can only be a key; the last one is the
/// top-level one in OpenAI answers.
pub fn find_usage(json: &[u8]) -> Option<Usage> {
    const NEEDLE: &[u8] = b"\"usage\"";
    let mut end = json.len();
    while let Some(at) = rfind(&json[..end], NEEDLE) {
        let mut i = at + NEEDLE.len();
        let skip_ws = |i: &mut usize| {
            while json.get(*i).is_some_and(|b| b.is_ascii_whitespace()) {
                *i += 1;
            }
        };
        skip_ws(&mut i);
        if json.get(i) == Some(&b':') {
            i += 1;
            skip_ws(&mut i);
            if json.get(i) == Some(&b'{') {
                let mut values =
                    serde_json::Deserializer::from_slice(&json[i..]).into_iter::<Usage>();
                if let Some(Ok(usage)) = values.next() {
                    return Some(usage);
                }
            }
        }
        end = at;
    }
    None
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits an SSE byte stream into events and notes the usage the events carry.
#[derive(Debug, Default)]
pub struct SseMeter {
    pending: Vec<u8>,
    pub usage: Option<Usage>,
    /// Take out the usage-only chunk (the client did not ask for it).
    hide_usage_chunk: bool,
}

impl SseMeter {
    pub fn new(hide_usage_chunk: bool) -> Self {
        Self {
            hide_usage_chunk,
            ..Self::default()
        }
    }

    /// Takes the next bytes from upstream and returns the complete events to pass on.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some((len, sep)) = event_end(&self.pending[start..]) {
            let event = &self.pending[start..start + len];
            if inspect(&mut self.usage, self.hide_usage_chunk, event) {
                out.extend_from_slice(&self.pending[start..start + len + sep]);
            }
            start += len + sep;
        }
        self.pending.drain(..start);
        Bytes::from(out)
    }

    /// Whatever is left when the stream ends (an event without its blank line).
    pub fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.pending);
        if !rest.is_empty() {
            inspect(&mut self.usage, self.hide_usage_chunk, &rest);
        }
        Bytes::from(rest)
    }
}

/// Notes the usage one event carries; `false` when the event is to be taken out (a
/// usage-only chunk the client did not ask for).
fn inspect(usage: &mut Option<Usage>, hide_usage_chunk: bool, event: &[u8]) -> bool {
    for line in event.split(|&b| b == b'\n') {
        let Some(data) = line.strip_prefix(b"data:") else {
            continue;
        };
        let data = data.trim_ascii();
        if find(data, b"\"usage\"").is_none() {
            continue;
        }
        if let Some(found) = find_usage(data) {
            *usage = Some(found);
            if hide_usage_chunk {
                let empty_choices = serde_json::from_slice::<serde_json::Value>(data)
                    .ok()
                    .and_then(|v| {
                        v.get("choices")
                            .and_then(|c| c.as_array())
                            .map(Vec::is_empty)
                    })
                    .unwrap_or(false);
                if empty_choices {
                    return false;
                }
            }
        }
    }
    true
}

/// Length of the first event and of its terminating blank line, if a whole event is there.
fn event_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\n' {
            if bytes[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if bytes[i + 1] == b'\r' && bytes.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

/// Keeps the first and last 64 KiB of a JSON answer, where its `usage` is.
#[derive(Debug, Default)]
pub struct JsonMeter {
    head: Vec<u8>,
    tail: Vec<u8>,
    /// Whether bytes between `head` and `tail` were dropped.
    gap: bool,
}

const WINDOW: usize = 64 * 1024;

impl JsonMeter {
    pub fn feed(&mut self, mut chunk: &[u8]) {
        if self.head.len() < WINDOW {
            let take = (WINDOW - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
        }
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > 2 * WINDOW {
            let cut = self.tail.len() - WINDOW;
            self.tail.drain(..cut);
            self.gap = true;
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        if self.gap {
            find_usage(&self.tail).or_else(|| find_usage(&self.head))
        } else {
            let mut whole = self.head.clone();
            whole.extend_from_slice(&self.tail);
            find_usage(&whole)
        }
    }
}

/// Waits before the second, third, … attempt to settle or release a hold when the limiter
/// cannot be reached: about 20 s in all, well inside any hold's ttl, so a Redis failover or a
/// restart is ridden out. A settle that still fails is given up (the usage is not charged)
/// and counted; a release that still fails leaves the hold to expire by itself.
const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::from_secs(4),
    Duration::from_secs(15),
];

/// The reservation of one admitted AI request, and the guard that settles it exactly once.
///
/// Settling is the only way an AI request is charged, and a handler can be dropped at any
/// await (the client hung up before the response headers), so it cannot be a step at the end
/// of the handler. Whoever ends the request takes the hold out: [`Settlement::release`] when
/// the provider answered nothing billable, [`Settlement::finish`] with the usage the answer
/// showed (from [`MeteredBody`]), [`Settlement::charge_unanswered`] when the provider may have
/// read the request but its answer never came (a timeout, a connection broken mid-request).
/// If nobody did, dropping the guard does it: a request that was sent to a provider is charged
/// its worst case (the provider may bill it and we cannot know how much); one that was not, is
/// released. The limiter calls run in a spawned task,
/// so they finish even when the handler that asked for them is dropped mid-call.
pub(crate) struct Settlement {
    hold: Option<Hold>,
    /// The price of the model last sent to a provider, once one was.
    sent: Option<Price>,
}

/// What a request was reserved for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorstCase {
    /// The body's bytes (byte-level tokenizers emit at most one token per byte).
    pub input_tokens: u64,
    /// The output bound sent upstream, times the completions asked for.
    pub output_tokens: u64,
    /// The worst case under the dearest model the request could be sent to.
    pub cost: Micros,
}

impl WorstCase {
    pub fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// What the guard settles.
struct Hold {
    state: AppState,
    found: Arc<KeyMatch>,
    reservation_id: Option<String>,
    worst: WorstCase,
    /// When the hold expires by itself; see [`Hold::settle`].
    expires_at: DateTime<Utc>,
    usage: UsageContext,
}

impl Settlement {
    /// Guards the hold just reserved for a request by `found` (`reservation_id` is `None` only
    /// if the limiter gave none; the usage is then recorded directly).
    pub fn new(
        state: AppState,
        found: Arc<KeyMatch>,
        reservation_id: Option<String>,
        worst: WorstCase,
        ttl: Duration,
        usage: UsageContext,
    ) -> Self {
        let expires_at =
            state.clock.now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        Self {
            hold: Some(Hold {
                state,
                found,
                reservation_id,
                worst,
                expires_at,
                usage,
            }),
            sent: None,
        }
    }

    /// Notes that the request is about to be sent to a provider for a model at `price`: from
    /// now on it may be billed, so it is charged even if nobody learns its usage.
    pub fn sending(&mut self, price: Price) {
        self.sent = Some(price);
    }

    /// Notes that the last attempt cannot have been billed (the connection could not be made,
    /// or the provider refused with 429 / 5xx), so a guard dropped before the next attempt
    /// releases the hold instead of charging for work nobody did.
    pub fn not_sent(&mut self) {
        self.sent = None;
    }

    /// Drops the hold without charging (the provider answered nothing billable).
    pub async fn release(mut self) {
        if let Some(hold) = self.hold.take() {
            // Awaited, so the next request of the key sees the hold gone; spawned, so it is
            // not cut short if this handler is dropped meanwhile.
            let _ = tokio::spawn(hold.release()).await;
        }
    }

    /// Charges the worst case at the price of the model last sent, for a request that may have
    /// reached a provider but whose answer never came (it timed out, or the connection broke
    /// after it was made): the provider may have generated, and billed, all of it, and we
    /// cannot learn how much. Awaited, like [`Settlement::release`], so the key's next request
    /// sees the charge; spawned, so it is not cut short if this handler is dropped meanwhile.
    pub async fn charge_unanswered(mut self) {
        if let Some(hold) = self.hold.take() {
            let (tokens, cost) = charge(&hold, self.sent, None);
            let _ = tokio::spawn(hold.settle(tokens, cost)).await;
        }
    }

    /// Settles to the usage the answer showed, or to the worst case when it showed none (a
    /// client cannot spend for free by hanging up before the last chunk). In the background:
    /// a response body cannot await.
    pub fn finish(mut self, usage: Option<Usage>) {
        if let Some(hold) = self.hold.take() {
            let (tokens, cost) = charge(&hold, self.sent, usage);
            spawn(hold.settle(tokens, cost));
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        let Some(hold) = self.hold.take() else {
            return;
        };
        match self.sent {
            Some(_) => {
                let (tokens, cost) = charge(&hold, self.sent, None);
                spawn(hold.settle(tokens, cost));
            }
            None => spawn(hold.release()),
        }
    }
}

/// Tokens and cost to charge: the usage priced at the model that was called, else the worst
/// case at that model's price (or what was held, if no model was called).
fn charge(hold: &Hold, sent: Option<Price>, usage: Option<Usage>) -> (u64, Micros) {
    let worst = hold.worst;
    match (usage, sent) {
        (Some(u), Some(price)) => {
            let (tokens, cost) = (u.tokens(), u.cost(&price));
            if tokens > worst.tokens() || cost > worst.cost {
                // Only a provider that counts more than the request allowed gets here (e.g. an
                // image on a model that bills more than the gateway's fixed allowance per
                // image part). What it bills is charged; the budget may go over by this one
                // request.
                tracing::warn!(
                    request_id = %hold.usage.request_id,
                    tokens, worst_tokens = worst.tokens(), cost = cost.0, held = worst.cost.0,
                    "an AI provider reported more usage than was reserved"
                );
            }
            (tokens, cost)
        }
        (_, Some(price)) => (
            worst.tokens(),
            price.cost(worst.input_tokens, worst.output_tokens),
        ),
        (_, None) => (worst.tokens(), worst.cost),
    }
}

fn spawn(work: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(work);
        }
        // Only at process exit: the hold expires by itself.
        Err(_) => tracing::warn!("no runtime left to settle an AI request on"),
    }
}

impl Hold {
    fn subject(&self) -> Subject {
        let key = &self.found.key;
        Subject::new(&key.workspace_id, &key.id).with_identity(key.identity_id.as_deref())
    }

    /// Replaces the hold by `tokens`/`cost`, retrying while the limiter is unreachable.
    ///
    /// A settle can fail after the limiter applied it (the answer was lost), so a retry that
    /// finds the hold gone while it cannot have expired yet means an earlier attempt counted:
    /// charging again would charge twice. A hold found gone after its expiry, or on the first
    /// attempt, was never settled: the usage is recorded instead (it was spent).
    async fn settle(self, tokens: u64, cost: Micros) {
        let state = &self.state;
        let subject = self.subject();
        let expires_at = self.expires_at;
        let id = self.reservation_id.as_deref();
        retrying(state, &self.usage.request_id, "settle", |failed_before| {
            let subject = &subject;
            async move {
                let settled = match id {
                    Some(id) => state.limiter.settle(subject, id, tokens, cost).await?,
                    None => false,
                };
                if settled || (failed_before && state.clock.now() < expires_at) {
                    return Ok(());
                }
                state.limiter.record(subject, tokens, cost).await
            }
        })
        .await;
        self.record(tokens, cost);
    }

    /// Drops the hold, retrying while the limiter is unreachable.
    async fn release(self) {
        let state = &self.state;
        let subject = self.subject();
        if let Some(id) = self.reservation_id.as_deref() {
            retrying(state, &self.usage.request_id, "release", |_| {
                let subject = &subject;
                async move { state.limiter.release(subject, id).await.map(|_| ()) }
            })
            .await;
        }
        self.record(0, Micros::ZERO);
    }

    /// Records the request as admitted with what it was charged: the one usage event of an
    /// admitted AI request (`pipeline::check` leaves it to the settlement).
    fn record(&self, tokens: u64, cost: Micros) {
        let key = &self.found.key;
        self.state.usage.record(self.usage.event(
            self.state.clock.now(),
            &key.workspace_id,
            Some(&key.id),
            UsageOutcome::Valid,
            tokens,
            cost,
        ));
    }
}

/// Runs `call` until it succeeds or [`RETRY_DELAYS`] are used up, counting every failure in
/// `/metrics`. `call` is told whether an earlier attempt failed.
async fn retrying<F, Fut>(state: &AppState, request_id: &str, what: &str, mut call: F)
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Result<(), LimiterError>>,
{
    let mut delays = RETRY_DELAYS.iter();
    let mut failed_before = false;
    loop {
        let Err(e) = call(failed_before).await else {
            return;
        };
        failed_before = true;
        match delays.next() {
            Some(delay) => {
                state.metrics.settle_retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, request_id, "could not {what} an AI request's reservation; retrying in {delay:?}");
                tokio::time::sleep(*delay).await;
            }
            None => {
                state
                    .metrics
                    .settle_given_up
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, request_id, "could not {what} an AI request's reservation; gave up after {} attempts", RETRY_DELAYS.len() + 1);
                return;
            }
        }
    }
}

enum Meter {
    Sse(SseMeter),
    Json(JsonMeter),
}

/// The answer's body on its way to the client, metered, settling once at its end.
pub(crate) struct MeteredBody {
    inner: BoxStream<'static, Result<Bytes, std::io::Error>>,
    meter: Meter,
    settlement: Option<Settlement>,
}

impl MeteredBody {
    pub fn sse(
        inner: BoxStream<'static, Result<Bytes, std::io::Error>>,
        hide_usage_chunk: bool,
        settlement: Settlement,
    ) -> Self {
        Self {
            inner,
            meter: Meter::Sse(SseMeter::new(hide_usage_chunk)),
            settlement: Some(settlement),
        }
    }

    pub fn json(
        inner: BoxStream<'static, Result<Bytes, std::io::Error>>,
        settlement: Settlement,
    ) -> Self {
        Self {
            inner,
            meter: Meter::Json(JsonMeter::default()),
            settlement: Some(settlement),
        }
    }

    fn usage(&self) -> Option<Usage> {
        match &self.meter {
            Meter::Sse(m) => m.usage,
            Meter::Json(m) => m.usage(),
        }
    }

    /// Settles to the usage seen so far; at most once.
    fn settle(&mut self) {
        if let Some(settlement) = self.settlement.take() {
            settlement.finish(self.usage());
        }
    }
}

impl Stream for MeteredBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => match &mut this.meter {
                    Meter::Json(m) => {
                        m.feed(&chunk);
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    Meter::Sse(m) => {
                        let out = m.feed(&chunk);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(out)));
                        }
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.settle();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    let rest = match &mut this.meter {
                        Meter::Sse(m) => m.finish(),
                        Meter::Json(_) => Bytes::new(),
                    };
                    this.settle();
                    if rest.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(rest)));
                }
            }
        }
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        self.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_found_as_a_key_not_inside_strings() {
        let json = br#"{"choices":[{"message":{"content":"say \"usage\": {\"total_tokens\": 999}"}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#;
        assert_eq!(
            find_usage(json),
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                total_tokens: 7
            })
        );
        assert_eq!(find_usage(br#"{"usage":null}"#), None);
        assert_eq!(
            find_usage(br#"{"usage" : {"prompt_tokens":5}}"#).map(|u| u.tokens()),
            Some(5)
        );
    }

    #[test]
    fn sse_events_pass_whole_and_the_usage_chunk_can_be_hidden() {
        let mut meter = SseMeter::new(true);
        let first = meter.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\ndata: {\"cho");
        assert_eq!(
            &first[..],
            b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n"
        );
        let second = meter.feed(b"ices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":1,\"total_tokens\":3}}\n\ndata: [DONE]\n\n");
        assert_eq!(&second[..], b"data: [DONE]\n\n");
        assert_eq!(meter.usage.map(|u| u.tokens()), Some(3));
        assert!(meter.finish().is_empty());

        let mut shown = SseMeter::new(false);
        let event = b"data: {\"choices\":[],\"usage\":{\"total_tokens\":3}}\r\n\r\n";
        assert_eq!(&shown.feed(event)[..], &event[..]);
    }

    #[test]
    fn json_meter_keeps_the_tail_of_a_long_answer() {
        let mut meter = JsonMeter::default();
        meter.feed(b"{\"data\":[");
        for _ in 0..10_000 {
            meter.feed(b"0.123456789,");
        }
        meter.feed(b"0],\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}");
        assert_eq!(meter.usage().map(|u| u.tokens()), Some(8));
    }
}
