-- Webhook delivery. An event written to the outbox (`events`) in a change's
-- transaction gets, in that same transaction, one delivery row per enabled
-- endpoint subscribed to its type; the dispatcher claims due deliveries
-- (with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so that two processes never
-- take the same one), sends them, and records each attempt.

-- The events API filters by customer (the merchant's id) and time.
ALTER TABLE events ADD COLUMN customer_id TEXT;
CREATE INDEX events_by_created ON events (org_id, environment, created_at);

CREATE TABLE webhook_endpoints (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,
    id                    TEXT NOT NULL UNIQUE,
    org_id                TEXT NOT NULL REFERENCES organizations (id),
    environment           TEXT NOT NULL,
    url                   TEXT NOT NULL,
    description           TEXT NOT NULL,
    -- A JSON list of event types; empty: every type.
    event_types           TEXT NOT NULL,
    enabled               INTEGER NOT NULL,
    -- Why it was disabled: `manual`, `gone` (it answered 410) or `failing`.
    disabled_reason       TEXT,
    rate_limit            BIGINT,
    fifo                  INTEGER NOT NULL,
    signature_format      TEXT NOT NULL,
    -- Signing secrets, sealed with the server's secret key.
    secret                TEXT NOT NULL,
    previous_secret       TEXT,
    previous_secret_until BIGINT,
    -- The first failure since the last success (null: not failing).
    failing_since         BIGINT,
    created_at            BIGINT NOT NULL,
    modified_at           BIGINT NOT NULL,
    deleted_at            BIGINT
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (org_id, environment, seq);

CREATE TABLE webhook_deliveries (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    org_id           TEXT NOT NULL,
    environment      TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    -- PENDING, SUCCEEDED, FAILED (out of attempts, or its endpoint is
    -- disabled; can be recovered) or CANCELLED (its endpoint was deleted).
    status           TEXT NOT NULL,
    -- Every attempt made, and those since the last resend or recovery.
    attempts         BIGINT NOT NULL,
    round_attempts   BIGINT NOT NULL,
    -- When the next attempt is due; null unless PENDING.
    next_attempt_at  BIGINT,
    -- A claimed delivery belongs to the process holding `lease_token` until
    -- `lease_until`; after that (the process died) anyone may claim it.
    lease_until      BIGINT,
    lease_token      TEXT,
    last_status      BIGINT,
    last_attempt_at  BIGINT,
    created_at       BIGINT NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, seq) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, status, created_at);
CREATE INDEX webhook_deliveries_logs ON webhook_deliveries (org_id, environment, last_attempt_at);

CREATE TABLE webhook_attempts (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    delivery_seq     BIGINT NOT NULL,
    org_id           TEXT NOT NULL,
    environment      TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    attempted_at     BIGINT NOT NULL,
    status_code      BIGINT,
    latency_ms       BIGINT NOT NULL,
    response_excerpt TEXT NOT NULL,
    next_attempt_at  BIGINT
);
CREATE INDEX webhook_attempts_by_event ON webhook_attempts (event_id, seq);
CREATE INDEX webhook_attempts_by_time ON webhook_attempts (attempted_at);
