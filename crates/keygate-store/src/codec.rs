//! How domain values become portable columns and back, for both backends at once.
//!
//! Every column is one of four types that sqlx's `Any` driver reads the same way from SQLite
//! and PostgreSQL: TEXT, BIGINT, BLOB/BYTEA, or NULL. Timestamps are unix milliseconds,
//! booleans 0/1, structured values JSON text. A value that does not decode is
//! [`StoreError::Corrupt`]: it was written by something other than this code.

use crate::sql::Backend;
use chrono::{DateTime, Utc};
use keygate_core::model::{ApiKey, KeyStatus, LeakPolicy, Member, Project, Role, Scope, Workspace};
use keygate_core::{ids, EnvTag, KeyHash, KeyPrefix, Micros};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Row};

use crate::{AuditEntry, StoreError, StoreResult};

pub(crate) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn opt_millis(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(millis)
}

fn time(column: &str, ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("{column} is not a valid timestamp")))
}

fn opt_time(column: &str, ms: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    ms.map(|ms| time(column, ms)).transpose()
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(StoreError::Encode)
}

fn from_json<T: DeserializeOwned>(column: &str, text: &str) -> StoreResult<T> {
    // The serde error says where the JSON broke, never what it held.
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("{column} is not valid: {e}")))
}

pub(crate) fn get<T>(row: &AnyRow, column: &str) -> StoreResult<T>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

pub(crate) fn get_json<T: DeserializeOwned>(row: &AnyRow, column: &str) -> StoreResult<T> {
    from_json(column, &get::<String>(row, column)?)
}

pub(crate) fn get_time(row: &AnyRow, column: &str) -> StoreResult<DateTime<Utc>> {
    time(column, get(row, column)?)
}

pub(crate) fn get_opt_time(row: &AnyRow, column: &str) -> StoreResult<Option<DateTime<Utc>>> {
    opt_time(column, get(row, column)?)
}

pub(crate) fn get_bool(row: &AnyRow, column: &str) -> StoreResult<bool> {
    Ok(get::<i64>(row, column)? != 0)
}

pub(crate) fn bool_int(value: bool) -> i64 {
    i64::from(value)
}

pub(crate) fn hash_bytes(hash: &KeyHash) -> Vec<u8> {
    hash.as_bytes().to_vec()
}

// --- workspaces ---------------------------------------------------------------------------

pub(crate) const WORKSPACE_COLUMNS: &str = "id, name, key_prefix, single_active_key, \
    default_rate_limits, rate_limit_policies, credit_balance, created_at, leak_policy, \
    credits_low_threshold";

pub(crate) fn workspace_from_row(row: &AnyRow) -> StoreResult<Workspace> {
    let prefix: String = get(row, "key_prefix")?;
    Ok(Workspace {
        id: get(row, "id")?,
        name: get(row, "name")?,
        key_prefix: KeyPrefix::parse(&prefix)
            .map_err(|e| StoreError::Corrupt(format!("key_prefix: {e}")))?,
        single_active_key: get_bool(row, "single_active_key")?,
        default_rate_limits: get_json(row, "default_rate_limits")?,
        rate_limit_policies: get_json(row, "rate_limit_policies")?,
        credit_balance: get::<Option<i64>>(row, "credit_balance")?.map(Micros),
        credits_low_threshold: get::<Option<i64>>(row, "credits_low_threshold")?.map(Micros),
        created_at: get_time(row, "created_at")?,
        leak_policy: {
            let policy: String = get(row, "leak_policy")?;
            LeakPolicy::parse(&policy)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown leak policy {policy:?}")))?
        },
    })
}

// --- members and projects -----------------------------------------------------------------

pub(crate) const MEMBER_COLUMNS: &str = "id, workspace_id, name, role, token_display, created_at";

pub(crate) fn member_from_row(row: &AnyRow) -> StoreResult<Member> {
    let role: String = get(row, "role")?;
    Ok(Member {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        name: get(row, "name")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown member role {role:?}")))?,
        token_display: get(row, "token_display")?,
        created_at: get_time(row, "created_at")?,
    })
}

pub(crate) const PROJECT_COLUMNS: &str = "id, workspace_id, name, created_at";

pub(crate) fn project_from_row(row: &AnyRow) -> StoreResult<Project> {
    Ok(Project {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        name: get(row, "name")?,
        created_at: get_time(row, "created_at")?,
    })
}

// --- keys ---------------------------------------------------------------------------------

/// Qualified with `k.` because the verification lookup joins `key_secrets`.
pub(crate) const KEY_COLUMNS: &str = "k.id, k.workspace_id, k.name, k.description, \
    k.environment, k.scope, k.permissions, k.expires_at, k.status, k.metadata, k.limits, \
    k.routing_rule_id, k.display, k.legacy, k.created_by, k.created_at, k.updated_at, \
    k.last_used_at, k.version, k.identity_id";

/// The mutable columns of a key, encoded once for INSERT and UPDATE alike.
pub(crate) struct KeyColumns {
    pub name: String,
    pub name_lower: String,
    pub description: Option<String>,
    pub environment: String,
    pub scope_all: i64,
    pub scope: String,
    pub permissions: String,
    pub expires_at: Option<i64>,
    pub status: &'static str,
    pub metadata: String,
    pub limits: String,
    pub routing_rule_id: Option<String>,
    pub identity_id: Option<String>,
    pub display: String,
    pub legacy: i64,
    pub updated_at: i64,
    pub active_slot: Option<String>,
}

impl KeyColumns {
    pub(crate) fn encode(key: &ApiKey, single_active: bool) -> StoreResult<Self> {
        let active = key.status == KeyStatus::Active;
        Ok(Self {
            name: key.name.clone(),
            name_lower: key.name.to_lowercase(),
            description: key.description.clone(),
            environment: key.environment.as_str().to_owned(),
            scope_all: bool_int(key.scope == Scope::All),
            scope: to_json(&key.scope)?,
            permissions: to_json(&key.permissions)?,
            expires_at: opt_millis(key.expires_at),
            status: key.status.as_str(),
            metadata: to_json(&key.metadata)?,
            limits: to_json(&key.limits)?,
            routing_rule_id: key.routing_rule_id.clone(),
            identity_id: key.identity_id.clone(),
            display: key.display.clone(),
            legacy: bool_int(key.legacy),
            updated_at: millis(key.updated_at),
            active_slot: (single_active && active).then(|| key.environment.as_str().to_owned()),
        })
    }
}

/// The projects a key's scope lists (none for "all"), for the `key_scopes` table.
pub(crate) fn scoped_projects(scope: &Scope) -> Vec<&str> {
    match scope {
        Scope::All => Vec::new(),
        Scope::Projects(ids) => {
            let mut ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        }
    }
}

pub(crate) fn key_from_row(row: &AnyRow) -> StoreResult<ApiKey> {
    let environment: String = get(row, "environment")?;
    let status: String = get(row, "status")?;
    Ok(ApiKey {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        name: get(row, "name")?,
        description: get(row, "description")?,
        environment: EnvTag::parse(&environment)
            .map_err(|e| StoreError::Corrupt(format!("environment: {e}")))?,
        scope: get_json(row, "scope")?,
        permissions: get_json(row, "permissions")?,
        expires_at: get_opt_time(row, "expires_at")?,
        status: KeyStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown key status {status:?}")))?,
        metadata: get_json(row, "metadata")?,
        limits: get_json(row, "limits")?,
        routing_rule_id: get(row, "routing_rule_id")?,
        identity_id: get(row, "identity_id")?,
        display: get(row, "display")?,
        legacy: get_bool(row, "legacy")?,
        created_by: get(row, "created_by")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
        last_used_at: get_opt_time(row, "last_used_at")?,
        version: get(row, "version")?,
    })
}

pub(crate) fn secret_expiry_from_row(row: &AnyRow) -> StoreResult<Option<DateTime<Utc>>> {
    get_opt_time(row, "secret_expires_at")
}

// --- audit --------------------------------------------------------------------------------

pub(crate) const AUDIT_COLUMNS: &str = "id, workspace_id, actor, action, target_type, \
    target_id, changes, source_ip, user_agent, request_id, at";

pub(crate) fn audit_from_row(row: &AnyRow) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        target_type: get(row, "target_type")?,
        target_id: get(row, "target_id")?,
        changes: get_json(row, "changes")?,
        source_ip: get(row, "source_ip")?,
        user_agent: get(row, "user_agent")?,
        request_id: get(row, "request_id")?,
        at: get_time(row, "at")?,
    })
}

// --- usage and request log ----------------------------------------------------------------

/// Counters are BIGINT (signed); a `u64` beyond `i64::MAX` cannot happen in practice, and is
/// clamped rather than wrapped if it ever does.
pub(crate) fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored counter or sum. Counters saturate at `i64::MAX` when they are added to (see
/// `sql::saturating_add`), but a SQLite row written before they did may hold the float an
/// overflowing addition turned into: it reads as the nearest `i64` (saturating), so no
/// stored value makes a read fail.
fn get_saturating(row: &AnyRow, column: &str) -> StoreResult<i64> {
    match row.try_get::<i64, _>(column) {
        Ok(n) => Ok(n),
        // `as` saturates (and reads NaN as 0).
        Err(_) => row
            .try_get::<f64, _>(column)
            .map(|f| f as i64)
            .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}"))),
    }
}

/// A stored count as a `u64`; a negative one (which no version writes) reads as 0.
fn get_count(row: &AnyRow, column: &str) -> StoreResult<u64> {
    Ok(u64::try_from(get_saturating(row, column)?).unwrap_or(0))
}

/// The divisor that splits a summed column into a high and a low part, each summed without
/// overflow (see [`split_sum`]).
pub(crate) const SPLIT: i64 = 1 << 32;

/// `SUM(column)` as two columns, `<alias>_hi` and `<alias>_lo`: the sums of `column / 2^32`
/// and `column % 2^32`. Neither can overflow a BIGINT for fewer than 2^31 rows, where a plain
/// `SUM` of counters near `i64::MAX` fails (SQLite: "integer overflow"; PostgreSQL: a NUMERIC
/// out of BIGINT's range). [`get_split_sum`] puts the two back together, saturating.
pub(crate) fn split_sum(column: &str, alias: &str) -> String {
    format!(
        "CAST(SUM({column} / {SPLIT}) AS BIGINT) AS {alias}_hi, \
         CAST(SUM({column} % {SPLIT}) AS BIGINT) AS {alias}_lo"
    )
}

/// The sum [`split_sum`] selected as `alias`, saturating at the bounds of an `i64`.
fn get_split_sum(row: &AnyRow, alias: &str) -> StoreResult<i64> {
    let hi = i128::from(get_saturating(row, &format!("{alias}_hi"))?);
    let lo = i128::from(get_saturating(row, &format!("{alias}_lo"))?);
    let sum = hi * i128::from(SPLIT) + lo;
    Ok(sum.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// A [`split_sum`] of counts as a `u64` (negative reads as 0).
fn get_split_count(row: &AnyRow, alias: &str) -> StoreResult<u64> {
    Ok(u64::try_from(get_split_sum(row, alias)?).unwrap_or(0))
}

/// Days are `YYYY-MM-DD` text: sortable, and the same on both backends.
pub(crate) fn day_text(day: chrono::NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn get_day(row: &AnyRow, column: &str) -> StoreResult<chrono::NaiveDate> {
    let text: String = get(row, column)?;
    chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .map_err(|_| StoreError::Corrupt(format!("{column} is not a date")))
}

/// `''` in a NOT NULL key column stands for "none".
fn get_optional_text(row: &AnyRow, column: &str) -> StoreResult<Option<String>> {
    let text: String = get(row, column)?;
    Ok((!text.is_empty()).then_some(text))
}

pub(crate) const ROLLUP_COLUMNS: &str = "workspace_id, key_id, day, operation, project, \
    outcome, requests, tokens, cost_micros";

pub(crate) fn rollup_from_row(row: &AnyRow) -> StoreResult<crate::UsageRollup> {
    Ok(crate::UsageRollup {
        workspace_id: get(row, "workspace_id")?,
        key_id: get(row, "key_id")?,
        day: get_day(row, "day")?,
        operation: get(row, "operation")?,
        project: get_optional_text(row, "project")?,
        outcome: get(row, "outcome")?,
        requests: get_count(row, "requests")?,
        tokens: get_count(row, "tokens")?,
        cost: Micros(get_saturating(row, "cost_micros")?),
    })
}

/// A row of `SELECT <group> AS grp, outcome, <split_sum(requests)>, ..` (see [`split_sum`]).
pub(crate) fn total_from_row(row: &AnyRow) -> StoreResult<crate::UsageTotal> {
    Ok(crate::UsageTotal {
        group: get_optional_text(row, "grp")?,
        outcome: get(row, "outcome")?,
        requests: get_split_count(row, "requests")?,
        tokens: get_split_count(row, "tokens")?,
        cost: Micros(get_split_sum(row, "cost_micros")?),
    })
}

pub(crate) const REQUEST_LOG_COLUMNS: &str = "request_id, workspace_id, key_id, key_display, \
    at, operation, project, outcome, tokens, cost_micros, source_ip";

pub(crate) fn request_from_row(row: &AnyRow) -> StoreResult<crate::RequestLogEntry> {
    Ok(crate::RequestLogEntry {
        request_id: get(row, "request_id")?,
        workspace_id: get(row, "workspace_id")?,
        key_id: get(row, "key_id")?,
        key_display: get(row, "key_display")?,
        at: get_time(row, "at")?,
        operation: get(row, "operation")?,
        project: get(row, "project")?,
        outcome: get(row, "outcome")?,
        tokens: get_count(row, "tokens")?,
        cost: Micros(get_saturating(row, "cost_micros")?),
        source_ip: get(row, "source_ip")?,
    })
}

/// Request-log entries per segment at most, so one lookup never decodes a huge blob.
const SEGMENT_MAX_ENTRIES: usize = 20_000;
/// Request-id time one segment spans at most: a lookup reads only segments whose first id is
/// at most this much older than the id it looks for.
pub(crate) const SEGMENT_SPAN_MILLIS: u64 = 60_000;
const SEGMENT_FORMAT: u8 = 1;

/// One row of `request_log_segments`: a run of request-log entries in request-id order.
pub(crate) struct Segment {
    pub(crate) first_request_id: String,
    pub(crate) last_request_id: String,
    pub(crate) first_at: i64,
    pub(crate) last_at: i64,
    pub(crate) entries: i64,
    pub(crate) data: Vec<u8>,
}

/// Splits entries into segments: sorted by request id, a new segment whenever the request-id
/// time moves more than [`SEGMENT_SPAN_MILLIS`] past the segment's first id, or a segment is
/// full. Ids without a time (not made by `new_request_id`) join any segment but never start
/// one that a timed id could join, so a timed id is always within the span of its segment's
/// first id. The same entries always make the same segments (a retried batch repeats them).
pub(crate) fn request_log_segments(requests: &[crate::RequestLogEntry]) -> Vec<Segment> {
    // Each entry with its id's time, worked out once. Ids are time-ordered, so a flush is
    // nearly sorted already (and often exactly).
    let mut sorted: Vec<(Option<u64>, &crate::RequestLogEntry)> = requests
        .iter()
        .map(|e| (ids::request_id_millis(&e.request_id), e))
        .collect();
    if !sorted.is_sorted_by(|a, b| a.1.request_id < b.1.request_id) {
        sorted.sort_unstable_by(|a, b| a.1.request_id.cmp(&b.1.request_id));
        sorted.dedup_by(|a, b| a.1.request_id == b.1.request_id);
    }
    let mut segments = Vec::new();
    let mut start = 0;
    while start < sorted.len() {
        let first = sorted[start].0;
        let mut end = start + 1;
        while end < sorted.len() && end - start < SEGMENT_MAX_ENTRIES {
            let fits = match sorted[end].0 {
                None => true,
                Some(t) => first.is_some_and(|f| t.saturating_sub(f) <= SEGMENT_SPAN_MILLIS),
            };
            if !fits {
                break;
            }
            end += 1;
        }
        segments.push(encode_segment(&sorted[start..end]));
        start = end;
    }
    segments
}

fn encode_segment(entries: &[(Option<u64>, &crate::RequestLogEntry)]) -> Segment {
    let mut out = SegmentWriter {
        data: Vec::with_capacity(16 + entries.len() * 40),
        strings: std::collections::HashMap::default(),
    };
    out.data.push(SEGMENT_FORMAT);
    out.varint(entries.len() as u64);
    let mut previous_at = 0i64;
    for (_, e) in entries {
        out.bytes(e.request_id.as_bytes());
        out.string(Some(&e.workspace_id));
        out.string(Some(&e.key_id));
        out.string(e.key_display.as_deref());
        let at = millis(e.at);
        out.signed(at.wrapping_sub(previous_at));
        previous_at = at;
        out.string(Some(&e.operation));
        out.string(e.project.as_deref());
        out.string(Some(&e.outcome));
        out.varint(e.tokens);
        out.signed(e.cost.0);
        out.string(e.source_ip.as_deref());
    }
    let at = entries.iter().map(|(_, e)| millis(e.at));
    Segment {
        first_request_id: entries
            .first()
            .map(|(_, e)| e.request_id.clone())
            .unwrap_or_default(),
        last_request_id: entries
            .last()
            .map(|(_, e)| e.request_id.clone())
            .unwrap_or_default(),
        first_at: at.clone().min().unwrap_or(0),
        last_at: at.max().unwrap_or(0),
        entries: entries.len() as i64,
        data: out.data,
    }
}

/// Strings repeat a lot within a segment (workspace, key, operation, outcome, source): each
/// is written once and referred to by number after that.
struct SegmentWriter<'a> {
    data: Vec<u8>,
    /// foldhash: fast, and seeded per process, so chosen strings cannot force collisions.
    strings: std::collections::HashMap<&'a str, u64, foldhash::fast::RandomState>,
}

impl<'a> SegmentWriter<'a> {
    fn varint(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.data.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.data.push(n as u8);
    }

    fn signed(&mut self, n: i64) {
        self.varint(((n << 1) ^ (n >> 63)) as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.data.extend_from_slice(b);
    }

    /// 0: none; 1: a new string follows; n ≥ 2: the (n - 2)th string written before.
    fn string(&mut self, s: Option<&'a str>) {
        let Some(s) = s else {
            self.data.push(0);
            return;
        };
        if let Some(&n) = self.strings.get(s) {
            self.varint(n + 2);
        } else {
            self.data.push(1);
            self.bytes(s.as_bytes());
            let n = self.strings.len() as u64;
            self.strings.insert(s, n);
        }
    }
}

struct SegmentReader<'a> {
    data: &'a [u8],
    strings: Vec<&'a str>,
}

impl<'a> SegmentReader<'a> {
    fn corrupt() -> StoreError {
        StoreError::Corrupt("request-log segment: bad encoding".into())
    }

    fn byte(&mut self) -> StoreResult<u8> {
        let (&b, rest) = self.data.split_first().ok_or_else(Self::corrupt)?;
        self.data = rest;
        Ok(b)
    }

    fn varint(&mut self) -> StoreResult<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(Self::corrupt())
    }

    fn signed(&mut self) -> StoreResult<i64> {
        let n = self.varint()?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn str(&mut self) -> StoreResult<&'a str> {
        let len = usize::try_from(self.varint()?).map_err(|_| Self::corrupt())?;
        if len > self.data.len() {
            return Err(Self::corrupt());
        }
        let (b, rest) = self.data.split_at(len);
        self.data = rest;
        std::str::from_utf8(b).map_err(|_| Self::corrupt())
    }

    fn string(&mut self) -> StoreResult<Option<&'a str>> {
        match self.varint()? {
            0 => Ok(None),
            1 => {
                let s = self.str()?;
                self.strings.push(s);
                Ok(Some(s))
            }
            n => usize::try_from(n - 2)
                .ok()
                .and_then(|i| self.strings.get(i).copied())
                .map(Some)
                .ok_or_else(Self::corrupt),
        }
    }

    fn required(&mut self) -> StoreResult<&'a str> {
        self.string()?.ok_or_else(Self::corrupt)
    }
}

/// The entry with this request id and workspace in an encoded segment, if there is one.
pub(crate) fn find_in_segment(
    data: &[u8],
    workspace_id: &str,
    request_id: &str,
) -> StoreResult<Option<crate::RequestLogEntry>> {
    let mut r = SegmentReader {
        data,
        strings: Vec::new(),
    };
    if r.byte()? != SEGMENT_FORMAT {
        return Err(StoreError::Corrupt(
            "request-log segment: unknown format".into(),
        ));
    }
    let count = r.varint()?;
    let mut at = 0i64;
    for _ in 0..count {
        let id = r.str()?;
        let workspace = r.required()?;
        let key_id = r.required()?;
        let key_display = r.string()?;
        at = at.wrapping_add(r.signed()?);
        let operation = r.required()?;
        let project = r.string()?;
        let outcome = r.required()?;
        let tokens = r.varint()?;
        let cost = r.signed()?;
        let source_ip = r.string()?;
        if id == request_id && workspace == workspace_id {
            return Ok(Some(crate::RequestLogEntry {
                request_id: id.to_owned(),
                workspace_id: workspace.to_owned(),
                key_id: key_id.to_owned(),
                key_display: key_display.map(str::to_owned),
                at: time("at", at)?,
                operation: operation.to_owned(),
                project: project.map(str::to_owned),
                outcome: outcome.to_owned(),
                tokens,
                cost: Micros(cost),
                source_ip: source_ip.map(str::to_owned),
            }));
        }
    }
    Ok(None)
}

pub(crate) const AUTH_FAILURE_COLUMNS: &str = "id, workspace_id, hour, key_display, \
    source_ip, code, attempts, first_seen, last_seen";

pub(crate) fn auth_failure_from_row(row: &AnyRow) -> StoreResult<crate::AuthFailure> {
    Ok(crate::AuthFailure {
        id: get(row, "id")?,
        workspace_id: get(row, "workspace_id")?,
        hour: get_time(row, "hour")?,
        key_display: get(row, "key_display")?,
        source_ip: get_optional_text(row, "source_ip")?,
        code: get(row, "code")?,
        attempts: get_count(row, "attempts")?,
        first_seen: get_time(row, "first_seen")?,
        last_seen: get_time(row, "last_seen")?,
    })
}

// --- pagination ---------------------------------------------------------------------------

/// A keyset position: the sort columns of the last row of a page, as `<millis>.<id>`.
/// Keyset rather than OFFSET so a page stays correct while keys are created in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub at: i64,
    pub id: String,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        format!("{}.{}", self.at, self.id)
    }

    pub(crate) fn parse(text: &str) -> StoreResult<Self> {
        let (at, id) = text.split_once('.').ok_or(StoreError::BadCursor)?;
        let at = at.parse().map_err(|_| StoreError::BadCursor)?;
        if id.is_empty() {
            return Err(StoreError::BadCursor);
        }
        Ok(Self {
            at,
            id: id.to_owned(),
        })
    }
}

/// Page sizes the store serves: at least one row, at most 500.
pub(crate) fn clamp_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, 500))
}

/// Turns `limit + 1` fetched rows into a page: the extra row only says there is a next one.
pub(crate) fn into_page<T>(
    mut items: Vec<T>,
    limit: i64,
    cursor_of: impl Fn(&T) -> Cursor,
) -> crate::Page<T> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| cursor_of(last).encode())
    } else {
        None
    };
    crate::Page { items, next_cursor }
}

/// A LIKE pattern matching `text` anywhere, with its own wildcards escaped (`ESCAPE '\'`).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

// --- dynamic queries ----------------------------------------------------------------------

/// A bound value of a query assembled at run time.
pub(crate) enum Value {
    Text(String),
    Int(i64),
}

/// SQL assembled from optional filters, numbering `$N` placeholders as it goes (sqlx's own
/// `QueryBuilder` writes `?` for `Any`, which PostgreSQL rejects). Values are always bound,
/// never formatted into the text.
///
/// For SQLite the same statement is also kept with anonymous `?` placeholders: sqlx's SQLite
/// driver asks SQLite for every parameter's name, and SQLite finds a name by scanning the list
/// of named parameters, so binding N named parameters costs N² — tens of milliseconds a second
/// for the usage and last-used flushes. Anonymous parameters have no names to scan.
pub(crate) struct DynamicQuery {
    sql: String,
    anonymous: String,
    values: Vec<Value>,
}

impl DynamicQuery {
    pub(crate) fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            anonymous: sql.to_owned(),
            values: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self.anonymous.push_str(sql);
        self
    }

    pub(crate) fn bind(&mut self, value: Value) -> &mut Self {
        self.values.push(value);
        self.sql.push('$');
        self.sql.push_str(&self.values.len().to_string());
        self.anonymous.push('?');
        self
    }

    pub(crate) fn text(&mut self, value: &str) -> &mut Self {
        self.bind(Value::Text(value.to_owned()))
    }

    pub(crate) fn int(&mut self, value: i64) -> &mut Self {
        self.bind(Value::Int(value))
    }

    /// Keyset condition for `ORDER BY <at> DESC, <id> DESC`: rows strictly after the cursor.
    /// A row-value comparison (both dialects have it) lets PostgreSQL seek the page index.
    pub(crate) fn after(&mut self, at_column: &str, id_column: &str, cursor: &Cursor) -> &mut Self {
        self.push(&format!(" AND ({at_column}, {id_column}) < ("))
            .int(cursor.at)
            .push(", ")
            .text(&cursor.id)
            .push(")")
    }

    pub(crate) fn query(&self, backend: Backend) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        let text = match backend {
            Backend::Sqlite => &self.anonymous,
            Backend::Postgres => &self.sql,
        };
        let mut query = sqlx::query(text);
        for value in &self.values {
            query = match value {
                Value::Text(text) => query.bind(text.as_str()),
                Value::Int(int) => query.bind(*int),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            at: 1_700_000_000_123,
            id: "key_abc".into(),
        };
        assert_eq!(Cursor::parse(&cursor.encode()).expect("parse"), cursor);
        for bad in ["", "abc", "12", "12.", "x.key_1", ".key_1"] {
            assert!(
                matches!(Cursor::parse(bad), Err(StoreError::BadCursor)),
                "{bad}"
            );
        }
    }

    #[test]
    fn like_patterns_escape_wildcards_and_fold_case() {
        assert_eq!(contains_pattern("Prod_100%"), "%prod\\_100\\%%");
        assert_eq!(contains_pattern("a\\b"), "%a\\\\b%");
    }

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut q = DynamicQuery::new("SELECT 1 WHERE a = ");
        q.text("x").push(" AND b = ").int(2);
        assert_eq!(q.sql, "SELECT 1 WHERE a = $1 AND b = $2");
    }
}
