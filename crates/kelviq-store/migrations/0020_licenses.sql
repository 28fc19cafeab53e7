-- License keys issued by purchases of plans whose `license` is enabled,
-- their instances (activations) and the log of what was done to them.
-- A key is stored sealed under the server's secret key (to show it again)
-- and found by its SHA-256. The policy is copied from the plan when the key
-- is issued; the merchant may change limit, expiry and `enabled` later.
-- Flags are 0/1 numbers.

CREATE TABLE licenses (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   TEXT NOT NULL UNIQUE,
    org_id               TEXT NOT NULL REFERENCES organizations (id),
    environment          TEXT NOT NULL,
    key_hash             TEXT NOT NULL UNIQUE,
    key_sealed           TEXT NOT NULL,
    customer_id          TEXT NOT NULL,
    subscription_id      TEXT,
    order_id             TEXT,
    plan_id              TEXT NOT NULL,
    activation_limit     BIGINT,
    heartbeat_ttl        BIGINT,
    reuse_by_fingerprint BIGINT NOT NULL,
    grace_days           BIGINT NOT NULL,
    enabled              BIGINT NOT NULL,
    disabled_reason      TEXT,
    expires_at           BIGINT,
    first_activated_at   BIGINT,
    created_at           BIGINT NOT NULL,
    modified_at          BIGINT NOT NULL
);
CREATE INDEX licenses_by_customer ON licenses (org_id, environment, customer_id, seq);
CREATE INDEX licenses_by_subscription ON licenses (subscription_id);

CREATE TABLE license_instances (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    id                 TEXT NOT NULL UNIQUE,
    license_id         TEXT NOT NULL,
    name               TEXT,
    fingerprint        TEXT,
    metadata           TEXT NOT NULL,
    activated_at       BIGINT NOT NULL,
    last_heartbeat_at  BIGINT NOT NULL,
    last_seen_at       BIGINT,
    deactivated_at     BIGINT,
    deactivated_by     TEXT
);
CREATE INDEX license_instances_of ON license_instances (license_id, deactivated_at);

-- ACTIVATED, REUSED, DEACTIVATED (by the customer's app), REVOKED, RESET,
-- REGENERATED, ENABLED, DISABLED, UPDATED (by the merchant).
CREATE TABLE license_activity (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    license_id   TEXT NOT NULL,
    action       TEXT NOT NULL,
    instance_id  TEXT,
    at           BIGINT NOT NULL
);
CREATE INDEX license_activity_of ON license_activity (license_id, at);
