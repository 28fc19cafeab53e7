-- Usage metering: counters per customer, feature and usage period; the raw
-- events behind RAW_EVENTS meters; idempotency keys of reports, events and
-- consumes (with the answer first given); per-customer entitlement overrides.

CREATE TABLE usage_counters (
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    feature       TEXT NOT NULL,
    -- Start of the usage period (microseconds); 0 for a meter that never resets.
    period_start  BIGINT NOT NULL,
    value         BIGINT NOT NULL,
    -- LATEST aggregation: the timestamp of the event that set `value`.
    value_at      BIGINT NOT NULL,
    -- Usage-alert thresholds already announced this period, as `KIND:VALUE;…`.
    alerts        TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (org_id, environment, customer_id, feature, period_start)
);

-- UNIQUE_COUNT meters: the distinct values seen in a period.
CREATE TABLE meter_uniques (
    org_id        TEXT NOT NULL,
    environment   TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    feature       TEXT NOT NULL,
    period_start  BIGINT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (org_id, environment, customer_id, feature, period_start, value)
);

CREATE TABLE raw_events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    environment      TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    event_name       TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    event_at         BIGINT NOT NULL,
    resource_id      TEXT,
    properties       TEXT NOT NULL,
    received_at      BIGINT NOT NULL
);
CREATE INDEX raw_events_by_customer ON raw_events (org_id, environment, customer_id, event_at);

-- Processed-at-most-once keys; `kind` is event, usage or consume.
CREATE TABLE ingest_keys (
    org_id           TEXT NOT NULL,
    environment      TEXT NOT NULL,
    kind             TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    response         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (org_id, environment, kind, idempotency_key)
);

CREATE TABLE entitlement_overrides (
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    feature       TEXT NOT NULL,
    doc           TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (org_id, environment, customer_id, feature)
);
