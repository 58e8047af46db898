//! The shared limiter, for many nodes: counters live in Redis, so every node sees the same
//! counts and they survive a restart.
//!
//! Each decision is one Lua script (`redis/decide.lua`), so check-and-consume is atomic across
//! nodes and costs one round trip. All keys of a decision share the hash tag `{workspace}`, so
//! each script runs on one shard of a Redis Cluster (`redis+cluster://…`, see
//! [`RedisTarget`]). Time comes from the node's [`Clock`] as an argument rather than from
//! Redis `TIME`, so tests can move it; in production the nodes'
//! clocks must agree (NTP) to the precision wanted of the windows. Redis TTLs are relative and
//! only collect garbage; every decision reads timestamps, never the TTLs.
//!
//! Key layout, with `P = kg:<namespace>:{<workspace>}:`, `K = P k:<key>:` and, for an
//! identity, `I = P i:<identity>:`:
//! `K rl:<ms>` a rate window's log (sorted set of `<time>|<requests>`) and `K rn:<ms>` its
//! total · `K t:<d|w|m|n>:<start>` and `K c:<d|w|m|n>:<start>` token/cost per period ·
//! `K holds`, `K held` the key's reservations · `I …` the same for an identity, counted once
//! for all of its keys (its own windows, counters and holds) · `P w:spent`, `P w:holds`,
//! `P w:held` the workspace's credit · `P res:<id>` one reservation, with the workspace and
//! key that own it and the identity it was made under. Lifetime counters (`n`) and `w:spent`
//! have no TTL: they are the budget. An identity's keys live under the `{workspace}` tag of
//! the request, like its key's, so a decision that checks a key, its identity and its
//! workspace is still one script on one slot (an identity is one workspace's customer).
//!
//! A reservation is found under the *caller's* workspace and checked against the caller's key
//! inside `finish.lua`, so an id presented by anyone else names nothing. The identity it was
//! made under is stored with it; `finish` names that identity's keys from the caller's
//! identity first and, in the rare case that the reservation was made under another (the key
//! moved), runs the script once more with the identity the script answered.
//!
//! Upgrading from the layout with one sorted-set member per request (`K r:<secs>`): rate
//! windows start empty once, and reservations made before the upgrade (no owner stored) can
//! no longer be settled; they expire by their ttl, and callers record the usage instead.

use std::sync::Arc;
use std::time::Duration;

use ::redis::{RedisError, Script};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keygate_core::{Clock, Denial, Micros};

use crate::report::{self, ScopeUsage, Usage, WindowUsage};
pub use target::{Conn, RedisTarget};

mod target;
use crate::{
    as_i64, budget_limit, granularity_ms, money, new_reservation_nonce, parse_reservation_id,
    period_index, reservation_id_text, window_ms, Admission, Decision, LimitScope, LimitState,
    Limiter, LimiterError, ScopeLimits, Subject, MAX_AMOUNT, MAX_SPAN_MS, PERIODS,
};

/// How long a decision may wait for Redis before the request is refused as unavailable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// Period counters outlive their period by this much, so a read right at the boundary still
/// finds them; after that they are garbage.
const COUNTER_GRACE_MS: i64 = 3_600_000;
const PERIOD_LETTERS: [char; 4] = ['d', 'w', 'm', 'n'];

/// Counts limits in Redis. Cloning shares the connection.
#[derive(Clone)]
pub struct RedisLimiter {
    target: RedisTarget,
    /// Set once the first connection succeeds; the manager reconnects by itself after that.
    /// Empty while Redis has never been reached, so a node can start while Redis is down and
    /// refuse (fail closed) until it comes up.
    conn: Arc<tokio::sync::OnceCell<Conn>>,
    /// When connecting last failed: for a second after that, callers fail at once instead of
    /// queueing behind another timed-out attempt.
    last_failure: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    namespace: String,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    scripts: Arc<Scripts>,
}

struct Scripts {
    decide: Script,
    finish: Script,
    record: Script,
}

enum Mode {
    Status,
    Admit,
    Reserve { id: String, ttl_ms: i64 },
}

impl Mode {
    fn name(&self) -> &'static str {
        match self {
            Mode::Status => "status",
            Mode::Admit => "admit",
            Mode::Reserve { .. } => "reserve",
        }
    }
}

/// Key names of one subject.
struct Names {
    /// `kg:<ns>:{<workspace>}:`
    workspace: String,
    /// `kg:<ns>:{<workspace>}:k:<key>:`
    key: String,
    /// `kg:<ns>:{<workspace>}:i:<identity>:`, when an identity is counted.
    identity: Option<String>,
}

impl Names {
    fn new(namespace: &str, workspace_id: &str, key_id: &str, identity_id: Option<&str>) -> Self {
        // `{}` is no hash tag at all (Redis Cluster would hash each whole name to its own
        // slot), so an empty workspace id, which no real workspace has, is written `-`.
        let tag = match workspace_id {
            "" => "-",
            id => id,
        };
        let workspace = format!("kg:{namespace}:{{{tag}}}:");
        let key = format!("{workspace}k:{key_id}:");
        let identity = identity_id.map(|id| format!("{workspace}i:{id}:"));
        Self {
            workspace,
            key,
            identity,
        }
    }

    fn counters(prefix: &str, kind: char, starts: &[i64; 4]) -> [String; 4] {
        std::array::from_fn(|i| format!("{prefix}{kind}:{}:{}", PERIOD_LETTERS[i], starts[i]))
    }

    /// What a reservation moves, in the order `decide.lua` and `finish.lua` both take it: the
    /// key's holds and held amounts, the workspace's holds, held amount and spend, then the
    /// token and the cost counters.
    fn holds_and_counters(&self, starts: &[i64; 4]) -> Vec<String> {
        let mut keys = vec![
            format!("{}holds", self.key),
            format!("{}held", self.key),
            format!("{}w:holds", self.workspace),
            format!("{}w:held", self.workspace),
            format!("{}w:spent", self.workspace),
        ];
        keys.extend(Self::counters(&self.key, 't', starts));
        keys.extend(Self::counters(&self.key, 'c', starts));
        keys
    }

    /// The identity's holds, held amounts, token and cost counters (the keys after the key's
    /// in `decide.lua` and `finish.lua`); none without an identity.
    fn identity_holds_and_counters(&self, starts: &[i64; 4]) -> Vec<String> {
        let Some(identity) = &self.identity else {
            return Vec::new();
        };
        let mut keys = vec![format!("{identity}holds"), format!("{identity}held")];
        keys.extend(Self::counters(identity, 't', starts));
        keys.extend(Self::counters(identity, 'c', starts));
        keys
    }
}

/// Period starts and the TTL each period's counter should get (0 = keep forever).
fn periods(now: DateTime<Utc>) -> ([i64; 4], [i64; 4]) {
    let now_ms = now.timestamp_millis();
    let starts = PERIODS.map(|p| p.period_start(now).timestamp_millis());
    let ttls = PERIODS.map(|p| {
        p.next_reset(now).map_or(0, |next| {
            next.timestamp_millis() - now_ms + COUNTER_GRACE_MS
        })
    });
    (starts, ttls)
}

fn unavailable(err: RedisError) -> LimiterError {
    LimiterError::Unavailable(err.to_string())
}

fn denial_of(code: i64, scope: i64) -> Result<Option<(Denial, LimitScope)>, LimiterError> {
    let denial = match code {
        0 => return Ok(None),
        1 => Denial::RateLimited,
        2 => Denial::TokenLimitReached,
        3 => Denial::CostLimitReached,
        4 => Denial::SpendCapReached,
        5 => Denial::InsufficientCredits,
        other => {
            return Err(LimiterError::Protocol(format!(
                "unknown denial code {other} from decide.lua"
            )))
        }
    };
    let scope = match scope {
        1 => LimitScope::Key,
        2 => LimitScope::Identity,
        3 => LimitScope::Workspace,
        other => {
            return Err(LimiterError::Protocol(format!(
                "unknown scope {other} from decide.lua"
            )))
        }
    };
    Ok(Some((denial, scope)))
}

impl RedisLimiter {
    /// Connects with [`DEFAULT_TIMEOUT`]. `namespace` separates deployments (and tests)
    /// sharing one Redis.
    pub async fn connect(
        url: &str,
        namespace: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, LimiterError> {
        Self::connect_with_timeout(url, namespace, clock, DEFAULT_TIMEOUT).await
    }

    /// Connects, bounding the connection and every later decision by `timeout`.
    pub async fn connect_with_timeout(
        url: &str,
        namespace: &str,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> Result<Self, LimiterError> {
        let limiter = Self::lazy_with_timeout(url, namespace, clock, timeout)?;
        limiter.connection().await?;
        Ok(limiter)
    }

    /// Like [`RedisLimiter::connect`] but does not wait for Redis: decisions fail with
    /// [`LimiterError::Unavailable`] until a connection succeeds. Only a malformed URL is an
    /// error here.
    pub fn lazy(url: &str, namespace: &str, clock: Arc<dyn Clock>) -> Result<Self, LimiterError> {
        Self::lazy_with_timeout(url, namespace, clock, DEFAULT_TIMEOUT)
    }

    fn lazy_with_timeout(
        url: &str,
        namespace: &str,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> Result<Self, LimiterError> {
        let target = RedisTarget::parse(url).map_err(unavailable)?;
        Ok(Self {
            target,
            conn: Arc::new(tokio::sync::OnceCell::new()),
            last_failure: Arc::new(std::sync::Mutex::new(None)),
            namespace: namespace.to_owned(),
            clock,
            timeout,
            // Each script starts with `counters.lua`: the saturating add and the charging of
            // spent usage, which all three do the same way.
            scripts: Arc::new(Scripts {
                decide: Script::new(concat!(
                    include_str!("counters.lua"),
                    include_str!("decide.lua")
                )),
                finish: Script::new(concat!(
                    include_str!("counters.lua"),
                    include_str!("finish.lua")
                )),
                record: Script::new(concat!(
                    include_str!("counters.lua"),
                    include_str!("record.lua")
                )),
            }),
        })
    }

    /// The shared connection, connecting first if Redis was never reached.
    async fn connection(&self) -> Result<Conn, LimiterError> {
        if let Some(conn) = self.conn.get() {
            return Ok(conn.clone());
        }
        let recently_failed = self
            .last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1));
        if recently_failed {
            return Err(LimiterError::Unavailable(
                "Redis could not be reached a moment ago".into(),
            ));
        }
        let timeout = self.timeout;
        self.conn
            .get_or_try_init(|| async {
                tokio::time::timeout(timeout, self.target.connect(timeout))
                    .await
                    .map_err(|_| {
                        LimiterError::Unavailable(format!(
                            "no connection to Redis within {timeout:?}"
                        ))
                    })?
                    .map_err(unavailable)
            })
            .await
            .cloned()
            .inspect_err(|_| {
                *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(std::time::Instant::now());
            })
    }

    /// Runs a prepared script within the timeout. `EVALSHA` first, loading the script only
    /// the first time a server sees it, so the steady state is one round trip.
    async fn run<T: ::redis::FromRedisValue>(
        &self,
        invocation: ::redis::ScriptInvocation<'_>,
    ) -> Result<T, LimiterError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| {
                LimiterError::Unavailable(format!("Redis did not answer within {:?}", self.timeout))
            })?
            .map_err(unavailable)
    }

    async fn decide(&self, req: &Admission, mode: Mode) -> Result<Decision, LimiterError> {
        let now_time = self.clock.now();
        let now = now_time.timestamp_millis();
        let identity_id = req.counted_identity();
        let names = Names::new(
            &self.namespace,
            &req.subject.workspace_id,
            &req.subject.key_id,
            identity_id,
        );
        let (starts, ttls) = periods(now_time);
        let (deadline, reservation, hold_ttl) = match &mode {
            Mode::Reserve { id, ttl_ms } => (now.saturating_add(*ttl_ms), id.as_str(), *ttl_ms),
            _ => (0, "-", 0),
        };
        let limit_or_none = |limit: Option<i64>| limit.map_or(-1, budget_limit);
        let key_limits = req.key_limits();
        let identity_limits = req.identity_limits().unwrap_or(ScopeLimits::NONE);

        let mut invocation = self.scripts.decide.prepare_invoke();
        invocation
            .key(names.holds_and_counters(&starts))
            .key(format!("{}res:{reservation}", names.workspace))
            .key(names.identity_holds_and_counters(&starts));
        // `names.identity` is set whenever the admission carries an identity (it is the
        // counted identity), so its windows always have a prefix to live under.
        let identity_windows = names
            .identity
            .as_deref()
            .map(|prefix| (prefix, identity_limits.rate_limits));
        for (prefix, windows) in
            std::iter::once((names.key.as_str(), key_limits.rate_limits)).chain(identity_windows)
        {
            for window in windows {
                let ms = window_ms(window);
                invocation
                    .key(format!("{prefix}rl:{ms}"))
                    .key(format!("{prefix}rn:{ms}"));
            }
        }
        invocation
            .arg(mode.name())
            .arg(now)
            .arg(as_i64(req.tokens))
            .arg(money(req.cost))
            .arg(limit_or_none(
                key_limits.token_limit.map(|l| as_i64(l.limit)),
            ))
            .arg(key_limits.token_limit.map_or(0, |l| period_index(l.reset)))
            .arg(limit_or_none(key_limits.cost_limit.map(|l| l.limit.0)))
            .arg(key_limits.cost_limit.map_or(0, |l| period_index(l.reset)))
            .arg(limit_or_none(key_limits.daily_spend_cap.map(|c| c.0)))
            .arg(limit_or_none(req.credit_balance.map(|c| c.0)))
            .arg(&ttls)
            .arg(deadline)
            .arg(reservation)
            .arg(hold_ttl)
            .arg(&req.subject.workspace_id)
            .arg(&req.subject.key_id)
            .arg(MAX_AMOUNT)
            .arg(key_limits.rate_limits.len())
            .arg(u8::from(identity_id.is_some()))
            .arg(identity_id.unwrap_or(""))
            .arg(limit_or_none(
                identity_limits.token_limit.map(|l| as_i64(l.limit)),
            ))
            .arg(
                identity_limits
                    .token_limit
                    .map_or(0, |l| period_index(l.reset)),
            )
            .arg(limit_or_none(identity_limits.cost_limit.map(|l| l.limit.0)))
            .arg(
                identity_limits
                    .cost_limit
                    .map_or(0, |l| period_index(l.reset)),
            )
            .arg(limit_or_none(identity_limits.daily_spend_cap.map(|c| c.0)))
            .arg(identity_limits.rate_limits.len());
        for limits in [&key_limits, &identity_limits] {
            for window in limits.rate_limits {
                invocation
                    .arg(window_ms(window))
                    .arg(window.limit.min(i64::MAX as u64))
                    .arg(granularity_ms(limits.rate_limits, window));
            }
        }
        let out: Vec<i64> = self.run(invocation).await?;

        let nkey = key_limits.rate_limits.len();
        let expected = 10 + 2 * (nkey + identity_limits.rate_limits.len());
        if out.len() != expected {
            return Err(LimiterError::Protocol(format!(
                "decide.lua returned {} values, expected {expected}",
                out.len()
            )));
        }
        let denial = denial_of(out[0], out[1])?;
        let rate_retry = (out[2] >= 0).then_some(out[2]);
        let mut windows = out[10..].chunks_exact(2).map(|pair| WindowUsage {
            count: pair[0].max(0) as u64,
            mark_ms: (pair[1] >= 0).then_some(pair[1]),
        });
        let usage = Usage {
            key: ScopeUsage {
                windows: windows.by_ref().take(nkey).collect(),
                tokens: out[3],
                cost: out[4],
                daily: out[5],
            },
            identity: ScopeUsage {
                windows: windows.collect(),
                tokens: out[6],
                cost: out[7],
                daily: out[8],
            },
            credits: out[9],
        };
        let reservation_id = match mode {
            Mode::Reserve { id, .. } => Some(id),
            _ => None,
        };
        Ok(report::decision(
            req,
            now_time,
            denial,
            rate_retry,
            &usage,
            reservation_id,
        ))
    }

    /// Settles (`actual` given) or releases a reservation, if `owner` owns it. The script's
    /// keys are named from `owner`, not from the id, and the script compares the owner stored
    /// with the reservation too. The identity charged is the one the reservation was made
    /// under: named first from `owner.identity_id`, and if that is not it, once more from the
    /// identity the script answers.
    async fn finish(
        &self,
        owner: &Subject,
        reservation_id: &str,
        actual: Option<(u64, Micros)>,
    ) -> Result<bool, LimiterError> {
        if parse_reservation_id(reservation_id).is_none() {
            return Ok(false);
        }
        let mut identity = owner.identity_id.clone();
        for _ in 0..2 {
            let now_time = self.clock.now();
            let names = Names::new(
                &self.namespace,
                &owner.workspace_id,
                &owner.key_id,
                identity.as_deref(),
            );
            let (starts, ttls) = periods(now_time);
            let (tokens, cost) = actual.map_or((0, 0), |(t, c)| (as_i64(t), money(c)));

            let mut invocation = self.scripts.finish.prepare_invoke();
            invocation
                .key(format!("{}res:{reservation_id}", names.workspace))
                .key(names.holds_and_counters(&starts))
                .key(names.identity_holds_and_counters(&starts))
                .arg(if actual.is_some() {
                    "settle"
                } else {
                    "release"
                })
                .arg(now_time.timestamp_millis())
                .arg(tokens)
                .arg(cost)
                .arg(&ttls)
                .arg(&owner.workspace_id)
                .arg(&owner.key_id)
                .arg(MAX_AMOUNT)
                .arg(u8::from(identity.is_some()))
                .arg(identity.as_deref().unwrap_or(""));
            let (ended, has_identity, made_under): (i64, i64, String) =
                self.run(invocation).await?;
            match ended {
                0 => return Ok(false),
                1 => return Ok(true),
                // Made under another identity: name that one's keys instead.
                2 => identity = (has_identity == 1).then_some(made_under),
                other => {
                    return Err(LimiterError::Protocol(format!(
                        "unknown answer {other} from finish.lua"
                    )))
                }
            }
        }
        Err(LimiterError::Protocol(
            "finish.lua named a different identity twice".into(),
        ))
    }
}

#[async_trait]
impl Limiter for RedisLimiter {
    async fn admit(&self, req: &Admission) -> Result<Decision, LimiterError> {
        self.decide(req, Mode::Admit).await
    }

    async fn reserve(&self, req: &Admission, ttl: Duration) -> Result<Decision, LimiterError> {
        let ttl_ms = i64::try_from(ttl.as_millis())
            .unwrap_or(i64::MAX)
            .clamp(1, MAX_SPAN_MS);
        let mode = Mode::Reserve {
            id: reservation_id_text(new_reservation_nonce()),
            ttl_ms,
        };
        self.decide(req, mode).await
    }

    async fn settle(
        &self,
        owner: &Subject,
        reservation_id: &str,
        actual_tokens: u64,
        actual_cost: Micros,
    ) -> Result<bool, LimiterError> {
        self.finish(owner, reservation_id, Some((actual_tokens, actual_cost)))
            .await
    }

    async fn release(&self, owner: &Subject, reservation_id: &str) -> Result<bool, LimiterError> {
        self.finish(owner, reservation_id, None).await
    }

    async fn record(
        &self,
        subject: &Subject,
        tokens: u64,
        cost: Micros,
    ) -> Result<(), LimiterError> {
        let (tokens, cost) = (as_i64(tokens), money(cost));
        if tokens == 0 && cost == 0 {
            return Ok(());
        }
        let names = Names::new(
            &self.namespace,
            &subject.workspace_id,
            &subject.key_id,
            subject.identity_id.as_deref(),
        );
        let (starts, ttls) = periods(self.clock.now());
        let mut invocation = self.scripts.record.prepare_invoke();
        invocation
            .key(format!("{}w:spent", names.workspace))
            .key(&Names::counters(&names.key, 't', &starts))
            .key(&Names::counters(&names.key, 'c', &starts));
        if let Some(identity) = &names.identity {
            invocation
                .key(&Names::counters(identity, 't', &starts))
                .key(&Names::counters(identity, 'c', &starts));
        }
        invocation.arg(tokens).arg(cost).arg(&ttls).arg(MAX_AMOUNT);
        let _: i64 = self.run(invocation).await?;
        Ok(())
    }

    async fn status(&self, req: &Admission) -> Result<Vec<LimitState>, LimiterError> {
        Ok(self.decide(req, Mode::Status).await?.limits)
    }

    /// Deletes the key's windows, counters and holds by scanning for its prefix: rare (a key
    /// is deleted once) and bounded by the key's own counters. The workspace's and the
    /// identity's side of its holds expire on their own.
    async fn forget_key(&self, key_id: &str) -> Result<(), LimiterError> {
        let pattern = format!("kg:{}:{{*}}:k:{key_id}:*", self.namespace);
        let mut conn = self.connection().await?;
        let work = async {
            // A cluster answers SCAN per node: walk every master.
            for node in conn.masters().await? {
                let mut cursor: u64 = 0;
                loop {
                    let mut scan = ::redis::cmd("SCAN");
                    scan.arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000);
                    let (next, keys): (u64, Vec<String>) = conn.on_node(&node, &scan).await?;
                    // One key's counters share its workspace's hash tag: one slot.
                    if !keys.is_empty() {
                        let _: i64 = ::redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async(&mut conn)
                            .await?;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            Ok::<(), RedisError>(())
        };
        // Scanning a large keyspace can take longer than one decision; allow it more time.
        tokio::time::timeout(self.timeout * 20, work)
            .await
            .map_err(|_| LimiterError::Unavailable("forgetting a key timed out".into()))?
            .map_err(unavailable)
    }
}
