-- A feed of changes that other server processes must see (API keys now, the
-- in-memory entitlement state later). Rows are written in the same
-- transaction as the change; every process follows the feed (and, on
-- PostgreSQL, is woken by NOTIFY kelviq_changes). Old rows are pruned.

CREATE TABLE change_feed (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX change_feed_by_time ON change_feed (created_at);
