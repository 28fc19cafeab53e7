-- Raw events become the usage journal. An event's idempotency key is unique
-- in its tenant (the event row itself proves it was processed, so events no
-- longer take a row in ingest_keys), and rows are appended in `seq` order.
-- `unfolded` lists the counter additions the event made that were not yet
-- applied to usage_counters when it committed ("feature<TAB>period_start<TAB>delta"
-- lines): on SQLite they are applied in bulk later, and those after
-- `usage_folds.folded_seq` are applied again at start after a crash.

CREATE TABLE usage_events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id           TEXT NOT NULL,
    environment      TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    customer_id      TEXT NOT NULL,
    event_name       TEXT NOT NULL,
    event_at         BIGINT NOT NULL,
    resource_id      TEXT,
    properties       TEXT NOT NULL,
    received_at      BIGINT NOT NULL,
    unfolded         TEXT NOT NULL
);
CREATE UNIQUE INDEX usage_events_by_key ON usage_events (org_id, environment, idempotency_key);

INSERT INTO usage_events (org_id, environment, idempotency_key, customer_id, event_name, event_at, resource_id,
    properties, received_at, unfolded)
SELECT org_id, environment, idempotency_key, customer_id, event_name, event_at, resource_id, properties, received_at, ''
FROM raw_events ORDER BY seq;
DROP TABLE raw_events;
DELETE FROM ingest_keys WHERE kind = 'event';

-- Every event up to `folded_seq` has its additions in usage_counters.
CREATE TABLE usage_folds (
    id          INTEGER PRIMARY KEY,
    folded_seq  BIGINT NOT NULL
);
INSERT INTO usage_folds (id, folded_seq) VALUES (1, 0);
