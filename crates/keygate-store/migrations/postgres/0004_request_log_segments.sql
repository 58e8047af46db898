-- The request log in segments: one row per usage flush (split per minute of request-id time
-- and per 20,000 requests) instead of one row per request, which made every request cost an
-- 11-column insert and two random B-tree insertions. Kept identical to
-- migrations/sqlite/0004_request_log_segments.sql except for the blob type and the ids'
-- collation: ranges of ids must compare byte by byte (base62 puts 'Z' before 'a'), which is
-- SQLite's only order but not that of PostgreSQL databases created with a locale.
--
-- Request ids are time-ordered (`req_` + 8 base62 digits of Unix milliseconds + 12 random
-- characters), so a lookup reads the few segments whose id range covers the id and whose first
-- id is at most a minute older; `data` is the segment's entries in the compact encoding of
-- keygate-store/src/codec.rs. Retention deletes whole segments by `last_at`. The old
-- `request_log` table is no longer written; its rows are still read and purged until they
-- age out.
CREATE TABLE request_log_segments (
    first_request_id TEXT COLLATE "C" NOT NULL,
    last_request_id  TEXT COLLATE "C" NOT NULL,
    first_at         BIGINT NOT NULL,
    last_at          BIGINT NOT NULL,
    entries          BIGINT NOT NULL,
    data             BYTEA NOT NULL,
    PRIMARY KEY (first_request_id, last_request_id)
);
CREATE INDEX request_log_segments_last_at_idx ON request_log_segments (last_at);
