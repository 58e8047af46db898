-- The request log in segments: one row per usage flush (split per minute of request-id time
-- and per 20,000 requests) instead of one row per request, which made every request cost an
-- 11-column insert and two random B-tree insertions. Kept identical to
-- migrations/postgres/0004_request_log_segments.sql except for the blob type and the ids'
-- collation (byte order, SQLite's default, is spelled out there).
--
-- Request ids are time-ordered (`req_` + 8 base62 digits of Unix milliseconds + 12 random
-- characters), so a lookup reads the few segments whose id range covers the id and whose first
-- id is at most a minute older; `data` is the segment's entries in the compact encoding of
-- keygate-store/src/codec.rs. Retention deletes whole segments by `last_at`. The old
-- `request_log` table is no longer written; its rows are still read and purged until they
-- age out.
CREATE TABLE request_log_segments (
    first_request_id TEXT NOT NULL,
    last_request_id  TEXT NOT NULL,
    first_at         BIGINT NOT NULL,
    last_at          BIGINT NOT NULL,
    entries          BIGINT NOT NULL,
    data             BLOB NOT NULL,
    PRIMARY KEY (first_request_id, last_request_id)
);
CREATE INDEX request_log_segments_last_at_idx ON request_log_segments (last_at);
