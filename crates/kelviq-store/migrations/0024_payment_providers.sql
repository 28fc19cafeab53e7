-- The payment provider an environment charges through (the sandbox
-- provider when none is set): Stripe's secret key and webhook signing
-- secret, both sealed under the server's secret key; `key_hint` is what
-- may be shown (the mode and the last four characters).

CREATE TABLE payment_providers (
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    environment     TEXT NOT NULL,
    provider        TEXT NOT NULL CHECK (provider IN ('stripe')),
    secret_key      TEXT NOT NULL,
    webhook_secret  TEXT NOT NULL,
    key_hint        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    modified_at     BIGINT NOT NULL,
    PRIMARY KEY (org_id, environment)
);
