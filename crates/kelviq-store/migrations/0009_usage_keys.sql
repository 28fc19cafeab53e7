-- The most written indexes lead with the column that tells rows apart, so a
-- comparison in the tree usually ends at the first column: before, every
-- comparison went through the tenant's 36-character organisation id and its
-- environment first (the same in nearly every row), and PostgreSQL cannot
-- cache where a column sits after a variable-length one, so it walked each
-- index tuple to reach the idempotency key. On PostgreSQL the events'
-- natural key becomes their primary key: `seq` keeps its order but loses its
-- own index, which nothing there reads (SQLite's `seq` is the rowid, free).

DROP INDEX usage_events_by_key;
CREATE UNIQUE INDEX usage_events_by_key ON usage_events (idempotency_key, org_id, environment);
-- postgres: ALTER TABLE usage_events DROP CONSTRAINT usage_events_pkey;
-- postgres: ALTER TABLE usage_events ADD CONSTRAINT usage_events_pkey PRIMARY KEY USING INDEX usage_events_by_key;

-- Counters: the customer first. On PostgreSQL the pages keep room for a
-- counter's new versions (an update on the same page touches no index).
CREATE TABLE usage_counters_by_customer (
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    feature       TEXT NOT NULL,
    period_start  BIGINT NOT NULL,
    value         BIGINT NOT NULL,
    value_at      BIGINT NOT NULL,
    alerts        TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (customer_id, feature, period_start, org_id, environment)
);
-- postgres: ALTER TABLE usage_counters_by_customer SET (fillfactor = 70);
INSERT INTO usage_counters_by_customer (org_id, environment, customer_id, feature, period_start, value, value_at,
    alerts, updated_at)
SELECT org_id, environment, customer_id, feature, period_start, value, value_at, alerts, updated_at
FROM usage_counters;
DROP TABLE usage_counters;
ALTER TABLE usage_counters_by_customer RENAME TO usage_counters;
