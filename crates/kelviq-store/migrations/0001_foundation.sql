-- Foundation: organisations, API keys, customers, the event outbox.
-- Instants are BIGINT microseconds since the Unix epoch (UTC); ids are UUID text;
-- JSON documents are TEXT. Migrations are written once, in this dialect; on
-- PostgreSQL `INTEGER PRIMARY KEY AUTOINCREMENT` becomes `BIGSERIAL PRIMARY KEY`
-- (see `migrations.rs`).

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL UNIQUE,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL CHECK (environment IN ('sandbox', 'production')),
    kind         TEXT NOT NULL CHECK (kind IN ('server', 'client')),
    prefix       TEXT NOT NULL,
    secret_hash  TEXT NOT NULL UNIQUE,
    name         TEXT,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_by_org ON api_keys (org_id, environment);

CREATE TABLE customers (
    pk               INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    environment      TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    name             TEXT,
    email            TEXT,
    metadata         TEXT NOT NULL,
    billing_address  TEXT,
    details          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    modified_at      BIGINT NOT NULL,
    archived_at      BIGINT,
    UNIQUE (org_id, environment, customer_id)
);
CREATE INDEX customers_newest ON customers (org_id, environment, created_at DESC, pk DESC);

-- The transactional outbox: events are written in the same transaction as the
-- change that causes them; delivery reads them in `seq` order.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX events_by_tenant ON events (org_id, environment, seq);
