-- Usage, the request log and failed-authentication aggregates, PostgreSQL dialect. Kept
-- column-for-column identical to migrations/sqlite/0002_usage.sql (see 0001_init.sql for
-- why). None of these tables has a foreign key: usage outlives the keys it counts (a deleted
-- key's history still adds up in the workspace's totals), and the writer batches rows from
-- many requests that must not fail together because one key was deleted meanwhile.

-- One row per key × UTC day × operation × project × outcome; counters are added to by an
-- upsert from each batch. `project` is '' when the request named none (primary key columns
-- cannot be NULL on PostgreSQL). `requests` does not count usage reported after the fact
-- (outcome 'reported'), only its tokens and cost.
CREATE TABLE usage_rollups (
    workspace_id TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    day          TEXT NOT NULL,
    operation    TEXT NOT NULL,
    project      TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    requests     BIGINT NOT NULL,
    tokens       BIGINT NOT NULL,
    cost_micros  BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, key_id, day, operation, project, outcome)
);
CREATE INDEX usage_rollups_day_idx ON usage_rollups (workspace_id, day);

-- One row per request that identified a key, kept for the configured retention, so support
-- can answer "which key made request req_…".
CREATE TABLE request_log (
    request_id   TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    key_display  TEXT,
    at           BIGINT NOT NULL,
    operation    TEXT NOT NULL,
    project      TEXT,
    outcome      TEXT NOT NULL,
    tokens       BIGINT NOT NULL,
    cost_micros  BIGINT NOT NULL,
    source_ip    TEXT
);
CREATE INDEX request_log_at_idx ON request_log (at);

-- Failed authentication attempts, aggregated per workspace × hour × display form × source ×
-- code so a flood adds to counters instead of rows. `key_display` never holds a secret;
-- `source_ip` is '' when unknown.
CREATE TABLE auth_failures (
    id           TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    hour         BIGINT NOT NULL,
    key_display  TEXT NOT NULL,
    source_ip    TEXT NOT NULL,
    code         TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    first_seen   BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, hour, key_display, source_ip, code)
);
CREATE INDEX auth_failures_page_idx ON auth_failures (workspace_id, first_seen DESC, id DESC);
CREATE INDEX auth_failures_hour_idx ON auth_failures (hour);
