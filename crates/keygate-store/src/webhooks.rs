//! Webhook endpoints and their deliveries: the [`WebhookStore`] half of the store.
//!
//! A delivery row is the outbox entry: it is inserted in the transaction of the audited
//! change it tells about ([`queue_for_audit`], called by the store's one audit writer), so
//! an acknowledged change always has its deliveries. Nodes take a due delivery with an
//! optimistic claim — one `UPDATE` that moves its `next_attempt_at` forward only if nobody
//! moved it first — so each attempt is made by exactly one node, on SQLite and PostgreSQL
//! alike; a node that dies mid-attempt leaves the row due again when its claim runs out.
//!
//! Events no audited change causes ([`MarkedEvent`]: a key about to expire, a budget
//! crossing a threshold) are queued with a mark, a text unique per workspace inserted in the
//! same transaction: the node whose insert takes the mark queues the deliveries, any other
//! queues nothing. An endpoint remembers when its current run of failed attempts began, so
//! one failing for days can be disabled ([`WebhookStore::disable_failing_webhook`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
pub use keygate_core::events::DeliveryState;
use keygate_core::events::{EventType, ExpiryNotice};
use sqlx::{AnyConnection, Row};

use crate::codec::{
    self, bool_int, get, get_bool, get_opt_time, get_time, millis, opt_millis, Cursor, DynamicQuery,
};
use crate::sql::{commit, db_error, insert_audit, SqlStore};
use crate::{AuditEntry, Page, PageRequest, StoreError, StoreResult};

/// A workspace's webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    pub description: Option<String>,
    /// The events it receives; empty means every event.
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    /// The signing secret, sealed by the server; the store never sees it in the clear.
    pub sealed_secret: Vec<u8>,
    /// When its current run of failed attempts began; `None` after a success.
    pub failing_since: Option<DateTime<Utc>>,
    /// Why Keygate disabled it, when it did (cleared when it is enabled again).
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An event no audited change causes, queued at most once per workspace and mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedEvent {
    pub workspace_id: String,
    /// What makes the event new (see `keygate_core::events`), e.g.
    /// `key.expiring:<key id>:<expires_at ms>:7d`.
    pub mark: String,
    /// The `webhook-id` of its deliveries.
    pub event_id: String,
    pub event_type: EventType,
    /// The JSON body every attempt sends.
    pub payload: String,
    pub at: DateTime<Utc>,
}

/// A key whose expiry notice is due and not yet queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringKey {
    pub workspace_id: String,
    pub key_id: String,
    pub name: String,
    /// The display form (`kg_live_ab12…mn34`), never the secret.
    pub display: String,
    pub expires_at: DateTime<Utc>,
}

/// One event for one endpoint, with what its attempts got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `<event id>:<endpoint id>`.
    pub id: String,
    pub endpoint_id: String,
    pub workspace_id: String,
    /// The same for every attempt: the `webhook-id` a receiver de-duplicates by.
    pub event_id: String,
    pub event_type: EventType,
    /// The JSON body every attempt sends.
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub state: DeliveryState,
    /// When to try again (for `Pending`).
    pub next_attempt_at: DateTime<Utc>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub at: DateTime<Utc>,
}

/// A due delivery with what sending it needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub url: String,
    pub sealed_secret: Vec<u8>,
    /// The endpoint's `failing_since` when the delivery was read.
    pub failing_since: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    async fn create_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    async fn webhook(&self, workspace_id: &str, id: &str) -> StoreResult<WebhookEndpoint>;
    async fn list_webhooks(&self, workspace_id: &str) -> StoreResult<Vec<WebhookEndpoint>>;
    async fn save_webhook(&self, endpoint: &WebhookEndpoint, audit: &AuditEntry)
        -> StoreResult<()>;
    async fn delete_webhook(
        &self,
        workspace_id: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> StoreResult<()>;
    /// Queues one delivery for one endpoint of its workspace (a test event); `NotFound` for
    /// another workspace's endpoint.
    async fn queue_delivery(&self, delivery: &Delivery) -> StoreResult<()>;
    /// Deliveries of enabled endpoints whose attempt is due, oldest first.
    async fn due_deliveries(&self, now: DateTime<Utc>, limit: u32)
        -> StoreResult<Vec<DueDelivery>>;
    /// Takes a due delivery for one attempt: true for exactly one caller among all nodes that
    /// saw it due at `seen`; meanwhile its next attempt moves to `until`.
    async fn claim_delivery(
        &self,
        id: &str,
        seen: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Records an attempt, and on its endpoint starts (a failure) or ends (a success) the
    /// run of failures, in one transaction.
    async fn record_attempt(&self, id: &str, attempt: &Attempt) -> StoreResult<()>;
    /// Disables an enabled endpoint whose run of failures began at or before `failing_before`,
    /// with `reason` and the audit row, in one transaction: true for the one caller that did
    /// (on any node); false when it is not failing that long, or is disabled or gone.
    async fn disable_failing_webhook(
        &self,
        endpoint_id: &str,
        failing_before: DateTime<Utc>,
        reason: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool>;
    /// Queues `event` for every enabled endpoint of its workspace that subscribes to it, in
    /// the transaction that takes its mark: true when queued, false when the mark was taken
    /// already (by this node or another), in which case nothing is queued.
    async fn queue_marked_event(&self, event: &MarkedEvent) -> StoreResult<bool>;
    /// Keys (not revoked) expiring after `now` and within 7 days whose due expiry notice
    /// (`ExpiryNotice::due`) has no mark yet, in workspaces with an enabled endpoint that
    /// subscribes to `key.expiring`; soonest first, at most `limit`. An indexed range read.
    async fn keys_to_warn_of_expiry(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ExpiringKey>>;
    /// An endpoint's deliveries, newest first.
    async fn list_deliveries(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Delivery>>;
    /// Deliveries still pending, over every workspace (for `/metrics`).
    async fn pending_deliveries(&self) -> StoreResult<i64>;
    /// Makes a delivery of this endpoint due again at `now` (one more attempt, whatever its
    /// state); `NotFound` for another endpoint's or workspace's delivery.
    async fn redeliver(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        delivery_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
}

const ENDPOINT_COLUMNS: &str = "id, workspace_id, url, description, event_types, enabled, \
    secret, failing_since, disabled_reason, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, endpoint_id, workspace_id, event_id, event_type, payload, \
    state, attempts, next_attempt_at, last_status, last_error, last_duration_ms, created_at, \
    updated_at";

/// `,key.revoked,key.created,` — each type between commas, so `LIKE '%,type,%'` matches
/// exactly; empty for every event.
fn encode_types(types: &[EventType]) -> String {
    if types.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    format!(",{},", names.join(","))
}

fn decode_types(text: &str) -> StoreResult<Vec<EventType>> {
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| {
            EventType::parse(t)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown event type {t:?}")))
        })
        .collect()
}

fn endpoint_from_row(row: &sqlx::any::AnyRow) -> StoreResult<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        url: get(row, "url")?,
        description: get(row, "description")?,
        event_types: decode_types(&get::<String>(row, "event_types")?)?,
        enabled: get_bool(row, "enabled")?,
        sealed_secret: get(row, "secret")?,
        failing_since: get_opt_time(row, "failing_since")?,
        disabled_reason: get(row, "disabled_reason")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

fn delivery_from_row(row: &sqlx::any::AnyRow) -> StoreResult<Delivery> {
    let event_type: String = get(row, "event_type")?;
    let state: String = get(row, "state")?;
    Ok(Delivery {
        id: get(row, "id")?,
        endpoint_id: get(row, "endpoint_id")?,
        workspace_id: get(row, "workspace_id")?,
        event_id: get(row, "event_id")?,
        event_type: EventType::parse(&event_type)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown event type {event_type:?}")))?,
        payload: get(row, "payload")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery state {state:?}")))?,
        attempts: u32::try_from(get::<i64>(row, "attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: get_time(row, "next_attempt_at")?,
        last_status: get::<Option<i64>>(row, "last_status")?.and_then(|s| u16::try_from(s).ok()),
        last_error: get(row, "last_error")?,
        last_duration_ms: get(row, "last_duration_ms")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

/// The body every delivery of an audited change sends (Standard Webhooks' shape: `type`,
/// `timestamp`, `data`). `data` is what the audit row says; it never holds a secret.
pub(crate) fn payload_of(event: EventType, audit: &AuditEntry) -> StoreResult<String> {
    let body = serde_json::json!({
        "type": event.as_str(),
        "timestamp": audit.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "workspace_id": audit.workspace_id,
            "target_type": audit.target_type,
            "target_id": audit.target_id,
            "actor": audit.actor,
            "changes": audit.changes,
            "request_id": audit.request_id,
        }
    });
    serde_json::to_string(&body).map_err(StoreError::Encode)
}

/// Queues the deliveries of an audited change for every enabled endpoint of its workspace
/// that subscribes to its event, in the caller's transaction.
pub(crate) async fn queue_for_audit(
    conn: &mut AnyConnection,
    audit: &AuditEntry,
) -> StoreResult<()> {
    let Some(event) = EventType::of_audit_action(&audit.action) else {
        return Ok(());
    };
    queue_for_subscribers(
        conn,
        &audit.workspace_id,
        &audit.id,
        event,
        &payload_of(event, audit)?,
        audit.at,
    )
    .await
}

/// Queues one event for every enabled endpoint of the workspace that subscribes to it.
async fn queue_for_subscribers(
    conn: &mut AnyConnection,
    workspace_id: &str,
    event_id: &str,
    event: EventType,
    payload: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) \
         SELECT CAST($1 AS TEXT) || ':' || id, id, workspace_id, $1, $2, $3, 'pending', 0, $4, \
         NULL, NULL, NULL, $4, $4 FROM webhook_endpoints \
         WHERE workspace_id = $5 AND enabled = 1 AND (event_types = '' OR event_types LIKE $6)"
    ))
    .bind(event_id)
    .bind(event.as_str())
    .bind(payload)
    .bind(millis(at))
    .bind(workspace_id)
    .bind(format!("%,{},%", event.as_str()))
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

#[async_trait]
impl WebhookStore for SqlStore {
    async fn create_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(endpoint.id.as_str())
        .bind(endpoint.workspace_id.as_str())
        .bind(endpoint.url.as_str())
        .bind(endpoint.description.as_deref())
        .bind(encode_types(&endpoint.event_types))
        .bind(bool_int(endpoint.enabled))
        .bind(endpoint.sealed_secret.clone())
        .bind(opt_millis(endpoint.failing_since))
        .bind(endpoint.disabled_reason.as_deref())
        .bind(millis(endpoint.created_at))
        .bind(millis(endpoint.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    async fn webhook(&self, workspace_id: &str, id: &str) -> StoreResult<WebhookEndpoint> {
        self.one_in_workspace(
            "webhook_endpoints",
            ENDPOINT_COLUMNS,
            workspace_id,
            id,
            endpoint_from_row,
        )
        .await
    }

    async fn list_webhooks(&self, workspace_id: &str) -> StoreResult<Vec<WebhookEndpoint>> {
        self.all_in_workspace(
            "webhook_endpoints",
            ENDPOINT_COLUMNS,
            workspace_id,
            endpoint_from_row,
        )
        .await
    }

    async fn save_webhook(
        &self,
        endpoint: &WebhookEndpoint,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5, \
             enabled = $6, updated_at = $7, failing_since = $8, disabled_reason = $9 \
             WHERE workspace_id = $1 AND id = $2",
        )
        .bind(endpoint.workspace_id.as_str())
        .bind(endpoint.id.as_str())
        .bind(endpoint.url.as_str())
        .bind(endpoint.description.as_deref())
        .bind(encode_types(&endpoint.event_types))
        .bind(bool_int(endpoint.enabled))
        .bind(millis(endpoint.updated_at))
        .bind(opt_millis(endpoint.failing_since))
        .bind(endpoint.disabled_reason.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    async fn delete_webhook(
        &self,
        workspace_id: &str,
        id: &str,
        audit: &AuditEntry,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        // Deliveries first: SQLite enforces foreign keys only when told to.
        sqlx::query("DELETE FROM webhook_deliveries WHERE workspace_id = $1 AND endpoint_id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_audit(&mut tx, audit).await?;
        commit(tx).await
    }

    async fn queue_delivery(&self, d: &Delivery) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&format!(
            "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) \
             SELECT $1, id, workspace_id, $2, $3, $4, 'pending', 0, $5, NULL, NULL, NULL, $5, $5 \
             FROM webhook_endpoints WHERE workspace_id = $6 AND id = $7"
        ))
        .bind(d.id.as_str())
        .bind(d.event_id.as_str())
        .bind(d.event_type.as_str())
        .bind(d.payload.as_str())
        .bind(millis(d.created_at))
        .bind(d.workspace_id.as_str())
        .bind(d.endpoint_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        commit(tx).await
    }

    async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>> {
        let columns: Vec<String> = DELIVERY_COLUMNS
            .split(',')
            .map(|c| format!("d.{}", c.trim()))
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT {}, e.url AS endpoint_url, e.secret AS endpoint_secret, \
             e.failing_since AS endpoint_failing_since \
             FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND e.enabled = 1 \
             ORDER BY d.next_attempt_at, d.id LIMIT $2",
            columns.join(", ")
        ))
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(DueDelivery {
                    delivery: delivery_from_row(row)?,
                    url: get(row, "endpoint_url")?,
                    sealed_secret: get(row, "endpoint_secret")?,
                    failing_since: get_opt_time(row, "endpoint_failing_since")?,
                })
            })
            .collect()
    }

    async fn claim_delivery(
        &self,
        id: &str,
        seen: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $3 \
             WHERE id = $1 AND state = 'pending' AND next_attempt_at = $2",
        )
        .bind(id)
        .bind(millis(seen))
        .bind(millis(until))
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn record_attempt(&self, id: &str, attempt: &Attempt) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $2, attempts = attempts + 1, \
             next_attempt_at = $3, last_status = $4, last_error = $5, last_duration_ms = $6, \
             updated_at = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(attempt.state.as_str())
        .bind(millis(attempt.next_attempt_at))
        .bind(attempt.status.map(i64::from))
        .bind(attempt.error.as_deref())
        .bind(attempt.duration_ms)
        .bind(millis(attempt.at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let failing = if attempt.state == DeliveryState::Delivered {
            "NULL"
        } else {
            "COALESCE(failing_since, $2)"
        };
        sqlx::query(&format!(
            "UPDATE webhook_endpoints SET failing_since = {failing} \
             WHERE id = (SELECT endpoint_id FROM webhook_deliveries WHERE id = $1)"
        ))
        .bind(id)
        .bind(millis(attempt.at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        commit(tx).await
    }

    async fn disable_failing_webhook(
        &self,
        endpoint_id: &str,
        failing_before: DateTime<Utc>,
        reason: &str,
        audit: &AuditEntry,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $3, updated_at = $4 \
             WHERE id = $1 AND workspace_id = $5 AND enabled = 1 \
             AND failing_since IS NOT NULL AND failing_since <= $2",
        )
        .bind(endpoint_id)
        .bind(millis(failing_before))
        .bind(reason)
        .bind(millis(audit.at))
        .bind(audit.workspace_id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Ok(false); // dropping the transaction rolls it back
        }
        insert_audit(&mut tx, audit).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn queue_marked_event(&self, event: &MarkedEvent) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let marked = sqlx::query(
            "INSERT INTO webhook_event_marks (workspace_id, mark, event_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, mark) DO NOTHING",
        )
        .bind(event.workspace_id.as_str())
        .bind(event.mark.as_str())
        .bind(event.event_id.as_str())
        .bind(millis(event.at))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if marked.rows_affected() == 0 {
            return Ok(false);
        }
        queue_for_subscribers(
            &mut tx,
            &event.workspace_id,
            &event.event_id,
            event.event_type,
            &event.payload,
            event.at,
        )
        .await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn keys_to_warn_of_expiry(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<ExpiringKey>> {
        // The mark built here is `keygate_core::events::key_expiring_mark` in SQL, for the
        // notice `ExpiryNotice::due` gives (the conformance suite holds the two equal).
        let (week, day) = (ExpiryNotice::Week, ExpiryNotice::Day);
        let rows = sqlx::query(&format!(
            "SELECT k.workspace_id, k.id, k.name, k.display, k.expires_at FROM api_keys k \
             WHERE k.expires_at > $1 AND k.expires_at <= $2 AND k.status <> 'revoked' \
             AND EXISTS (SELECT 1 FROM webhook_endpoints e \
                 WHERE e.workspace_id = k.workspace_id AND e.enabled = 1 \
                 AND (e.event_types = '' OR e.event_types LIKE $4)) \
             AND NOT EXISTS (SELECT 1 FROM webhook_event_marks m \
                 WHERE m.workspace_id = k.workspace_id \
                 AND m.mark = 'key.expiring:' || k.id || ':' || CAST(k.expires_at AS TEXT) \
                     || CASE WHEN k.expires_at <= $3 THEN ':{}' ELSE ':{}' END) \
             ORDER BY k.expires_at, k.id LIMIT $5",
            day.as_str(),
            week.as_str(),
        ))
        .bind(millis(now))
        .bind(millis(now + week.lead()))
        .bind(millis(now + day.lead()))
        .bind(format!("%,{},%", EventType::KeyExpiring.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                Ok(ExpiringKey {
                    workspace_id: get(row, "workspace_id")?,
                    key_id: get(row, "id")?,
                    name: get(row, "name")?,
                    display: get(row, "display")?,
                    expires_at: get_time(row, "expires_at")?,
                })
            })
            .collect()
    }

    async fn list_deliveries(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<Delivery>> {
        let limit = codec::clamp_limit(page.limit);
        let mut q = DynamicQuery::new(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE workspace_id = "
        ));
        q.text(workspace_id)
            .push(" AND endpoint_id = ")
            .text(endpoint_id);
        if let Some(after) = &page.after {
            let cursor = Cursor::parse(after)?;
            q.push(" AND (created_at < ")
                .int(cursor.at)
                .push(" OR (created_at = ")
                .int(cursor.at)
                .push(" AND id < ")
                .text(&cursor.id)
                .push("))");
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .int(limit + 1);
        let rows = q
            .query(self.backend)
            .fetch_all(&self.read)
            .await
            .map_err(db_error)?;
        let items = rows
            .iter()
            .map(delivery_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(codec::into_page(items, limit, |d| Cursor {
            at: millis(d.created_at),
            id: d.id.clone(),
        }))
    }

    async fn redeliver(
        &self,
        workspace_id: &str,
        endpoint_id: &str,
        delivery_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $4, \
             updated_at = $4 WHERE workspace_id = $1 AND endpoint_id = $2 AND id = $3",
        )
        .bind(workspace_id)
        .bind(endpoint_id)
        .bind(delivery_id)
        .bind(millis(now))
        .execute(&self.write)
        .await
        .map_err(db_error)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn pending_deliveries(&self) -> StoreResult<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE state = 'pending'")
                .fetch_one(&self.read)
                .await
                .map_err(db_error)?;
        row.try_get::<i64, _>("n").map_err(db_error)
    }
}
